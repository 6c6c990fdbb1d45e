//! `sealrun serve`: runs a `wasi:http/proxy` component as a
//! licensed web service: one fresh instance per request from a
//! pre-instantiated component, each with its own time and memory limits,
//! a 503 while the license is away, graceful shutdown and an access log.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::component::{self, Host};
use super::runner::{self, GuestConfig, RunThread};
use crate::error::{GuestError, LaunchError};
use crate::watch::{self, Lost, Watch};

/// Where `sealrun serve` listens unless told: loopback, so a service is
/// reachable from this machine only until the user says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// A request's time limit unless told: long enough for any interactive
/// request, short enough that a stuck one does not hold its slot for long.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: f64 = 30.0;
/// Memory one request's instance may use unless told, in MiB: a request
/// handler needs far less than a command, and many run at once.
pub const DEFAULT_REQUEST_MEMORY_MIB: u64 = 256;
/// Requests served at once unless told; more wait for a slot (their
/// connection stays open) up to the time limit.
pub const DEFAULT_MAX_CONCURRENT: usize = 64;
/// How often the engine's epoch ticks: a request's time limit is checked
/// (and a long request yields to the others) this often.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How long a stop waits for open requests before it ends the process
/// anyway, beyond the request time limit (which bounds them already).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How `sealrun serve` serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Each request's time limit.
    pub request_timeout: Duration,
    /// Requests served at once.
    pub max_concurrent: usize,
    /// Where the access log goes (`None`: stderr).
    pub access_log: Option<std::path::PathBuf>,
}

/// The most requests at once (`--max-concurrent`) that `sealrun serve`
/// serves from an instance pool. The pool holds, for twice that many
/// requests (a request past its limit may still be dropping its instance
/// while the next one starts), everything a component may use under the
/// caps of `component::COMPONENT_CAPS`, so requests within the limit find
/// a slot (one that found the pool full would get 500, as for any failed
/// instantiation). Each memory slot reserves about 4 GiB of address space:
/// 64 requests take 2 x 64 x 16 slots, 8 TiB of the 128 TiB a Linux
/// process has. Above this, instances are allocated one by one, as for
/// commands.
pub const MAX_POOLED_CONCURRENT: usize = 64;

/// Elements a table of a pooled instance may hold (wasmtime's default is
/// 20,000): five times that covers the function tables of large C++
/// programs, and the 16,384 table slots of a full pool reserve 13 GiB of
/// address space, committed only as used.
const POOLED_TABLE_ELEMENTS: usize = 100_000;

/// The instance pool for `max_concurrent` requests at once, if it fits
/// (see [`MAX_POOLED_CONCURRENT`]). A pool reuses memory slots (wasmtime
/// clears a slot before it is used again) instead of mapping and
/// unmapping gigabytes of address space per request: in the benchmark
/// (docs/performance.md) sealrun serve went from 0.95x to 1.31x the
/// requests per second of `wasmtime serve` (itself pooled) with the pool.
pub(crate) fn pooled_allocation(max_concurrent: usize) -> Option<wasmtime::PoolingAllocationConfig> {
    use super::component::{MAX_COMPONENT_INSTANCES, MAX_COMPONENT_MEMORIES, MAX_COMPONENT_TABLES};
    if max_concurrent == 0 || max_concurrent > MAX_POOLED_CONCURRENT {
        return None;
    }
    let requests = u32::try_from(2 * max_concurrent).ok()?;
    let each = |n: usize| u32::try_from(n).ok().and_then(|n| n.checked_mul(requests));
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(requests)
        .total_stacks(requests)
        .total_core_instances(each(MAX_COMPONENT_INSTANCES)?)
        .total_memories(each(MAX_COMPONENT_MEMORIES)?)
        .total_tables(each(MAX_COMPONENT_TABLES)?)
        .max_core_instances_per_component(MAX_COMPONENT_INSTANCES as u32)
        .max_memories_per_component(MAX_COMPONENT_MEMORIES as u32)
        .max_tables_per_component(MAX_COMPONENT_TABLES as u32)
        .max_memories_per_module(MAX_COMPONENT_MEMORIES as u32)
        .max_tables_per_module(MAX_COMPONENT_TABLES as u32)
        .table_elements(POOLED_TABLE_ELEMENTS);
    Some(pool)
}

/// Why a request's instance ended without a response.
#[derive(Debug, thiserror::Error)]
#[error("the request ran past its time limit")]
struct OverTime;

/// The service: what each request is served with.
struct Service {
    pre: ProxyPre<Host>,
    cfg: GuestConfig,
    opts: ServeOptions,
    /// False while the license is away (a dongle removed, the floating
    /// seat lost): requests get 503.
    available: Arc<AtomicBool>,
    slots: tokio::sync::Semaphore,
    open: AtomicUsize,
    log: AccessLog,
}

