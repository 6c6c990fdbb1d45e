//! The vendor's client for the licensing server (`sealsdk server …`,
//! `sealsdk seal --server`): a bearer token and JSON over HTTP(S).
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Result, SdkError};

/// Environment variable with the server URL.
pub const SERVER_ENV: &str = "SEALSDK_SERVER";
/// Environment variable with the vendor token.
pub const TOKEN_ENV: &str = "SEALSDK_TOKEN";
/// Environment variable naming a PEM file of CA certificates to trust
/// instead of the built-in Mozilla roots (a server with a private CA).
pub const CA_FILE_ENV: &str = "SEALSDK_CA_FILE";
/// How long one API call may take (uploads excepted).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest JSON answer read (a full license export of a big vendor fits).
const MAX_ANSWER: u64 = 256 << 20;

/// A connection to the server as one vendor.
pub struct Client {
    base: String,
    token: zeroize::Zeroizing<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (e.g. `https://licenses.example`) with `token`.
    pub fn new(base: &str, token: zeroize::Zeroizing<String>) -> Result<Client> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SdkError::ServerSetup(
                "the server URL must start with https:// (or http:// on a trusted network)",
            ));
        }
        let mut config =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_connect(Some(Duration::from_secs(10)));
        if let Some(file) = std::env::var_os(CA_FILE_ENV).filter(|f| !f.is_empty()) {
            let path = std::path::PathBuf::from(file);
            let tls = sealrun_host::tls::tls_trusting(&path).map_err(|e| match e {
                sealrun_host::tls::CaFileError::Io(source) => {
                    SdkError::Io { action: "cannot read", path: path.clone(), source }
                }
                sealrun_host::tls::CaFileError::NoCertificate => {
                    SdkError::ServerSetup("the file in SEALSDK_CA_FILE holds no PEM certificate")
                }
                sealrun_host::tls::CaFileError::NotAFile => {
                    SdkError::ServerSetup("the file in SEALSDK_CA_FILE is not a regular file of at most 1 MiB")
                }
            })?;
            config = config.tls_config(tls);
        }
        Ok(Client { base, token, agent: config.build().into() })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: ureq::Error) -> SdkError {
        SdkError::Unreachable { url: self.base.clone(), reason: e.to_string() }
    }

    /// The answer's text, or the server's problem as an error. Answers may
    /// carry a content key: the buffer is wiped when dropped.
    fn answer(&self, mut resp: ureq::http::Response<ureq::Body>) -> Result<zeroize::Zeroizing<String>> {
        let status = resp.status().as_u16();
        let text = zeroize::Zeroizing::new(
            resp.body_mut().with_config().limit(MAX_ANSWER).read_to_string().map_err(|e| self.unreachable(e))?,
        );
        if status >= 400 {
            return Err(problem(status, &text));
        }
        Ok(text)
    }

    fn finish<T: DeserializeOwned>(&self, resp: ureq::http::Response<ureq::Body>) -> Result<T> {
        let text = self.answer(resp)?;
        let text = if text.is_empty() { "null" } else { text.as_str() };
        serde_json::from_str(text).map_err(|e| SdkError::Unreachable {
            url: self.base.clone(),
            reason: format!("the answer is not what sealsdk expects ({e}); is the URL a Sealrun server?"),
        })
    }

    fn call_get(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>> {
        self.agent
            .get(self.url(path))
            .config()
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .header("authorization", &format!("Bearer {}", self.token.as_str()))
            .call()
            .map_err(|e| self.unreachable(e))
    }

    /// GET a JSON answer.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.finish(self.call_get(path)?)
    }

    /// GET a text answer (exports).
    pub fn get_text(&self, path: &str) -> Result<String> {
        Ok(self.answer(self.call_get(path)?)?.to_string())
    }

    /// Sends JSON with `method` (POST or PUT) and reads the JSON answer.
    /// Transport failures are retried a few times with the same
    /// `idempotency_key`, so a retried license request never issues twice.
    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            let mut req = match method {
                "PUT" => self.agent.put(self.url(path)),
                _ => self.agent.post(self.url(path)),
            }
            .config()
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .header("authorization", &format!("Bearer {}", self.token.as_str()));
            if let Some(k) = idempotency_key {
                req = req.header("idempotency-key", k);
            }
            match req.send_json(body) {
                Ok(resp) => return self.finish(resp),
                Err(e) if attempt < 3 && idempotency_key.is_some() && is_transport(&e) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
                Err(e) => return Err(self.unreachable(e)),
            }
        }
    }

    /// Uploads a file with PUT.
    pub fn upload(&self, path: &str, file: &Path) -> Result<Value> {
        let f = std::fs::File::open(file).map_err(SdkError::io("cannot open", file))?;
        let len = f.metadata().map_err(SdkError::io("cannot read", file))?.len();
        let resp = self
            .agent
            .put(self.url(path))
            .header("authorization", &format!("Bearer {}", self.token.as_str()))
            .header("content-type", "application/octet-stream")
            .header("content-length", &len.to_string())
            .send(ureq::SendBody::from_reader(&mut (f.take(len))))
            .map_err(|e| self.unreachable(e))?;
        self.finish(resp)
    }
}

fn is_transport(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) | ureq::Error::HostNotFound
    )
}

/// The server's problem+json turned into an error.
fn problem(status: u16, text: &str) -> SdkError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    SdkError::Server {
        status,
        code: v["code"].as_str().unwrap_or("unknown").to_owned(),
        detail: v["detail"].as_str().map_or_else(|| format!("HTTP {status}"), str::to_owned),
    }
}

/// A random idempotency key for one logical request.
pub fn request_key() -> String {
    let mut b = [0u8; 16];
    rand_core::Rng::fill_bytes(&mut crate::rng(), &mut b);
    hex::encode(b)
}
