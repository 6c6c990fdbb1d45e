//! WebAssembly components (issue 17): `sealsdk seal` finds the kind and
//! world of what it seals and refuses imports the launcher cannot link,
//! naming them; the launcher runs `wasi:cli/command` components (the run,
//! failure and sandbox tests of run_samples.rs, guest_failures.rs and
//! hostile_guests.rs run each guest as a module and as a component), sends
//! HTTP services to `sealrun serve`, and trusts the kind byte only under
//! the vendor's signature.
use std::fs;
use std::path::{Path, PathBuf};

use sealrun_format::Release;
use sealrun_format::package::{AppKind, Header, seal_to_vec};
use sealrun_sdk::keystore::Keystore;
use sealrun_tests::{World, component, sample, stderr, stdout};

/// `sealrun`'s exit code for an app that could not be started (README).
const GUEST_START: i32 = 212;
/// `sealsdk`'s exit code for input it cannot use (README).
const SEALSDK_BAD_INPUT: i32 = 3;

/// `wasm`'s bytes sealed as a package of `kind` through the format API
/// (which believes the caller), signed by the world's vendor.
fn sealed_as(world: &World, kind: AppKind, wasm: &Path, file: &str) -> PathBuf {
    let ks = Keystore::at(world.path().join("keystore"));
    let signer = ks.vendor_key().unwrap();
    let key = ks.content_key("com.example.hello", Release::new(1, 0, 0)).unwrap();
    let bytes = fs::read(wasm).unwrap();
    let spec = sealrun_tests::plain_spec("com.example.hello", kind, &bytes);
    let sealed = seal_to_vec(spec, &bytes, &key, &signer, &mut rand_core::UnwrapErr(getrandom::SysRng)).unwrap();
    let path = world.path().join(file);
    fs::write(&path, sealed).unwrap();
    path
}

/// `wasm` with every occurrence of `from` replaced by `to` (same length):
/// an import renamed consistently, so the component stays valid.
fn renamed(world: &World, wasm: &Path, from: &str, to: &str, file: &str) -> PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = fs::read(wasm).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from.as_bytes() {
            bytes[i..i + from.len()].copy_from_slice(to.as_bytes());
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "{from} is not in {}", wasm.display());
    let path = world.path().join(file);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn seal_finds_the_kind_and_refuses_imports_the_launcher_cannot_link() {
    let world = World::new();
    let seal = |wasm: &Path, file: &str| {
        let out = world.path().join(file);
        let args = ["seal", wasm.to_str().unwrap(), "--product", "com.example.hello", "--release", "1.0.0", "-o"];
        (world.sealsdk(&[&args[..], &[out.to_str().unwrap()]].concat()), out)
    };
    let (ok, package) = seal(&component("hello"), "hello.sealed");
    assert!(ok.status.success(), "{}", stderr(&ok));
    // What it imports is listed.
    let said = stdout(&ok);
    assert!(said.contains("a component for wasi:cli/command; it imports wasi:io/poll@0.2."), "{said}");
    assert!(said.contains("wasi:filesystem/preopens@0.2."), "{said}");
    assert_eq!(Header::parse_prefix(&fs::read(&package).unwrap()).unwrap().manifest.kind, AppKind::ComponentCommand);
    let inspect = stdout(&world.sealsdk_ok(&["inspect", package.to_str().unwrap()]));
    assert!(inspect.contains("kind:          component (wasi:cli/command)\n"), "{inspect}");
    let (ok, package) = seal(&sample("hello"), "module.sealed");
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(Header::parse_prefix(&fs::read(&package).unwrap()).unwrap().manifest.kind, AppKind::Console);

    // An interface the launcher does not provide, a WASI release line it
    // does not implement, and an unversioned name: each refused by name,
    // and no package is left behind.
    let hello = component("hello");
    for (from, to) in [
        ("wasi:clocks/wall-clock@0.2.6", "acme:clocks/wall-clock@0.2.6"),
        ("wasi:clocks/wall-clock@0.2.6", "wasi:clocks/wall-clock@0.3.0"),
        ("wasi:filesystem/preopens@0.2.6", "wasi:filesystem/preopens-zzzzz"),
    ] {
        let wasm = renamed(&world, &hello, from, to, "renamed.wasm");
        let (out, package) = seal(&wasm, "renamed.sealed");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(SEALSDK_BAD_INPUT), "{to}: {err}");
        assert!(err.contains(&format!("it imports {to}, which the launcher does not provide")), "{err}");
        assert!(!package.exists());
    }

    // A component with no entry point the launcher knows.
    let wasm = renamed(&world, &hello, "wasi:cli/run@0.2.0", "acme:cli/run@0.2.0", "no-run.wasm");
    let (out, _) = seal(&wasm, "no-run.sealed");
    assert_eq!(out.status.code(), Some(SEALSDK_BAD_INPUT), "{}", stderr(&out));
    assert!(stderr(&out).contains("it exports neither wasi:cli/run"), "{}", stderr(&out));

    // A damaged component: validation, not only parsing, catches it.
    let mut bytes = fs::read(&hello).unwrap();
    let at = bytes.len() / 2;
    bytes.truncate(at);
    fs::write(world.path().join("cut.wasm"), &bytes).unwrap();
    let (out, _) = seal(&world.path().join("cut.wasm"), "cut.sealed");
    assert_eq!(out.status.code(), Some(SEALSDK_BAD_INPUT), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a WebAssembly module or component the launcher can run"), "{}", stderr(&out));
}

#[test]
fn the_kind_byte_is_believed_only_under_the_signature_and_checked_against_the_code() {
    let world = World::new();
    let dev = world.device("a");
    // The key for the release exists once hello is sealed the usual way.
    world.seal_module(&sample("hello"), "com.example.hello", "1.0.0", "hello.sealed", &[]);
    let license = world.license("hello", &dev, "hello.license", &[]);
    let run = |package: &PathBuf| {
        dev.sealrun(&dev.root)
            .env("SEALRUN_LOG", "sealrun=debug")
            .args(["run", "--license", license.to_str().unwrap()])
            .arg(package)
            .output()
            .unwrap()
    };
    // An HTTP service is not a command: `sealrun run` says where it goes,
    // before it decrypts anything.
    let service = sealed_as(&world, AppKind::ComponentHttpProxy, &component("hello"), "service.sealed");
    let inspect = stdout(&world.sealsdk_ok(&["inspect", service.to_str().unwrap()]));
    assert!(inspect.contains("component (wasi:http/proxy)"), "{inspect}");
    let out = run(&service);
    assert_eq!(out.status.code(), Some(GUEST_START), "{}", stderr(&out));
    assert!(stderr(&out).contains("start it with `sealrun serve`"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("source="), "no code was loaded: {}", stderr(&out));

    // A package whose signed kind disagrees with its code (a sealer that
    // did not validate): wasmtime refuses to compile it as that kind, and
    // the app does not start.
    for (kind, wasm) in [(AppKind::ComponentCommand, sample("hello")), (AppKind::Console, component("hello"))] {
        let package = sealed_as(&world, kind, &wasm, "mismatch.sealed");
        let out = run(&package);
        assert_eq!(out.status.code(), Some(GUEST_START), "{kind:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "nothing of the guest ran");
    }

    // The kind byte counts only under a good signature: a component
    // package with a damaged signature is reported as damaged.
    let mut bytes = fs::read(&service).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&service, bytes).unwrap();
    let out = run(&service);
    let code = out.status.code();
    assert!(matches!(code, Some(202 | 204)), "exit {code:?}: {}", stderr(&out));
    assert!(!stderr(&out).contains("sealrun serve"), "{}", stderr(&out));
}
