//! STREAM (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over AES-256-GCM-SIV.
//!
//! The module is cut into chunks of `2^chunk_size_log2` bytes; chunk `i` is
//! sealed with the nonce `prefix(7) || i (u32 BE) || last (1 byte)`, exactly
//! the layout of `aead_stream::StreamBE32`, which does the sealing. Every
//! chunk carries the SHA-256 of the package header as associated data, so a
//! chunk cannot be moved to another package, and the last-chunk flag makes
//! truncation at a chunk boundary detectable. Readers must call
//! [`StreamOpener::finish`]: only then is the whole stream authenticated.
use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm_siv::aead::{AeadInOut, KeyInit, inout::InOutBuf};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use zeroize::Zeroizing;

use crate::keys::ContentKey;
use crate::{Error, Result};

/// Bytes of authentication tag after every chunk.
pub const TAG_LEN: usize = 16;
/// Bytes of the per-package random nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;

/// HKDF label of the payload key; the content key itself never keys AES.
const PAYLOAD_KEY_INFO: &[u8] = b"sealrun/v1/payload-key";

/// The nonce of one chunk: the package's random prefix, the chunk counter
/// and the last-chunk flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkNonce {
    prefix: [u8; NONCE_PREFIX_LEN],
    counter: u32,
    last: bool,
}

impl ChunkNonce {
    /// The nonce of chunk `counter`.
    pub fn new(prefix: [u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> Self {
        ChunkNonce { prefix, counter, last }
    }

    /// The 12 nonce bytes, laid out as `aead_stream::StreamBE32` lays them.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.prefix);
        n[7..11].copy_from_slice(&self.counter.to_be_bytes());
        n[11] = u8::from(self.last);
        n
    }
}

/// How a plaintext of a given length is cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLayout {
    chunk_size: u64,
    plaintext_len: u64,
}

impl ChunkLayout {
    /// The layout for `plaintext_len` bytes in chunks of `2^chunk_size_log2`.
    pub fn new(chunk_size_log2: u8, plaintext_len: u64) -> Self {
        // Parsers bound the log2 to 12..=24; the clamp only keeps a direct
        // caller's nonsense from overflowing the shift.
        ChunkLayout { chunk_size: 1u64 << chunk_size_log2.min(40), plaintext_len }
    }

    /// Plaintext bytes in a full chunk.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Total plaintext bytes.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Number of chunks; an empty plaintext still has one (empty, last) chunk.
    pub fn chunk_count(&self) -> u64 {
        self.plaintext_len.div_ceil(self.chunk_size).max(1)
    }

    /// Plaintext bytes in chunk `i`.
    pub fn plaintext_chunk_len(&self, i: u64) -> u64 {
        let start = i * self.chunk_size;
        (self.plaintext_len - start).min(self.chunk_size)
    }

    /// Total ciphertext bytes (plaintext plus one tag per chunk).
    pub fn ciphertext_len(&self) -> u64 {
        self.plaintext_len + self.chunk_count() * TAG_LEN as u64
    }

    /// Offset of chunk `i` within the ciphertext.
    pub fn ciphertext_offset(&self, i: u64) -> u64 {
        i * (self.chunk_size + TAG_LEN as u64)
    }

    /// Whether chunk `i` is the last one.
    pub fn is_last(&self, i: u64) -> bool {
        i + 1 == self.chunk_count()
    }
}

fn payload_cipher(key: &ContentKey) -> Aes256GcmSiv {
    let mut k = Zeroizing::new([0u8; 32]);
    key.derive(PAYLOAD_KEY_INFO, k.as_mut());
    let k: &[u8; 32] = &k;
    Aes256GcmSiv::new(k.into())
}

/// Seals chunks in order. The caller hands in each plaintext chunk and gets
/// back the ciphertext (chunk plus tag) to write.
pub struct StreamSealer {
    stream: StreamBE32<Aes256GcmSiv>,
    layout: ChunkLayout,
    aad: [u8; 32],
    next: u64,
}

impl StreamSealer {
    /// A sealer for `layout`, binding `aad` (the header digest) into every chunk.
    pub fn new(key: &ContentKey, prefix: [u8; NONCE_PREFIX_LEN], layout: ChunkLayout, aad: [u8; 32]) -> Self {
        let stream = StreamBE32::from_aead(payload_cipher(key), &prefix.into());
        StreamSealer { stream, layout, aad, next: 0 }
    }

