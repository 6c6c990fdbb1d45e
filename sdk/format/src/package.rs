//! The package format (`*.sealed`), version 1.
//!
//! ```text
//! header    magic "SEALPKG\x1a" | version u16 | manifest length u32 | manifest
//! chunks    STREAM chunks of the module (see `stream`), each with its tag
//! native    optional: STREAM chunks of each precompiled artifact, in the
//!           order the manifest lists them
//! trailer   Ed25519 signature by the vendor key (64 bytes)
//! ```
//! The signature covers the header bytes as received and the SHA-256 of
//! every module chunk, so anyone can check a package without a license,
//! and nobody holding a content key can alter a chunk unnoticed. Precompiled
//! artifacts are covered through the header: the manifest carries the digest
//! over each artifact's chunks.
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use crate::cursor::{Cursor, PutExt, check_exact_len};
use crate::keys::{ContentKey, KeyId, SIGNATURE_LEN, VendorPublicKey, VendorSigningKey};
use crate::limits::*;
use crate::stream::{self, ChunkLayout, ChunkOpener, NONCE_PREFIX_LEN, StreamSealer};
use crate::text::{free_text_problem, product_id_problem};
use crate::{Artifact, Error, Release, Result};

/// Magic bytes at the start of every package.
pub const PACKAGE_MAGIC: [u8; 8] = *b"SEALPKG\x1a";
/// The package format version this build reads and writes.
pub const PACKAGE_VERSION: u16 = 1;
/// Cipher suite 1: AES-256-GCM-SIV STREAM-BE32, SHA-256 chunk digests,
/// Ed25519 signatures, HPKE X25519/HKDF-SHA256/AES-256-GCM key wrapping.
pub const CIPHER_SUITE_V1: u8 = 1;
/// Bytes before the manifest: magic, version, manifest length.
const PREFIX_LEN: usize = 8 + 2 + 4;

const A: Artifact = Artifact::Package;

/// What kind of program the package holds: a core module or a component,
/// and for a component the WASI world it targets. One byte in the manifest
/// (1, 2, 3); packages sealed before components exist are all `Console`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// A core module, a WASI preview-1 command that talks through stdin,
    /// stdout and stderr (`wasm32-wasip1`).
    Console,
    /// A component for the `wasi:cli/command` world (`wasm32-wasip2`): a
    /// command run like a console app, with WASI preview 2.
    ComponentCommand,
    /// A component for the `wasi:http/proxy` world: an HTTP service that
    /// `sealrun serve` runs, one instance per request.
    ComponentHttpProxy,
}

impl AppKind {
    /// Whether the package holds a component rather than a core module.
    pub fn is_component(self) -> bool {
        !matches!(self, AppKind::Console)
    }

    fn code(self) -> u8 {
        match self {
            AppKind::Console => 1,
            AppKind::ComponentCommand => 2,
            AppKind::ComponentHttpProxy => 3,
        }
    }

    fn from_code(code: u8) -> Option<AppKind> {
        Some(match code {
            1 => AppKind::Console,
            2 => AppKind::ComponentCommand,
            3 => AppKind::ComponentHttpProxy,
            _ => return None,
        })
    }
}

/// A capability the app asks for. The launcher grants none of them by itself:
/// it tells the user, who grants them with `--dir` / `--env`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// A directory the app expects at `guest` (an absolute guest path).
    Dir {
        /// Whether the app needs to write there.
        writable: bool,
        /// The path the app uses.
        guest: String,
    },
    /// An environment variable the app reads.
    Env(String),
    /// An endpoint the app connects to, `HOST:PORT` (a component's TCP, or
    /// UDP with [`Capability::Udp`]).
    Connect(String),
    /// An address the app listens on, `ADDR:PORT`.
    Listen(String),
    /// Name lookups (DNS).
    Dns,
    /// UDP sockets.
    Udp,
}

/// The value of [`Capability::Dns`]: the tag alone would do, but every
/// capability has a value, and this one has one spelling.
const DNS_VALUE: &str = "dns";
/// The value of [`Capability::Udp`] (see [`DNS_VALUE`]).
const UDP_VALUE: &str = "udp";

impl Capability {
    fn tag(&self) -> u8 {
        match self {
            Capability::Dir { writable: false, .. } => 1,
            Capability::Dir { writable: true, .. } => 2,
            Capability::Env(_) => 3,
            Capability::Connect(_) => 4,
            Capability::Listen(_) => 5,
            Capability::Dns => 6,
            Capability::Udp => 7,
        }
    }

    fn value(&self) -> &str {
        match self {
            Capability::Dir { guest, .. } => guest,
            Capability::Env(name) => name,
            Capability::Connect(endpoint) => endpoint,
            Capability::Listen(addr) => addr,
            Capability::Dns => DNS_VALUE,
            Capability::Udp => UDP_VALUE,
        }
    }

