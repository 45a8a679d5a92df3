//! Random access to a stored artifact without copying it: what import needs to read an OVA's
//! members in place and stream each one on, whether the store is a directory or a server.

use std::fmt;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;

use crate::http::HttpClient;
use crate::secret::Auth;

/// Chunks of an artifact's bytes.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

const CHUNK: usize = 1 << 20;

#[async_trait::async_trait]
pub trait ArtifactReader: Send + Sync + fmt::Debug {
    /// The artifact's size in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the bytes are, for messages.
    fn location(&self) -> &str;

    /// Exactly `len` bytes at `offset`; reading past the end is an error.
    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// `len` bytes from `offset`, in chunks, for streaming uploads.
    async fn stream(&self, offset: u64, len: u64) -> io::Result<ByteStream>;

    /// Whether the whole artifact is what its record says, checked once everything needed was
    /// streamed (see [`Verifying`]); a reader that checks nothing says yes.
    async fn verify_whole(&self) -> io::Result<()> {
        Ok(())
    }
}

/// What a whole artifact must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    pub sha256: crate::hash::Sha256Hex,
}

/// Progress of the whole-file digest of a [`Verifying`] reader.
#[derive(Debug)]
struct Digest {
    /// Bytes hashed so far, from the start.
    pos: u64,
    hasher: sha2::Sha256,
    /// A stream came out of order: the digest takes a pass of its own at the end.
    out_of_order: bool,
}

/// A reader that computes the whole artifact's sha256 from the member streams an import sends
/// on anyway: a stream that starts past what was hashed first hashes the gap between (tar
/// headers, the manifest, padding), and [`ArtifactReader::verify_whole`] hashes the tail and
/// compares size and digest with the record's. Streams taken out of order fall back to a
/// pass of their own over the file. So a site's copy of an OVA is checked against the record
/// with no second download.
#[derive(Debug)]
pub struct Verifying<'a> {
    inner: &'a dyn ArtifactReader,
    expected: Expected,
    digest: std::sync::Arc<std::sync::Mutex<Digest>>,
}

impl<'a> Verifying<'a> {
    pub fn new(inner: &'a dyn ArtifactReader, expected: Expected) -> Self {
        Self {
            inner,
            expected,
            digest: std::sync::Arc::new(std::sync::Mutex::new(Digest {
                pos: 0,
                hasher: sha2::Digest::new(),
                out_of_order: false,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Digest> {
        self.digest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hashes `[from, to)` of the artifact.
    async fn hash_range(&self, from: u64, to: u64) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        let mut stream = self.inner.stream(from, to - from).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let mut d = self.state();
            sha2::Digest::update(&mut d.hasher, &chunk);
            d.pos += chunk.len() as u64;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ArtifactReader for Verifying<'_> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn location(&self) -> &str {
        self.inner.location()
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read_at(offset, len).await
    }

    async fn stream(&self, offset: u64, len: u64) -> io::Result<ByteStream> {
        let pos = {
            let mut d = self.state();
            if d.out_of_order || offset < d.pos {
                d.out_of_order = true;
                None
            } else {
                Some(d.pos)
            }
        };
        let Some(pos) = pos else {
            return self.inner.stream(offset, len).await;
        };
        self.hash_range(pos, offset).await?;
        let digest = self.digest.clone();
        let stream = self.inner.stream(offset, len).await?;
        Ok(stream
            .map(move |chunk| {
                if let Ok(bytes) = &chunk {
                    let mut d = digest.lock().unwrap_or_else(|p| p.into_inner());
                    sha2::Digest::update(&mut d.hasher, bytes);
                    d.pos += bytes.len() as u64;
                }
                chunk
            })
            .boxed())
    }

    async fn verify_whole(&self) -> io::Result<()> {
        if self.inner.len() != self.expected.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {} bytes, but the record says {}",
                    self.location(),
                    self.inner.len(),
                    self.expected.size
                ),
            ));
        }
        let (out_of_order, pos) = {
            let d = self.state();
            (d.out_of_order, d.pos)
        };
        if out_of_order {
            *self.state() = Digest {
                pos: 0,
                hasher: sha2::Digest::new(),
                out_of_order: true,
            };
            self.hash_range(0, self.inner.len()).await?;
        } else {
            self.hash_range(pos, self.inner.len()).await?;
        }
        let hasher = std::mem::replace(&mut self.state().hasher, sha2::Digest::new());
        let actual = crate::hash::Sha256Hex::from_hasher(hasher);
        if actual != self.expected.sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has sha256 {actual}, but the record says {}",
                    self.location(),
                    self.expected.sha256
                ),
            ));
        }
        Ok(())
    }
}

