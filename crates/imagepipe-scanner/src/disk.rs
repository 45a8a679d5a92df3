//! Disk image formats, read with random access: only the blocks a read asks for are fetched,
//! through the format's own tables. Every offset and size from the image is checked before it
//! is used: an image is untrusted input.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use imagepipe::format::Format;

/// A virtual disk: `len` bytes, read at any offset.
pub trait Disk: Send {
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from `offset`; beyond the end is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Bytes of the image file read so far (to prove how little a scan reads).
    fn bytes_read(&self) -> u64;
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn past_end(offset: u64, len: usize, size: u64) -> io::Result<()> {
    if offset.checked_add(len as u64).is_none_or(|e| e > size) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "a read of {len} bytes at {offset} goes past the end of the disk ({size} bytes)"
            ),
        ));
    }
    Ok(())
}

/// Random access to the bytes an image lives in: a file on this machine, or an artifact in a
/// store read with ranged requests ([`crate::remote`]).
pub trait Source: Send + Sync + std::fmt::Debug {
    /// The size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl Source for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

/// Bytes of a source an image lives in: the whole source, or a member of an OVA read in place.
#[derive(Debug)]
pub struct Slice {
    src: Arc<dyn Source>,
    start: u64,
    len: u64,
}

impl Slice {
    pub fn whole(file: File) -> io::Result<Self> {
        Self::whole_of(Arc::new(file))
    }

    pub fn part(file: File, start: u64, len: u64) -> io::Result<Self> {
        Self::part_of(Arc::new(file), start, len)
    }

    /// All of `src`.
    pub fn whole_of(src: Arc<dyn Source>) -> io::Result<Self> {
        let len = src.size()?;
        Ok(Self { src, start: 0, len })
    }

