//! Package provision (claim 4): which package a device gets, and serving it
//! with `Range`, `If-Range` and a strong `ETag` (its SHA-256), so a broken
//! download resumes where it stopped.
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::error::ServerError;
use crate::licensing::Activation;
use crate::problem::ApiError;
use crate::service::Service;

impl Service {
    /// The newest release the activation's license covers that has an
    /// uploaded package: its release, SHA-256, file and length.
    pub async fn package_for(&self, a: &Activation) -> Result<(String, String, PathBuf, u64), ServerError> {
        let p = self.product_row(None, &a.product).await?;
        let rows = self.release_rows(&p, &a.releases).await?;
        let newest = rows
            .iter()
            .rev()
            .find_map(|r| Some((r.release, r.package_sha256.clone()?, r.package_len?)))
            .ok_or(ServerError::NoPackage)?;
        let (release, sha, len) = newest;
        Ok((release.to_string(), sha.clone(), self.package_path(&sha), u64::try_from(len).unwrap_or(0)))
    }
}

/// A single byte range `[start, end]` from a `Range` header, `None` for the
/// whole file. Several ranges are answered with the whole file (allowed by
/// RFC 9110, and no client of ours asks for them).
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // The last b bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.checked_sub(1).ok_or(())?)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    if range.0 >= len || range.0 > range.1 {
        return Err(());
    }
    Ok(Some(range))
}

/// Serves `path` (of length `len`, SHA-256 `sha`) honouring `Range` and
/// `If-Range`; `extra` adds headers to every answer.
pub async fn serve_file(
    headers: &HeaderMap,
    path: &Path,
    len: u64,
    sha: &str,
    extra: impl FnOnce(&mut HeaderMap),
) -> Result<Response, ApiError> {
    let etag = format!("\"{sha}\"");
    let if_range_ok = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_ok => match parse_range(r, len) {
            Ok(r) => r,
            Err(()) => {
                let mut resp = ApiError::from(ServerError::Invalid {
                    field: "Range",
                    problem: "is outside the package or malformed",
                })
                .into_response();
                *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                resp.headers_mut().insert(header::CONTENT_RANGE, hv(&format!("bytes */{len}")));
                return Ok(resp);
            }
        },
        _ => None,
    };
    let io = |source| ServerError::Io { action: "cannot read the package", path: path.to_owned(), source };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let (status, start, count) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        None => (StatusCode::OK, 0, len),
    };
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(io)?;
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(count), 256 * 1024));
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.sealrun.package"));
    h.insert(header::CONTENT_LENGTH, hv(&count.to_string()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, hv(&etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, hv(&format!("bytes {start}-{}/{len}", start + count - 1)));
    }
    extra(h);
    Ok(resp)
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("ASCII header value")
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=9-3", 100).is_err());
        assert!(parse_range("bytes=x-3", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
    }
}