    /// Why the capability is invalid, if it is.
    pub fn problem(&self) -> Option<&'static str> {
        let v = self.value();
        if v.is_empty() || v.len() > MAX_CAPABILITY_LEN {
            return Some("capability value is empty or too long");
        }
        match self {
            Capability::Dir { guest, .. } => {
                // One spelling per path: absolute, no empty, "." or ".." parts,
                // no trailing slash (except the root itself).
                let canonical = guest == "/"
                    || (guest.starts_with('/')
                        && guest[1..].split('/').all(|p| !p.is_empty() && p != "." && p != ".."));
                if !canonical || guest.chars().any(char::is_control) {
                    return Some("guest directory must be a canonical absolute path, e.g. /data");
                }
            }
            Capability::Env(name) => {
                let ok = name
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
                if !ok {
                    return Some("environment variable names are letters, digits and '_'");
                }
            }
            Capability::Connect(endpoint) => return crate::net::Endpoint::canonical_problem(endpoint),
            Capability::Listen(addr) => return crate::net::listen_problem(addr),
            Capability::Dns | Capability::Udp => {}
        }
        None
    }
}

/// The signed description of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Product id, e.g. `com.acme.tool`.
    pub product: String,
    /// The release this package is.
    pub release: Release,
    /// Name shown to end users.
    pub display_name: String,
    /// Kind of program.
    pub kind: AppKind,
    /// The vendor key that signs the package and its licenses.
    pub vendor_key: VendorPublicKey,
    /// Cipher suite ([`CIPHER_SUITE_V1`]).
    pub cipher_suite: u8,
    /// Chunk size as a power of two.
    pub chunk_size_log2: u8,
    /// Length of the module in bytes.
    pub plaintext_len: u64,
    /// Random STREAM nonce prefix of this package.
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    /// Identifier of the content key that encrypts the module.
    pub key_id: KeyId,
    /// Capabilities the app asks for, sorted and unique.
    pub capabilities: Vec<Capability>,
    /// Precompiled native code the vendor ships for named targets (optional,
    /// used only where the user trusts this vendor with native code).
    pub native: Vec<NativeCode>,
    /// The app's icon, a PNG or SVG image (optional, not encrypted: the
    /// desktop shows it in menus before any license is checked).
    pub icon: Option<Vec<u8>>,
}

/// Marks the optional icon after the capabilities. Above
/// [`MAX_NATIVE_CODE`], so it can never be read as a native list's count.
pub const ICON_TAG: u8 = 0x80;

/// What is wrong with an icon, if anything: its size, or not being a PNG
/// or SVG image (by their first bytes).
pub fn icon_problem(icon: &[u8]) -> Option<&'static str> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if icon.is_empty() || icon.len() > MAX_ICON_LEN {
        return Some("is empty or above 7 KiB");
    }
    let svg = icon.starts_with(b"<svg") || icon.starts_with(b"<?xml");
    if !icon.starts_with(PNG) && !svg {
        return Some("is not a PNG or SVG image");
    }
    None
}

/// One precompiled artifact: the module compiled ahead of time by the vendor
/// for one target, encrypted under the content key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeCode {
    /// Target name, e.g. `x86_64-linux`.
    pub target: String,
    /// Compatibility fingerprint of the runtime that compiled it; a launcher
    /// uses the artifact only if its own runtime for `target` has the same.
    pub runtime: [u8; 32],
    /// Length of the compiled code.
    pub len: u64,
    /// Random STREAM nonce prefix of the artifact.
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    /// Digest over the artifact's ciphertext chunks (as for the module's).
    pub digest: [u8; 32],
}

impl NativeCode {
    fn layout(&self, chunk_size_log2: u8) -> ChunkLayout {
        ChunkLayout::new(chunk_size_log2, self.len)
    }

    /// Why a target name is invalid, if it is: lower-case ASCII letters,
    /// digits, '_' and '-', as in `x86_64-linux`.
    pub fn target_problem(target: &str) -> Option<&'static str> {
        let ok = !target.is_empty()
            && target.len() <= MAX_TARGET_NAME_LEN
            && target.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        (!ok).then_some("target names are 1 to 32 of a-z, 0-9, '_' and '-', e.g. x86_64-linux")
    }
}

/// The key that encrypts precompiled artifacts: derived from the content key
/// under its own label, so module and artifacts never share an AES key.
fn native_key(key: &ContentKey) -> ContentKey {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    key.derive(b"sealrun/v1/native-code-key", k.as_mut());
    ContentKey::from_bytes(&k)
}

/// Associated data of artifact `index`'s chunks: it binds them to this
/// package (its random nonce prefix and key) and to their place and target.
/// (Not the header digest: the header carries the artifact's own digest.)
fn native_aad(manifest_nonce: &[u8; NONCE_PREFIX_LEN], key_id: &KeyId, index: usize, target: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"sealrun/v1/native-aad\0")
        .chain_update(manifest_nonce)
        .chain_update(key_id.0)
        .chain_update([index as u8])
        .chain_update(target.as_bytes())
        .finalize()
        .into()
}

