//! File-system helpers shared by the stores and the record writer.

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one: a
/// temporary file in the same directory, flushed to disk, then renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    let mut tmp = temp_beside(dir, ".tmp")?;
    crash_point();
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    crash_point();
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A point where a store or a library changes on disk: a chunk written, a file linked or
/// renamed into place, a folder removed.
///
/// The crash tests stop a step at each of these in turn: with `IMAGEPIPE_FAULT_KILL_AT=N` set
/// ([`crate::env::FAULT_KILL_AT`]), the process sends itself SIGKILL at its Nth point, as a
/// power cut or an OOM kill would stop it: no destructor runs, no temporary file is removed.
pub fn crash_point() {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let at =
        AT.get_or_init(|| crate::env::var(crate::env::FAULT_KILL_AT).and_then(|v| v.parse().ok()));
    if let Some(at) = at
        && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *at
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// A temporary file in `dir` that becomes a published file by renaming. Readable by all, as
/// published files are; tempfile's default of 0600 would hide records from other users.
pub fn temp_beside(dir: &Path, suffix: &str) -> io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::Builder::new()
        .prefix(".imagepipe-")
        .suffix(suffix)
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(tmp)
}

/// The directory that holds `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/r.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.json"]);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o644,
            0o644
        );
    }
}
