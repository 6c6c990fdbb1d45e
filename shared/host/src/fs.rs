//! Writing a file whole: through a temporary file of its own beside it
//! (unique, so two processes writing at once never mix their bytes), then
//! renamed over the old one, so a reader or a crash sees the old file or
//! the new one and never a part.
use std::io::Write;
use std::path::Path;

/// Whether the new file must survive a power cut once the write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The file and its directory entry are flushed to disk first: for
    /// what cannot be rebuilt (keys, licenses, records, settings).
    Synced,
    /// Left to the kernel: for caches, where a torn file fails its check
    /// and is rebuilt, and an fsync per entry would cost more than it saves.
    Unsynced,
}

/// Writes `bytes` to `path` atomically, the file getting permission
/// `mode` (on Unix; e.g. 0o600 for anything private) from its creation on.
/// The directory must exist. A failed write leaves no temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, durability: Durability) -> std::io::Result<()> {
    let (dir, mut tmp) = temp_beside(path, mode)?;
    tmp.write_all(bytes)?;
    if durability == Durability::Synced {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    match durability {
        Durability::Synced => sync_dir(dir),
        Durability::Unsynced => Ok(()),
    }
}

/// Writes `bytes` to `path` only if nothing is there yet, whole and
/// synced, with permission `mode`: for files that must never be replaced
/// (a device key, a vendor key). An existing file is an error of kind
/// [`std::io::ErrorKind::AlreadyExists`] and is left as it is.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let (dir, mut tmp) = temp_beside(path, mode)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Maps `file` read-only, for reading a large input (a package, a
/// module) without copying it whole into memory.
///
/// What the map shows can change if another process writes the file
/// meanwhile, and a truncation raises SIGBUS, which ends the process.
/// Every caller therefore reads it only through a parser that copies each
/// piece before checking and using it (so a change can only cause a
/// refusal), and says so where it calls this.
#[allow(unsafe_code)]
pub fn map_read_only(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a private, read-only map; no reference into it outlives the
    // `Mmap`. A concurrent write or truncation is the caveat documented
    // above, which each caller accepts for its own reason.
    unsafe { memmap2::Mmap::map(file) }
}

fn temp_beside(path: &Path, mode: u32) -> std::io::Result<(&Path, tempfile::NamedTempFile)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok((dir, builder.tempfile_in(dir)?))
}

/// A rename or link is durable only once its directory is.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_with_its_mode_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        write_atomic(&path, b"old", 0o644, Durability::Synced).unwrap();
        write_atomic(&path, b"new contents", 0o600, Durability::Unsynced).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["record"], "a temporary file was left behind");
        // A new file is never written over an old one.
        let err = write_new(&path, b"other", 0o600).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
        write_new(&dir.path().join("fresh"), b"first", 0o600).unwrap();
        assert_eq!(std::fs::read(dir.path().join("fresh")).unwrap(), b"first");
        std::fs::remove_file(dir.path().join("fresh")).unwrap();
        // Into a directory that is not there: an error, and nothing made.
        assert!(write_atomic(&dir.path().join("no/such"), b"x", 0o600, Durability::Synced).is_err());
    }

    /// Two writers at once never leave a mix: each uses its own temporary
    /// file, so the result is one writer's bytes whole.
    #[test]
    fn concurrent_writers_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &[i; 4096], 0o600, Durability::Unsynced).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|b| *b == bytes[0]), "the file mixes two writers' bytes");
    }
}
