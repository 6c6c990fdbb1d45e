//! `plain-wasmtime`: the tests' reference runner. It runs a WASI preview-1
//! command or a `wasi:cli/command` component the way `wasmtime run` does, with the workspace's own wasmtime
//! (the launcher's version), and nothing of Sealrun: wasmtime's default
//! engine, stdio inherited, the module's path as `argv[0]`, every `--env`
//! and `--dir` as given, directories read-write. The end-to-end tests
//! compare sealed runs against it; the benchmark compares against the real
//! wasmtime CLI.
//!
//! ```text
//! plain-wasmtime run [--env K=V]... [--dir HOST::GUEST]... MODULE [ARGS]...
//! plain-wasmtime compile MODULE -o OUT
//! plain-wasmtime serve --addr ADDR COMPONENT
//! ```
//! `serve` serves a `wasi:http/proxy` component as `wasmtime serve` does:
//! one instance per request, HTTP/1.1 with keep-alive, until killed.
//! Exit codes: the guest's own; 134 for a trap (as the wasmtime CLI, which
//! ends as if aborted); 2 for a bad command line; 1 when the module cannot
//! be read, compiled or started.
use std::path::PathBuf;
use std::process::ExitCode;

use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// What the wasmtime CLI exits with after a trap: 128 + SIGABRT.
const TRAP_EXIT: u8 = 134;

const USAGE: &str = "usage: plain-wasmtime run [--env K=V]... [--dir HOST::GUEST]... MODULE [ARGS]...\n       plain-wasmtime compile MODULE -o OUT\n       plain-wasmtime serve --addr ADDR COMPONENT";

enum Plan {
    Run { env: Vec<(String, String)>, dirs: Vec<(PathBuf, String)>, module: PathBuf, args: Vec<String> },
    Compile { module: PathBuf, out: PathBuf },
    Serve { addr: String, component: PathBuf },
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Plan, String> {
    match args.next().as_deref() {
        Some("run") => {
            let (mut env, mut dirs) = (Vec::new(), Vec::new());
            loop {
                match args.next() {
                    Some(flag) if flag == "--env" => {
                        let v = args.next().ok_or("--env needs K=V")?;
                        let (k, v) = v.split_once('=').ok_or_else(|| format!("--env {v}: expected K=V"))?;
                        env.push((k.to_owned(), v.to_owned()));
                    }
                    Some(flag) if flag == "--dir" => {
                        let v = args.next().ok_or("--dir needs HOST::GUEST")?;
                        let (host, guest) = v.split_once("::").unwrap_or((&v, &v));
                        dirs.push((PathBuf::from(host), guest.to_owned()));
                    }
                    Some(module) => return Ok(Plan::Run { env, dirs, module: module.into(), args: args.collect() }),
                    None => return Err("no module given".into()),
                }
            }
        }
        Some("compile") => {
            let module = args.next().ok_or("no module given")?;
            match (args.next().as_deref(), args.next(), args.next()) {
                (Some("-o"), Some(out), None) => Ok(Plan::Compile { module: module.into(), out: out.into() }),
                _ => Err("compile takes MODULE -o OUT".into()),
            }
        }
        Some("serve") => match (args.next().as_deref(), args.next(), args.next(), args.next()) {
            (Some("--addr"), Some(addr), Some(component), None) => {
                Ok(Plan::Serve { addr, component: component.into() })
            }
            _ => Err("serve takes --addr ADDR COMPONENT".into()),
        },
        _ => Err("expected `run`, `compile` or `serve`".into()),
    }
}

fn main() -> ExitCode {
    let plan = match parse(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("plain-wasmtime: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match plan {
        Plan::Compile { module, out } => compile(&module, &out).map(|()| ExitCode::SUCCESS),
        Plan::Run { env, dirs, module, args } => run(&module, &args, &env, &dirs),
        Plan::Serve { addr, component } => serve::serve(&addr, &component).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("Error: {e:?}");
        ExitCode::FAILURE
    })
}

fn compile(module: &PathBuf, out: &PathBuf) -> wasmtime::Result<()> {
    let wasm = std::fs::read(module)?;
    let engine = Engine::default();
    let code = if wasmparser::Parser::is_component(&wasm) {
        engine.precompile_component(&wasm)?
    } else {
        engine.precompile_module(&wasm)?
    };
    std::fs::write(out, code)?;
    Ok(())
}

/// How the run ended, as the wasmtime CLI reports it.
fn exit_code(module: &std::path::Path, result: wasmtime::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => ExitCode::from(u8::try_from(exit.0 & 0xff).unwrap_or(1)),
            None => {
                eprintln!("Error: failed to run main module `{}`\n\nCaused by:\n    {e:?}", module.display());
                ExitCode::from(TRAP_EXIT)
            }
        },
    }
}

