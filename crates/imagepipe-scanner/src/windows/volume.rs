//! Windows disks: the layout (EFI system, Microsoft reserved, basic data and recovery
//! partitions on GPT; system and boot partitions on MBR), and NTFS volumes read in place
//! through the `ntfs` crate as a [`Tree`], without mounting. The OS volume is the NTFS volume
//! that holds `Windows\System32\config\SOFTWARE`.
//!
//! What cannot be read is refused by name: BitLocker-encrypted volumes (their boot sector
//! carries the `-FVE-FS-` signature instead of `NTFS    `) and dynamic disks (Logical Disk
//! Manager partitions: MBR type 0x42, or the GPT LDM metadata and data types).

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use ntfs::indexes::NtfsFileNameIndex;
use ntfs::structured_values::{NtfsFileAttributeFlags, NtfsFileNamespace};
use ntfs::{Ntfs, NtfsAttributeFlags, NtfsFile};

use crate::disk::{self, Disk, Partition, PartitionType};
use crate::rootfs::{Meta, Tree};

/// Files larger than this are not read (the SOFTWARE hive of a long-serviced server is some
/// hundred MiB at most).
const MAX_FILE: u64 = 512 << 20;

/// What one lookup, listing or read may read from the volume beyond the file's own bytes: a
/// directory B+tree whose nodes point back at each other, or data runs that revisit the same
/// clusters, end with an error instead of running forever.
const OP_BUDGET: u64 = 64 << 20;

/// The path that makes an NTFS volume the Windows OS volume.
pub const SOFTWARE_HIVE: &str = "/Windows/System32/config/SOFTWARE";

/// GPT partition type GUIDs, as text (<https://learn.microsoft.com/en-us/windows/win32/api/vds/ns-vds-create_partition_parameters>).
pub const GPT_EFI_SYSTEM: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const GPT_MSR: &str = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE";
pub const GPT_BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
pub const GPT_RECOVERY: &str = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC";
pub const GPT_LDM_METADATA: &str = "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3";
pub const GPT_LDM_DATA: &str = "AF9B60A0-1431-4F62-BC68-3311714A69AD";

/// A GUID as GPT stores it: the first three fields little-endian, the rest as written.
pub fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0))
        .collect();
    let mut out = [0u8; 16];
    if hex.len() == 16 {
        out.copy_from_slice(&hex);
        out[0..4].reverse();
        out[4..6].reverse();
        out[6..8].reverse();
    }
    out
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The role a partition plays in a Windows layout, as its type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    EfiSystem,
    Reserved,
    Data,
    Recovery,
    DynamicDisk,
    Other,
}

pub fn role(kind: PartitionType) -> Role {
    let is = |g: &str| matches!(kind, PartitionType::Gpt(t) if t == guid_bytes(g));
    match kind {
        _ if is(GPT_EFI_SYSTEM) => Role::EfiSystem,
        PartitionType::Mbr(0xef) => Role::EfiSystem,
        _ if is(GPT_MSR) => Role::Reserved,
        _ if is(GPT_BASIC_DATA) => Role::Data,
        // NTFS/exFAT (0x07), and the hidden recovery type Windows gives WinRE (0x27).
        PartitionType::Mbr(0x07) => Role::Data,
        _ if is(GPT_RECOVERY) => Role::Recovery,
        PartitionType::Mbr(0x27) => Role::Recovery,
        _ if is(GPT_LDM_METADATA) || is(GPT_LDM_DATA) => Role::DynamicDisk,
        PartitionType::Mbr(0x42) => Role::DynamicDisk,
        _ => Role::Other,
    }
}

type SharedDisk = Rc<RefCell<Box<dyn Disk>>>;

/// A partition as `Read + Seek` for the `ntfs` crate, with a small block cache (the crate reads
/// structures a few bytes at a time) and a read budget per operation.
struct PartReader {
    disk: SharedDisk,
    part: Partition,
    pos: u64,
    /// Aligned blocks recently read, newest first.
    cache: Vec<(u64, Vec<u8>)>,
    budget: Rc<Cell<u64>>,
}

const BLOCK: u64 = 64 << 10;
const CACHED_BLOCKS: usize = 32;