    /// `len` bytes of `src` from `start`.
    pub fn part_of(src: Arc<dyn Source>, start: u64, len: u64) -> io::Result<Self> {
        past_end(start, len as usize, src.size()?)?;
        Ok(Self { src, start, len })
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        past_end(offset, buf.len(), self.len)?;
        self.src.read_exact_at(buf, self.start + offset)
    }
}

/// Opens an image file as a disk, by its format as the record tells it (its first bytes
/// first); an OVA's first disk is read inside the OVA.
pub fn open(path: &Path) -> io::Result<Box<dyn Disk>> {
    let file = File::open(path)?;
    let mut head = [0u8; imagepipe::format::SNIFF_LEN];
    let n = file.read_at(&mut head, 0)?;
    match imagepipe::format::detect_format(path, &head[..n]) {
        Format::Ova | Format::Tar => open_ova(path, file),
        _ => open_slice(Slice::whole(file)?),
    }
}

/// A disk inside a slice (an OVA member, or an artifact in a store): qcow2 and VMDK by their
/// magic bytes, or raw. No name helps here, so only the content decides.
pub fn open_slice(slice: Slice) -> io::Result<Box<dyn Disk>> {
    let mut head = [0u8; 64];
    let n = slice.len().min(head.len() as u64) as usize;
    slice.read_exact_at(&mut head[..n], 0)?;
    match imagepipe::format::detect_format(Path::new(""), &head[..n]) {
        Format::Qcow2 => Ok(Box::new(Qcow2::open(slice)?)),
        Format::Vmdk => Ok(Box::new(Vmdk::open(slice)?)),
        _ => Ok(Box::new(Raw::new(slice))),
    }
}

/// An OVA: its descriptor names the disks; the first is the system disk.
fn open_ova(path: &Path, file: File) -> io::Result<Box<dyn Disk>> {
    let reader = imagepipe::store::FileReader::open(path.to_path_buf())?;
    let package = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(imagepipe::ova::read(&reader))
        .map_err(|e| invalid(e.to_string()))?;
    let disk = package
        .files
        .first()
        .ok_or_else(|| invalid(format!("{}: the OVA references no disk", path.display())))?;
    open_slice(Slice::part(file, disk.offset, disk.size)?)
}

/// A raw image: the file is the disk. Reads go through a cache of aligned chunks, as the
/// qcow2 and VMDK readers keep clusters and grains: a filesystem walk reads the same inode-table
/// and directory blocks over and over, and over HTTP (a published version scanned in place)
/// every read would be a request.
#[derive(Debug)]
pub struct Raw {
    src: Slice,
    read: u64,
    chunks: Lru<u64, Vec<u8>>,
}

/// The raw reader's unit: large enough for a run of inodes or a directory, small enough that a
/// lookup does not read much past what it needs.
const RAW_CHUNK: u64 = 32 << 10;

/// Reads this large are not cached.
const RAW_DIRECT: u64 = 1 << 20;

impl Raw {
    pub fn new(src: Slice) -> Self {
        Self {
            src,
            read: 0,
            chunks: Lru::sized(RAW_CHUNK as usize),
        }
    }
}

impl Disk for Raw {
    fn len(&self) -> u64 {
        self.src.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        past_end(offset, buf.len(), self.src.len())?;
        // A large read (a package database, a hive) goes straight through, in one request when
        // the disk is remote: it would only push the small metadata the cache is for out of it.
        // Reads of a few chunks are cached: a filesystem walk repeats them (ext4-view reads
        // whole runs of inode-table blocks), and a 32 KiB bypass put the baseline's walk back
        // to 13.7% of the disk read.
        if buf.len() >= RAW_DIRECT as usize {
            self.src.read_exact_at(buf, offset)?;
            self.read += buf.len() as u64;
            return Ok(());
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let chunk = at - at % RAW_CHUNK;
            if self.chunks.get(chunk).is_none() {
                let len = RAW_CHUNK.min(self.src.len() - chunk) as usize;
                let mut data = vec![0; len];
                self.src.read_exact_at(&mut data, chunk)?;
                self.read += len as u64;
                self.chunks.insert(chunk, data);
            }
            let data = self.chunks.get(chunk).map_or(&[][..], Vec::as_slice);
            let from = (at - chunk) as usize;
            let n = (buf.len() - done).min(data.len().saturating_sub(from));
            if n == 0 {
                return Err(invalid(format!(
                    "a read at byte {at} is past the disk's end"
                )));
            }
            buf[done..done + n].copy_from_slice(&data[from..from + n]);
            done += n;
        }
        Ok(())
    }

    fn bytes_read(&self) -> u64 {
        self.read
    }
}

/// What the decompressed-data caches may hold: a filesystem walk revisits the same inode
/// tables and directory blocks, and inflating a cluster costs far more than keeping it.
const CACHE_BYTES: usize = 8 << 20;

/// A small most-recently-used cache: hits move to the front, the oldest entry goes first.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    cap: usize,
    items: Vec<(K, V)>,
}

impl<K: PartialEq + Copy, V> Lru<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            items: Vec::new(),
        }
    }

    /// `item_bytes`-sized entries within [`CACHE_BYTES`].
    fn sized(item_bytes: usize) -> Self {
        Self::new((CACHE_BYTES / item_bytes.max(1)).clamp(2, 256))
    }

    pub(crate) fn get(&mut self, key: K) -> Option<&V> {
        let i = self.items.iter().position(|(k, _)| *k == key)?;
        let item = self.items.remove(i);
        self.items.insert(0, item);
        self.items.first().map(|(_, v)| v)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.items.len() == self.cap {
            self.items.pop();
        }
        self.items.insert(0, (key, value));
    }
}

/// A qcow2 image (version 2 or 3), compressed clusters included; no backing files, no
/// encryption. <https://gitlab.com/qemu-project/qemu/-/blob/master/docs/interop/qcow2.txt>
#[derive(Debug)]
pub struct Qcow2 {
    file: Slice,
    file_len: u64,
    size: u64,
    cluster_bits: u32,
    l1: Vec<u64>,
    /// L2 tables by their offset.
    l2_cache: Lru<u64, Vec<u64>>,
    /// Decompressed clusters by their L2 entry.
    cluster_cache: Lru<u64, Vec<u8>>,
    read: u64,
}

