//! Validity: expired, not yet valid, and releases outside the licensed range.
use sealrun_tests::{World, stderr, stdout};

#[test]
fn expired_license_is_refused() {
    let world = World::new();
    let a = world.device("a");
    let package = world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "old.license", &["--not-before", "2019-01-01", "--expires", "2020-06-30"]);
    let out = a.sealrun(world.path()).arg("run").arg("--license").arg(&lic).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(203), "{}", stderr(&out));
    assert!(stderr(&out).contains("expired on 2020-07-01T00:00:00Z"), "{}", stderr(&out));
    assert!(stderr(&out).contains("renew"));
    assert!(stdout(&out).is_empty());
}

#[test]
fn not_yet_valid_license_is_refused() {
    let world = World::new();
    let a = world.device("a");
    let package = world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "future.license", &["--not-before", "2099-01-01"]);
    let out = a.sealrun(world.path()).arg("run").arg("--license").arg(&lic).arg(&package).output().unwrap();
    assert_eq!(out.status.code(), Some(203), "{}", stderr(&out));
    assert!(stderr(&out).contains("not valid before 2099-01-01T00:00:00Z"), "{}", stderr(&out));
}

#[test]
fn release_outside_the_licensed_range_is_refused() {
    let world = World::new();
    let a = world.device("a");
    world.seal("hello", "1.0.0");
    let lic = world.license("hello", &a, "v1.license", &["--releases", "1.0.0..1.9.9"]);
    // "1.0.0 and later", issued before 2.0.0 existed: it covers 2.0.0 but
    // cannot carry its key.
    let open_ended = world.license("hello", &a, "open.license", &["--releases", "1.0.0.."]);
    let v2 = world.seal("hello", "2.0.0");
    let out = a.sealrun(world.path()).arg("run").arg("--license").arg(&lic).arg(&v2).output().unwrap();
    assert_eq!(out.status.code(), Some(202), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("covers releases 1.0.0 to 1.9.9, but the package is release 2.0.0"),
        "{}",
        stderr(&out)
    );

    let out = a.sealrun(world.path()).arg("run").arg("--license").arg(&open_ended).arg(&v2).output().unwrap();
    assert_eq!(out.status.code(), Some(202), "{}", stderr(&out));
    assert!(stderr(&out).contains("carries no key for this build of release 2.0.0"), "{}", stderr(&out));

    // A license covering both releases runs both.
    let both = world.license("hello", &a, "both.license", &["--releases", "1.0.0..2.0.0"]);
    let out = a.sealrun(world.path()).arg("run").arg("--license").arg(&both).arg(&v2).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