impl PartReader {
    fn charge(&self, n: u64) -> io::Result<()> {
        let left = self.budget.get();
        if n > left {
            return Err(invalid(
                "the NTFS structures lead round in circles: one lookup read far more than the volume's own structures hold".into(),
            ));
        }
        self.budget.set(left - n);
        Ok(())
    }

    fn block(&mut self, index: u64) -> io::Result<&[u8]> {
        if let Some(i) = self.cache.iter().position(|(b, _)| *b == index) {
            let hit = self.cache.remove(i);
            self.cache.insert(0, hit);
        } else {
            let start = index * BLOCK;
            let len = BLOCK.min(self.part.len - start) as usize;
            let mut data = vec![0u8; len];
            self.disk
                .borrow_mut()
                .read_at(self.part.start + start, &mut data)?;
            if self.cache.len() == CACHED_BLOCKS {
                self.cache.pop();
            }
            self.cache.insert(0, (index, data));
        }
        Ok(self.cache.first().map_or(&[][..], |(_, d)| d.as_slice()))
    }
}

impl Read for PartReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.part.len || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.part.len - self.pos) as usize;
        self.charge(n as u64)?;
        if n as u64 >= BLOCK {
            // Large reads (file data) bypass the cache.
            self.disk
                .borrow_mut()
                .read_at(self.part.start + self.pos, &mut buf[..n])?;
            self.pos += n as u64;
            return Ok(n);
        }
        let within = (self.pos % BLOCK) as usize;
        let pos = self.pos;
        let block = self.block(pos / BLOCK)?;
        let n = n.min(block.len().saturating_sub(within));
        buf[..n].copy_from_slice(&block[within..within + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PartReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.part.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            target.ok_or_else(|| invalid("an NTFS seek before the volume's start".into()))?;
        Ok(self.pos)
    }
}

/// An NTFS volume of a disk image, read in place.
pub struct NtfsTree {
    disk: SharedDisk,
    reader: RefCell<PartReader>,
    ntfs: Ntfs,
    budget: Rc<Cell<u64>>,
    /// Which partition it is, for messages.
    pub what: String,
}

impl std::fmt::Debug for NtfsTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtfsTree")
            .field("what", &self.what)
            .finish()
    }
}

fn ntfs_err(what: &str, e: ntfs::NtfsError) -> io::Error {
    // The reader's own errors (the budget, the disk) come through as they are.
    if let ntfs::NtfsError::Io(e) = e {
        return io::Error::new(e.kind(), format!("{what}: {e}"));
    }
    invalid(format!("{what}: {e}"))
}

/// Runs one operation of the `ntfs` crate. The crate (0.4) indexes some on-disk structures
/// without checking their lengths first (an index entry shorter than its header panics in
/// `NtfsIndexEntry::key_length`; found by the `ntfs` fuzz target), so a panic inside it is
/// turned into an error naming the volume and path, like any other corrupt structure. Our own
/// state survives: the reader is positioned anew by every operation.
fn guarded<T>(what: &str, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    crate::guard::quietly(op).unwrap_or_else(|message| {
        Err(invalid(format!(
            "{what}: corrupt NTFS structures ({message}); the volume cannot be read"
        )))
    })
}

/// Whether a boot sector is NTFS's, BitLocker's, or something else's.
fn signature(boot: &[u8]) -> &[u8] {
    boot.get(3..11).unwrap_or_default()
}

impl NtfsTree {
    /// Opens the NTFS volume in `part`.
    pub fn open_partition(disk: SharedDisk, part: Partition, what: String) -> io::Result<Self> {
        let name = what.clone();
        guarded(&name, move || Self::open_unguarded(disk, part, what))
    }

    fn open_unguarded(disk: SharedDisk, part: Partition, what: String) -> io::Result<Self> {
        let budget = Rc::new(Cell::new(OP_BUDGET));
        let mut reader = PartReader {
            disk: disk.clone(),
            part,
            pos: 0,
            cache: Vec::new(),
            budget: budget.clone(),
        };
        let mut ntfs = Ntfs::new(&mut reader).map_err(|e| ntfs_err(&what, e))?;
        ntfs.read_upcase_table(&mut reader)
            .map_err(|e| ntfs_err(&format!("{what}: the $UpCase table"), e))?;
        Ok(Self {
            disk,
            reader: RefCell::new(reader),
            ntfs,
            budget,
            what,
        })
    }

    fn start(&self, extra: u64) {
        self.budget.set(OP_BUDGET.saturating_add(extra));
    }

