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
//! ```
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

const USAGE: &str = "usage: plain-wasmtime run [--env K=V]... [--dir HOST::GUEST]... MODULE [ARGS]...\n       plain-wasmtime compile MODULE -o OUT";

enum Plan {
    Run { env: Vec<(String, String)>, dirs: Vec<(PathBuf, String)>, module: PathBuf, args: Vec<String> },
    Compile { module: PathBuf, out: PathBuf },
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
        _ => Err("expected `run` or `compile`".into()),
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
