//! TLS that trusts a private CA: a licensing server or a site license
//! manager whose certificate is not signed by a public root.
use std::fs;
use std::io::Read;
use std::path::Path;

/// Largest CA file read: a bundle of a few hundred certificates.
pub const MAX_CA_FILE_LEN: u64 = 1 << 20;

/// Why a CA file could not be used. Exhaustive on purpose: each caller
/// words the advice for its own setting, and a new case must get one.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// It could not be read.
    #[error(transparent)]
    Io(std::io::Error),
    /// It holds no PEM certificate.
    #[error("it holds no PEM certificate")]
    NoCertificate,
    /// It is not a regular file of at most [`MAX_CA_FILE_LEN`] bytes.
    #[error("it is not a regular file of at most {MAX_CA_FILE_LEN} bytes")]
    NotAFile,
}

/// A TLS configuration that trusts the CA certificates in the PEM file
/// `path`, and only them.
pub fn tls_trusting(path: &Path) -> Result<ureq::tls::TlsConfig, CaFileError> {
    // A regular file of at most MAX_CA_FILE_LEN: a name from a config or
    // floating file must not make a program read /dev/zero forever.
    let file = fs::File::open(path).map_err(CaFileError::Io)?;
    let meta = file.metadata().map_err(CaFileError::Io)?;
    if !meta.is_file() || meta.len() > MAX_CA_FILE_LEN {
        return Err(CaFileError::NotAFile);
    }
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_LEN).read_to_end(&mut pem).map_err(CaFileError::Io)?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CaFileError::NoCertificate);
    }
    Ok(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&certs)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_or_not_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let empty = dir.join("empty.pem");
        fs::write(&empty, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        assert!(matches!(tls_trusting(&empty), Err(CaFileError::NoCertificate)));
        assert!(matches!(tls_trusting(dir), Err(CaFileError::NotAFile)));
        assert!(matches!(tls_trusting(&dir.join("missing")), Err(CaFileError::Io(_))));
    }
}