struct ComponentHost {
    ctx: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl wasmtime_wasi::WasiView for ComponentHost {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

/// Runs a command component: `wasi:cli/run` returning an error is exit
/// code 1, as in the wasmtime CLI.
fn run_component(
    engine: &Engine,
    wasm: &[u8],
    mut b: WasiCtxBuilder,
    module: &std::path::Path,
) -> wasmtime::Result<ExitCode> {
    use wasmtime::component::{Component, Linker as ComponentLinker, ResourceTable};
    let component = Component::new(engine, wasm)?;
    let mut linker: ComponentLinker<ComponentHost> = ComponentLinker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let mut store = Store::new(engine, ComponentHost { ctx: b.build(), table: ResourceTable::new() });
    let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker)?;
    match command.wasi_cli_run().call_run(&mut store) {
        Ok(Err(())) => Ok(ExitCode::FAILURE),
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Err(e) => Ok(exit_code(module, Err(e))),
    }
}

fn run(
    module: &PathBuf,
    args: &[String],
    env: &[(String, String)],
    dirs: &[(PathBuf, String)],
) -> wasmtime::Result<ExitCode> {
    let engine = Engine::default();
    let wasm = std::fs::read(module)?;
    let mut b = WasiCtxBuilder::new();
    b.inherit_stdio().arg(module.display().to_string()).args(args);
    for (k, v) in env {
        b.env(k, v);
    }
    for (host, guest) in dirs {
        b.preopened_dir(host, guest, FsPerms::ReadWrite)?;
    }
    if wasmparser::Parser::is_component(&wasm) {
        return run_component(&engine, &wasm, b, module);
    }
    let compiled = Module::new(&engine, &wasm)?;
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c| c)?;
    let mut store = Store::new(&engine, b.build_p1());
    let instance = linker.instantiate(&mut store, &compiled)?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
    Ok(exit_code(module, start.call(&mut store, ())))
}

/// `serve`: the plain way to serve a `wasi:http/proxy` component, as the
/// wasmtime-wasi-http documentation and `wasmtime serve` do it.
mod serve {
    use std::sync::Arc;

    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime::{Engine, Store};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
    use wasmtime_wasi_http::p2::bindings::ProxyPre;
    use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
    use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
    use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

    struct Client {
        wasi: WasiCtx,
        http: WasiHttpCtx,
        table: ResourceTable,
    }

    impl WasiView for Client {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
        }
    }

    impl WasiHttpView for Client {
        fn http(&mut self) -> WasiHttpCtxView<'_> {
            WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: wasmtime_wasi_http::default_hooks() }
        }
    }

    pub(super) fn serve(addr: &str, component: &std::path::Path) -> wasmtime::Result<()> {
        let engine = Engine::default();
        let component = Component::from_file(&engine, component)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = Arc::new(ProxyPre::new(linker.instantiate_pre(&component)?)?);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            eprintln!("serving on http://{}/", listener.local_addr()?);
            loop {
                let (client, _) = listener.accept().await?;
                let pre = Arc::clone(&pre);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(Arc::clone(&pre), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(hyper_util::rt::TokioIo::new(client), service)
                        .await;
                });
            }
        })
    }

    async fn handle(
        pre: Arc<ProxyPre<Client>>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
        let client = Client { wasi: WasiCtx::builder().build(), http: WasiHttpCtx::new(), table: ResourceTable::new() };
        let mut store = Store::new(pre.engine(), client);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(wasmtime::format_err!("the guest answered with {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(wasmtime::format_err!("the guest never answered")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            },
        }
    }
}