    /// The file at `path` (`/`-separated, any case), or `None`.
    fn lookup<'n>(
        ntfs: &'n Ntfs,
        r: &mut PartReader,
        path: &str,
    ) -> Result<Option<NtfsFile<'n>>, ntfs::NtfsError> {
        let mut file = ntfs.root_directory(r)?;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !file.is_directory() {
                return Ok(None);
            }
            let next = {
                let index = file.directory_index(r)?;
                let mut finder = index.finder();
                match NtfsFileNameIndex::find(&mut finder, ntfs, r, part) {
                    None => return Ok(None),
                    Some(entry) => entry?.to_file(ntfs, r)?,
                }
            };
            file = next;
        }
        Ok(Some(file))
    }

    fn meta_of(dir: bool, attributes: NtfsFileAttributeFlags) -> Meta {
        // NTFS has ACLs, not modes: directories read as 0755 and files as 0644, owned by 0.
        Meta {
            mode: if dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            dir,
            symlink: attributes.contains(NtfsFileAttributeFlags::REPARSE_POINT),
        }
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, io::Error> {
        guarded(&format!("{}: {path}", self.what), || {
            self.read_unguarded(path)
        })
    }

    fn read_unguarded(&self, path: &str) -> Result<Option<Vec<u8>>, io::Error> {
        let mut r = self.reader.borrow_mut();
        let r = &mut *r;
        let err = |e| ntfs_err(&format!("{}: {path}", self.what), e);
        self.start(0);
        let Some(file) = Self::lookup(&self.ntfs, r, path).map_err(err)? else {
            return Ok(None);
        };
        if file.is_directory() {
            return Ok(None);
        }
        let Some(item) = file.data(r, "") else {
            return Ok(Some(Vec::new()));
        };
        let item = item.map_err(err)?;
        let attribute = item.to_attribute().map_err(err)?;
        let flags = attribute.flags();
        if flags.intersects(NtfsAttributeFlags::COMPRESSED | NtfsAttributeFlags::ENCRYPTED) {
            return Err(invalid(format!(
                "{}: {path} is NTFS-{} and cannot be read in place",
                self.what,
                if flags.contains(NtfsAttributeFlags::ENCRYPTED) {
                    "encrypted"
                } else {
                    "compressed"
                }
            )));
        }
        let len = attribute.value_length();
        if len > MAX_FILE {
            return Err(invalid(format!(
                "{}: {path} is {len} bytes, more than a registry hive can be",
                self.what
            )));
        }
        self.start(len);
        let value = attribute.value(r).map_err(err)?;
        let mut out = Vec::with_capacity(len as usize);
        value
            .attach(r)
            .take(len)
            .read_to_end(&mut out)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {path}: {e}", self.what)))?;
        if (out.len() as u64) < len {
            return Err(invalid(format!(
                "{}: {path} ends after {} of its {len} bytes",
                self.what,
                out.len()
            )));
        }
        Ok(Some(out))
    }

    fn metadata_unguarded(&self, path: &str) -> io::Result<Option<Meta>> {
        let mut r = self.reader.borrow_mut();
        self.start(0);
        let err = |e| ntfs_err(&format!("{}: {path}", self.what), e);
        let Some(file) = Self::lookup(&self.ntfs, &mut r, path).map_err(err)? else {
            return Ok(None);
        };
        let info = file.info().map_err(err)?;
        Ok(Some(Self::meta_of(
            file.is_directory(),
            info.file_attributes(),
        )))
    }

    fn list_unguarded(&self, dir: &str) -> io::Result<Vec<(String, Meta)>> {
        let mut r = self.reader.borrow_mut();
        let r = &mut *r;
        self.start(0);
        let err = |e| ntfs_err(&format!("{}: {dir}", self.what), e);
        let Some(file) = Self::lookup(&self.ntfs, r, dir).map_err(err)? else {
            return Ok(Vec::new());
        };
        if !file.is_directory() {
            return Ok(Vec::new());
        }
        let index = file.directory_index(r).map_err(err)?;
        let mut entries = index.entries();
        let mut out = Vec::new();
        while let Some(entry) = entries.next(r) {
            let entry = entry.map_err(err)?;
            let Some(key) = entry.key() else { continue };
            let name = key.map_err(err)?;
            // Each long name has an 8.3 twin in the DOS namespace: list it once.
            if name.namespace() == NtfsFileNamespace::Dos {
                continue;
            }
            let text = name.name().to_string_lossy();
            // The volume's own metadata files ($MFT, …) and the root's `.` are not files.
            if text == "."
                || (text.starts_with('$') && entry.file_reference().file_record_number() < 24)
            {
                continue;
            }
            out.push((
                text,
                Self::meta_of(name.is_directory(), name.file_attributes()),
            ));
            if out.len() > 4_000_000 {
                return Err(invalid(format!(
                    "{}: {dir} lists more than 4 million entries",
                    self.what
                )));
            }
        }
        Ok(out)
    }
}

