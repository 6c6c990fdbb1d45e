//! Talking to a licensing server: activation codes (`sealrun activate`),
//! installing a product in one exchange (`sealrun install`, package and
//! license together, resumable) and giving an activation back
//! (`sealrun deactivate`).
//!
//! An activated license is stored like any other, with a small record
//! beside it (`<id>.activation`, 0600) naming the server and the code, so
//! that `deactivate` can give it back later.
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sealrun_host::tls::{CaFileError, MAX_CA_FILE_LEN, tls_trusting};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use sealrun_format::license::License;
use sealrun_format::package::{Header, Package};

use crate::error::{ActivationError, LaunchError, LicenseError};
use crate::license::device::Device;
use crate::license::store;
use crate::platform::dirs;

/// Environment variable naming the default licensing server for `activate`.
pub(crate) const SERVER_ENV: &str = "SEALRUN_SERVER";
/// How long a JSON call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Give up on a download stalled this long (it can be resumed).
const READ_STALL: Duration = Duration::from_secs(60);
/// Largest JSON answer read.
const MAX_ANSWER: u64 = 1 << 20;

/// Environment variable naming a PEM file of CA certificates to trust
/// instead of the built-in Mozilla roots (a server with a private CA).
pub(crate) const CA_FILE_ENV: &str = "SEALRUN_CA_FILE";

fn agent() -> Result<ureq::Agent, LaunchError> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(READ_STALL));
    if let Some(file) = std::env::var_os(CA_FILE_ENV).filter(|f| !f.is_empty()) {
        let path = PathBuf::from(file);
        let tls = tls_trusting(&path).map_err(|e| match e {
            CaFileError::Io(source) => LaunchError::Io { action: "cannot read", path: path.clone(), source },
            CaFileError::NoCertificate => {
                LaunchError::Usage(format!("{} ({CA_FILE_ENV}) holds no PEM certificate", path.display()))
            }
            CaFileError::NotAFile => LaunchError::Usage(format!(
                "{} ({CA_FILE_ENV}) is not a regular file of at most {MAX_CA_FILE_LEN} bytes",
                path.display()
            )),
        })?;
        config = config.tls_config(tls);
    }
    Ok(config.build().into())
}

fn unreachable(url: &str) -> impl FnOnce(ureq::Error) -> LaunchError + '_ {
    move |e| LaunchError::Activation(ActivationError::Unreachable { url: url.to_owned(), reason: e.to_string() })
}

fn refused(status: u16, text: &str) -> LaunchError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    LaunchError::Activation(ActivationError::Refused {
        status,
        // The server's text, shown to the user: escaped.
        detail: v["detail"].as_str().map_or_else(
            || format!("unexpected answer (HTTP {status})"),
            |d| sealrun_format::text::shown(d).into_owned(),
        ),
    })
}

fn post_json(base: &str, path: &str, body: &Value) -> Result<Value, LaunchError> {
    let url = format!("{base}{path}");
    let mut resp = agent()?
        .post(&url)
        .config()
        .timeout_global(Some(CALL_TIMEOUT))
        .build()
        .send_json(body)
        .map_err(unreachable(base))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().with_config().limit(MAX_ANSWER).read_to_string().map_err(unreachable(base))?;
    if status >= 400 {
        return Err(refused(status, &text));
    }
    serde_json::from_str(&text).map_err(|_| {
        LaunchError::Activation(ActivationError::Unreachable {
            url: base.to_owned(),
            reason: "the answer is not from a Sealrun licensing server".into(),
        })
    })
}

/// A server base URL as given, checked and without a trailing slash.
pub(crate) fn server_base(url: &str) -> Result<String, LaunchError> {
    let base = url.trim().trim_end_matches('/');
    if !(base.starts_with("https://") || base.starts_with("http://")) || base.len() < 10 {
        return Err(LaunchError::Usage(format!(
            "{url} is not a server address; it looks like https://licenses.example"
        )));
    }
    Ok(base.to_owned())
}

/// Splits a product URL `https://host[/prefix]/products/<product>` into
/// the server base and the product id.
pub(crate) fn split_product_url(url: &str) -> Result<(String, String), LaunchError> {
    let bad = || {
        LaunchError::Usage(format!(
            "{url} is not a product address; it looks like https://licenses.example/products/com.acme.tool"
        ))
    };
    let trimmed = url.trim().trim_end_matches('/');
    let (base, product) = trimmed.rsplit_once("/products/").ok_or_else(bad)?;
    if sealrun_format::text::product_id_problem(product).is_some() {
        return Err(bad());
    }
    Ok((server_base(base)?, product.to_owned()))
}