const QCOW2_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const QCOW2_COMPRESSED: u64 = 1 << 62;
const QCOW2_ZERO: u64 = 1;

impl Qcow2 {
    pub fn open(file: Slice) -> io::Result<Self> {
        let file_len = file.len();
        if file_len < 104 {
            return Err(invalid("the qcow2 header is truncated".into()));
        }
        let mut h = [0u8; 104];
        file.read_exact_at(&mut h, 0)?;
        let be32 = |o: usize| u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let be64 = |o: usize| u64::from_be_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
        let version = be32(4);
        if version != 2 && version != 3 {
            return Err(invalid(format!("qcow2 version {version} is not 2 or 3")));
        }
        if be64(8) != 0 {
            return Err(invalid(
                "the qcow2 image has a backing file; scan the flattened image (qemu-img convert)"
                    .into(),
            ));
        }
        let cluster_bits = be32(20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(invalid(format!(
                "qcow2 cluster_bits {cluster_bits} is out of range"
            )));
        }
        let size = be64(24);
        if be32(32) != 0 {
            return Err(invalid("the qcow2 image is encrypted".into()));
        }
        if version == 3 {
            // Unknown incompatible features (bit 0 is only "dirty") cannot be read safely.
            let incompatible = be64(72);
            if incompatible & !1 != 0 {
                return Err(invalid(format!(
                    "qcow2 incompatible features {incompatible:#x} are not supported"
                )));
            }
        }
        let l1_size = u64::from(be32(36));
        let l1_offset = be64(40);
        let cluster = 1u64 << cluster_bits;
        let l2_entries = cluster / 8;
        let needed = size.div_ceil(cluster * l2_entries);
        if l1_size < needed || l1_size > (32 << 20) / 8 {
            return Err(invalid(format!(
                "qcow2 L1 table of {l1_size} entries does not fit a disk of {size} bytes"
            )));
        }
        past_end(l1_offset, (l1_size * 8) as usize, file_len)?;
        let mut raw = vec![0u8; (l1_size * 8) as usize];
        file.read_exact_at(&mut raw, l1_offset)?;
        let l1 = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Ok(Self {
            file,
            file_len,
            size,
            cluster_bits,
            l1,
            l2_cache: Lru::sized(1 << cluster_bits),
            cluster_cache: Lru::sized(1 << cluster_bits),
            read: 104 + l1_size * 8,
        })
    }

    fn file_read(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        past_end(offset, buf.len(), self.file_len).map_err(|_| {
            invalid(format!(
                "qcow2 points at bytes {offset}+{} beyond the file",
                buf.len()
            ))
        })?;
        self.file.read_exact_at(buf, offset)?;
        self.read += buf.len() as u64;
        Ok(())
    }

    /// Reads within one guest cluster.
    fn read_cluster(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let cluster = 1u64 << self.cluster_bits;
        let l2_entries = cluster / 8;
        let index = offset / cluster;
        let within = offset % cluster;
        let l1_entry = self
            .l1
            .get((index / l2_entries) as usize)
            .copied()
            .unwrap_or(0);
        let l2_offset = l1_entry & QCOW2_OFFSET_MASK;
        if l2_offset == 0 {
            buf.fill(0);
            return Ok(());
        }
        if self.l2_cache.get(l2_offset).is_none() {
            let mut raw = vec![0u8; cluster as usize];
            self.file_read(l2_offset, &mut raw)?;
            let table = raw
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            self.l2_cache.insert(l2_offset, table);
        }
        let entry = self
            .l2_cache
            .get(l2_offset)
            .map_or(0, |t| t[(index % l2_entries) as usize]);
        if entry & QCOW2_COMPRESSED != 0 {
            if self.cluster_cache.get(entry).is_none() {
                let data = self.inflate(entry)?;
                self.cluster_cache.insert(entry, data);
            }
            let data = self.cluster_cache.get(entry).map_or(&[][..], Vec::as_slice);
            buf.copy_from_slice(&data[within as usize..within as usize + buf.len()]);
            return Ok(());
        }
        let host = entry & QCOW2_OFFSET_MASK;
        if host == 0 || entry & QCOW2_ZERO != 0 {
            buf.fill(0);
            return Ok(());
        }
        self.file_read(host + within, buf)
    }