/// One line per request: peer, request line, status, body bytes sent (as
/// far as known when the headers went), time taken.
struct AccessLog {
    file: Option<std::sync::Mutex<std::fs::File>>,
}

impl AccessLog {
    fn open(path: Option<&std::path::Path>) -> Result<AccessLog, LaunchError> {
        let file = match path {
            None => None,
            Some(p) => Some(std::sync::Mutex::new(
                crate::platform::files::open_private_append(p).map_err(LaunchError::io("cannot open", p))?,
            )),
        };
        Ok(AccessLog { file })
    }

    fn write(&self, line: &str) {
        use std::io::Write;
        match &self.file {
            Some(f) => {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(f, "{line}");
            }
            None => eprintln!("{line}"),
        }
    }
}

fn text_response(status: u16, text: &str) -> hyper::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    if status == 503 {
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
    }
    response
}

impl Service {
    fn new_store(&self, engine: &Engine) -> Result<Store<Host>, LaunchError> {
        let mut store = component::new_store(engine, &self.cfg)?;
        // Every tick the request yields to the others; past its limit it
        // traps, and only this request ends.
        let started = Instant::now();
        let limit = self.opts.request_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if started.elapsed() >= limit { Err(wasmtime::Error::new(OverTime)) } else { Ok(UpdateDeadline::Yield(1)) }
        });
        Ok(store)
    }

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> Result<hyper::Response<HyperOutgoingBody>, Infallible> {
        let started = Instant::now();
        let line = format!("{} {} {:?}", request.method(), request.uri(), request.version());
        self.open.fetch_add(1, Ordering::SeqCst);
        let response = self.respond(request).await;
        self.open.fetch_sub(1, Ordering::SeqCst);
        let size = http_body::Body::size_hint(response.body()).exact().map_or("-".to_owned(), |n| n.to_string());
        self.log.write(&format!(
            "{peer} \"{line}\" {} {size} {:.1}ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1e3
        ));
        Ok(response)
    }

    async fn respond(&self, request: hyper::Request<hyper::body::Incoming>) -> hyper::Response<HyperOutgoingBody> {
        if !self.available.load(Ordering::SeqCst) {
            return text_response(
                503,
                "the service's license is away (a dongle removed or the floating seat lost); try again soon",
            );
        }
        let deadline = tokio::time::Instant::now() + self.opts.request_timeout;
        let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, self.slots.acquire()).await else {
            return text_response(503, "the service is busy; try again soon");
        };
        let engine = self.pre.engine().clone();
        let mut store = match self.new_store(&engine) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot prepare a request: {e}");
                return text_response(500, "the service could not start this request");
            }
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let prepared = (|| -> wasmtime::Result<_> {
            let req = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((req, out))
        })();
        let Ok((req, out)) = prepared else {
            return text_response(400, "the request could not be read");
        };
        let pre = self.pre.clone();
        let memory_mib = self.cfg.max_memory_mib;
        let task = tokio::task::spawn(async move {
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
            }
            .await;
            (result, store.data().memory_refused())
        });
        match tokio::time::timeout_at(deadline, receiver).await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(code))) => {
                tracing::debug!(?code, "the service answered with an error");
                text_response(500, "the service failed to answer")
            }
            // No response: the instance ended first; why decides the status.
            Ok(Err(_)) => match task.await {
                Ok((Err(e), _)) if e.downcast_ref::<OverTime>().is_some() => over_time(&self.opts),
                Ok((Err(_), true)) => text_response(
                    500,
                    &format!("the service ran out of memory (its limit is {memory_mib} MiB per request)"),
                ),
                Ok((Err(e), false)) => {
                    tracing::debug!("the service failed: {e:#}");
                    text_response(500, "the service failed")
                }
                Ok((Ok(()), _)) => text_response(500, "the service did not answer"),
                Err(_) => text_response(500, "the service failed"),
            },
            Err(_) => {
                task.abort();
                over_time(&self.opts)
            }
        }
    }
}

fn over_time(opts: &ServeOptions) -> hyper::Response<HyperOutgoingBody> {
    text_response(504, &format!("the request ran past its time limit of {} s", opts.request_timeout.as_secs_f64()))
}

