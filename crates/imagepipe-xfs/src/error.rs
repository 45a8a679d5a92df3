//! The errors of the reader. Each names what is wrong and where: the inode number and, once
//! the public call that met it adds it, the path that was asked for.

use std::fmt;
use std::io;

/// What went wrong reading an XFS filesystem.
///
/// Errors met below a path lookup carry the inode number; the public methods of
/// [`crate::Xfs`] fill in the `path` they were called with, so every message says where.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The device failed a read.
    Io {
        offset: u64,
        len: u64,
        source: io::Error,
    },
    /// The first sector holds no XFS superblock this reader accepts (bad magic or geometry).
    NotXfs(String),
    /// A valid XFS feature this reader does not implement (realtime file data, an unknown
    /// incompatible feature, version 1 directories).
    Unsupported {
        path: String,
        ino: Option<u64>,
        what: String,
    },
    /// On-disk structures contradict themselves or the geometry.
    Corrupt {
        path: String,
        ino: Option<u64>,
        what: String,
    },
    /// A block the filesystem points at lies past the end of the device.
    PastDevice {
        path: String,
        ino: Option<u64>,
        offset: u64,
        len: u64,
        device: u64,
    },
    /// A structure is larger than this reader's caps allow (directory entries, directory size,
    /// B+tree visits): refused rather than read without bound.
    Limit {
        path: String,
        ino: Option<u64>,
        what: String,
    },
    /// `read_range` of a path that does not exist.
    NotFound { path: String },
    /// A component in the middle of a path is not a directory (a symbolic link in the middle is
    /// this too: the caller resolves links), or `read_dir` of something else.
    NotADirectory {
        path: String,
        ino: u64,
        symlink: bool,
    },
    /// `read_file`/`read_range` of a directory, symbolic link or device.
    NotAFile {
        path: String,
        ino: u64,
        kind: &'static str,
    },
    /// `read_file` of a file larger than the caller's maximum.
    TooLarge {
        path: String,
        ino: u64,
        size: u64,
        max: u64,
    },
    /// A symbolic link target that is not UTF-8.
    NotUtf8 { path: String, ino: u64 },
    /// A path that is not absolute.
    InvalidPath { path: String },
}

impl Error {
    pub(crate) fn corrupt(ino: impl Into<Option<u64>>, what: impl Into<String>) -> Self {
        Error::Corrupt {
            path: String::new(),
            ino: ino.into(),
            what: what.into(),
        }
    }

    pub(crate) fn limit(ino: impl Into<Option<u64>>, what: impl Into<String>) -> Self {
        Error::Limit {
            path: String::new(),
            ino: ino.into(),
            what: what.into(),
        }
    }

    pub(crate) fn unsupported(ino: impl Into<Option<u64>>, what: impl Into<String>) -> Self {
        Error::Unsupported {
            path: String::new(),
            ino: ino.into(),
            what: what.into(),
        }
    }

    /// Sets the path of an error that has none yet.
    pub(crate) fn at(mut self, p: &str) -> Self {
        match &mut self {
            Error::Unsupported { path, .. }
            | Error::Corrupt { path, .. }
            | Error::PastDevice { path, .. }
            | Error::Limit { path, .. }
                if path.is_empty() =>
            {
                *path = p.to_string();
            }
            _ => {}
        }
        self
    }

    /// The inode the error is about, when it is about one.
    pub fn inode(&self) -> Option<u64> {
        match self {
            Error::Unsupported { ino, .. }
            | Error::Corrupt { ino, .. }
            | Error::PastDevice { ino, .. }
            | Error::Limit { ino, .. } => *ino,
            Error::NotADirectory { ino, .. }
            | Error::NotAFile { ino, .. }
            | Error::TooLarge { ino, .. }
            | Error::NotUtf8 { ino, .. } => Some(*ino),
            _ => None,
        }
    }

    /// Whether the image itself is at fault (corrupt, hostile, or not XFS), as opposed to the
    /// device, the caller's request, or a feature this reader lacks.
    pub fn is_bad_image(&self) -> bool {
        matches!(
            self,
            Error::NotXfs(_)
                | Error::Corrupt { .. }
                | Error::PastDevice { .. }
                | Error::Limit { .. }
        )
    }
}

/// "XFS inode 131 (/etc/passwd)" or "XFS inode 131" or "XFS (/etc/passwd)".
struct Where<'a>(Option<u64>, &'a str);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(ino), "") => write!(f, "XFS inode {ino}"),
            (Some(ino), p) => write!(f, "XFS inode {ino} ({p})"),
            (None, "") => write!(f, "XFS"),
            (None, p) => write!(f, "XFS ({p})"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                offset,
                len,
                source,
            } => write!(
                f,
                "XFS: reading {len} bytes at byte {offset} of the device failed: {source}"
            ),
            Error::NotXfs(why) => write!(f, "not an XFS filesystem this reader accepts: {why}"),
            Error::Unsupported { path, ino, what } => {
                write!(f, "{}: unsupported: {what}", Where(*ino, path))
            }
            Error::Corrupt { path, ino, what } => {
                write!(f, "{}: corrupt filesystem: {what}", Where(*ino, path))
            }
            Error::PastDevice {
                path,
                ino,
                offset,
                len,
                device,
            } => write!(
                f,
                "{}: corrupt filesystem: {len} bytes at byte {offset} lie past the end of the {device}-byte device",
                Where(*ino, path)
            ),
            Error::Limit { path, ino, what } => {
                write!(
                    f,
                    "{}: refused, beyond this reader's limits: {what}",
                    Where(*ino, path)
                )
            }
            Error::NotFound { path } => write!(f, "XFS: {path}: no such file"),
            Error::NotADirectory { path, ino, symlink } => {
                if *symlink {
                    write!(
                        f,
                        "{}: a symbolic link where a directory is needed (links are not followed here)",
                        Where(Some(*ino), path)
                    )
                } else {
                    write!(f, "{}: not a directory", Where(Some(*ino), path))
                }
            }
            Error::NotAFile { path, ino, kind } => {
                write!(
                    f,
                    "{}: a {kind}, not a regular file",
                    Where(Some(*ino), path)
                )
            }
            Error::TooLarge {
                path,
                ino,
                size,
                max,
            } => write!(
                f,
                "{}: {size} bytes, more than the {max} allowed",
                Where(Some(*ino), path)
            ),
            Error::NotUtf8 { path, ino } => write!(
                f,
                "{}: symbolic link target is not UTF-8",
                Where(Some(*ino), path)
            ),
            Error::InvalidPath { path } => write!(f, "XFS: {path:?} is not an absolute path"),
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

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::NotADirectory { .. } => io::ErrorKind::NotADirectory,
            Error::NotAFile { kind, .. } if *kind == "directory" => io::ErrorKind::IsADirectory,
            Error::NotAFile { .. } => io::ErrorKind::InvalidInput,
            Error::TooLarge { .. } => io::ErrorKind::FileTooLarge,
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            Error::InvalidPath { .. } => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