impl Manifest {
    fn problem(&self) -> Option<(&'static str, &'static str)> {
        if let Some(p) = product_id_problem(&self.product) {
            return Some(("product id", p));
        }
        if let Some(p) = free_text_problem(&self.display_name, MAX_DISPLAY_NAME_LEN) {
            return Some(("display name", p));
        }
        if self.cipher_suite != CIPHER_SUITE_V1 {
            return Some(("cipher suite", "is not one this build supports"));
        }
        if !(MIN_CHUNK_SIZE_LOG2..=MAX_CHUNK_SIZE_LOG2).contains(&self.chunk_size_log2) {
            return Some(("chunk size", "is outside 4 KiB to 16 MiB"));
        }
        if self.plaintext_len == 0 || self.plaintext_len > MAX_MODULE_LEN {
            return Some(("module length", "is zero or above the 4 GiB limit"));
        }
        if self.capabilities.len() > MAX_CAPABILITIES {
            return Some(("capabilities", "are more than allowed"));
        }
        if let Some(p) = self.capabilities.iter().find_map(Capability::problem) {
            return Some(("capabilities", p));
        }
        if !self.capabilities.windows(2).all(|w| (w[0].tag(), w[0].value()) < (w[1].tag(), w[1].value())) {
            return Some(("capabilities", "are not sorted and unique"));
        }
        let dirs: Vec<&str> =
            self.capabilities.iter().filter(|c| matches!(c, Capability::Dir { .. })).map(Capability::value).collect();
        if dirs.iter().enumerate().any(|(i, d)| dirs[..i].contains(d)) {
            return Some(("capabilities", "ask for the same directory twice"));
        }
        if let Some(p) = self.icon.as_deref().and_then(icon_problem) {
            return Some(("icon", p));
        }
        if self.native.len() > MAX_NATIVE_CODE {
            return Some(("native code", "lists more targets than allowed"));
        }
        for (i, n) in self.native.iter().enumerate() {
            if let Some(p) = NativeCode::target_problem(&n.target) {
                return Some(("native code target", p));
            }
            if self.native[..i].iter().any(|o| o.target == n.target) {
                return Some(("native code", "lists the same target twice"));
            }
            if n.len == 0 || n.len > MAX_COMPILED_CODE_LEN {
                return Some(("native code length", "is zero or above the limit"));
            }
        }
        None
    }

    fn encode(&self) -> Vec<u8> {
        let mut m = Vec::new();
        m.put_str8(&self.product);
        m.extend_from_slice(&self.release.to_bytes());
        m.put_str16(&self.display_name);
        m.put_u8(self.kind.code());
        m.extend_from_slice(&self.vendor_key.0);
        m.put_u8(self.cipher_suite);
        m.put_u8(self.chunk_size_log2);
        m.put_u64(self.plaintext_len);
        m.extend_from_slice(&self.nonce_prefix);
        m.extend_from_slice(&self.key_id.0);
        m.put_u8(self.capabilities.len() as u8);
        for c in &self.capabilities {
            m.put_u8(c.tag());
            m.put_str16(c.value());
        }
        // Each optional part is present only when there is one: one
        // spelling for "none".
        if let Some(icon) = &self.icon {
            m.put_u8(ICON_TAG);
            m.put_u16(icon.len() as u16);
            m.extend_from_slice(icon);
        }
        if !self.native.is_empty() {
            m.put_u8(self.native.len() as u8);
            for n in &self.native {
                m.put_str8(&n.target);
                m.extend_from_slice(&n.runtime);
                m.put_u64(n.len);
                m.extend_from_slice(&n.nonce_prefix);
                m.extend_from_slice(&n.digest);
            }
        }
        m
    }

    fn decode(bytes: &[u8]) -> Result<Manifest> {
        Self::decode_fields(bytes).map_err(|e| match e {
            // Inside the length-prefixed manifest, running short or long
            // means the fields disagree with the declared length.
            Error::Truncated { .. } | Error::TrailingData { .. } => {
                Error::Malformed { artifact: A, field: "manifest", problem: "does not match its declared length" }
            }
            other => other,
        })
    }

    fn decode_fields(bytes: &[u8]) -> Result<Manifest> {
        let mut c = Cursor::new(bytes, A);
        let product = c.str8("product id", MAX_PRODUCT_ID_LEN)?.to_owned();
        let release = Release::from_bytes(c.array()?);
        let display_name = c.str16("display name", MAX_DISPLAY_NAME_LEN)?.to_owned();
        let kind = match AppKind::from_code(c.u8()?) {
            Some(kind) => kind,
            None => return Err(c.malformed("app kind", "is unknown")),
        };
        let vendor_key = VendorPublicKey(c.array()?);
        let cipher_suite = c.u8()?;
        let chunk_size_log2 = c.u8()?;
        let plaintext_len = c.u64()?;
        let nonce_prefix = c.array()?;
        let key_id = KeyId(c.array()?);
        let count = c.u8()? as usize;
        if count > MAX_CAPABILITIES {
            return Err(c.malformed("capabilities", "are more than allowed"));
        }
        let mut capabilities = Vec::with_capacity(count);
        for _ in 0..count {
            let tag = c.u8()?;
            let value = c.str16("capability", MAX_CAPABILITY_LEN)?.to_owned();
            capabilities.push(match tag {
                1 => Capability::Dir { writable: false, guest: value },
                2 => Capability::Dir { writable: true, guest: value },
                3 => Capability::Env(value),
                4 => Capability::Connect(value),
                5 => Capability::Listen(value),
                6 if value == DNS_VALUE => Capability::Dns,
                7 if value == UDP_VALUE => Capability::Udp,
                6 | 7 => return Err(c.malformed("capability", "has a value its kind does not take")),
                _ => return Err(c.malformed("capability", "has an unknown kind")),
            });
        }
        let mut icon = None;
        if c.remaining() > 0 && bytes[c.position()] == ICON_TAG {
            c.u8()?;
            let len = c.u16()? as usize;
            if len == 0 || len > MAX_ICON_LEN {
                return Err(c.malformed("icon", "is empty or above 7 KiB"));
            }
            icon = Some(c.bytes(len)?.to_vec());
        }
        let mut native = Vec::new();
        if c.remaining() > 0 {
            let count = c.u8()? as usize;
            if count == 0 {
                return Err(c.malformed("native code", "is listed but empty (omit the list instead)"));
            }
            if count > MAX_NATIVE_CODE {
                return Err(c.malformed("native code", "lists more targets than allowed"));
            }
            for _ in 0..count {
                let target = c.str8("native code target", MAX_TARGET_NAME_LEN)?.to_owned();
                native.push(NativeCode {
                    target,
                    runtime: c.array()?,
                    len: c.u64()?,
                    nonce_prefix: c.array()?,
                    digest: c.array()?,
                });
            }
        }
        c.finish()?;
        let m = Manifest {
            product,
            release,
            display_name,
            kind,
            vendor_key,
            cipher_suite,
            chunk_size_log2,
            plaintext_len,
            nonce_prefix,
            key_id,
            capabilities,
            native,
            icon,
        };
        if let Some((field, problem)) = m.problem() {
            return Err(Error::Malformed { artifact: A, field, problem });
        }
        Ok(m)
    }

