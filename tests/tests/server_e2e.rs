//! The licensing service end to end through the real binaries and a real
//! socket: operator, vendor and end user, on SQLite and on PostgreSQL.
use std::path::Path;

use sealrun_tests::server::{Server, certify_and_seal, fresh_postgres};
use sealrun_tests::{World, stderr, stdout};

fn ok(o: &std::process::Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed ({}):\n{}\n{}", o.status, stdout(o), stderr(o));
    stdout(o)
}

fn period_now() -> String {
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Claims 1-4 and 11 in one run: the operator creates a vendor; the vendor
/// certifies the server, seals with a server key and makes a code; the end
/// user installs with the code and runs the app; the invoice shows it.
fn whole_flow(database: Option<&str>) {
    let w = World::new();
    let mut srv = Server::init(&w.path().join("server"), database);
    let token = srv.vendor("acme");
    srv.start();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str())];
    let (pkg, text) = certify_and_seal(&w, &env, "hello", "com.acme.hello", &[]);
    assert!(text.contains("content key for com.acme.hello 1.0.0: made") && text.contains("package uploaded"), "{text}");
    let plans = ok(&w.sealsdk_with(&["server", "plan", "show"], &env), "plan show");
    assert!(plans.contains("from the start: EUR 0.00 per license") && plans.contains("[not accepted]"), "{plans}");
    ok(&w.sealsdk_with(&["server", "plan", "accept"], &env), "plan accept");
    assert!(!w.path().join("keystore/content-keys").exists(), "no content key is stored on the build machine");
    let codes = ok(
        &w.sealsdk_with(&["server", "code", "create", "--product", "com.acme.hello", "--max-activations", "1"], &env),
        "code create",
    );
    let code = codes.trim().to_owned();
    assert_eq!(code.len(), 29, "{code}");

    // The end user: one command, then run.
    let a = w.device("a");
    let apps = a.root.join("apps");
    let url = format!("{}/products/com.acme.hello", srv.url);
    let out =
        a.sealrun(&a.root).args(["install", &url, "--code", &code, "--dir", apps.to_str().unwrap()]).output().unwrap();
    let text = ok(&out, "sealrun install");
    assert!(text.contains("installed com.acme.hello 1.0.0"), "{text}");
    // Compiled right after installing, so the first launch is warm.
    assert!(text.contains("com.acme.hello 1.0.0 is ready: compiled in"), "{text}");
    let installed = apps.join("com.acme.hello.sealed");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(&pkg).unwrap());
    let run = a.sealrun(&a.root).env("SEALRUN_LOG", "sealrun=debug").arg(&installed).output().unwrap();
    assert!(stdout(&run).contains("hello from a sealed app"), "{}", stderr(&run));
    assert!(stderr(&run).contains("source=Cache"), "the first launch compiled: {}", stderr(&run));
    assert!(run.status.success());

    // Another device cannot use the code until the first gives it back.
    let b = w.device("b");
    let out = b.sealrun(&b.root).args(["activate", &code, "--server", &srv.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(214), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use on 1 device(s)"), "{}", stderr(&out));
    ok(&a.sealrun(&a.root).args(["deactivate", installed.to_str().unwrap()]).output().unwrap(), "deactivate");
    let run = a.sealrun(&a.root).arg(&installed).output().unwrap();
    assert_eq!(run.status.code(), Some(200), "the license left device a");
    let out = b.sealrun(&b.root).args(["activate", &code, "--server", &srv.url]).output().unwrap();
    ok(&out, "activate on b");
    let b_pkg = b.root.join("hello.sealed");
    std::fs::copy(&pkg, &b_pkg).unwrap();
    assert!(stdout(&b.sealrun(&b.root).arg(&b_pkg).output().unwrap()).contains("hello from a sealed app"));

    // Billing: an activation and a transfer in this month's invoice, and the vendor's check passes.
    let period = period_now();
    let inv = ok(&srv.cli(&["invoice", "--vendor", "acme", "--period", &period]), "invoice");
    let v: serde_json::Value = serde_json::from_str(&inv).unwrap();
    assert_eq!(v["lines"][0]["product"], "com.acme.hello");
    assert_eq!((&v["lines"][0]["licenses"], &v["lines"][0]["transfers"]), (&1.into(), &1.into()), "{inv}");
    let ledger = w.path().join("ledger.jsonl");
    let invoice = w.path().join("invoice.json");
    ok(&w.sealsdk_with(&["server", "ledger", "-o", ledger.to_str().unwrap()], &env), "ledger export");
    ok(&w.sealsdk_with(&["server", "invoice", &period, "-o", invoice.to_str().unwrap()], &env), "invoice");
    let out = ok(
        &w.sealsdk(&["ledger", "verify", "--ledger", ledger.to_str().unwrap(), "--invoice", invoice.to_str().unwrap()]),
        "verify",
    );
    assert!(out.contains("matches the ledger (3 entries, chain verified)"), "{out}");
    assert!(out.contains("1 activation code(s) within their limits"), "{out}");
    // An altered export is caught.
    let tampered = std::fs::read_to_string(&ledger).unwrap().replacen("com.acme.hello", "com.acme.hellp", 1);
    std::fs::write(&ledger, tampered).unwrap();
    let out =
        w.sealsdk(&["ledger", "verify", "--ledger", ledger.to_str().unwrap(), "--invoice", invoice.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("ledger is broken at entry 1"), "{}", stderr(&out));
    let status = srv.stop().expect("was running");
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
}

#[test]
fn whole_flow_sqlite() {
    whole_flow(None);
}

#[test]
fn whole_flow_postgres() {
    if let Some(db) = fresh_postgres() {
        whole_flow(Some(&db));
    }
}

/// A broken download resumes with a Range request; a partial file from
/// another package (ETag changed) is replaced by a full download.
#[test]
fn install_resumes_a_broken_download() {
    let w = World::new();
    let mut srv = Server::init(&w.path().join("server"), None);
    let token = srv.vendor("acme");
    srv.start();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str())];
    let (pkg, _) = certify_and_seal(&w, &env, "wordfreq", "com.acme.wf", &["--chunk-kib", "4"]);
    let code =
        ok(&w.sealsdk_with(&["server", "code", "create", "--product", "com.acme.wf"], &env), "code").trim().to_owned();
    let whole = std::fs::read(&pkg).unwrap();
    let sha = sha256_hex(&whole);
    let a = w.device("a");
    let apps = a.root.join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    // As left by a download that broke after 5000 bytes.
    std::fs::write(apps.join(".com.acme.wf.sealed.part"), &whole[..5000]).unwrap();
    std::fs::write(apps.join(".com.acme.wf.sealed.etag"), format!("\"{sha}\"")).unwrap();
    let url = format!("{}/products/com.acme.wf", srv.url);
    let install = |dev: &sealrun_tests::Device, dir: &Path| {
        dev.sealrun(&dev.root)
            .args(["install", &url, "--code", &code, "--dir", dir.to_str().unwrap()])
            .output()
            .unwrap()
    };
    ok(&install(&a, &apps), "resumed install");
    assert_eq!(std::fs::read(apps.join("com.acme.wf.sealed")).unwrap(), whole);
    assert!(!apps.join(".com.acme.wf.sealed.part").exists());
    // Stale partial data under an old ETag: the server sends everything again.
    std::fs::write(apps.join(".com.acme.wf.sealed.part"), vec![0xAA; 7000]).unwrap();
    std::fs::write(apps.join(".com.acme.wf.sealed.etag"), "\"0000\"").unwrap();
    ok(&install(&a, &apps), "install over stale partial");
    assert_eq!(std::fs::read(apps.join("com.acme.wf.sealed")).unwrap(), whole);
    let metrics = ureq::get(&format!("{}/metrics", srv.url)).call().unwrap().into_body().read_to_string().unwrap();
    assert!(metrics.contains("route=\"/v1/products/{product}/package\",status=\"206\"} 1"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/products/{product}/package\",status=\"200\"} 1"), "{metrics}");
    // Corrupt partial data with the right ETag: the check after download refuses it.
    std::fs::write(apps.join(".com.acme.wf.sealed.part"), vec![0xAA; 5000]).unwrap();
    std::fs::write(apps.join(".com.acme.wf.sealed.etag"), format!("\"{sha}\"")).unwrap();
    let out = install(&a, &apps);
    assert_eq!(out.status.code(), Some(207), "{}", stderr(&out));
    assert!(!apps.join(".com.acme.wf.sealed.part").exists(), "a bad partial download is not kept");
    ok(&install(&a, &apps), "install again after a refused partial");
    // --no-prepare: installed, not compiled (the cache stays empty).
    let b = w.device("b");
    let b_apps = b.root.join("apps");
    let b_code =
        ok(&w.sealsdk_with(&["server", "code", "create", "--product", "com.acme.wf"], &env), "code").trim().to_owned();
    let out = b
        .sealrun(&b.root)
        .args(["install", &url, "--code", &b_code, "--no-prepare", "--dir", b_apps.to_str().unwrap()])
        .output()
        .unwrap();
    let text = ok(&out, "install --no-prepare");
    assert!(!text.contains("is ready"), "{text}");
    assert!(!b.root.join("home/.cache/sealrun/code").exists(), "--no-prepare compiled anyway");
}