    /// A compressed cluster: raw deflate data of a size given in 512-byte sectors.
    fn inflate(&mut self, entry: u64) -> io::Result<Vec<u8>> {
        let cluster = 1usize << self.cluster_bits;
        let shift = 62 - (self.cluster_bits - 8);
        let host = entry & ((1u64 << shift) - 1);
        let sectors = ((entry & !QCOW2_COMPRESSED) >> shift) + 1;
        let end = ((host & !511) + sectors * 512).min(self.file_len);
        let len = end.saturating_sub(host) as usize;
        if len == 0 || len > 2 * cluster {
            return Err(invalid(format!(
                "a compressed qcow2 cluster of {len} bytes at {host}"
            )));
        }
        let mut packed = vec![0u8; len];
        self.file_read(host, &mut packed)?;
        let mut out = Vec::with_capacity(cluster);
        let mut decoder = flate2::read::DeflateDecoder::new(&packed[..]);
        // At most one cluster: a hostile stream cannot make this grow.
        io::Read::read_to_end(&mut io::Read::take(&mut decoder, cluster as u64), &mut out)
            .map_err(|e| {
                invalid(format!(
                    "a compressed qcow2 cluster at {host} is corrupt: {e}"
                ))
            })?;
        if out.len() != cluster {
            return Err(invalid(format!(
                "a compressed qcow2 cluster at {host} inflates to {} bytes, not {cluster}",
                out.len()
            )));
        }
        Ok(out)
    }
}

impl Disk for Qcow2 {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, mut offset: u64, buf: &mut [u8]) -> io::Result<()> {
        past_end(offset, buf.len(), self.size)?;
        let cluster = 1u64 << self.cluster_bits;
        let mut done = 0;
        while done < buf.len() {
            let within = (offset % cluster) as usize;
            let n = (cluster as usize - within).min(buf.len() - done);
            self.read_cluster(offset, &mut buf[done..done + n])?;
            done += n;
            offset += n as u64;
        }
        Ok(())
    }

    fn bytes_read(&self) -> u64 {
        self.read
    }
}

/// A hosted sparse VMDK extent: monolithicSparse, and streamOptimized (compressed grains, the
/// grain directory in the footer), the disk format inside vSphere OVAs.
/// <https://github.com/libyal/libvmdk/blob/main/documentation/VMWare%20Virtual%20Disk%20Format%20(VMDK).asciidoc>
#[derive(Debug)]
pub struct Vmdk {
    src: Slice,
    capacity: u64,
    grain: u64,
    compressed: bool,
    /// Per grain table: its sector offset (0: none).
    gd: Vec<u32>,
    gt_entries: u64,
    gt_cache: Lru<u32, Vec<u32>>,
    grain_cache: Lru<u32, Vec<u8>>,
    read: u64,
}

const GD_AT_END: u64 = u64::MAX;

