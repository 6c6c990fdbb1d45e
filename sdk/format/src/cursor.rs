//! A bounds-checked reader over a byte slice and the matching writer helpers.
use crate::{Artifact, Error, Result};

/// Reads big-endian fields from a byte slice; every read is bounds-checked
/// and a short input is reported as truncation of `artifact`.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    artifact: Artifact,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], artifact: Artifact) -> Self {
        Cursor { buf, pos: 0, artifact }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn malformed(&self, field: &'static str, problem: &'static str) -> Error {
        Error::Malformed { artifact: self.artifact, field, problem }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(Error::Truncated {
                artifact: self.artifact,
                needed: (self.pos as u64).saturating_add(n as u64),
                available: self.buf.len() as u64,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A boolean: exactly 0 or 1; anything else is non-canonical.
    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.malformed(field, "is not 0 or 1")),
        }
    }

    /// A UTF-8 string with a one-byte length prefix, at most `max` bytes.
    pub(crate) fn str8(&mut self, field: &'static str, max: usize) -> Result<&'a str> {
        let len = self.u8()? as usize;
        self.str_body(field, len, max)
    }

    /// A UTF-8 string with a two-byte length prefix, at most `max` bytes.
    pub(crate) fn str16(&mut self, field: &'static str, max: usize) -> Result<&'a str> {
        let len = self.u16()? as usize;
        self.str_body(field, len, max)
    }

    fn str_body(&mut self, field: &'static str, len: usize, max: usize) -> Result<&'a str> {
        if len > max {
            return Err(self.malformed(field, "is longer than allowed"));
        }
        let raw = self.bytes(len)?;
        core::str::from_utf8(raw).map_err(|_| self.malformed(field, "is not valid UTF-8"))
    }

    /// Reads the 8 magic bytes and the u16 format version every artifact
    /// starts with: other magic (or too short for it) is `NotSealrun`, another
    /// version `UnsupportedVersion`.
    pub(crate) fn magic_and_version(&mut self, magic: &[u8; 8], version: u16) -> Result<()> {
        if self.remaining() < 8 || self.array::<8>()? != *magic {
            return Err(Error::NotSealrun(self.artifact));
        }
        let found = self.u16()?;
        if found != version {
            return Err(Error::UnsupportedVersion { artifact: self.artifact, found, supported: version });
        }
        Ok(())
    }

    /// Like [`Cursor::magic_and_version`] for a format with several readable
    /// versions; returns the one found.
    pub(crate) fn magic_and_versions(
        &mut self,
        magic: &[u8; 8],
        versions: core::ops::RangeInclusive<u16>,
    ) -> Result<u16> {
        if self.remaining() < 8 || self.array::<8>()? != *magic {
            return Err(Error::NotSealrun(self.artifact));
        }
        let found = self.u16()?;
        if !versions.contains(&found) {
            return Err(Error::UnsupportedVersion { artifact: self.artifact, found, supported: *versions.end() });
        }
        Ok(found)
    }

    /// Fails unless the whole input has been consumed.
    pub(crate) fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(Error::TrailingData { artifact: self.artifact, extra: extra as u64 }),
        }
    }
}

/// Checks that an input of `have` bytes is exactly the `total` bytes its
/// header announces: shorter is truncation, longer is trailing data.
pub(crate) fn check_exact_len(artifact: Artifact, total: u64, have: u64) -> Result<()> {
    if have < total {
        return Err(Error::Truncated { artifact, needed: total, available: have });
    }
    if have > total {
        return Err(Error::TrailingData { artifact, extra: have - total });
    }
    Ok(())
}

/// Appends big-endian fields to a byte vector.
pub(crate) trait PutExt {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_str8(&mut self, s: &str);
    fn put_str16(&mut self, s: &str);
}

impl PutExt for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    // Lengths are validated by the constructors of the values written, so
    // the casts below cannot truncate.
    fn put_str8(&mut self, s: &str) {
        debug_assert!(s.len() <= u8::MAX as usize);
        self.put_u8(s.len() as u8);
        self.extend_from_slice(s.as_bytes());
    }
    fn put_str16(&mut self, s: &str) {
        debug_assert!(s.len() <= u16::MAX as usize);
        self.put_u16(s.len() as u16);
        self.extend_from_slice(s.as_bytes());
    }
}