fn sha256_hex(b: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// With a certificate and key the server speaks TLS (rustls); the CLIs
/// trust a private CA given in SEALSDK_CA_FILE / SEALRUN_CA_FILE and refuse
/// the server without it.
#[test]
fn tls_with_a_private_ca() {
    let w = World::new();
    let (cert, key, ca_pem) = sealrun_tests::private_ca(&w.path().join("tls"));
    let mut srv = Server::init(&w.path().join("server"), None);
    let token = srv.vendor("acme");
    srv.start_with(&[
        ("SEALRUN_SERVER_TLS_CERT", cert.to_str().unwrap()),
        ("SEALRUN_SERVER_TLS_KEY", key.to_str().unwrap()),
    ]);
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    let ca = ca_pem.to_str().unwrap();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str()), ("SEALSDK_CA_FILE", ca)];
    let (pkg, _) = certify_and_seal(&w, &env, "hello", "com.acme.hello", &[]);
    let code = ok(
        &w.sealsdk_with(&["server", "code", "create", "--product", "com.acme.hello", "--count", "2"], &env),
        "codes",
    );
    let codes: Vec<&str> = code.lines().collect();
    let a = w.device("a");
    // Without the CA the launcher refuses the unknown certificate.
    let out = a.sealrun(&a.root).args(["activate", codes[0], "--server", &srv.url]).output().unwrap();
    assert_eq!(out.status.code(), Some(215), "{}", stderr(&out));
    let out = a
        .sealrun(&a.root)
        .env("SEALRUN_CA_FILE", ca)
        .args(["activate", codes[0], "--server", &srv.url])
        .output()
        .unwrap();
    ok(&out, "activate over TLS");
    let run = a.sealrun(&a.root).arg(&pkg).output().unwrap();
    assert!(stdout(&run).contains("hello from a sealed app"), "{}", stderr(&run));
    // Plain HTTP to the TLS port does not get an answer.
    let plain = srv.url.replace("https://", "http://");
    let out = a.sealrun(&a.root).args(["activate", codes[1], "--server", &plain]).output().unwrap();
    assert_eq!(out.status.code(), Some(215), "{}", stderr(&out));
}