impl Vmdk {
    pub fn open(src: Slice) -> io::Result<Self> {
        let mut h = [0u8; 512];
        src.read_exact_at(&mut h, 0)?;
        let mut read = 512;
        let le32 = |h: &[u8], o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let le64 =
            |h: &[u8], o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
        let flags = le32(&h, 8);
        let mut gd_offset = le64(&h, 56);
        if gd_offset == GD_AT_END {
            // streamOptimized: the footer before the end-of-stream marker has the real one.
            let len = src.len();
            if len < 1536 {
                return Err(invalid(
                    "the stream-optimized VMDK has no footer: truncated".into(),
                ));
            }
            let mut footer = [0u8; 512];
            src.read_exact_at(&mut footer, len - 1024)?;
            read += 512;
            if &footer[0..4] != b"KDMV" {
                return Err(invalid(
                    "the stream-optimized VMDK footer is missing: truncated".into(),
                ));
            }
            gd_offset = le64(&footer, 56);
        }
        let capacity = le64(&h, 12).saturating_mul(512);
        let grain_sectors = le64(&h, 20);
        let gt_entries = u64::from(le32(&h, 44));
        if capacity > 64 << 40
            || !grain_sectors.is_power_of_two()
            || !(8..=2048).contains(&grain_sectors)
            || !(128..=4096).contains(&gt_entries)
        {
            return Err(invalid(format!(
                "VMDK header values are not plausible (capacity {capacity}, grain {grain_sectors} sectors, {gt_entries} entries per table)"
            )));
        }
        if flags & (1 << 16) != 0 && u16::from_le_bytes([h[77], h[78]]) != 1 {
            return Err(invalid(
                "the VMDK grains use a compression other than deflate".into(),
            ));
        }
        let grain = grain_sectors * 512;
        let tables = capacity.div_ceil(grain * gt_entries);
        let mut raw = vec![0u8; (tables * 4) as usize];
        src.read_exact_at(&mut raw, gd_offset.saturating_mul(512))
            .map_err(|_| invalid("the VMDK grain directory lies beyond the file".into()))?;
        read += raw.len() as u64;
        let gd = raw.chunks_exact(4).map(|c| le32(c, 0)).collect();
        Ok(Self {
            src,
            capacity,
            grain,
            compressed: flags & (1 << 16) != 0,
            gd,
            gt_entries,
            gt_cache: Lru::sized(gt_entries as usize * 4),
            grain_cache: Lru::sized(grain as usize),
            read,
        })
    }

    fn fetch(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.src.read_exact_at(buf, offset).map_err(|_| {
            invalid(format!(
                "the VMDK points at bytes {offset}+{} beyond the file",
                buf.len()
            ))
        })?;
        self.read += buf.len() as u64;
        Ok(())
    }

    /// Reads within one grain.
    fn read_grain(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let index = offset / self.grain;
        let within = (offset % self.grain) as usize;
        let table = self
            .gd
            .get((index / self.gt_entries) as usize)
            .copied()
            .unwrap_or(0);
        if table == 0 {
            buf.fill(0);
            return Ok(());
        }
        if self.gt_cache.get(table).is_none() {
            let mut raw = vec![0u8; self.gt_entries as usize * 4];
            self.fetch(u64::from(table) * 512, &mut raw)?;
            let entries = raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            self.gt_cache.insert(table, entries);
        }
        let gt_entries = self.gt_entries;
        let sector = self
            .gt_cache
            .get(table)
            .map_or(0, |e| e[(index % gt_entries) as usize]);
        // 0: never written; 1: a grain of zeros.
        if sector <= 1 {
            buf.fill(0);
            return Ok(());
        }
        let at = u64::from(sector) * 512;
        if !self.compressed {
            return self.fetch(at + within as u64, buf);
        }
        if self.grain_cache.get(sector).is_none() {
            // A compressed grain: its LBA (8 bytes), the data size (4), then zlib data.
            let mut marker = [0u8; 12];
            self.fetch(at, &mut marker)?;
            let size = u64::from(u32::from_le_bytes([
                marker[8], marker[9], marker[10], marker[11],
            ]));
            if size == 0 || size > 2 * self.grain + 1024 {
                return Err(invalid(format!(
                    "a compressed VMDK grain of {size} bytes at {at}"
                )));
            }
            let mut packed = vec![0u8; size as usize];
            self.fetch(at + 12, &mut packed)?;
            let mut out = Vec::with_capacity(self.grain as usize);
            let mut decoder = flate2::read::ZlibDecoder::new(&packed[..]);
            io::Read::read_to_end(&mut io::Read::take(&mut decoder, self.grain), &mut out)
                .map_err(|e| invalid(format!("a compressed VMDK grain at {at} is corrupt: {e}")))?;
            // The last grain of a disk may be short; the rest reads as zeros.
            out.resize(self.grain as usize, 0);
            self.grain_cache.insert(sector, out);
        }
        let data = self.grain_cache.get(sector).map_or(&[][..], Vec::as_slice);
        buf.copy_from_slice(&data[within..within + buf.len()]);
        Ok(())
    }
}