    /// Seals the next chunk in place: `buf` holds exactly the plaintext of
    /// that chunk and is extended by the tag.
    pub fn seal_next(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let i = self.next;
        if i >= self.layout.chunk_count() || buf.len() as u64 != self.layout.plaintext_chunk_len(i) {
            return Err(Error::InvalidInput { field: "chunk", problem: "does not match the chunk layout" });
        }
        let counter =
            u32::try_from(i).map_err(|_| Error::InvalidInput { field: "module", problem: "has too many chunks" })?;
        self.stream
            .encrypt_in_place(counter, self.layout.is_last(i), &self.aad, buf)
            .map_err(|_| Error::InvalidInput { field: "chunk", problem: "could not be encrypted" })?;
        self.next += 1;
        Ok(())
    }

    /// Ends sealing; fails unless every chunk was sealed.
    pub fn finish(self) -> Result<()> {
        if self.next != self.layout.chunk_count() {
            return Err(Error::InvalidInput { field: "module", problem: "ended before its declared length" });
        }
        Ok(())
    }
}

/// Opens chunks, in any order, straight from the ciphertext into the
/// caller's plaintext buffer (no intermediate copy).
pub struct ChunkOpener {
    cipher: Aes256GcmSiv,
    prefix: [u8; NONCE_PREFIX_LEN],
    layout: ChunkLayout,
    aad: [u8; 32],
}

impl ChunkOpener {
    /// An opener for `layout` with the header digest `aad`.
    pub fn new(key: &ContentKey, prefix: [u8; NONCE_PREFIX_LEN], layout: ChunkLayout, aad: [u8; 32]) -> Self {
        ChunkOpener { cipher: payload_cipher(key), prefix, layout, aad }
    }

    /// Decrypts and authenticates chunk `i`: `ct` is the chunk with its tag,
    /// `out` receives exactly the plaintext length of that chunk.
    pub fn open(&self, i: u64, ct: &[u8], out: &mut [u8]) -> Result<()> {
        if i >= self.layout.chunk_count() {
            return Err(Error::DecryptionFailed);
        }
        let pt_len = self.layout.plaintext_chunk_len(i) as usize;
        if ct.len() != pt_len + TAG_LEN || out.len() != pt_len {
            return Err(Error::DecryptionFailed);
        }
        let counter = u32::try_from(i).map_err(|_| Error::DecryptionFailed)?;
        let nonce = ChunkNonce::new(self.prefix, counter, self.layout.is_last(i)).to_bytes();
        let (body, tag) = ct.split_at(pt_len);
        let tag = Tag::try_from(tag).map_err(|_| Error::DecryptionFailed)?;
        let buf = InOutBuf::new(body, out).map_err(|_| Error::DecryptionFailed)?;
        let result = self.cipher.decrypt_inout_detached(&Nonce::from(nonce), &self.aad, buf, &tag);
        if result.is_err() {
            // Never leave unauthenticated plaintext behind.
            out.fill(0);
            return Err(Error::DecryptionFailed);
        }
        Ok(())
    }
}

