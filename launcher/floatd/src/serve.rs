//! Running the daemon: listen (HTTP or HTTPS), sweep leases in the
//! background, check dongles, and shut down cleanly on SIGTERM or SIGINT.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::FloatdError;
use crate::app::app;
use crate::config::Config;
use crate::daemon::{DONGLE_CHECK, Daemon, TICK};

/// How long open requests (queued checkouts) may finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Serves until SIGTERM or SIGINT; `on_listening` is told the bound address.
pub async fn serve(config: &Config, on_listening: impl FnOnce(SocketAddr, bool)) -> Result<(), FloatdError> {
    let daemon = Arc::new(Daemon::start(config).await?);
    let cannot_listen =
        |source| FloatdError::Io { action: "cannot listen on", path: config.listen.to_string().into(), source };
    let listener = std::net::TcpListener::bind(config.listen).map_err(cannot_listen)?;
    listener.set_nonblocking(true).map_err(cannot_listen)?;
    let addr = listener.local_addr().map_err(cannot_listen)?;
    let ticker = {
        let d = daemon.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                d.tick().await;
            }
        })
    };
    let dongles = daemon.has_dongles().then(|| {
        let d = daemon.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DONGLE_CHECK).await;
                let d = d.clone();
                let _ = tokio::task::spawn_blocking(move || d.check_dongles()).await;
            }
        })
    });
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down; leases stay stored and are honoured after a restart");
        h.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let router = app(daemon.clone());
    let listen_error = |source| FloatdError::Io { action: "cannot listen on", path: addr.to_string().into(), source };
    let served = match &config.tls {
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.map_err(|source| {
                FloatdError::Io { action: "cannot load the TLS certificate and key", path: cert.clone(), source }
            })?;
            on_listening(addr, true);
            axum_server::from_tcp_rustls(listener, tls)
                .map_err(listen_error)?
                .handle(handle)
                .serve(router.into_make_service())
                .await
        }
        None => {
            on_listening(addr, false);
            axum_server::from_tcp(listener)
                .map_err(listen_error)?
                .handle(handle)
                .serve(router.into_make_service())
                .await
        }
    };
    ticker.abort();
    if let Some(t) = dongles {
        t.abort();
    }
    daemon.close().await;
    served.map_err(|source| FloatdError::Io { action: "the server failed on", path: addr.to_string().into(), source })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without handlers the default action (exit) applies; leases are stored.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
