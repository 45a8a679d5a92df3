//! SHA-256 digests of artifacts: streamed in fixed-size chunks, several files at once.
//!
//! Artifacts are many GiB, so memory stays at one buffer per worker whatever the file size, and
//! the first block is kept to detect the file's format without a second read.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format::{Format, SNIFF_LEN, detect_format};

/// Read size. Large enough that syscall overhead vanishes next to hashing, small enough to stay
/// in L2 cache.
const CHUNK: usize = 1 << 20;

/// A SHA-256 digest, written as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Hex([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a SHA-256 digest (64 lower-case hex digits)")]
pub struct DigestError(String);

impl Sha256Hex {
    pub fn digest(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
    pub fn from_hasher(h: Sha256) -> Self {
        Self(h.finalize().into())
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Sha256Hex {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(DigestError(s.to_string()));
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| DigestError(s.to_string()))?;
        Ok(Self(out))
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Sha256Hex> for String {
    fn from(d: Sha256Hex) -> String {
        d.to_string()
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

impl schemars::JsonSchema for Sha256Hex {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sha256".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9a-f]{64}$" })
    }
}

/// What one pass over a file yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    pub sha256: Sha256Hex,
    pub format: Format,
}

/// Hashes one file in a single streaming pass; `progress` receives byte counts as they are read.
pub fn hash_file(path: &Path, progress: &(dyn Fn(u64) + Sync)) -> io::Result<FileDigest> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if head.len() < SNIFF_LEN {
            head.extend_from_slice(&buf[..n.min(SNIFF_LEN - head.len())]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        progress(n as u64);
    }
    Ok(FileDigest {
        size,
        sha256: Sha256Hex::from_hasher(hasher),
        format: detect_format(path, &head),
    })
}

/// Hashes several files concurrently, at most `workers` at a time, keeping their order.
/// `progress` receives the running total over all files.
pub fn hash_files(
    paths: &[PathBuf],
    workers: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<io::Result<FileDigest>> {
    let done = AtomicU64::new(0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<io::Result<FileDigest>>>> =
        paths.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let report = |n: u64| progress(done.fetch_add(n, Ordering::Relaxed) + n);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, paths.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let r = hash_file(path, &report);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err(io::Error::other("file was not hashed")))
        })
        .collect()
}

/// The default number of hashing workers: one per core, since hashing is CPU-bound when the
/// files are in the page cache, which they are right after Packer wrote them.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A file as an upload body: read in 1 MiB chunks into uninitialised buffers (no zeroing) and
/// hashed as it is sent. `done` counts the bytes read so far, for progress; the digest is
/// complete when the body has been consumed.
pub fn hashing_body(
    file: tokio::fs::File,
    hasher: std::sync::Arc<std::sync::Mutex<Sha256>>,
    done: std::sync::Arc<AtomicU64>,
) -> reqwest::Body {
    let stream = futures_util::stream::unfold(file, move |mut file| {
        let hasher = hasher.clone();
        let done = done.clone();
        async move {
            use tokio::io::AsyncReadExt as _;
            let mut buf = bytes::BytesMut::with_capacity(CHUNK);
            while buf.len() < CHUNK {
                match file.read_buf(&mut buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), file)),
                }
            }
            if buf.is_empty() {
                return None;
            }
            hasher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .update(&buf);
            done.fetch_add(buf.len() as u64, Ordering::Relaxed);
            Some((Ok::<_, io::Error>(buf.freeze()), file))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// Waits for a streamed request, reporting the bytes its body has read so far every 200 ms.
pub async fn with_progress<T>(
    request: impl std::future::Future<Output = T>,
    sent: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> T {
    let ticker = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            progress(sent.load(Ordering::Relaxed));
        }
    };
    let out = tokio::select! {
        r = request => r,
        () = ticker => unreachable!("the ticker never ends"),
    };
    progress(sent.load(Ordering::Relaxed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_text_form() {
        let d = Sha256Hex::digest(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_string().parse::<Sha256Hex>().unwrap(), d);
        assert!(
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
                .parse::<Sha256Hex>()
                .is_err()
        );
        assert!("abc".parse::<Sha256Hex>().is_err());
    }

    #[test]
    fn hashes_files_in_parallel_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (i, len) in [0usize, 1, CHUNK - 1, CHUNK, CHUNK * 3 + 7]
            .into_iter()
            .enumerate()
        {
            let p = dir.path().join(format!("f{i}"));
            let data: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            paths.push((p, Sha256Hex::digest(&data), len as u64));
        }
        let files: Vec<_> = paths.iter().map(|p| p.0.clone()).collect();
        let max = AtomicU64::new(0);
        let results = hash_files(&files, 3, &|t| {
            max.fetch_max(t, Ordering::Relaxed);
        });
        for ((_, want, len), got) in paths.iter().zip(results) {
            let got = got.unwrap();
            assert_eq!((got.sha256, got.size), (*want, *len));
        }
        assert_eq!(max.into_inner(), paths.iter().map(|p| p.2).sum::<u64>());
        assert!(hash_files(&[dir.path().join("missing")], 2, &|_| {})[0].is_err());
    }

    #[test]
    fn formats() {
        let mut tar = vec![0u8; 512];
        tar[..8].copy_from_slice(b"x.ovf\0\0\0");
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect_format(Path::new("a.tar"), &tar), Format::Ova);
        tar[..8].copy_from_slice(b"x.txt\0\0\0");
        assert_eq!(detect_format(Path::new("a"), &tar), Format::Tar);
        assert_eq!(
            detect_format(Path::new("packer-debian"), b"QFI\xfb\0\0\0\x03"),
            Format::Qcow2
        );
        assert_eq!(detect_format(Path::new("d.bin"), b"KDMV\x03"), Format::Vmdk);
        assert_eq!(detect_format(Path::new("d.IMG"), b"\0\0"), Format::Raw);
        assert_eq!(
            detect_format(Path::new("x.mf"), b"SHA256(a)= 00"),
            Format::Mf
        );
        assert_eq!(detect_format(Path::new("x"), b""), Format::Other);
    }
}