impl ChunkOpener {
    /// Decrypts and authenticates chunk `i` in place: `buf` holds the chunk's
    /// ciphertext without its tag on entry and its plaintext on success. On
    /// failure `buf` is zeroed.
    pub fn open_in_place(&self, i: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<()> {
        let result = self.open_in_place_inner(i, buf, tag);
        if result.is_err() {
            buf.fill(0);
        }
        result
    }

    fn open_in_place_inner(&self, i: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<()> {
        if i >= self.layout.chunk_count() || buf.len() as u64 != self.layout.plaintext_chunk_len(i) {
            return Err(Error::DecryptionFailed);
        }
        let counter = u32::try_from(i).map_err(|_| Error::DecryptionFailed)?;
        let nonce = ChunkNonce::new(self.prefix, counter, self.layout.is_last(i)).to_bytes();
        self.cipher
            .decrypt_inout_detached(&Nonce::from(nonce), &self.aad, InOutBuf::from(buf), &Tag::from(*tag))
            .map_err(|_| Error::DecryptionFailed)
    }

    /// The layout this opener reads.
    pub fn layout(&self) -> ChunkLayout {
        self.layout
    }
}

/// Opens every chunk of `ciphertext` (the whole stream, tags included) into
/// `out`, on up to `threads` threads, each taking a contiguous run of chunks.
///
/// Each chunk is copied exactly once, into its final place in `out`, and then
/// inspected, authenticated and decrypted there. No other copy is made, and
/// if `ciphertext` is a memory map of a file that changes meanwhile, the bytes
/// `inspect` saw are the bytes decrypted. `inspect(body, tag)` sees every
/// chunk's ciphertext (the package signature hashes it); its results come back
/// in chunk order. On any failure `out` is zeroed, so no unauthenticated or
/// partial plaintext survives.
pub fn open_all<T, F>(
    opener: &ChunkOpener,
    ciphertext: &[u8],
    out: &mut [u8],
    threads: usize,
    inspect: F,
) -> Result<Vec<T>>
where
    T: Send + Default + Clone,
    F: Fn(&[u8], &[u8; TAG_LEN]) -> T + Sync,
{
    if ciphertext.len() as u64 != opener.layout.ciphertext_len() {
        // Zeroed here too, as on every failure (found by the `stream` fuzz target).
        out.fill(0);
        return Err(Error::InvalidInput { field: "stream", problem: "does not match its chunk layout" });
    }
    let read = |at: u64, buf: &mut [u8]| {
        buf.copy_from_slice(&ciphertext[at as usize..at as usize + buf.len()]);
        true
    };
    open_all_from(opener, read, out, threads, inspect)
}

/// [`open_all`] with the ciphertext read through `read(offset, buf)`, which
/// fills `buf` with the stream's bytes at `offset` or returns `false` (a read
/// error, e.g. a file that shrank, fails the stream). Each chunk is read
/// straight into its place in `out`: no map of the source, no extra copy.
pub fn open_all_from<T, F, R>(
    opener: &ChunkOpener,
    read: R,
    out: &mut [u8],
    threads: usize,
    inspect: F,
) -> Result<Vec<T>>
where
    T: Send + Default + Clone,
    F: Fn(&[u8], &[u8; TAG_LEN]) -> T + Sync,
    R: Fn(u64, &mut [u8]) -> bool + Sync,
{
    let layout = opener.layout;
    if out.len() as u64 != layout.plaintext_len() {
        out.fill(0);
        return Err(Error::InvalidInput { field: "stream", problem: "does not match its chunk layout" });
    }
    let Ok(count) = usize::try_from(layout.chunk_count()) else {
        out.fill(0);
        return Err(Error::InvalidInput { field: "stream", problem: "has too many chunks" });
    };
    let chunk_size = layout.chunk_size() as usize;
    let mut results = vec![T::default(); count];
    let run = |first: usize, run_out: &mut [u8], run_results: &mut [T]| -> Result<()> {
        for (j, result) in run_results.iter_mut().enumerate() {
            let i = (first + j) as u64;
            let at = layout.ciphertext_offset(i);
            let len = layout.plaintext_chunk_len(i) as usize;
            let body = &mut run_out[j * chunk_size..j * chunk_size + len];
            let mut tag = [0u8; TAG_LEN];
            if !read(at, body) || !read(at + len as u64, &mut tag) {
                return Err(Error::DecryptionFailed);
            }
            *result = inspect(body, &tag);
            opener.open_in_place(i, body, &tag)?;
        }
        Ok(())
    };
    let threads = threads.clamp(1, count);
    let outcome = if threads == 1 {
        run(0, out, &mut results)
    } else {
        let per_run = count.div_ceil(threads);
        std::thread::scope(|scope| {
            let mut rest_out: &mut [u8] = out;
            let mut rest_results: &mut [T] = &mut results;
            let mut handles = Vec::with_capacity(threads);
            let mut first = 0usize;
            while first < count {
                let n = per_run.min(count - first);
                let bytes = (n * chunk_size).min(rest_out.len());
                let (run_out, tail_out) = std::mem::take(&mut rest_out).split_at_mut(bytes);
                let (run_results, tail_results) = std::mem::take(&mut rest_results).split_at_mut(n);
                rest_out = tail_out;
                rest_results = tail_results;
                let run = &run;
                handles.push(scope.spawn(move || run(first, run_out, run_results)));
                first += n;
            }
            // A panicking worker is reported as a failed decryption, never
            // as success.
            handles.into_iter().try_for_each(|h| h.join().unwrap_or(Err(Error::DecryptionFailed)))
        })
    };
    if let Err(e) = outcome {
        out.fill(0);
        return Err(e);
    }
    Ok(results)
}

/// Opens a whole stream in order, and insists on [`finish`](Self::finish).
#[must_use = "the stream is authenticated only once finish() returns Ok"]
pub struct StreamOpener {
    chunks: ChunkOpener,
    next: u64,
}

impl StreamOpener {
    /// A sequential opener.
    pub fn new(chunks: ChunkOpener) -> Self {
        StreamOpener { chunks, next: 0 }
    }

    /// Opens the next chunk into `out`.
    pub fn open_next(&mut self, ct: &[u8], out: &mut [u8]) -> Result<()> {
        self.chunks.open(self.next, ct, out)?;
        self.next += 1;
        Ok(())
    }

    /// Succeeds only if every chunk, including the last, was opened.
    pub fn finish(self) -> Result<()> {
        if self.next == self.chunks.layout.chunk_count() { Ok(()) } else { Err(Error::DecryptionFailed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ContentKey {
        ContentKey::from_bytes(&[7u8; 32])
    }

    fn seal(layout: ChunkLayout, pt: &[u8]) -> Vec<Vec<u8>> {
        let mut s = StreamSealer::new(&key(), [1; 7], layout, [2; 32]);
        let mut out = Vec::new();
        for i in 0..layout.chunk_count() {
            let start = (i * layout.chunk_size()) as usize;
            let mut buf = pt[start..start + layout.plaintext_chunk_len(i) as usize].to_vec();
            s.seal_next(&mut buf).unwrap();
            out.push(buf);
        }
        s.finish().unwrap();
        out
    }

    #[test]
    fn round_trip_and_layout() {
        for len in [0u64, 1, 4095, 4096, 4097, 3 * 4096] {
            let layout = ChunkLayout::new(12, len);
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let chunks = seal(layout, &pt);
            assert_eq!(chunks.iter().map(|c| c.len() as u64).sum::<u64>(), layout.ciphertext_len());
            let mut opener = StreamOpener::new(ChunkOpener::new(&key(), [1; 7], layout, [2; 32]));
            let mut got = vec![0u8; len as usize];
            for (i, c) in chunks.iter().enumerate() {
                let start = i * 4096;
                opener.open_next(c, &mut got[start..start + c.len() - TAG_LEN]).unwrap();
            }
            opener.finish().unwrap();
            assert_eq!(got, pt);
        }
    }

    #[test]
    fn nonce_matches_aead_stream_layout() {
        // Chunk 1 of 2 sealed by aead-stream opens with our explicit nonce.
        let layout = ChunkLayout::new(12, 5000);
        let pt = vec![9u8; 5000];
        let chunks = seal(layout, &pt);
        let opener = ChunkOpener::new(&key(), [1; 7], layout, [2; 32]);
        let mut out = vec![0u8; 5000 - 4096];
        opener.open(1, &chunks[1], &mut out).unwrap();
        assert_eq!(ChunkNonce::new([1; 7], 1, true).to_bytes()[7..], [0, 0, 0, 1, 1]);
    }

    #[test]
    fn refuses_reorder_truncation_and_wrong_aad() {
        let layout = ChunkLayout::new(12, 3 * 4096);
        let pt = vec![3u8; 3 * 4096];
        let chunks = seal(layout, &pt);
        let opener = ChunkOpener::new(&key(), [1; 7], layout, [2; 32]);
        let mut out = vec![0u8; 4096];
        assert_eq!(opener.open(0, &chunks[1], &mut out), Err(Error::DecryptionFailed));
        // The first chunk presented as the last one of a shorter stream.
        let short = ChunkLayout::new(12, 4096);
        let o2 = ChunkOpener::new(&key(), [1; 7], short, [2; 32]);
        assert_eq!(o2.open(0, &chunks[0], &mut out), Err(Error::DecryptionFailed));
        let o3 = ChunkOpener::new(&key(), [1; 7], layout, [3; 32]);
        assert_eq!(o3.open(0, &chunks[0], &mut out), Err(Error::DecryptionFailed));
        // A stream that stops early never finishes.
        let mut seq = StreamOpener::new(ChunkOpener::new(&key(), [1; 7], layout, [2; 32]));
        seq.open_next(&chunks[0], &mut out).unwrap();
        assert_eq!(seq.finish(), Err(Error::DecryptionFailed));
    }
}