/// The operator's own edit of its SQLite database, as a dishonest operator
/// would make it: `edit` changes the vendor's entries, then every hash and
/// link is recomputed and the head moved, so the chain verifies again and
/// the real server signs exports and invoices of it.
fn rewrite_ledger(db: &Path, edit: impl FnOnce(&mut Vec<sealrun_format::ledger::LedgerEntry>)) {
    use sealrun_format::ledger::{EntryFields, EntryKind, GENESIS_HASH, LedgerEntry};
    use sqlx::Row;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rw", db.display())).await.unwrap();
        let rows = sqlx::query(
            "SELECT seq, at, kind, product, license_id, device_fp, seats, code_id FROM ledger WHERE vendor_id = 1 ORDER BY seq",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut entries: Vec<LedgerEntry> = rows
            .iter()
            .map(|r| {
                let blob = |c: &str| r.try_get::<Vec<u8>, _>(c).unwrap();
                LedgerEntry::after(
                    GENESIS_HASH,
                    EntryFields {
                        seq: r.try_get::<i64, _>("seq").unwrap() as u64,
                        at: r.try_get::<i64, _>("at").unwrap() as u64,
                        kind: EntryKind::from_name(&r.try_get::<String, _>("kind").unwrap()).unwrap(),
                        product: r.try_get("product").unwrap(),
                        license_id: blob("license_id").try_into().unwrap(),
                        device: blob("device_fp").try_into().unwrap(),
                        seats: r.try_get::<i64, _>("seats").unwrap() as u32,
                        code: r.try_get::<Option<i64>, _>("code_id").unwrap().map(|c| c as u64),
                    },
                )
            })
            .collect();
        edit(&mut entries);
        let mut prev = GENESIS_HASH;
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("DELETE FROM ledger WHERE vendor_id = 1").execute(&mut *tx).await.unwrap();
        for (i, e) in entries.iter_mut().enumerate() {
            e.fields.seq = i as u64 + 1;
            *e = LedgerEntry::after(prev, e.fields.clone());
            prev = e.hash;
            let f = &e.fields;
            sqlx::query(
                "INSERT INTO ledger (vendor_id, seq, at, kind, product, license_id, device_fp, seats, prev_hash, hash, code_id) \
                 VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(f.seq as i64)
            .bind(f.at as i64)
            .bind(f.kind.as_str())
            .bind(f.product.clone())
            .bind(f.license_id.to_vec())
            .bind(f.device.to_vec())
            .bind(i64::from(f.seats))
            .bind(e.prev_hash.to_vec())
            .bind(e.hash.to_vec())
            .bind(f.code.map(|c| c as i64))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE ledger_heads SET seq = $1, hash = $2 WHERE vendor_id = 1")
            .bind(entries.len() as i64)
            .bind(prev.to_vec())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });
}

/// Issue 25, findings 1-3, through the binaries: the operator edits its own
/// database (it holds the server, its keys and its data), the real server
/// signs what it serves, and `sealsdk ledger verify` still refuses each
/// forgery with its own message.
#[test]
fn a_dishonest_operator_is_caught() {
    let w = World::new();
    let mut srv = Server::init(&w.path().join("server"), None);
    let token = srv.vendor("acme");
    ok(&srv.cli(&["plan", "set", "acme", "--license-fee", "1.00"]), "plan set");
    srv.start();
    let env = [("SEALSDK_SERVER", srv.url.as_str()), ("SEALSDK_TOKEN", token.as_str())];
    let (_pkg, _) = certify_and_seal(&w, &env, "hello", "com.acme.hello", &[]);
    ok(&w.sealsdk_with(&["server", "plan", "accept"], &env), "plan accept");
    for i in 0..2 {
        let dev = w.device(&format!("d{i}")).code();
        let out = w.path().join(format!("l{i}.license"));
        let args =
            ["server", "license", "issue", "--product", "com.acme.hello", "--device", &dev, "--licensee", "Jo", "-o"];
        let mut args = args.to_vec();
        args.push(out.to_str().unwrap());
        ok(&w.sealsdk_with(&args, &env), "license issue");
    }
    let period = period_now();
    let (ledger, invoice) = (w.path().join("ledger.jsonl"), w.path().join("invoice.json"));
    let verify = |w: &World| {
        ok(&w.sealsdk_with(&["server", "ledger", "-o", ledger.to_str().unwrap()], &env), "ledger export");
        ok(&w.sealsdk_with(&["server", "invoice", &period, "-o", invoice.to_str().unwrap()], &env), "invoice");
        w.sealsdk(&["ledger", "verify", "--ledger", ledger.to_str().unwrap(), "--invoice", invoice.to_str().unwrap()])
    };
    let refused = |o: &std::process::Output, says: &str| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
        assert!(stderr(o).contains(says), "expected {says:?}: {}", stderr(o));
    };

    // Five invented licenses; then a second entry for a real license id.
    let db = srv.data.join("server.db");
    rewrite_ledger(&db, |e| {
        for i in 0..5u8 {
            let mut fake = e[0].clone();
            fake.fields.license_id = [0xf0 + i; 16];
            e.push(fake);
        }
    });
    refused(&verify(&w), "this keystore did not issue it");
    rewrite_ledger(&db, |e| {
        e.truncate(2);
        let dup = e[1].clone();
        e.push(dup);
    });
    refused(&verify(&w), "is handed out twice, in entries 2 and 3");
    rewrite_ledger(&db, |e| e.truncate(2));
    let out = ok(&verify(&w), "the honest ledger verifies");
    assert!(out.contains("total 2.00 EUR") && out.contains("2 of your licenses where the server put them"), "{out}");

    // History rewritten after that verify: the first license gets 100 seats.
    rewrite_ledger(&db, |e| e[0].fields.seats = 100);
    refused(&verify(&w), "history was rewritten: entry 2 is not the one you verified");
    rewrite_ledger(&db, |e| e[0].fields.seats = 0);
    ok(&verify(&w), "restored");

    // The plan changed retroactively in the database: a ten times higher fee from the start.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rw", db.display())).await.unwrap();
        sqlx::query("UPDATE plans SET plan = replace(plan, '\"license_fee\":100,', '\"license_fee\":1000,')")
            .execute(&pool)
            .await
            .unwrap();
    });
    refused(&verify(&w), "license_fee 1000 instead of 100");
    let out = w.sealsdk_with(&["server", "plan", "accept"], &env);
    refused(&out, "changed a plan after the fact");

    // The server's own rule: no plan change backwards.
    let out = srv.cli(&["plan", "set", "acme", "--license-fee", "5.00", "--effective-from", "2001-01-01"]);
    assert!(!out.status.success() && stderr(&out).contains("never backwards"), "{}", stderr(&out));
    srv.stop();
}
