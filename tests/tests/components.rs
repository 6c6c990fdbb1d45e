//! WebAssembly components (issue 17). The package format records whether a
//! package holds a core module or a component and the component's world;
//! this launcher does not run components yet, and says so before it
//! decrypts anything, with the exit code of an app that cannot start.
use std::fs;
use std::path::PathBuf;

use sealrun_format::Release;
use sealrun_format::package::{AppKind, Header, seal_to_vec};
use sealrun_sdk::keystore::Keystore;
use sealrun_tests::{World, sample, stderr, stdout};

/// `sealrun`'s exit code for an app that could not be started (README).
const GUEST_START: i32 = 212;

/// hello's bytes sealed as a package of `kind`, signed by the world's vendor.
fn sealed_as(world: &World, kind: AppKind, file: &str) -> PathBuf {
    let ks = Keystore::at(world.path().join("keystore"));
    let signer = ks.vendor_key().unwrap();
    let key = ks.content_key("com.example.hello", Release::new(1, 0, 0)).unwrap();
    let module = fs::read(sample("hello")).unwrap();
    let spec = sealrun_tests::plain_spec("com.example.hello", kind, &module);
    let bytes = seal_to_vec(spec, &module, &key, &signer, &mut rand_core::UnwrapErr(getrandom::SysRng)).unwrap();
    let path = world.path().join(file);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn component_packages_are_described_and_refused_before_decryption() {
    let world = World::new();
    let dev = world.device("a");
    // The key for the release exists once hello is sealed the usual way.
    let module_pkg = world.seal_module(&sample("hello"), "com.example.hello", "1.0.0", "hello.sealed", &[]);
    let license = world.license("hello", &dev, "hello.license", &[]);
    let run = |package: &PathBuf| {
        dev.sealrun(&dev.root)
            .env("SEALRUN_LOG", "sealrun=debug")
            .args(["run", "--license", license.to_str().unwrap()])
            .arg(package)
            .output()
            .unwrap()
    };
    // Control: the same bytes as a core module run.
    let control = sealed_as(&world, AppKind::Console, "console.sealed");
    for p in [&module_pkg, &control] {
        let out = run(p);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "hello from a sealed app\n");
        assert!(stderr(&out).contains("source="), "the debug log names where the code came from");
    }
    for (kind, world_name) in
        [(AppKind::ComponentCommand, "wasi:cli/command"), (AppKind::ComponentHttpProxy, "wasi:http/proxy")]
    {
        let package = sealed_as(&world, kind, "component.sealed");
        assert_eq!(Header::parse_prefix(&fs::read(&package).unwrap()).unwrap().manifest.kind, kind);
        let inspect = stdout(&world.sealsdk_ok(&["inspect", package.to_str().unwrap()]));
        assert!(inspect.contains(&format!("component ({world_name})")), "{inspect}");
        world.sealsdk_ok(&["verify", package.to_str().unwrap()]);

        let out = run(&package);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(GUEST_START), "{err}");
        assert!(err.contains("it is a WebAssembly component"), "{err}");
        assert_eq!(stdout(&out), "", "nothing of the guest ran");
        assert!(!err.contains("source="), "no code was loaded: {err}");

        // The kind byte counts only under a good signature: a component
        // package with a damaged signature is reported as damaged.
        let mut bytes = fs::read(&package).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&package, bytes).unwrap();
        let out = run(&package);
        let code = out.status.code();
        assert!(matches!(code, Some(202 | 204)), "exit {code:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("it is a WebAssembly component"), "{}", stderr(&out));
    }
}
