//! Issue 8, supply chain: the pinned toolchain is the declared MSRV, builds
//! are `--locked`, and every exception in the cargo-deny policy says why.
use std::fs;
use std::path::PathBuf;

fn repo_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn quoted_value(text: &str, key: &str) -> String {
    let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{key} ="))).expect(key);
    line.split('"').nth(1).expect("a quoted value").to_owned()
}

#[test]
fn the_pinned_toolchain_is_the_msrv() {
    let channel = quoted_value(&repo_file("rust-toolchain.toml"), "channel");
    let msrv = quoted_value(&repo_file("Cargo.toml"), "rust-version");
    assert!(
        channel == msrv || channel.strip_suffix(".0") == Some(msrv.as_str()),
        "rust-toolchain.toml pins {channel}, Cargo.toml declares rust-version {msrv}"
    );
}

#[test]
fn every_cargo_command_in_the_scripts_is_locked() {
    for script in [
        "scripts/test",
        "scripts/lib.sh",
        "scripts/demo",
        "scripts/bench",
        "scripts/build-samples",
        "scripts/fuzz",
        "scripts/supply-chain",
    ] {
        for line in repo_file(script).lines().map(str::trim) {
            let builds = ["cargo build", "cargo test", "cargo clippy", "cargo run", "cargo install"]
                .iter()
                .any(|c| line.starts_with(c) || line.contains(&format!("$({c}")));
            if builds && !line.starts_with('#') {
                assert!(line.contains("--locked"), "{script}: not --locked: {line}");
            }
        }
    }
}

#[test]
fn every_cargo_deny_exception_has_a_reason() {
    let deny = repo_file("deny.toml");
    let skips: Vec<&str> = deny.lines().filter(|l| l.trim_start().starts_with("{ crate =")).collect();
    assert!(!skips.is_empty(), "the duplicate-version exceptions moved; update this test");
    for line in skips {
        let reason = line.split("reason = \"").nth(1).map(|r| r.trim_end_matches(['"', ' ', '}', ','])).unwrap_or("");
        assert!(reason.len() >= 10, "an exception without a real reason: {line}");
    }
}