impl Disk for Vmdk {
    fn len(&self) -> u64 {
        self.capacity
    }

    fn read_at(&mut self, mut offset: u64, buf: &mut [u8]) -> io::Result<()> {
        past_end(offset, buf.len(), self.capacity)?;
        let mut done = 0;
        while done < buf.len() {
            let within = (offset % self.grain) as usize;
            let n = (self.grain as usize - within).min(buf.len() - done);
            self.read_grain(offset, &mut buf[done..done + n])?;
            done += n;
            offset += n as u64;
        }
        Ok(())
    }

    fn bytes_read(&self) -> u64 {
        self.read
    }
}

/// A partition (or a whole disk holding a filesystem): a byte range of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub start: u64,
    pub len: u64,
}

/// What a partition table says a partition is: an MBR type byte, or a GPT type GUID in its
/// on-disk byte order; `None` for a disk without a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionType {
    Mbr(u8),
    Gpt([u8; 16]),
    None,
}

/// The partitions of a disk: GPT (behind a protective MBR), or MBR with its extended
/// partitions; a disk without a table is one filesystem.
pub fn partitions(disk: &mut dyn Disk) -> io::Result<Vec<Partition>> {
    Ok(table(disk)?.into_iter().map(|(p, _)| p).collect())
}

/// [`partitions`] with the type each has in its table.
pub fn table(disk: &mut dyn Disk) -> io::Result<Vec<(Partition, PartitionType)>> {
    let size = disk.len();
    if size < 1024 {
        return Err(invalid(format!(
            "a disk of {size} bytes holds no filesystem"
        )));
    }
    let mut mbr = [0u8; 512];
    disk.read_at(0, &mut mbr)?;
    if mbr[510..512] != [0x55, 0xaa] {
        return Ok(vec![(
            Partition {
                start: 0,
                len: size,
            },
            PartitionType::None,
        )]);
    }
    let entry = |b: &[u8], i: usize| {
        let e = &b[446 + i * 16..462 + i * 16];
        let le = |o: usize| u64::from(u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]));
        (e[4], le(8), le(12))
    };
    if (0..4).any(|i| entry(&mbr, i).0 == 0xee) {
        return gpt(disk);
    }
    let mut out = Vec::new();
    let check = |start: u64, count: u64| -> io::Result<Partition> {
        let p = Partition {
            start: start.saturating_mul(512),
            len: count.saturating_mul(512),
        };
        past_end(p.start, 0, size)?;
        Ok(Partition {
            len: p.len.min(size - p.start),
            ..p
        })
    };
    for i in 0..4 {
        let (kind, lba, count) = entry(&mbr, i);
        match kind {
            0 => {}
            0x05 | 0x0f | 0x85 => {
                // The chain of extended boot records, each relative to the extended partition;
                // a chain that loops or runs long is refused.
                let mut next = 0u64;
                for hop in 0.. {
                    if hop == 128 {
                        return Err(invalid(
                            "the extended partition chain is longer than 128".into(),
                        ));
                    }
                    let mut ebr = [0u8; 512];
                    disk.read_at((lba + next).saturating_mul(512), &mut ebr)?;
                    if ebr[510..512] != [0x55, 0xaa] {
                        return Err(invalid(
                            "an extended boot record lacks its signature".into(),
                        ));
                    }
                    let (k, rel, n) = entry(&ebr, 0);
                    if k != 0 {
                        out.push((check(lba + next + rel, n)?, PartitionType::Mbr(k)));
                    }
                    let (k2, rel2, _) = entry(&ebr, 1);
                    if k2 == 0 || rel2 == 0 || rel2 <= next {
                        break;
                    }
                    next = rel2;
                }
            }
            _ => out.push((check(lba, count)?, PartitionType::Mbr(kind))),
        }
    }
    Ok(out)
}

