//! Readers for the two package-database formats rpm used before SQLite, returning the raw
//! header blobs (one per installed package, as rpm stores them: no lead, no magic; the
//! same bytes as the `blob` column of `rpmdb.sqlite`'s `Packages` table).
//!
//! * [`bdb_packages`]: BerkeleyDB hash database `Packages` (RHEL/CentOS 5–8, Amazon Linux 2,
//!   SLES 12 and SLES 15 before SP3, ...). Follows rpm's own read-only BerkeleyDB reader,
//!   `lib/backend/bdb_ro.c` (`bdb_ro.cc` in current rpm), and the page layout of libdb's
//!   `src/dbinc/db_page.h` (Berkeley DB 5.3).
//! * [`ndb_packages`]: rpm's "new database" `Packages.db` (SUSE 15 SP3+). Follows rpm's
//!   `lib/backend/ndb/rpmpkg.c`.
//!
//! Both read the file at random through [`ReadAt`]: the pages or blobs needed, never the
//! whole file. Both treat the file as hostile: every offset and length is checked against
//! the file and the format's limits, every page is visited at most once (so chains cannot
//! loop and the headers returned add up to at most the file's size), and a header blob is at
//! most [`MAX_HEADER_BLOB`] bytes. They never panic, and they finish in time linear in the
//! file's size.
//!
//! Both return the headers ordered by their key (rpm's header number, `hnum`/`pkgidx`),
//! which is the order rpm installed them in, like `SELECT hnum, blob FROM Packages ORDER
//! BY hnum` on `rpmdb.sqlite`.

// Every index into a page is checked: no slicing that can panic on a hostile file. And
// every public item is documented (this crate was written to be read on its own).
#![warn(clippy::indexing_slicing, missing_docs)]

use std::fmt;
use std::io;

mod bdb;
mod ndb;

pub use bdb::bdb_packages;
pub use ndb::ndb_packages;

/// The largest header blob rpm accepts: an 8-byte preamble (index length `il`, data length
/// `dl`), `il` 16-byte index entries and `dl` data bytes, with rpm's own limits
/// `il <= HEADER_TAGS_MAX` (0xffff) and `dl <= HEADER_DATA_MAX` (0x0fffffff) from
/// `hdrchkTags`/`hdrchkData` (rpm `lib/header.cc`, `hdrblobVerifyLengths`). About 257 MiB.
pub const MAX_HEADER_BLOB: u64 = 8 + 16 * 0xffff + 0x0fff_ffff;

/// Random access to a file: a database read from a disk image, a file, or bytes in memory.
pub trait ReadAt {
    /// Fills all of `buf` with the bytes at `offset`; an error if that many bytes are not
    /// there. The readers only ask for ranges within `0..len()`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The file's length in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReadAt for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_slice(self, offset, buf)
    }
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_slice(self, offset, buf)
    }
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
}

fn read_slice(data: &[u8], offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let src = usize::try_from(offset)
        .ok()
        .and_then(|start| data.get(start..start.checked_add(buf.len())?))
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    buf.copy_from_slice(src);
    Ok(())
}

/// A [`std::fs::File`] as a [`ReadAt`], its length taken when it is wrapped.
#[derive(Debug)]
pub struct FileReadAt {
    file: std::fs::File,
    len: u64,
}

impl FileReadAt {
    /// Wraps an open file.
    pub fn new(file: std::fs::File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }
}

impl ReadAt for FileReadAt {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// Why a database could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading the file failed.
    Io {
        /// Where the read started.
        offset: u64,
        /// How many bytes it asked for.
        len: usize,
        /// What the reader said.
        source: io::Error,
    },
    /// The file is not a database of the format asked for (its magic number is wrong, or it
    /// is too short to have one).
    NotThisFormat(String),
    /// A database of this family that uses something these readers do not read: a BerkeleyDB
    /// btree/queue/heap database, encryption, subdatabases, an unknown version.
    Unsupported(String),
    /// The database is damaged (or hostile): an offset, length, link, count or checksum is
    /// wrong. The message says where.
    Corrupt(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                offset,
                len,
                source,
            } => {
                write!(f, "reading {len} bytes at offset {offset}: {source}")
            }
            Error::NotThisFormat(m) | Error::Unsupported(m) | Error::Corrupt(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads `buf.len()` bytes at `offset`, after checking that they lie within the file.
fn read_exact_at(read: &mut dyn ReadAt, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
    let end = offset.checked_add(buf.len() as u64);
    if end.is_none_or(|end| end > read.len()) {
        return Err(Error::Corrupt(format!(
            "{} bytes at offset {offset} lie past the end of the file ({} bytes)",
            buf.len(),
            read.len()
        )));
    }
    read.read_at(offset, buf).map_err(|source| Error::Io {
        offset,
        len: buf.len(),
        source,
    })
}

/// One bit per page (or block): which ones a traversal has used already.
#[derive(Debug)]
struct Visited {
    bits: Vec<u64>,
}

impl Visited {
    /// Room for `n` entries; `n` is bounded by the caller (by the file's size).
    fn new(n: u64) -> Self {
        let words = usize::try_from(n.div_ceil(64)).unwrap_or(usize::MAX);
        Self {
            bits: vec![0; words],
        }
    }

    /// Marks entry `i`; false when it was marked already, or is out of range.
    fn insert(&mut self, i: u64) -> bool {
        let (Ok(word), bit) = (usize::try_from(i / 64), i % 64) else {
            return false;
        };
        match self.bits.get_mut(word) {
            Some(w) if *w & (1 << bit) == 0 => {
                *w |= 1 << bit;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn visited_marks_once_and_refuses_out_of_range() {
        let mut v = Visited::new(130);
        assert!(v.insert(0) && v.insert(129) && v.insert(64));
        assert!(!v.insert(0) && !v.insert(129));
        assert!(!v.insert(192) && !v.insert(u64::MAX));
    }

    #[test]
    fn reads_are_bounded_by_the_file() {
        let data = vec![7u8; 100];
        let mut r: &[u8] = &data;
        let mut buf = [0u8; 10];
        read_exact_at(&mut r, 90, &mut buf).unwrap();
        assert_eq!(buf, [7; 10]);
        assert!(matches!(
            read_exact_at(&mut r, 91, &mut buf),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            read_exact_at(&mut r, u64::MAX, &mut buf),
            Err(Error::Corrupt(_))
        ));
        // A reader that fails: an I/O error, with where it happened.
        struct Failing;
        impl ReadAt for Failing {
            fn read_at(&mut self, _: u64, _: &mut [u8]) -> io::Result<()> {
                Err(io::Error::other("disk on fire"))
            }
            fn len(&self) -> u64 {
                1 << 20
            }
        }
        let e = read_exact_at(&mut Failing, 4096, &mut buf).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io {
                    offset: 4096,
                    len: 10,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            bdb_packages(&mut Failing),
            Err(Error::Io { offset: 0, .. })
        ));
        assert!(matches!(
            ndb_packages(&mut Failing),
            Err(Error::Io { offset: 0, .. })
        ));
    }

    #[test]
    fn files_read_at() {
        let path = std::env::temp_dir().join(format!("rpmdb-formats-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let mut f = FileReadAt::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(f.len(), 10);
        let mut buf = [0u8; 3];
        f.read_at(4, &mut buf).unwrap();
        assert_eq!(&buf, b"456");
        assert!(f.read_at(8, &mut buf).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
