//! File modes and open flags: what the launcher's private files need from
//! POSIX (owner-only folders and files, a non-blocking open, positioned
//! reads). Windows gets the same functions over its ACLs and
//! `FileExt::seek_read`.
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its parents, readable by the owner only (0700): the
/// launcher's caches and records are no one else's business.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Opens `path` for reading without blocking, so that a FIFO or device put
/// in place of a record cannot hang the launcher.
pub(crate) fn open_read_nonblocking(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed()).open(path)
}

/// Opens `path` for appending, creating it owner-only (0600), and makes an
/// existing file owner-only too.
pub(crate) fn open_private_append(path: &Path) -> io::Result<File> {
    let f = fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Whether `meta` is a file someone may execute.
pub(crate) fn is_executable(meta: &fs::Metadata) -> bool {
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

/// Reads exactly `buf.len()` bytes at `offset` without moving the file's
/// cursor (threads read one file at once).
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// The owner-only mode bits of `path`, for tests of what the launcher
/// writes.
#[cfg(test)]
pub(crate) fn mode(path: &Path) -> io::Result<u32> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn private_things_are_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir).unwrap(), 0o700);
        let file = dir.join("log");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        open_private_append(&file).unwrap();
        assert_eq!(mode(&file).unwrap(), 0o600, "an existing file is made owner-only");
        assert!(!is_executable(&fs::metadata(&file).unwrap()));
    }

    #[test]
    fn a_fifo_in_place_of_a_record_does_not_block() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        // Blocking open of a FIFO with no writer waits forever; this returns.
        let f = open_read_nonblocking(&fifo).unwrap();
        assert!(f.metadata().unwrap().file_type().is_fifo());
    }
}
