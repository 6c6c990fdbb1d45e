//! Optional vendor AOT (performance issue): a package may carry native code
//! precompiled by the vendor. The launcher runs it only when the user's trust
//! policy allows native code from that vendor key, only when it was compiled
//! for this target by exactly this runtime, and only when the signature
//! covers it; otherwise it compiles the wasm as always.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use sealrun_format::Release;
use sealrun_format::package::{Header, NativeInput, seal_to_vec_with_native};
use sealrun_sdk::keystore::Keystore;
use sealrun_tests::{Device, World, sample, stderr, stdout};

const HELLO: &str = "hello from a sealed app\n";

fn launch(dev: &Device, package: &Path) -> Output {
    dev.sealrun(&dev.root).env("SEALRUN_LOG", "sealrun=debug").arg(package).output().unwrap()
}

/// Where the module came from, from the launcher's debug log.
fn source(out: &Output) -> &'static str {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    assert_eq!(stdout(out), HELLO);
    let err = stderr(out);
    ["Cache", "Native", "Compiled"].into_iter().find(|s| err.contains(&format!("source={s}"))).expect("a source")
}

fn sealrun_ok(dev: &Device, args: &[&str]) -> String {
    let out = dev.sealrun(&dev.root).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn precompiled_hello(world: &World) -> (Device, PathBuf) {
    let dev = world.device("a");
    let extra = ["--precompile", "x86_64-linux"];
    let package = world.seal_module(&sample("hello"), "com.example.hello", "1.0.0", "hello.sealed", &extra);
    world.license("hello", &dev, "hello.license", &[]);
    (dev, package)
}

#[test]
fn native_code_runs_only_when_the_vendor_is_trusted() {
    let world = World::new();
    let (dev, package) = precompiled_hello(&world);
    let inspect = stdout(&world.sealsdk_ok(&["inspect", package.to_str().unwrap()]));
    assert!(inspect.contains("native code:   x86_64-linux ("), "{inspect}");
    world.sealsdk_ok(&["verify", package.to_str().unwrap()]);

    // Off by default: the wasm is compiled, the native code ignored.
    assert_eq!(sealrun_ok(&dev, &["trust", "list"]), "no vendor may run native code (the default)\n");
    assert_eq!(source(&launch(&dev, &package)), "Compiled");

    let allowed = sealrun_ok(&dev, &["trust", "allow-native", package.to_str().unwrap()]);
    assert!(allowed.starts_with("native code from the vendor of com.example.hello"), "{allowed}");
    let vendor = Header::parse_prefix(&fs::read(&package).unwrap()).unwrap().manifest.vendor_key;
    assert!(sealrun_ok(&dev, &["trust", "list"]).starts_with(&vendor.to_string()));
    sealrun_ok(&dev, &["cache", "clear"]);
    assert_eq!(source(&launch(&dev, &package)), "Native");
    // What was loaded goes into the encrypted cache like compiled code.
    assert_eq!(source(&launch(&dev, &package)), "Cache");

    let removed = sealrun_ok(&dev, &["trust", "remove", &vendor.to_string()]);
    assert!(removed.contains("will no longer run"), "{removed}");
    sealrun_ok(&dev, &["cache", "clear"]);
    assert_eq!(source(&launch(&dev, &package)), "Compiled");
}

/// Seals hello with hand-made native code (for another target, or from
/// another runtime), signed with the world's vendor key.
fn seal_with(world: &World, name: &str, target: &str, runtime: [u8; 32], code: &[u8]) -> PathBuf {
    let ks = Keystore::at(world.path().join("keystore"));
    let signer = ks.vendor_key().unwrap();
    let key = ks.content_key("com.example.hello", Release::new(1, 0, 0)).unwrap();
    let module = fs::read(sample("hello")).unwrap();
    let spec = sealrun_tests::plain_spec("com.example.hello", sealrun_format::package::AppKind::Console, &module);
    let native = [NativeInput { target, runtime, code }];
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let bytes = seal_to_vec_with_native(spec, &module, &native, &key, &signer, &mut rng).unwrap();
    let path = world.path().join(format!("hello-{name}.sealed"));
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn native_code_for_another_target_or_runtime_is_not_used() {
    let world = World::new();
    let (dev, _) = precompiled_hello(&world);
    let host = sealrun_engine::engine_for_target("x86_64-linux", sealrun_format::package::AppKind::Console).unwrap();
    let code = host.precompile_module(&fs::read(sample("hello")).unwrap()).unwrap();
    let fingerprint = sealrun_engine::runtime_fingerprint(&host);
    let other_target = seal_with(&world, "other-target", "aarch64-linux", fingerprint, &code);
    let other_runtime = seal_with(&world, "other-runtime", "x86_64-linux", [0x42; 32], &code);
    let good = seal_with(&world, "good", "x86_64-linux", fingerprint, &code);
    sealrun_ok(&dev, &["trust", "allow-native", good.to_str().unwrap()]);
    let run = |p: &Path| {
        let lic = world.path().join("hello.license");
        let out = dev
            .sealrun(&dev.root)
            .env("SEALRUN_LOG", "sealrun=debug")
            .args(["run", "--no-cache", "--license", lic.to_str().unwrap()])
            .arg(p)
            .output()
            .unwrap();
        (source(&out), stderr(&out))
    };
    assert_eq!(run(&other_target).0, "Compiled");
    let (src, err) = run(&other_runtime);
    assert_eq!(src, "Compiled");
    assert!(err.contains("from another wasmtime version or configuration; compiling it here instead"), "{err}");
    // Control: the same code with the right target and runtime is used.
    assert_eq!(run(&good).0, "Native");
}

#[test]
fn damaged_native_code_is_refused() {
    let world = World::new();
    let (dev, package) = precompiled_hello(&world);
    let bytes = fs::read(&package).unwrap();
    let header = Header::parse_prefix(&bytes).unwrap();
    let native_at = header.as_bytes().len() + header.manifest.layout().ciphertext_len() as usize;
    let native_len = bytes.len() - 64 - native_at;
    assert!(native_len > 1000, "the package carries native code");
    for at in [native_at + 3, native_at + native_len / 2, bytes.len() - 65] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x04;
        fs::write(&package, &bad).unwrap();
        // Refused whether or not the vendor is trusted: the package is damaged.
        for trusted in [false, true] {
            if trusted {
                sealrun_ok(&dev, &["trust", "allow-native", package.to_str().unwrap()]);
            }
            let out = dev.sealrun(&dev.root).args(["run", "--no-cache"]).arg(&package).output().unwrap();
            assert_eq!(out.status.code(), Some(204), "flip at {at}, trusted {trusted}: {}", stderr(&out));
            assert!(stdout(&out).is_empty(), "the app ran");
            // The compile path finds the artifact's digest wrong; the native
            // path may already fail to authenticate the damaged chunk.
            assert!(stderr(&out).contains("damaged or tampered with"), "{}", stderr(&out));
            if trusted {
                sealrun_ok(&dev, &["trust", "remove", package.to_str().unwrap()]);
            }
        }
        let verify = world.sealsdk(&["verify", package.to_str().unwrap()]);
        assert_eq!(verify.status.code(), Some(1), "sealsdk verify accepted a damaged artifact");
    }
}

#[test]
fn precompile_for_an_unknown_target_is_a_clear_error() {
    let world = World::new();
    let input = sample("hello");
    let out = world.sealsdk(&[
        "seal",
        input.to_str().unwrap(),
        "--product",
        "com.example.hello",
        "--release",
        "1.0.0",
        "--precompile",
        "pdp11-unix",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot precompile for pdp11-unix: unknown target"), "{}", stderr(&out));
}
