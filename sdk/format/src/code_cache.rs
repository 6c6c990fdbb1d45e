//! Compiled-code cache entries: a module the launcher compiled, sealed so
//! that only this device, holding this package's content key, can read it.
//!
//! An entry is a short header followed by the compiled code as a STREAM of
//! AES-256-GCM-SIV chunks (the same construction as packages, with the header
//! digest as associated data of every chunk). There is no signature: an entry
//! is written and read by the same device, and the key already names all that
//! must match. It is derived from
//!
//! - the package's content key (a launcher without a license cannot read it),
//! - the device secret (an entry copied from another device does not open),
//! - the [`EntryId`], which hashes the package identity, the runtime's
//!   compatibility fingerprint (wasmtime version, compiler settings, CPU
//!   features) and the launcher version (a stale entry does not open).
//!
//! Entry ids are not secret: they name the file an entry lives in.
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cursor::{Cursor, PutExt, check_exact_len};
use crate::device::DeviceSecret;
use crate::keys::ContentKey;
use crate::limits::{MAX_CACHE_LABEL_LEN, MAX_COMPILED_CODE_LEN};
use crate::stream::{self, ChunkLayout, ChunkOpener, NONCE_PREFIX_LEN, StreamSealer};
use crate::{Artifact, Error, Result, UnixTime};

/// Magic bytes at the start of every cache entry.
pub const CACHE_ENTRY_MAGIC: [u8; 8] = *b"SEALCCH\x1a";
/// The entry format version this build writes and reads.
pub const CACHE_ENTRY_VERSION: u16 = 1;
/// Chunk size of entries, as log2 (64 KiB): a chunk and its plaintext stay
/// in the CPU's L2 cache while they are copied, authenticated and decrypted.
pub const CACHE_CHUNK_SIZE_LOG2: u8 = 16;

const A: Artifact = Artifact::CacheEntry;
const KEY_INFO: &[u8] = b"sealrun/v1/code-cache-key";
const DEVICE_INFO: &[u8] = b"sealrun/v1/code-cache-device";

/// Fixed part of the header: magic, version, chunk size, nonce prefix, id,
/// created, plaintext length, label length.
const FIXED_LEN: usize = 8 + 2 + 1 + NONCE_PREFIX_LEN + 32 + 8 + 8 + 2;

/// Names one cache entry: what was compiled, by which runtime and launcher.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EntryId(pub [u8; 32]);

impl EntryId {
    /// The id of the code compiled from the package with `package_identity`
    /// (see `Package::identity`) by a runtime whose compatibility fingerprint
    /// is `runtime` and a launcher of version `launcher`.
    pub fn new(package_identity: &[u8; 32], runtime: &[u8; 32], launcher: &str) -> EntryId {
        EntryId::labelled(b"sealrun/v1/code-cache-id\0", package_identity, runtime, launcher)
    }

    fn labelled(label: &[u8], package_identity: &[u8; 32], runtime: &[u8; 32], launcher: &str) -> EntryId {
        let mut h = Sha256::new_with_prefix(label);
        h.update(package_identity);
        h.update(runtime);
        h.update((launcher.len() as u64).to_be_bytes());
        h.update(launcher.as_bytes());
        EntryId(h.finalize().into())
    }

    /// The id of the vendor's precompiled native code of the package with
    /// `package_identity`, loaded by a runtime with fingerprint `runtime`:
    /// never the id of code compiled here, even where a runtime fingerprint
    /// of the vendor's target equals the host's (a baseline aarch64 CPU,
    /// with none of the optional features wasmtime detects), so that after
    /// `trust remove` the vendor's code is not found under the local name.
    pub fn for_vendor_native(package_identity: &[u8; 32], runtime: &[u8; 32], launcher: &str) -> EntryId {
        EntryId::labelled(b"sealrun/v1/code-cache-id/vendor-native\0", package_identity, runtime, launcher)
    }

    /// Lower-case hex, for the entry's file name.
    pub fn to_hex(&self) -> String {
        crate::hexid::to_hex(&self.0)
    }
}