fn gpt(disk: &mut dyn Disk) -> io::Result<Vec<(Partition, PartitionType)>> {
    let mut h = [0u8; 92];
    disk.read_at(512, &mut h)?;
    if &h[0..8] != b"EFI PART" {
        return Err(invalid(
            "the protective MBR promises a GPT, but LBA 1 holds none".into(),
        ));
    }
    let le32 = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let le64 = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
    let (entries_lba, count, entry_size) = (le64(72), le32(80), le32(84));
    if count > 1024 || !(128..=4096).contains(&entry_size) {
        return Err(invalid(format!(
            "a GPT of {count} entries of {entry_size} bytes is not plausible"
        )));
    }
    let mut table = vec![0u8; count as usize * entry_size as usize];
    disk.read_at(entries_lba.saturating_mul(512), &mut table)?;
    let size = disk.len();
    let mut out = Vec::new();
    for e in table.chunks_exact(entry_size as usize) {
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = u64::from_le_bytes(e[32..40].try_into().unwrap_or([0; 8]));
        let last = u64::from_le_bytes(e[40..48].try_into().unwrap_or([0; 8]));
        if last < first || first.saturating_mul(512) >= size {
            return Err(invalid(format!(
                "a GPT partition from LBA {first} to {last} lies outside the disk"
            )));
        }
        let start = first * 512;
        let mut kind = [0u8; 16];
        kind.copy_from_slice(&e[0..16]);
        out.push((
            Partition {
                start,
                len: ((last - first + 1) * 512).min(size - start),
            },
            PartitionType::Gpt(kind),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_disk_reads_each_chunk_once_and_returns_the_bytes_asked() {
        // Three chunks and a short fourth, with every byte distinct enough to catch an offset.
        let len = 3 * RAW_CHUNK as usize + 1000;
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        let mut raw = Raw::new(Slice::whole(file).unwrap());
        let read = |raw: &mut Raw, at: usize, n: usize| {
            let mut buf = vec![0; n];
            raw.read_at(at as u64, &mut buf).unwrap();
            assert_eq!(buf, bytes[at..at + n], "{n} bytes at {at}");
        };
        // An inode-sized read costs one chunk; reading it again costs nothing.
        read(&mut raw, 100, 256);
        assert_eq!(raw.bytes_read(), RAW_CHUNK);
        read(&mut raw, 4000, 256);
        assert_eq!(raw.bytes_read(), RAW_CHUNK);
        // Across a chunk boundary, into the short last chunk.
        read(&mut raw, RAW_CHUNK as usize - 10, 20);
        read(&mut raw, len - 1500, 1500);
        assert_eq!(raw.bytes_read(), 3 * RAW_CHUNK + 1000);
        // Past the end is an error, not a short read.
        assert!(raw.read_at(len as u64 - 1, &mut [0; 2]).is_err());

        // A large read goes straight through: its bytes once, and nothing of it is cached.
        let file = tempfile::tempfile().unwrap();
        file.set_len(RAW_DIRECT + 10).unwrap();
        let mut raw = Raw::new(Slice::whole(file).unwrap());
        raw.read_at(0, &mut vec![0; RAW_DIRECT as usize]).unwrap();
        assert_eq!(raw.bytes_read(), RAW_DIRECT);
        raw.read_at(0, &mut [0; 10]).unwrap();
        assert_eq!(raw.bytes_read(), RAW_DIRECT + RAW_CHUNK);
    }
}