fn check_range(reader: &dyn ArtifactReader, offset: u64, len: u64) -> io::Result<()> {
    if offset.checked_add(len).is_none_or(|end| end > reader.len()) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: bytes {offset}+{len} lie beyond its end ({} bytes); the file is truncated",
                reader.location(),
                reader.len()
            ),
        ));
    }
    Ok(())
}

/// A file on this machine.
#[derive(Debug)]
pub struct FileReader {
    path: PathBuf,
    location: String,
    len: u64,
}

impl FileReader {
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let len = std::fs::metadata(&path)?.len();
        Ok(Self {
            location: path.display().to_string(),
            path,
            len,
        })
    }
}

#[async_trait::async_trait]
impl ArtifactReader for FileReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        check_range(self, offset, len as u64)?;
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut file = tokio::fs::File::open(&self.path).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        let mut buf = vec![0; len];
        file.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn stream(&self, offset: u64, len: u64) -> io::Result<ByteStream> {
        check_range(self, offset, len)?;
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut file = tokio::fs::File::open(&self.path).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        let stream =
            futures_util::stream::unfold((file.take(len), len), |(mut file, left)| async move {
                if left == 0 {
                    return None;
                }
                let mut buf = bytes::BytesMut::with_capacity(CHUNK.min(left as usize));
                while buf.len() < buf.capacity() {
                    match file.read_buf(&mut buf).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Some((Err(e), (file, 0))),
                    }
                }
                if buf.is_empty() {
                    let e =
                        io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while read");
                    return Some((Err(e), (file, 0)));
                }
                let n = buf.len() as u64;
                Some((Ok(buf.freeze()), (file, left - n)))
            });
        Ok(stream.boxed())
    }
}

/// A file behind an HTTP server that answers `Range` requests (Artifactory, OCI registries).
#[derive(Debug)]
pub struct HttpReader {
    client: HttpClient,
    auth: Auth,
    url: String,
    len: u64,
}

impl HttpReader {
    pub fn new(client: HttpClient, auth: Auth, url: String, len: u64) -> Self {
        Self {
            client,
            auth,
            url,
            len,
        }
    }

    async fn get(&self, offset: u64, len: u64) -> io::Result<reqwest::Response> {
        let range = format!("bytes={offset}-{}", offset + len - 1);
        let resp = self
            .client
            .send(|c| {
                self.auth
                    .apply(c.get(&self.url))
                    .header(reqwest::header::RANGE, &range)
            })
            .await
            .map_err(io::Error::other)?;
        let status = resp.status();
        let whole = status == reqwest::StatusCode::OK && offset == 0 && len == self.len;
        if status != reqwest::StatusCode::PARTIAL_CONTENT && !whole {
            return Err(io::Error::other(format!(
                "GET {} (Range {range}) answered {status}; the store must serve byte ranges",
                self.url
            )));
        }
        Ok(resp)
    }
}

#[async_trait::async_trait]
impl ArtifactReader for HttpReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn location(&self) -> &str {
        &self.url
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        check_range(self, offset, len as u64)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let resp = self.get(offset, len as u64).await?;
        let bytes = resp.bytes().await.map_err(io::Error::other)?;
        if bytes.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: asked for {len} bytes, got {}", self.url, bytes.len()),
            ));
        }
        Ok(bytes.to_vec())
    }

    async fn stream(&self, offset: u64, len: u64) -> io::Result<ByteStream> {
        check_range(self, offset, len)?;
        if len == 0 {
            return Ok(futures_util::stream::empty().boxed());
        }
        let resp = self.get(offset, len).await?;
        Ok(resp
            .bytes_stream()
            .map(|r| r.map_err(io::Error::other))
            .boxed())
    }
}

/// An artifact held in memory (tests and fuzzing).
#[derive(Debug)]
pub struct MemoryReader(pub Vec<u8>);

#[async_trait::async_trait]
impl ArtifactReader for MemoryReader {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn location(&self) -> &str {
        "memory"
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        check_range(self, offset, len as u64)?;
        Ok(self.0[offset as usize..offset as usize + len].to_vec())
    }

    async fn stream(&self, offset: u64, len: u64) -> io::Result<ByteStream> {
        let bytes = self.read_at(offset, len as usize).await?;
        Ok(futures_util::stream::iter([Ok(Bytes::from(bytes))]).boxed())
    }
}