    /// How the module is cut into chunks.
    pub fn layout(&self) -> ChunkLayout {
        ChunkLayout::new(self.chunk_size_log2, self.plaintext_len)
    }

    /// Total ciphertext bytes of the module and every artifact.
    fn body_len(&self) -> u64 {
        self.native.iter().fold(self.layout().ciphertext_len(), |sum, n| {
            sum.saturating_add(n.layout(self.chunk_size_log2).ciphertext_len())
        })
    }

    /// The precompiled artifact for `target`, with its index.
    pub fn native_for(&self, target: &str) -> Option<(usize, &NativeCode)> {
        self.native.iter().enumerate().find(|(_, n)| n.target == target)
    }
}

/// A parsed package header: the manifest and the exact bytes it came from.
#[derive(Debug, Clone)]
pub struct Header {
    /// The manifest.
    pub manifest: Manifest,
    bytes: Vec<u8>,
}

impl Header {
    /// Parses the header at the start of `input` (which may hold more).
    pub fn parse_prefix(input: &[u8]) -> Result<Header> {
        let mut c = Cursor::new(input, A);
        c.magic_and_version(&PACKAGE_MAGIC, PACKAGE_VERSION)?;
        let len = c.u32()?;
        if len > MAX_MANIFEST_LEN {
            return Err(c.malformed("manifest length", "is larger than allowed"));
        }
        let manifest = Manifest::decode(c.bytes(len as usize)?)?;
        Ok(Header { manifest, bytes: input[..c.position()].to_vec() })
    }

    fn encode(manifest: Manifest) -> Result<Header> {
        if let Some((field, problem)) = manifest.problem() {
            return Err(Error::InvalidInput { field, problem });
        }
        let m = manifest.encode();
        let mut bytes = Vec::with_capacity(PREFIX_LEN + m.len());
        bytes.extend_from_slice(&PACKAGE_MAGIC);
        bytes.put_u16(PACKAGE_VERSION);
        bytes.put_u32(m.len() as u32);
        bytes.extend_from_slice(&m);
        Ok(Header { manifest, bytes })
    }

    /// The header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the header bytes: the associated data of every chunk.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }

    /// Total length of the package this header announces.
    pub fn package_len(&self) -> u64 {
        (self.bytes.len() as u64).saturating_add(self.manifest.body_len()).saturating_add(SIGNATURE_LEN as u64)
    }
}

/// Accumulates the chunk digests the package signature covers.
struct ChunkDigests(Sha256);

impl ChunkDigests {
    fn new() -> Self {
        ChunkDigests(Sha256::new_with_prefix(b"sealrun/v1/chunks\0"))
    }
    fn add(&mut self, chunk: &[u8]) {
        self.0.update(Sha256::digest(chunk));
    }
    fn add_digest(&mut self, digest: &[u8; 32]) {
        self.0.update(digest);
    }
    fn signed_message(self, header: &Header) -> Vec<u8> {
        let mut msg = b"sealrun/v1/package\0".to_vec();
        msg.extend_from_slice(header.as_bytes());
        msg.extend_from_slice(&self.0.finalize());
        msg
    }
}

/// Checks a package as its bytes arrive, in slices of any size, holding
/// only the header: the same checks as [`Package::parse`] followed by
/// [`Package::verify_signature`], for a server that stores an upload
/// without reading it back whole. Every chunk is hashed as it streams past.
pub struct StreamCheck {
    /// Bytes of the header until it is complete.
    head: Vec<u8>,
    /// Once the header is parsed: where the body stands.
    body: Option<BodyCheck>,
    /// Bytes taken so far.
    taken: u64,
}

