//! Reading an image where a store keeps it, through the ranged reader import uses
//! ([`imagepipe::store::ArtifactReader`]): nothing is downloaded but the blocks the scan asks
//! for.
//!
//! The filesystem readers ask for a few KiB at a time, and each miss over HTTP is a round trip,
//! so reads are served from aligned chunks kept in a bounded cache; a read that misses several
//! neighbouring chunks fetches them with one request.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use imagepipe::store::{ArtifactReader, ByteStream};

use super::disk::{Lru, Source};

/// What one request fetches at least, and the unit the cache keeps.
pub const CHUNK: u64 = 64 << 10;

/// Chunks the cache holds (16 MiB): a directory walk revisits the same inode tables.
const CACHED_CHUNKS: usize = 256;

/// The most one request fetches, so one big read is not one unbounded answer.
const MAX_RUN: u64 = 64;

/// What was fetched from the store.
#[derive(Debug, Default)]
pub struct Counters {
    bytes: AtomicU64,
    requests: AtomicU64,
}

impl Counters {
    /// Bytes fetched from the store so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Ranged requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// An artifact in a store as a [`Source`] for the disk readers, which are synchronous: each
/// fetch blocks on the runtime the reader belongs to. Use it from a blocking thread
/// (`tokio::task::spawn_blocking`), never from inside an async task.
#[derive(Debug)]
pub struct RemoteSource {
    reader: Arc<dyn ArtifactReader>,
    runtime: tokio::runtime::Handle,
    cache: Mutex<Lru<u64, Arc<Vec<u8>>>>,
    counters: Arc<Counters>,
}

impl RemoteSource {
    pub fn new(
        reader: Arc<dyn ArtifactReader>,
        runtime: tokio::runtime::Handle,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            reader,
            runtime,
            cache: Mutex::new(Lru::new(CACHED_CHUNKS)),
            counters,
        }
    }

    fn cached(&self, chunk: u64) -> Option<Arc<Vec<u8>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(chunk)
            .cloned()
    }
}

impl Source for RemoteSource {
    fn size(&self) -> io::Result<u64> {
        Ok(self.reader.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let size = self.reader.len();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= size)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: bytes {offset}+{} lie beyond its end ({size} bytes)",
                        self.reader.location(),
                        buf.len()
                    ),
                )
            })?;
        let mut pos = offset;
        while pos < end {
            let chunk = pos / CHUNK;
            let (from, data) = match self.cached(chunk) {
                Some(data) => (chunk * CHUNK, data),
                None => {
                    // This chunk and the missing ones after it that the read still needs.
                    let last_needed = (end - 1) / CHUNK;
                    let mut last = chunk;
                    while last < last_needed
                        && last - chunk + 1 < MAX_RUN
                        && self.cached(last + 1).is_none()
                    {
                        last += 1;
                    }
                    let from = chunk * CHUNK;
                    let to = ((last + 1) * CHUNK).min(size);
                    let bytes = self
                        .runtime
                        .block_on(self.reader.read_at(from, (to - from) as usize))?;
                    self.counters.add(bytes.len());
                    let bytes = Arc::new(bytes);
                    let mut cache = self
                        .cache
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for (i, piece) in bytes.chunks(CHUNK as usize).enumerate() {
                        cache.insert(chunk + i as u64, Arc::new(piece.to_vec()));
                    }
                    (from, bytes)
                }
            };
            let within = (pos - from) as usize;
            let n = ((data.len() - within) as u64).min(end - pos) as usize;
            let at = (pos - offset) as usize;
            buf[at..at + n].copy_from_slice(&data[within..within + n]);
            pos += n as u64;
        }
        Ok(())
    }
}

/// The reader an OVA's tar index is read through, counting what it fetches like
/// [`RemoteSource`] does.
#[derive(Debug)]
pub struct Counted {
    pub reader: Arc<dyn ArtifactReader>,
    pub counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl ArtifactReader for Counted {
    fn len(&self) -> u64 {
        self.reader.len()
    }

    fn location(&self) -> &str {
        self.reader.location()
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.reader.read_at(offset, len).await?;
        self.counters.add(bytes.len());
        Ok(bytes)
    }

    async fn stream(&self, offset: u64, len: u64) -> io::Result<ByteStream> {
        // Nothing in a scan streams; counted as one request of its whole length.
        let stream = self.reader.stream(offset, len).await?;
        self.counters.add(len as usize);
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagepipe::store::MemoryReader;

    #[test]
    fn reads_come_from_chunks_and_neighbours_share_a_request() {
        let bytes: Vec<u8> = (0..(CHUNK * 5 + 100)).map(|i| (i % 251) as u8).collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let counters = Arc::new(Counters::default());
        let src = RemoteSource::new(
            Arc::new(MemoryReader(bytes.clone())),
            runtime.handle().clone(),
            counters.clone(),
        );
        // Across three chunks: one request for all three.
        let mut buf = vec![0u8; (CHUNK * 2) as usize];
        src.read_exact_at(&mut buf, CHUNK / 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            buf,
            bytes[(CHUNK / 2) as usize..(CHUNK / 2 + CHUNK * 2) as usize]
        );
        assert_eq!((counters.requests(), counters.bytes()), (1, CHUNK * 3));
        // Inside what was fetched: no request.
        let mut small = [0u8; 10];
        src.read_exact_at(&mut small, CHUNK + 7)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(small, bytes[(CHUNK + 7) as usize..(CHUNK + 17) as usize]);
        assert_eq!(counters.requests(), 1);
        // The short last chunk, and past the end an error.
        let mut tail = [0u8; 100];
        src.read_exact_at(&mut tail, CHUNK * 5)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tail[..], bytes[(CHUNK * 5) as usize..]);
        assert_eq!(
            (counters.requests(), counters.bytes()),
            (2, CHUNK * 3 + 100)
        );
        assert!(src.read_exact_at(&mut tail, CHUNK * 5 + 1).is_err());
    }
}