fn record_path(license: &Path) -> PathBuf {
    license.with_extension("activation")
}

fn write_record(license_path: &Path, base: &str, code: &str) -> Result<(), LaunchError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = record_path(license_path);
    let text = json!({ "server": base, "code": code }).to_string();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(LaunchError::io("cannot write", &path))?;
    f.write_all(text.as_bytes()).map_err(LaunchError::io("cannot write", &path))
}

fn decode_license(b64: &str, base: &str) -> Result<Vec<u8>, LaunchError> {
    B64.decode(b64.trim()).map_err(|_| {
        LaunchError::Activation(ActivationError::Unreachable {
            url: base.to_owned(),
            reason: "the server sent a license that is not base64".into(),
        })
    })
}

/// Redeems `code` at `server` for this device and installs the license.
pub(crate) fn activate(server: &str, code: &str, device: &Device) -> Result<(PathBuf, License), LaunchError> {
    let base = server_base(server)?;
    let v = post_json(&base, "/v1/activate", &json!({ "code": code, "device": device.code.to_string() }))?;
    let bytes = decode_license(v["license"].as_str().unwrap_or_default(), &base)?;
    let (path, license) = store::add_bytes(&bytes, Path::new("the server's license"), device)?;
    write_record(&path, &base, code)?;
    Ok((path, license))
}

/// Where `install` puts packages by default: `$XDG_DATA_HOME/sealrun/apps`.
pub(crate) fn apps_dir() -> PathBuf {
    dirs::data_dir().join("apps")
}

/// What `install` did.
pub(crate) struct Installed {
    /// The package.
    pub package: PathBuf,
    /// The installed license.
    pub license: PathBuf,
    /// The release installed.
    pub release: String,
    /// The display name.
    pub name: String,
}

/// Downloads the product's package into `dir` and installs the device's
/// license, both from one exchange; resumes a broken download; checks the
/// package signature and that the license covers it before anything is
/// kept.
pub(crate) fn install(
    url: &str,
    code: &str,
    dir: &Path,
    device: &Device,
    progress: bool,
) -> Result<Installed, LaunchError> {
    let (base, product) = split_product_url(url)?;
    fs::create_dir_all(dir).map_err(LaunchError::io("cannot create", dir))?;
    let dest = dir.join(format!("{product}.sealed"));
    let part = dir.join(format!(".{product}.sealed.part"));
    let etag_file = dir.join(format!(".{product}.sealed.etag"));
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let etag = fs::read_to_string(&etag_file).ok().filter(|_| have > 0);
    let download = format!("{base}/v1/products/{product}/package");
    let mut req = agent()?.get(&download).header(HEADER_CODE, code).header(HEADER_DEVICE, &device.code.to_string());
    if let Some(tag) = &etag {
        req = req.header("range", &format!("bytes={have}-")).header("if-range", tag.trim());
    }
    let mut resp = req.call().map_err(unreachable(&base))?;
    let status = resp.status().as_u16();
    if status >= 400 {
        let text = resp.body_mut().with_config().limit(MAX_ANSWER).read_to_string().unwrap_or_default();
        return Err(refused(status, &text));
    }
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let license_b64 = header(HEADER_LICENSE).ok_or_else(|| {
        LaunchError::Activation(ActivationError::Unreachable {
            url: base.clone(),
            reason: "the server sent the package without a license".into(),
        })
    })?;
    let release = header(HEADER_RELEASE).unwrap_or_default();
    let new_etag = header("etag").unwrap_or_default();
    let total: Option<u64> = match status {
        206 => header("content-range").and_then(|r| r.rsplit('/').next().and_then(|t| t.parse().ok())),
        _ => header("content-length").and_then(|l| l.parse().ok()),
    };
    let (mut file, start) = if status == 206 {
        let f = fs::OpenOptions::new().append(true).open(&part).map_err(LaunchError::io("cannot write", &part))?;
        (f, have)
    } else {
        let f = fs::File::create(&part).map_err(LaunchError::io("cannot write", &part))?;
        (f, 0)
    };
    fs::write(&etag_file, &new_etag).map_err(LaunchError::io("cannot write", &etag_file))?;
    let bar = progress_bar(progress, total, start, &product);
    let mut reader = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                bar.abandon();
                return Err(LaunchError::Activation(ActivationError::Unreachable {
                    url: base,
                    reason: format!(
                        "the download broke off ({e}); run the same command again to resume where it stopped"
                    ),
                }));
            }
        };
        file.write_all(&buf[..n]).map_err(LaunchError::io("cannot write", &part))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    file.sync_all().map_err(LaunchError::io("cannot write", &part))?;
    drop(file);
    let license_bytes = decode_license(&license_b64, &base)?;
    let name = check_download(&part, &license_bytes, &product)?;
    fs::rename(&part, &dest).map_err(LaunchError::io("cannot write", &dest))?;
    let _ = fs::remove_file(&etag_file);
    let (license, _) = store::add_bytes(&license_bytes, Path::new("the server's license"), device)?;
    write_record(&license, &base, code)?;
    Ok(Installed { package: dest, license, release, name })
}

