//! Setting up and running the service from a [`Config`].
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::api::{AppState, app};
use crate::config::Config;
use crate::db::Db;
use crate::error::ServerError;
use crate::secrets::{MASTER_KEY_ENV, MasterKey};
use crate::service::Service;

/// How long open requests may finish after SIGTERM or SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `init` made.
pub struct InitReport {
    /// The first admin token (stored only as a hash).
    pub admin_token: Zeroizing<String>,
    /// The master key file written, if one was (none when the key came from
    /// the environment or the file existed).
    pub master_key_written: Option<PathBuf>,
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), ServerError> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| ServerError::Io {
        action: "cannot create",
        path: dir.to_owned(),
        source,
    })
}

/// Creates the database schema and, unless one exists or the environment
/// holds one, the master key file (0600). An existing key file is reused:
/// several PostgreSQL-backed instances share one key.
pub async fn init(config: &Config) -> Result<InitReport, ServerError> {
    create_private_dir(&config.data_dir)?;
    let mut written = None;
    if std::env::var_os(MASTER_KEY_ENV).is_none() && !config.master_key_file.exists() {
        if let Some(parent) = config.master_key_file.parent() {
            create_private_dir(parent)?;
        }
        let text = MasterKey::generate_file_text();
        let io = |source| ServerError::Io { action: "cannot write", path: config.master_key_file.clone(), source };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config.master_key_file)
            .map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
        written = Some(config.master_key_file.clone());
    }
    let master = MasterKey::load(&config.master_key_file)?;
    let db = Db::connect(&config.database, true).await?;
    let admin_token = Service::initialise(&db, &master).await?;
    db.close().await;
    Ok(InitReport { admin_token, master_key_written: written })
}

/// Opens the service for commands that work on the database directly.
pub async fn open(config: &Config) -> Result<Service, ServerError> {
    let master = MasterKey::load(&config.master_key_file)?;
    let db = Db::connect(&config.database, false).await?;
    Service::open(db, master, config.package_dir.clone(), config.max_package_len).await
}

/// Serves the API until SIGTERM or SIGINT. `on_listening` is told the
/// bound address (the port may have been 0).
pub async fn serve(config: &Config, on_listening: impl FnOnce(SocketAddr, bool)) -> Result<(), ServerError> {
    let svc = open(config).await?;
    let state = AppState::new(svc, config.limits);
    let router = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let cannot_listen =
        |source| ServerError::Io { action: "cannot listen on", path: PathBuf::from(config.listen.to_string()), source };
    let listener = std::net::TcpListener::bind(config.listen).map_err(cannot_listen)?;
    listener.set_nonblocking(true).map_err(cannot_listen)?;
    let addr = listener.local_addr().map_err(cannot_listen)?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        h.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let listen_error = |source| ServerError::Io { action: "cannot listen on", path: addr.to_string().into(), source };
    let served = match &config.tls {
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.map_err(|source| {
                ServerError::Io { action: "cannot load the TLS certificate and key", path: cert.clone(), source }
            })?;
            on_listening(addr, true);
            axum_server::from_tcp_rustls(listener, tls).map_err(listen_error)?.handle(handle).serve(router).await
        }
        None => {
            on_listening(addr, false);
            axum_server::from_tcp(listener).map_err(listen_error)?.handle(handle).serve(router).await
        }
    };
    state.svc.db.close().await;
    served.map_err(|source| ServerError::Io { action: "the server failed on", path: addr.to_string().into(), source })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
