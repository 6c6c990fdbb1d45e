//! Snapshot tests of user-facing CLI output: what people read when things go
//! right and wrong. Variable parts (paths, keys, ids, dates, device codes)
//! are replaced by placeholders. Run with `UPDATE_SNAPSHOTS=1` to accept new
//! output, then review the diff of `tests/snapshots/`.
use std::path::PathBuf;
use std::process::Output;

use sealrun_tests::{World, repo_root, stderr, stdout};

fn normalise(world: &World, text: &str) -> String {
    let mut t = text.replace(&world.path().display().to_string(), "[WORLD]");
    let rules: &[(&str, &str)] = &[
        (r"SR1(-[0-9A-Z]{4}){16}", "[DEVICE-CODE]"),
        (r"\b[0-9a-f]{64}\b", "[KEY]"),
        (r"\b[0-9a-f]{32}\b", "[LICENSE-ID]"),
        (r"\b[0-9a-f]{16}\b", "[ID]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
        (r"\.tmp[0-9A-Za-z]+", ".tmpXXXX"),
        (r"\b\d+ bytes\b", "N bytes"),
        (r"has only \d+", "has only N"),
        (r"\b\d+ chunks\b", "N chunks"),
        (r"\d+ x 64 KiB", "N x 64 KiB"),
        (r"sealrun \d+\.\d+\.\d+|sealsdk \d+\.\d+\.\d+", "[NAME VERSION]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
    ];
    for (re, with) in rules {
        t = regex_lite::Regex::new(re).expect("valid regex").replace_all(&t, *with).into_owned();
    }
    t
}

fn check(world: &World, name: &str, out: &Output) {
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        stdout(out),
        stderr(out)
    );
    let got = normalise(world, &text);
    let path: PathBuf = repo_root().join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot {}; run with UPDATE_SNAPSHOTS=1 to create it", path.display()));
    assert_eq!(got, want, "output of {name} changed; if intended, rerun with UPDATE_SNAPSHOTS=1 and review");
}

#[test]
fn user_facing_output() {
    let world = World::new();
    let a = world.device("a");
    let b = world.device("b");
    let package = world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "hello.license", &["--expires", "2099-12-31", "--feature", "pro"]);

    check(&world, "sealsdk_keygen_again", &world.sealsdk(&["keygen"]));
    check(&world, "sealsdk_inspect_package", &world.sealsdk(&["inspect", package.to_str().unwrap()]));
    check(&world, "sealsdk_inspect_license", &world.sealsdk(&["inspect", lic.to_str().unwrap()]));
    // License terms of format version 2 (issue 18), and a meter mistyped.
    let terms = [
        "--feature",
        "pro",
        "--feature",
        "seats-per-project=25",
        "--feature-expires",
        "beta=2099-03-01",
        "--meter",
        "exports=1000",
        "--meter",
        "runs=500/month",
    ];
    let v2 = world.license("hello", &a, "v2.license", &terms);
    check(&world, "sealsdk_inspect_license_v2", &world.sealsdk(&["inspect", v2.to_str().unwrap()]));
    let json = world.sealsdk(&["inspect", "--json", v2.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("inspect --json");
    assert_eq!(json["format_version"], 2);
    assert_eq!(json["features"], serde_json::json!(["beta", "pro", "seats-per-project"]));
    assert_eq!(json["feature_terms"][2]["value"], "25");
    assert_eq!(json["feature_terms"][0]["expires"], "2099-03-02T00:00:00Z");
    assert_eq!(json["meters"][1], serde_json::json!({"name": "runs", "limit": 500, "period": "month"}));
    check(
        &world,
        "sealsdk_issue_bad_meter",
        &world.sealsdk(&[
            "license",
            "issue",
            "--product",
            "com.example.hello",
            "--device",
            &a.code(),
            "--licensee",
            "X",
            "--meter",
            "runs=500/week",
            "-o",
            "x.license",
        ]),
    );
    check(
        &world,
        "sealsdk_verify_ok",
        &world.sealsdk(&["verify", package.to_str().unwrap(), "--license", lic.to_str().unwrap()]),
    );
    let not_wasm = world.path().join("not.wasm");
    std::fs::write(&not_wasm, b"\0asm\x01\0\0\0\x01\x05garbage").unwrap();
    check(
        &world,
        "sealsdk_seal_invalid_module",
        &world.sealsdk(&["seal", not_wasm.to_str().unwrap(), "--product", "com.example.x", "--release", "1.0.0"]),
    );
    check(
        &world,
        "sealsdk_issue_bad_device_code",
        &world.sealsdk(&[
            "license",
            "issue",
            "--product",
            "com.example.hello",
            "--device",
            "SR1-AAAA",
            "--licensee",
            "X",
            "-o",
            "x.license",
        ]),
    );

    let run = |dev: &sealrun_tests::Device, extra: &[&str]| {
        let mut c = dev.sealrun(world.path());
        c.arg("run").args(extra).arg(&package);
        c.output().unwrap()
    };
    std::fs::rename(&lic, world.path().join("moved.license")).unwrap();
    check(&world, "sealrun_no_license", &run(&a, &[]));
    check(
        &world,
        "sealrun_wrong_device",
        &run(&b, &["--license", world.path().join("moved.license").to_str().unwrap()]),
    );
    let truncated = world.path().join("truncated.sealed");
    let bytes = std::fs::read(&package).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = a.sealrun(world.path()).arg(&truncated).output().unwrap();
    check(&world, "sealrun_truncated", &out);
    check(&world, "sealrun_help", &a.sealrun(world.path()).arg("--help").output().unwrap());
    check(&world, "sealsdk_help", &world.sealsdk(&["--help"]));
}

/// What operators, vendors and end users read around the licensing server.
#[test]
fn server_facing_output() {
    use sealrun_tests::server::Server;
    let world = World::new();
    let a = world.device("a");
    let mut srv = Server::init(&world.path().join("server"), None);
    let token = srv.vendor("acme");
    check(&world, "server_help", &srv.cli(&["--help"]));
    check(&world, "server_init_again", &srv.cli(&["init"]));
    check(&world, "server_vendor_bad_name", &srv.cli(&["vendor", "create", "Acme Corp"]));
    check(&world, "server_invoice_bad_period", &srv.cli(&["invoice", "--vendor", "acme", "--period", "2026-13"]));
    srv.start();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str())];
    check(&world, "sealsdk_server_no_token", &world.sealsdk_with(&["server", "--server", &srv.url, "whoami"], &[]));
    check(
        &world,
        "sealsdk_server_product_create",
        &world.sealsdk_with(&["server", "product", "create", "com.x.y"], &env),
    );
    check(
        &world,
        "sealsdk_server_release",
        &world.sealsdk_with(&["server", "product", "release", "com.x.y", "1.0.0"], &env),
    );
    check(
        &world,
        "sealsdk_server_not_certified",
        &world.sealsdk_with(
            &[
                "server",
                "license",
                "issue",
                "--product",
                "com.x.y",
                "--device",
                &a.code(),
                "--licensee",
                "X",
                "-o",
                "x.license",
            ],
            &env,
        ),
    );
    check(&world, "sealrun_activate_no_server", &a.sealrun(world.path()).args(["activate", "AAAAA"]).output().unwrap());
    check(
        &world,
        "sealrun_activate_unknown_code",
        &a.sealrun(world.path())
            .args(["activate", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "--server", &srv.url])
            .output()
            .unwrap(),
    );
    check(
        &world,
        "sealrun_install_bad_url",
        &a.sealrun(world.path()).args(["install", &srv.url, "--code", "X"]).output().unwrap(),
    );
    let gone = srv.url.clone();
    srv.stop();
    check(
        &world,
        "sealrun_activate_unreachable",
        &a.sealrun(world.path())
            .args(["activate", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "--server", &gone])
            .output()
            .unwrap(),
    );
}

/// What end users read when the clock is wrong: set back (224), a damaged
/// last-seen record (224), and ahead past a license's expiry (203). The
/// launcher's clock is set with `SEALRUN_TEST_NOW` (debug builds only).
#[test]
fn clock_facing_output() {
    use sealrun::license::clock::TEST_NOW_ENV;
    /// 2030-06-01T00:00:00Z.
    const T: u64 = 1_906_502_400;
    let world = World::new();
    let a = world.device("a");
    let package = world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "hello.license", &["--not-before", "2030-01-01", "--expires", "2030-12-31"]);
    let run = |t: u64| {
        let mut c = a.sealrun(world.path());
        c.env(TEST_NOW_ENV, t.to_string()).arg("run").arg("--license").arg(&lic).arg(&package);
        c.output().unwrap()
    };
    assert_eq!(run(T).status.code(), Some(0));
    check(&world, "sealrun_clock_set_back", &run(T - 2 * 3600 - 5 * 60));
    check(&world, "sealrun_clock_ahead_expired", &run(T + 365 * 86_400));
    let record = a.key_file().with_file_name("last-seen");
    let mut bytes = std::fs::read(&record).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&record, &bytes).unwrap();
    check(&world, "sealrun_clock_record_damaged", &run(T));
}