struct BodyCheck {
    header: Header,
    /// Ciphertext chunk lengths still to come, in order, with the index of
    /// the artifact they belong to (`None`: the module).
    segment: usize,
    segments: Vec<(Option<usize>, u64)>,
    /// Bytes of the current segment still to come.
    left: u64,
    chunk: Sha256,
    module: ChunkDigests,
    native: Vec<ChunkDigests>,
    signature: Vec<u8>,
}

impl Default for StreamCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCheck {
    /// A check with nothing taken yet.
    pub fn new() -> Self {
        StreamCheck { head: Vec::new(), body: None, taken: 0 }
    }

    /// The header, once its bytes have arrived.
    pub fn header(&self) -> Option<&Header> {
        self.body.as_ref().map(|b| &b.header)
    }

    /// Takes the next bytes. Fails as soon as the header is malformed or
    /// the bytes run past the length the header announces.
    pub fn update(&mut self, mut data: &[u8]) -> Result<()> {
        self.taken = self.taken.saturating_add(data.len() as u64);
        while self.body.is_none() {
            if self.head.len() < PREFIX_LEN {
                let n = (PREFIX_LEN - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.head.len() < PREFIX_LEN {
                    return Ok(());
                }
                Cursor::new(&self.head, A).magic_and_version(&PACKAGE_MAGIC, PACKAGE_VERSION)?;
            }
            let len = u32::from_be_bytes(self.head[10..PREFIX_LEN].try_into().expect("4 bytes"));
            if len > MAX_MANIFEST_LEN {
                return Err(Error::Malformed {
                    artifact: A,
                    field: "manifest length",
                    problem: "is larger than allowed",
                });
            }
            let want = PREFIX_LEN + len as usize;
            let n = (want - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.head.len() < want {
                return Ok(());
            }
            self.body = Some(BodyCheck::new(Header::parse_prefix(&self.head)?));
        }
        self.update_body(data)
    }

    fn update_body(&mut self, mut data: &[u8]) -> Result<()> {
        let Some(b) = self.body.as_mut() else { return Ok(()) };
        while !data.is_empty() {
            if b.segment < b.segments.len() {
                let n = (b.left.min(data.len() as u64)) as usize;
                b.chunk.update(&data[..n]);
                data = &data[n..];
                b.left -= n as u64;
                if b.left == 0 {
                    let digest: [u8; 32] = std::mem::take(&mut b.chunk).finalize().into();
                    match b.segments[b.segment].0 {
                        None => b.module.add_digest(&digest),
                        Some(i) => b.native[i].add_digest(&digest),
                    }
                    b.segment += 1;
                    b.left = b.segments.get(b.segment).map_or(0, |s| s.1);
                }
                continue;
            }
            let n = (SIGNATURE_LEN - b.signature.len()).min(data.len());
            if n == 0 {
                return Err(Error::TrailingData { artifact: A, extra: data.len() as u64 });
            }
            b.signature.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    /// Ends the check: the package must be complete, every artifact match
    /// its digest and the vendor signature verify. Returns the header.
    pub fn finish(self) -> Result<Header> {
        let Some(b) = self.body else {
            return Err(Error::Truncated { artifact: A, needed: PREFIX_LEN as u64, available: self.taken });
        };
        check_exact_len(A, b.header.package_len(), self.taken)?;
        for (n, d) in b.header.manifest.native.iter().zip(b.native) {
            if d.0.finalize().as_slice() != n.digest {
                return Err(Error::BadSignature(A));
            }
        }
        let signature: [u8; SIGNATURE_LEN] = b.signature.as_slice().try_into().expect("length checked");
        let msg = b.module.signed_message(&b.header);
        b.header.manifest.vendor_key.verify(&msg, &signature, A)?;
        Ok(b.header)
    }
}

impl BodyCheck {
    fn new(header: Header) -> BodyCheck {
        let m = &header.manifest;
        let mut segments = Vec::new();
        let layout = m.layout();
        for i in 0..layout.chunk_count() {
            segments.push((None, layout.plaintext_chunk_len(i) + stream::TAG_LEN as u64));
        }
        for (index, n) in m.native.iter().enumerate() {
            let l = n.layout(m.chunk_size_log2);
            for i in 0..l.chunk_count() {
                segments.push((Some(index), l.plaintext_chunk_len(i) + stream::TAG_LEN as u64));
            }
        }
        let native = m.native.iter().map(|_| ChunkDigests::new()).collect();
        let left = segments.first().map_or(0, |s| s.1);
        BodyCheck {
            header,
            segment: 0,
            segments,
            left,
            chunk: Sha256::new(),
            module: ChunkDigests::new(),
            native,
            signature: Vec::with_capacity(SIGNATURE_LEN),
        }
    }
}

/// A package held in memory (or a memory map), checked for structure.
pub struct Package<'a> {
    header: Header,
    ciphertext: &'a [u8],
    native: &'a [u8],
    signature: [u8; SIGNATURE_LEN],
}

impl<'a> Package<'a> {
    /// Parses a whole package: header, exact length, no trailing data.
    /// No cryptographic check is made yet.
    pub fn parse(input: &'a [u8]) -> Result<Package<'a>> {
        let header = Header::parse_prefix(input)?;
        check_exact_len(A, header.package_len(), input.len() as u64)?;
        let start = header.as_bytes().len();
        let native_at = start + header.manifest.layout().ciphertext_len() as usize;
        let sig_at = input.len() - SIGNATURE_LEN;
        let signature = input[sig_at..].try_into().expect("length checked");
        Ok(Package { header, ciphertext: &input[start..native_at], native: &input[native_at..sig_at], signature })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.header.manifest
    }

    fn chunk(&self, i: u64) -> &'a [u8] {
        let layout = self.manifest().layout();
        let start = layout.ciphertext_offset(i) as usize;
        let len = layout.plaintext_chunk_len(i) as usize + crate::stream::TAG_LEN;
        &self.ciphertext[start..start + len]
    }

    /// Verifies the vendor signature over the header and every chunk.
    pub fn verify_signature(&self) -> Result<()> {
        self.verify_module_signature()?;
        self.verify_native_digests(None)
    }

    fn verify_module_signature(&self) -> Result<()> {
        let mut d = ChunkDigests::new();
        for i in 0..self.manifest().layout().chunk_count() {
            d.add(self.chunk(i));
        }
        self.check_signature(d)
    }

    /// Checks every precompiled artifact's chunks against its digest in the
    /// (signed) header, except artifact `skip`, which the caller checks as
    /// it decrypts it.
    fn verify_native_digests(&self, skip: Option<usize>) -> Result<()> {
        let m = self.manifest();
        let mut at = 0usize;
        for (index, n) in m.native.iter().enumerate() {
            let layout = n.layout(m.chunk_size_log2);
            let len = layout.ciphertext_len() as usize;
            if skip != Some(index) {
                let mut d = ChunkDigests::new();
                for i in 0..layout.chunk_count() {
                    let start = at + layout.ciphertext_offset(i) as usize;
                    d.add(&self.native[start..start + layout.plaintext_chunk_len(i) as usize + crate::stream::TAG_LEN]);
                }
                if d.0.finalize().as_slice() != n.digest {
                    return Err(Error::BadSignature(A));
                }
            }
            at += len;
        }
        Ok(())
    }

    fn check_signature(&self, d: ChunkDigests) -> Result<()> {
        let msg = d.signed_message(&self.header);
        self.manifest().vendor_key.verify(&msg, &self.signature, A)
    }

    /// Verifies the signature and decrypts the module into `out` (exactly
    /// `plaintext_len` bytes) in one pass. On any failure `out` is zeroed:
    /// no unauthenticated byte survives.
    pub fn decrypt_into(&self, key: &ContentKey, out: &mut [u8]) -> Result<()> {
        self.decrypt_into_parallel(key, out, 1)
    }

    /// [`decrypt_into`](Self::decrypt_into) on up to `threads` threads: the
    /// chunks are split into contiguous runs, each copied once into its place
    /// in `out`, hashed and decrypted there (see [`stream::open_all`]). The
    /// signature over all chunk digests is checked once every run has
    /// finished, and on any failure `out` is zeroed.
    pub fn decrypt_into_parallel(&self, key: &ContentKey, out: &mut [u8], threads: usize) -> Result<()> {
        let m = self.manifest();
        // Zeroed on these early refusals too, as promised: a caller that
        // reuses its buffer never sees earlier bytes after an error
        // (found by the `package` fuzz target).
        if key.id() != m.key_id {
            out.fill(0);
            return Err(Error::UnwrapFailed);
        }
        if out.len() as u64 != m.plaintext_len {
            out.fill(0);
            return Err(Error::InvalidInput { field: "output buffer", problem: "is not the module length" });
        }
        let opener = ChunkOpener::new(key, m.nonce_prefix, m.layout(), self.header.digest());
        let digests = stream::open_all(&opener, self.ciphertext, out, threads, |body, tag| -> [u8; 32] {
            Sha256::new().chain_update(body).chain_update(tag).finalize().into()
        })?;
        let mut d = ChunkDigests::new();
        digests.iter().for_each(|x| d.add_digest(x));
        // Precompiled artifacts are part of the package too: a damaged one
        // makes the package damaged even where it would not be used.
        let result = self.check_signature(d).and_then(|()| self.verify_native_digests(None));
        if result.is_err() {
            out.fill(0);
        }
        result
    }

    /// Verifies the whole package (the signature over the header and every
    /// module chunk, and artifact `index`'s digest in the header) and decrypts
    /// that precompiled artifact into `out` (exactly its length) on up to
    /// `threads` threads. On any failure `out` is zeroed.
    pub fn decrypt_native_into(&self, key: &ContentKey, index: usize, out: &mut [u8], threads: usize) -> Result<()> {
        let m = self.manifest();
        let Some(n) = m.native.get(index) else {
            out.fill(0);
            return Err(Error::InvalidInput { field: "native code", problem: "no artifact with that index" });
        };
        if key.id() != m.key_id {
            out.fill(0);
            return Err(Error::UnwrapFailed);
        }
        if out.len() as u64 != n.len {
            out.fill(0);
            return Err(Error::InvalidInput { field: "output buffer", problem: "is not the artifact length" });
        }
        if let Err(e) = self.verify_module_signature().and_then(|()| self.verify_native_digests(Some(index))) {
            out.fill(0);
            return Err(e);
        }
        let start: u64 = m.native[..index].iter().map(|o| o.layout(m.chunk_size_log2).ciphertext_len()).sum();
        let layout = n.layout(m.chunk_size_log2);
        let ct = &self.native[start as usize..(start + layout.ciphertext_len()) as usize];
        let aad = native_aad(&m.nonce_prefix, &m.key_id, index, &n.target);
        let opener = ChunkOpener::new(&native_key(key), n.nonce_prefix, layout, aad);
        let digests = stream::open_all(&opener, ct, out, threads, |body, tag| -> [u8; 32] {
            Sha256::new().chain_update(body).chain_update(tag).finalize().into()
        })?;
        let mut d = ChunkDigests::new();
        digests.iter().for_each(|x| d.add_digest(x));
        if d.0.finalize().as_slice() != n.digest {
            out.fill(0);
            return Err(Error::BadSignature(A));
        }
        Ok(())
    }

    /// A name for exactly this package: the SHA-256 of its header digest and
    /// its signature. The signature covers every chunk, so two packages with
    /// the same identity are the same bytes (as long as the signature
    /// verifies; callers that key a cache by it must have checked it).
    pub fn identity(&self) -> [u8; 32] {
        Sha256::new()
            .chain_update(b"sealrun/v1/package-identity\0")
            .chain_update(self.header.digest())
            .chain_update(self.signature)
            .finalize()
            .into()
    }
}

/// What a vendor says about a package; the sealer fills in the rest.
#[derive(Debug, Clone)]
pub struct PackageSpec {
    /// Product id.
    pub product: String,
    /// Release.
    pub release: Release,
    /// Name shown to end users.
    pub display_name: String,
    /// A core module or a component, and its world.
    pub kind: AppKind,
    /// Capabilities the app asks for (sorted and deduplicated by the sealer).
    pub capabilities: Vec<Capability>,
    /// Chunk size as a power of two.
    pub chunk_size_log2: u8,
    /// Exact module length.
    pub plaintext_len: u64,
    /// The app's icon (PNG or SVG, at most [`MAX_ICON_LEN`] bytes), shown
    /// unencrypted in menus.
    pub icon: Option<Vec<u8>>,
}

/// A precompiled artifact to seal into a package.
#[derive(Debug, Clone, Copy)]
pub struct NativeInput<'a> {
    /// Target name, e.g. `x86_64-linux`.
    pub target: &'a str,
    /// Compatibility fingerprint of the runtime that compiled it.
    pub runtime: [u8; 32],
    /// The compiled code.
    pub code: &'a [u8],
}

/// Seals a module chunk by chunk. Write [`header`](Self::header), then every
/// chunk returned by [`seal_chunk`](Self::seal_chunk), then
/// [`native_ciphertext`](Self::native_ciphertext), then the signature from
/// [`finish`](Self::finish).
pub struct PackageSealer {
    header: Header,
    stream: StreamSealer,
    digests: ChunkDigests,
    native: Vec<u8>,
}

impl PackageSealer {
    /// Starts sealing `spec` with `key`, for `vendor`'s signature.
    pub fn new(spec: PackageSpec, key: &ContentKey, vendor: VendorPublicKey, rng: &mut impl CryptoRng) -> Result<Self> {
        Self::with_native(spec, key, vendor, &[], rng)
    }

    /// Like [`new`](Self::new), with precompiled artifacts, which are sealed
    /// (in memory) right away: the header must carry their digests.
    pub fn with_native(
        mut spec: PackageSpec,
        key: &ContentKey,
        vendor: VendorPublicKey,
        native_inputs: &[NativeInput<'_>],
        rng: &mut impl CryptoRng,
    ) -> Result<Self> {
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rng.fill_bytes(&mut nonce_prefix);
        if native_inputs.len() > MAX_NATIVE_CODE {
            return Err(Error::InvalidInput { field: "native code", problem: "lists more targets than allowed" });
        }
        let mut native = Vec::with_capacity(native_inputs.len());
        let mut native_ct = Vec::new();
        let nkey = native_key(key);
        for (index, input) in native_inputs.iter().enumerate() {
            if let Some(p) = NativeCode::target_problem(input.target) {
                return Err(Error::InvalidInput { field: "native code target", problem: p });
            }
            if input.code.is_empty() {
                return Err(Error::InvalidInput { field: "native code", problem: "is empty" });
            }
            let mut prefix = [0u8; NONCE_PREFIX_LEN];
            rng.fill_bytes(&mut prefix);
            let layout = ChunkLayout::new(spec.chunk_size_log2, input.code.len() as u64);
            let aad = native_aad(&nonce_prefix, &key.id(), index, input.target);
            let mut sealer = StreamSealer::new(&nkey, prefix, layout, aad);
            let mut digests = ChunkDigests::new();
            for piece in input.code.chunks(1 << spec.chunk_size_log2.min(MAX_CHUNK_SIZE_LOG2)) {
                let mut buf = piece.to_vec();
                sealer.seal_next(&mut buf)?;
                digests.add(&buf);
                native_ct.extend_from_slice(&buf);
            }
            sealer.finish()?;
            native.push(NativeCode {
                target: input.target.to_owned(),
                runtime: input.runtime,
                len: input.code.len() as u64,
                nonce_prefix: prefix,
                digest: digests.0.finalize().into(),
            });
        }
        spec.capabilities.sort_by(|a, b| (a.tag(), a.value()).cmp(&(b.tag(), b.value())));
        spec.capabilities.dedup();
        let header = Header::encode(Manifest {
            product: spec.product,
            release: spec.release,
            display_name: spec.display_name,
            kind: spec.kind,
            vendor_key: vendor,
            cipher_suite: CIPHER_SUITE_V1,
            chunk_size_log2: spec.chunk_size_log2,
            plaintext_len: spec.plaintext_len,
            nonce_prefix,
            key_id: key.id(),
            capabilities: spec.capabilities,
            native,
            icon: spec.icon,
        })?;
        let stream = StreamSealer::new(key, nonce_prefix, header.manifest.layout(), header.digest());
        Ok(PackageSealer { header, stream, digests: ChunkDigests::new(), native: native_ct })
    }

    /// The header bytes, to be written first.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Seals the next chunk in place (`buf` holds its plaintext).
    pub fn seal_chunk(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.stream.seal_next(buf)?;
        self.digests.add(buf);
        Ok(())
    }

    /// The sealed precompiled artifacts, to write after the last module chunk
    /// (empty without native code).
    pub fn native_ciphertext(&self) -> &[u8] {
        &self.native
    }

    /// Ends sealing and returns the signature to write last.
    pub fn finish(self, signer: &VendorSigningKey) -> Result<[u8; SIGNATURE_LEN]> {
        if signer.public() != self.header.manifest.vendor_key {
            return Err(Error::InvalidInput { field: "signing key", problem: "is not the vendor key in the manifest" });
        }
        self.stream.finish()?;
        Ok(signer.sign(&self.digests.signed_message(&self.header)))
    }
}

/// Seals a module held in memory (tests, small tools).
pub fn seal_to_vec(
    spec: PackageSpec,
    module: &[u8],
    key: &ContentKey,
    signer: &VendorSigningKey,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>> {
    seal_to_vec_with_native(spec, module, &[], key, signer, rng)
}

/// [`seal_to_vec`] with precompiled artifacts.
pub fn seal_to_vec_with_native(
    spec: PackageSpec,
    module: &[u8],
    native: &[NativeInput<'_>],
    key: &ContentKey,
    signer: &VendorSigningKey,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>> {
    let chunk = 1usize << spec.chunk_size_log2;
    let mut sealer = PackageSealer::with_native(spec, key, signer.public(), native, rng)?;
    let mut out = sealer.header().as_bytes().to_vec();
    let mut pieces: Vec<&[u8]> = module.chunks(chunk).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    for piece in pieces {
        let mut buf = piece.to_vec();
        sealer.seal_chunk(&mut buf)?;
        out.extend_from_slice(&buf);
    }
    out.extend_from_slice(sealer.native_ciphertext());
    out.extend_from_slice(&sealer.finish(signer)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_in_slices(bytes: &[u8], step: usize) -> Result<Header> {
        let mut c = StreamCheck::new();
        for piece in bytes.chunks(step) {
            c.update(piece)?;
        }
        c.finish()
    }

    #[test]
    fn the_streaming_check_covers_precompiled_artifacts() {
        let key = ContentKey::from_bytes(&[1; 32]);
        let signer = VendorSigningKey::from_seed(&[2; 32]);
        let module = vec![0x61u8; 10_000];
        let spec = PackageSpec {
            product: "com.example.app".into(),
            release: Release::new(1, 0, 0),
            display_name: "app".into(),
            kind: AppKind::Console,
            capabilities: vec![],
            chunk_size_log2: 12,
            plaintext_len: module.len() as u64,
            icon: None,
        };
        let a = vec![0x11u8; 9_000];
        let b = vec![0x22u8; 100];
        let native = [
            NativeInput { target: "x86_64-linux", runtime: [3; 32], code: &a },
            NativeInput { target: "aarch64-linux", runtime: [3; 32], code: &b },
        ];
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let bytes = seal_to_vec_with_native(spec, &module, &native, &key, &signer, &mut rng).unwrap();
        for step in [1, 13, 4096, bytes.len()] {
            let h = check_in_slices(&bytes, step).unwrap();
            assert_eq!(h.as_bytes(), Package::parse(&bytes).unwrap().header().as_bytes());
        }
        // A flipped byte in the last artifact, in the signature, a byte too
        // many or too few: refused as the whole-package check refuses them.
        let end = bytes.len() - SIGNATURE_LEN;
        for at in [end - 5, end + 3] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(Package::parse(&bad).unwrap().verify_signature().is_err());
            assert_eq!(check_in_slices(&bad, 100).unwrap_err(), Error::BadSignature(A), "byte {at}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(check_in_slices(&long, 100), Err(Error::TrailingData { .. })));
        assert!(matches!(check_in_slices(&bytes[..bytes.len() - 1], 100), Err(Error::Truncated { .. })));
        assert!(matches!(check_in_slices(&bytes[..5], 100), Err(Error::Truncated { .. })));
    }
}