use sealrun_wire::server::{CODE_HEADER as HEADER_CODE, DEVICE_HEADER as HEADER_DEVICE};
use sealrun_wire::server::{LICENSE_HEADER as HEADER_LICENSE, RELEASE_HEADER as HEADER_RELEASE};

/// Checks a finished download: a whole, signed package of `product`, and a
/// license from the same vendor that covers it. Returns the display name.
fn check_download(part: &Path, license_bytes: &[u8], product: &str) -> Result<String, LaunchError> {
    let bytes = fs::read(part).map_err(LaunchError::io("cannot read", part))?;
    let bad = |source| {
        // A damaged download is not worth resuming: start over next time.
        let _ = fs::remove_file(part);
        LaunchError::BadFile { path: part.to_owned(), source }
    };
    let pkg = Package::parse(&bytes).map_err(bad)?;
    pkg.verify_signature().map_err(bad)?;
    let m: &Header = pkg.header();
    if m.manifest.product != product {
        return Err(LaunchError::Usage(format!(
            "the server sent {} instead of {product}; nothing was installed",
            m.manifest.product
        )));
    }
    let lic = License::parse(license_bytes).map_err(LaunchError::bad_file("the server's license"))?;
    lic.verify_signature(&m.manifest.vendor_key).map_err(LaunchError::bad_file("the server's license"))?;
    lic.check_covers(&m.manifest, crate::license::clock::now()).map_err(|source| {
        LaunchError::License(LicenseError::WrongProduct { path: PathBuf::from("the server's license"), source })
    })?;
    Ok(m.manifest.display_name.clone())
}

fn progress_bar(wanted: bool, total: Option<u64>, start: u64, product: &str) -> ProgressBar {
    if !wanted {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)")
            .expect("template is valid"),
    );
    bar.set_message(format!("downloading {product}"));
    bar.set_position(start);
    bar
}

/// Gives back every activation of the package's product held by this
/// device, deleting the local licenses. Returns how many.
pub(crate) fn deactivate(package: &Path, device: &Device) -> Result<usize, LaunchError> {
    let header = read_header(package)?;
    let product = header.manifest.product;
    let (_, found) = store::candidates(package, &product);
    let mut done = 0;
    for license in found {
        let rec = record_path(&license);
        let Ok(text) = fs::read_to_string(&rec) else { continue };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (Some(server), Some(code)) = (v["server"].as_str(), v["code"].as_str()) else { continue };
        let bytes = store::read_license_file(&license)?;
        let lic = License::parse(&bytes).map_err(LaunchError::bad_file(&license))?;
        post_json(
            server,
            "/v1/deactivate",
            &json!({ "code": code, "device": device.code.to_string(), "license_id": lic.terms.license_id_hex() }),
        )?;
        fs::remove_file(&license).map_err(LaunchError::io("cannot remove", &license))?;
        let _ = fs::remove_file(&rec);
        done += 1;
    }
    if done == 0 {
        return Err(LaunchError::License(LicenseError::NothingToDeactivate { product }));
    }
    Ok(done)
}

fn read_header(package: &Path) -> Result<Header, LaunchError> {
    let f = fs::File::open(package).map_err(LaunchError::io("cannot open", package))?;
    let mut buf = Vec::new();
    let limit = u64::from(sealrun_format::limits::MAX_MANIFEST_LEN) + 64;
    f.take(limit).read_to_end(&mut buf).map_err(LaunchError::io("cannot read", package))?;
    Header::parse_prefix(&buf).map_err(LaunchError::bad_file(package))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_urls() {
        let (b, p) = split_product_url("https://licenses.example/products/com.acme.tool").unwrap();
        assert_eq!((b.as_str(), p.as_str()), ("https://licenses.example", "com.acme.tool"));
        let (b, _) = split_product_url("http://127.0.0.1:8420/lic/products/com.acme.tool/").unwrap();
        assert_eq!(b, "http://127.0.0.1:8420/lic");
        assert!(split_product_url("https://licenses.example/com.acme.tool").is_err());
        assert!(split_product_url("https://licenses.example/products/../etc").is_err());
        assert!(split_product_url("ftp://x/products/a.b").is_err());
    }
}