/// The key of one entry on one device, derived as described in the module
/// documentation. Zeroized on drop (it is a [`ContentKey`]).
pub fn entry_key(content: &ContentKey, device: &DeviceSecret, id: &EntryId) -> ContentKey {
    let mut ikm = Zeroizing::new([0u8; 64]);
    content.derive(KEY_INFO, &mut ikm[..32]);
    Hkdf::<Sha256>::new(None, device.as_bytes())
        .expand(DEVICE_INFO, &mut ikm[32..])
        .expect("32 bytes is far below HKDF's limit");
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&id.0), ikm.as_ref())
        .expand(KEY_INFO, key.as_mut())
        .expect("32 bytes is far below HKDF's limit");
    ContentKey::from_bytes(&key)
}

/// A parsed entry header. The fields are authenticated only once the body
/// has been opened; before that they are merely what the file claims.
#[derive(Debug, Clone)]
pub struct EntryHeader {
    /// The entry id the file claims.
    pub id: EntryId,
    /// When the entry was written (Unix seconds).
    pub created: UnixTime,
    /// Length of the compiled code.
    pub plaintext_len: u64,
    /// A label for people (`sealrun cache list`): product, release, name.
    pub label: String,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    bytes: Vec<u8>,
}

impl EntryHeader {
    /// Parses the header at the start of `input` (which may hold more).
    pub fn parse_prefix(input: &[u8]) -> Result<EntryHeader> {
        let mut c = Cursor::new(input, A);
        c.magic_and_version(&CACHE_ENTRY_MAGIC, CACHE_ENTRY_VERSION)?;
        if c.u8()? != CACHE_CHUNK_SIZE_LOG2 {
            return Err(c.malformed("chunk size", "is not the one entries use"));
        }
        let nonce_prefix = c.array()?;
        let id = EntryId(c.array()?);
        let created = c.u64()?;
        let plaintext_len = c.u64()?;
        if plaintext_len > MAX_COMPILED_CODE_LEN {
            return Err(c.malformed("code length", "is larger than allowed"));
        }
        let label = c.str16("label", MAX_CACHE_LABEL_LEN)?.to_owned();
        Ok(EntryHeader { id, created, plaintext_len, label, nonce_prefix, bytes: input[..c.position()].to_vec() })
    }

    fn layout(&self) -> ChunkLayout {
        ChunkLayout::new(CACHE_CHUNK_SIZE_LOG2, self.plaintext_len)
    }

    /// Total length of the entry this header announces.
    pub fn entry_len(&self) -> u64 {
        self.bytes.len() as u64 + self.layout().ciphertext_len()
    }

    /// Checks that a file of `file_len` bytes is exactly this entry.
    pub fn check_len(&self, file_len: u64) -> Result<()> {
        check_exact_len(A, self.entry_len(), file_len)
    }

    /// Authenticates and decrypts the body into `out` (exactly
    /// `plaintext_len` bytes), reading it through `read(offset, buf)` with
    /// offsets from the start of the file, on up to `threads` threads. The
    /// caller must have checked the file length with
    /// [`check_len`](Self::check_len). The header must carry `id`, and `key`
    /// must be [`entry_key`] for it. On failure `out` is zeroed.
    pub fn decrypt_body_from(
        &self,
        id: &EntryId,
        key: &ContentKey,
        read: impl Fn(u64, &mut [u8]) -> bool + Sync,
        out: &mut [u8],
        threads: usize,
    ) -> Result<()> {
        if self.id != *id || out.len() as u64 != self.plaintext_len {
            out.fill(0);
            return Err(Error::DecryptionFailed);
        }
        let digest: [u8; 32] = Sha256::digest(&self.bytes).into();
        let opener = ChunkOpener::new(key, self.nonce_prefix, self.layout(), digest);
        let start = self.bytes.len() as u64;
        let read = |at: u64, buf: &mut [u8]| read(start + at, buf);
        stream::open_all_from(&opener, read, out, threads, |_, _| ()).map(|_| ())
    }
}

/// Longest possible entry header: read this much to parse any header.
pub const MAX_ENTRY_HEADER_LEN: usize = FIXED_LEN + MAX_CACHE_LABEL_LEN;