/// Serves the HTTP component `component` as `opts` says until SIGTERM,
/// SIGINT or SIGHUP, with `watch` checked meanwhile (503 while what it
/// watches is away). Requests still open when the stop comes are finished
/// first. Returns the exit code, 0.
pub(crate) fn serve(
    engine: &Engine,
    component: &Component,
    cfg: &GuestConfig,
    opts: &ServeOptions,
    watch: Option<Box<dyn Watch>>,
) -> Result<i32, LaunchError> {
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| GuestError::start("WASI", e))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| GuestError::start("WASI HTTP", e))?;
    let pre = linker
        .instantiate_pre(component)
        .and_then(ProxyPre::new)
        .map_err(|e| GuestError::start("its imports do not link", e))?;
    let available = Arc::new(AtomicBool::new(true));
    let service = Arc::new(Service {
        pre,
        cfg: cfg.clone(),
        opts: opts.clone(),
        available: Arc::clone(&available),
        slots: tokio::sync::Semaphore::new(opts.max_concurrent),
        open: AtomicUsize::new(0),
        log: AccessLog::open(opts.access_log.as_deref())?,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| GuestError::start("cannot start the server's threads", e))?;
    // One instance before the first request: a service that cannot be
    // instantiated (its memories or tables beyond what the pool holds, say)
    // fails here with its reason instead of answering 500 to everyone.
    let probe = async {
        let mut store = service.new_store(engine)?;
        service
            .pre
            .instantiate_async(&mut store)
            .await
            .map(drop)
            .map_err(|e| GuestError::start("cannot make an instance of it", e))
    };
    runtime.block_on(probe)?;
    let ticker = epoch_ticker(engine.clone());
    let watcher = watch.map(|w| pause_while_away(w, available));
    let result = runtime.block_on(accept_until_stopped(service, opts));
    drop((watcher, ticker));
    result
}

/// Ticks `engine`'s epoch every [`EPOCH_TICK`] until dropped.
fn epoch_ticker(engine: Engine) -> RunThread {
    RunThread::spawn(move |rx| {
        while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(EPOCH_TICK) {
            engine.increment_epoch();
        }
    })
}

/// Checks `watch` while the service runs: while what it watches is away,
/// `available` is false (requests get 503); a license that is gone for
/// good stops the service.
fn pause_while_away(mut watch: Box<dyn Watch>, available: Arc<AtomicBool>) -> RunThread {
    RunThread::spawn(move |rx| {
        let mut away = false;
        while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(watch.interval()) {
            match watch.check() {
                Ok(()) if away => {
                    away = false;
                    available.store(true, Ordering::SeqCst);
                    watch::say(&watch.resumed());
                }
                Ok(()) => {}
                Err(Lost::Gone(why)) => runner::stop_process(watch.give_up(&why)),
                Err(Lost::Away(why)) if !away => {
                    away = true;
                    available.store(false, Ordering::SeqCst);
                    watch::say(&format!("{} (the service answers 503 meanwhile)", watch.paused(&why)));
                }
                Err(Lost::Away(_)) => {}
            }
        }
    })
}

async fn accept_until_stopped(service: Arc<Service>, opts: &ServeOptions) -> Result<i32, LaunchError> {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(LaunchError::io("cannot listen on", opts.listen.to_string()))?;
    let local = listener.local_addr().map_err(LaunchError::io("cannot listen on", opts.listen.to_string()))?;
    let signals = [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::hangup()];
    let mut streams = Vec::new();
    for kind in signals {
        streams.push(signal(kind).map_err(|e| GuestError::start("cannot install signal handlers", e))?);
    }
    let [term, int, hup] = &mut streams[..] else { unreachable!("three signals") };
    eprintln!("sealrun: serving on http://{local}/ (Ctrl-C or SIGTERM stops it after the open requests)");
    let (stopping, _) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let why = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                // A response goes out as head and body chunks; with Nagle's
                // algorithm the second write waits for the client's delayed
                // ACK (up to 40 ms on Linux) and p99 latency was 25 ms.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("cannot set TCP_NODELAY for {peer}: {e}");
                }
                let service = Arc::clone(&service);
                let mut stop = stopping.subscribe();
                connections.spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let handler = hyper::service::service_fn(move |req| Arc::clone(&service).handle(req, peer));
                    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, handler);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "Ctrl-C",
            _ = hup.recv() => break "SIGHUP",
        }
    };
    drop(listener);
    let open = service.open.load(Ordering::SeqCst);
    eprintln!("sealrun: stopping ({why}): finishing {open} open request(s)");
    let _ = stopping.send(true);
    let wait = opts.request_timeout + SHUTDOWN_GRACE;
    let finished = tokio::time::timeout(wait, async { while connections.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        eprintln!("sealrun: requests still open after {} s; stopping anyway", wait.as_secs_f64());
    }
    eprintln!("sealrun: stopped serving");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_for_the_pooled_maximum_and_below() {
        assert!(pooled_allocation(0).is_none());
        assert!(pooled_allocation(1).is_some());
        assert!(pooled_allocation(MAX_POOLED_CONCURRENT).is_some());
        assert!(pooled_allocation(MAX_POOLED_CONCURRENT + 1).is_none());
    }
}