impl Tree for NtfsTree {
    fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        guarded(&format!("{}: {path}", self.what), || {
            self.metadata_unguarded(path)
        })
    }

    fn list_meta(&self, dir: &str) -> io::Result<Vec<(String, Meta)>> {
        guarded(&format!("{}: {dir}", self.what), || {
            self.list_unguarded(dir)
        })
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        self.read_file(path)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        Ok(self.list_meta(dir)?.into_iter().map(|(n, _)| n).collect())
    }

    fn canonical(&self, path: &str) -> io::Result<String> {
        // Reparse points (junctions, symbolic links) are not followed.
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        Ok(format!("/{}", parts.join("/")))
    }

    fn bytes_read(&self) -> u64 {
        self.disk.borrow().bytes_read()
    }

    fn size(&self) -> u64 {
        self.disk.borrow().len()
    }
}

/// Finds the Windows OS volume of the disk image at `path`: `Ok(None)` when the disk holds no
/// NTFS volume with the SOFTWARE hive (not a Windows disk), an error when the Windows volumes
/// cannot be read (BitLocker, a dynamic disk) or are corrupt.
pub fn open(path: &Path) -> io::Result<Option<NtfsTree>> {
    // What is no disk image is not judged here either.
    match disk::open(path) {
        Ok(disk) => open_disk(disk),
        Err(_) => Ok(None),
    }
}

pub fn open_disk(disk: Box<dyn Disk>) -> io::Result<Option<NtfsTree>> {
    let disk: SharedDisk = Rc::new(RefCell::new(disk));
    // A volume without a partition table: its boot sector ends in 0x55 0xAA like an MBR, so
    // the table reader would take its boot code for partitions.
    let len = disk.borrow().len();
    let mut first = [0u8; 512];
    let bare = len >= 512
        && disk.borrow_mut().read_at(0, &mut first).is_ok()
        && matches!(signature(&first), b"NTFS    " | b"-FVE-FS-");
    let table = if bare {
        vec![(Partition { start: 0, len }, PartitionType::None)]
    } else {
        // A disk whose table cannot be read is not judged here: the Linux reader names the
        // fault.
        let Ok(table) = disk::table(&mut **disk.borrow_mut()) else {
            return Ok(None);
        };
        table
    };
    if let Some((p, _)) = table.iter().find(|(_, k)| role(*k) == Role::DynamicDisk) {
        return Err(invalid(format!(
            "the partition at byte {} belongs to a dynamic disk (Logical Disk Manager): its volumes cannot be read in place; convert the disk to a basic disk before capturing the image",
            p.start
        )));
    }
    let mut encrypted = Vec::new();
    for (part, kind) in table {
        if matches!(role(kind), Role::EfiSystem | Role::Reserved) || part.len < 4096 {
            continue;
        }
        let mut boot = [0u8; 512];
        disk.borrow_mut().read_at(part.start, &mut boot)?;
        let what = format!("the NTFS volume at byte {}", part.start);
        match signature(&boot) {
            b"-FVE-FS-" => encrypted.push(part.start),
            b"NTFS    " => {
                let tree = NtfsTree::open_partition(disk.clone(), part, what)?;
                if tree.metadata(SOFTWARE_HIVE)?.is_some_and(|m| !m.dir) {
                    return Ok(Some(tree));
                }
            }
            _ => {}
        }
    }
    if let Some(start) = encrypted.first() {
        return Err(invalid(format!(
            "the volume at byte {start} is BitLocker-encrypted: it cannot be read without its key; scan the image before BitLocker is turned on, or decrypt the volume (manage-bde -off) before capturing it"
        )));
    }
    Ok(None)
}