/// A whole entry, checked for structure (not yet authenticated).
pub struct CacheEntry<'a> {
    header: EntryHeader,
    body: &'a [u8],
}

impl<'a> CacheEntry<'a> {
    /// Parses an entry: header, exact length, no trailing data.
    pub fn parse(input: &'a [u8]) -> Result<CacheEntry<'a>> {
        let header = EntryHeader::parse_prefix(input)?;
        header.check_len(input.len() as u64)?;
        let body = &input[header.bytes.len()..];
        Ok(CacheEntry { header, body })
    }

    /// The header.
    pub fn header(&self) -> &EntryHeader {
        &self.header
    }

    /// Authenticates and decrypts the compiled code into `out` (exactly
    /// `plaintext_len` bytes) on up to `threads` threads. The entry must
    /// carry `id`, and `key` must be [`entry_key`] for it. Every chunk is
    /// authenticated before this returns `Ok`; on failure `out` is zeroed.
    pub fn decrypt_into(&self, id: &EntryId, key: &ContentKey, out: &mut [u8], threads: usize) -> Result<()> {
        if self.header.id != *id || out.len() as u64 != self.header.plaintext_len {
            out.fill(0);
            return Err(Error::DecryptionFailed);
        }
        let digest: [u8; 32] = Sha256::digest(&self.header.bytes).into();
        let opener = ChunkOpener::new(key, self.header.nonce_prefix, self.header.layout(), digest);
        stream::open_all(&opener, self.body, out, threads, |_, _| ()).map(|_| ())
    }
}

/// Seals `code` as the entry `id` under `key` (from [`entry_key`]).
pub fn seal_entry(
    id: &EntryId,
    key: &ContentKey,
    label: &str,
    created: UnixTime,
    code: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>> {
    if code.len() as u64 > MAX_COMPILED_CODE_LEN {
        return Err(Error::InvalidInput { field: "compiled code", problem: "is larger than a cache entry may hold" });
    }
    // A label is informational: cut it at a character boundary if too long.
    let mut end = label.len().min(MAX_CACHE_LABEL_LEN);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
    rng.fill_bytes(&mut nonce_prefix);
    let mut out = Vec::with_capacity(FIXED_LEN + end + code.len() + code.len() / 4096 + 64);
    out.extend_from_slice(&CACHE_ENTRY_MAGIC);
    out.put_u16(CACHE_ENTRY_VERSION);
    out.put_u8(CACHE_CHUNK_SIZE_LOG2);
    out.extend_from_slice(&nonce_prefix);
    out.extend_from_slice(&id.0);
    out.put_u64(created);
    out.put_u64(code.len() as u64);
    out.put_str16(&label[..end]);
    let header_len = out.len();
    let digest: [u8; 32] = Sha256::digest(&out).into();
    let layout = ChunkLayout::new(CACHE_CHUNK_SIZE_LOG2, code.len() as u64);
    let mut sealer = StreamSealer::new(key, nonce_prefix, layout, digest);
    let mut pieces: Vec<&[u8]> = code.chunks(1 << CACHE_CHUNK_SIZE_LOG2).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    for piece in pieces {
        // Sealed in place at the end of `out`: the plaintext is copied only
        // into the buffer that becomes ciphertext.
        let at = out.len();
        out.extend_from_slice(piece);
        let mut chunk = out.split_off(at);
        sealer.seal_next(&mut chunk)?;
        out.extend_from_slice(&chunk);
    }
    sealer.finish()?;
    debug_assert_eq!(out.len() as u64, header_len as u64 + layout.ciphertext_len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl rand_core::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
            Ok(u32::from(self.0))
        }
        fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
            Ok(u64::from(self.0))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
            dst.iter_mut().for_each(|b| {
                self.0 = self.0.wrapping_add(1);
                *b = self.0
            });
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}

    fn fixture(len: usize) -> (EntryId, ContentKey, DeviceSecret, Vec<u8>, Vec<u8>) {
        let id = EntryId::new(&[1; 32], &[2; 32], "0.1.0");
        let content = ContentKey::from_bytes(&[3; 32]);
        let device = DeviceSecret::from_bytes(&[4; 32]);
        let code: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let key = entry_key(&content, &device, &id);
        let entry = seal_entry(&id, &key, "com.example.app 1.0.0", 1_700_000_000, &code, &mut Counter(0)).unwrap();
        (id, content, device, code, entry)
    }

    #[test]
    fn round_trip_on_one_and_two_threads() {
        for len in [0, 1, 65_536, 65_537, 300_000] {
            let (id, content, device, code, entry) = fixture(len);
            let parsed = CacheEntry::parse(&entry).unwrap();
            assert_eq!(parsed.header().label, "com.example.app 1.0.0");
            assert_eq!(parsed.header().created, 1_700_000_000);
            for threads in [1, 2] {
                let mut out = vec![0u8; len];
                parsed.decrypt_into(&id, &entry_key(&content, &device, &id), &mut out, threads).unwrap();
                assert_eq!(out, code);
            }
        }
    }

    #[test]
    fn reading_through_a_function_matches_and_read_errors_fail() {
        let (id, content, device, code, entry) = fixture(300_000);
        let key = entry_key(&content, &device, &id);
        let header = EntryHeader::parse_prefix(&entry[..MAX_ENTRY_HEADER_LEN.min(entry.len())]).unwrap();
        header.check_len(entry.len() as u64).unwrap();
        let read = |at: u64, buf: &mut [u8]| {
            buf.copy_from_slice(&entry[at as usize..at as usize + buf.len()]);
            true
        };
        let mut out = vec![0u8; code.len()];
        header.decrypt_body_from(&id, &key, read, &mut out, 2).unwrap();
        assert_eq!(out, code);
        let mut out = vec![0xAA; code.len()];
        let failing = |at: u64, buf: &mut [u8]| at < 100_000 && read(at, buf);
        assert_eq!(header.decrypt_body_from(&id, &key, failing, &mut out, 2), Err(Error::DecryptionFailed));
        assert!(out.iter().all(|&b| b == 0), "a failed read left plaintext behind");
        assert!(matches!(header.check_len(entry.len() as u64 - 1), Err(Error::Truncated { .. })));
        assert!(matches!(header.check_len(entry.len() as u64 + 1), Err(Error::TrailingData { extra: 1, .. })));
    }

    #[test]
    fn another_device_content_key_or_id_does_not_open() {
        let (id, content, device, code, entry) = fixture(100_000);
        let parsed = CacheEntry::parse(&entry).unwrap();
        let other_id = EntryId::new(&[1; 32], &[9; 32], "0.1.0");
        let keys = [
            (id, entry_key(&content, &DeviceSecret::from_bytes(&[5; 32]), &id)),
            (id, entry_key(&ContentKey::from_bytes(&[6; 32]), &device, &id)),
            (id, entry_key(&content, &device, &other_id)),
            (other_id, entry_key(&content, &device, &other_id)),
        ];
        for (i, (claimed, key)) in keys.iter().enumerate() {
            let mut out = vec![0xAA; code.len()];
            assert_eq!(parsed.decrypt_into(claimed, key, &mut out, 2), Err(Error::DecryptionFailed), "case {i}");
            assert!(out.iter().all(|&b| b == 0), "case {i} left plaintext behind");
        }
    }

    #[test]
    fn damage_and_truncation_are_refused() {
        let (id, content, device, code, entry) = fixture(200_000);
        let key = entry_key(&content, &device, &id);
        for at in [0, 9, 11, 20, 60, FIXED_LEN + 3, entry.len() / 2, entry.len() - 1] {
            let mut bad = entry.clone();
            bad[at] ^= 0x10;
            let opened = CacheEntry::parse(&bad).and_then(|e| e.decrypt_into(&id, &key, &mut vec![0; code.len()], 1));
            assert!(opened.is_err(), "flip at {at} accepted");
        }
        for cut in [0, 8, FIXED_LEN, entry.len() - 16, entry.len() - 1] {
            assert!(matches!(CacheEntry::parse(&entry[..cut]), Err(Error::Truncated { .. } | Error::NotSealrun(_))));
        }
        let mut long = entry.clone();
        long.push(0);
        assert!(matches!(CacheEntry::parse(&long), Err(Error::TrailingData { extra: 1, .. })));
    }
}
