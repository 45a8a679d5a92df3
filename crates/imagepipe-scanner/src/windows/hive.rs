//! A read-only reader of Windows registry hive files (`regf`), written from the format's public
//! description: Maxim Suhanov, "Windows registry file format specification"
//! (<https://github.com/msuhanov/regf/blob/master/Windows%20registry%20file%20format%20specification.md>).
//!
//! A hive is untrusted input: every offset, size and count is checked against the file before
//! it is used, subkey lists may nest only as far as Windows nests them (an index root of leaves),
//! and nothing is followed in a loop, so a hostile hive ends in an error, never a panic, a hang
//! or memory beyond its own size.
//!
//! Only what a scan needs is read: keys by path and their direct subkeys, and values. Hives that
//! Windows did not write back completely (the base block's two sequence numbers differ: the
//! newest changes are still in the `.LOG1`/`.LOG2` transaction logs) are refused, since their
//! contents may be stale.

use std::borrow::Cow;

/// The hive bins start after the 4096-byte base block; cell offsets count from there.
const BASE_BLOCK: usize = 4096;
/// Values larger than this are stored in segments behind a big data (`db`) cell (hive
/// version 1.4 and later).
const BIG_DATA_SEGMENT: usize = 16344;
/// Value types (winnt.h).
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
pub const REG_MULTI_SZ: u32 = 7;
pub const REG_QWORD: u32 = 11;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HiveError(pub String);

fn bad<T>(message: impl Into<String>) -> Result<T, HiveError> {
    Err(HiveError(message.into()))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A hive file's bytes.
#[derive(Debug)]
pub struct Hive {
    /// The hive bins (the file without its base block, cut at the size the base block gives).
    bins: Vec<u8>,
    minor: u32,
    root: u32,
}

impl Hive {
    /// Checks the base block (signature, sequence numbers, version, type, checksum, size).
    pub fn new(mut file: Vec<u8>) -> Result<Self, HiveError> {
        if file.len() < BASE_BLOCK || &file[0..4] != b"regf" {
            return bad("not a registry hive (no `regf` base block)");
        }
        let word = |at: usize| le32(&file, at).unwrap_or(0);
        let (primary, secondary) = (word(4), word(8));
        if primary != secondary {
            return bad(format!(
                "the hive was not written back completely (sequence numbers {primary} and {secondary}): its latest changes are only in its transaction logs; shut Windows down cleanly before the image is captured"
            ));
        }
        let (major, minor) = (word(20), word(24));
        if major != 1 || !(3..=6).contains(&minor) {
            return bad(format!(
                "hive format version {major}.{minor} is not 1.3 to 1.6"
            ));
        }
        if word(28) != 0 || word(32) != 1 {
            return bad("not a primary hive file (a transaction log or an unknown format)");
        }
        let mut sum = (0..508).step_by(4).fold(0u32, |x, at| x ^ word(at));
        if sum == 0 {
            sum = 1;
        } else if sum == u32::MAX {
            sum = u32::MAX - 1;
        }
        if sum != word(508) {
            return bad(format!(
                "the hive's base block checksum is {:#x}, not {sum:#x}: corrupt",
                word(508)
            ));
        }
        let size = word(40) as usize;
        if !size.is_multiple_of(4096) || size > file.len() - BASE_BLOCK {
            return bad(format!(
                "the hive claims {size} bytes of data but the file holds {}",
                file.len() - BASE_BLOCK
            ));
        }
        let root = word(36);
        file.truncate(BASE_BLOCK + size);
        file.drain(..BASE_BLOCK);
        let hive = Self {
            bins: file,
            minor,
            root,
        };
        hive.root()?;
        Ok(hive)
    }

    /// The data of the allocated cell at `offset`.
    fn cell(&self, offset: u32) -> Result<&[u8], HiveError> {
        let at = offset as usize;
        let Some(size) = le32(&self.bins, at).map(|s| s as i32) else {
            return bad(format!("a cell offset {offset:#x} beyond the hive"));
        };
        // Allocated cells have a negative size, a multiple of 8.
        if size >= 0 || size == i32::MIN {
            return bad(format!("the cell at {offset:#x} is not allocated"));
        }
        let size = size.unsigned_abs() as usize;
        if size < 8 || !size.is_multiple_of(8) {
            return bad(format!("the cell at {offset:#x} has a size of {size}"));
        }
        match self.bins.get(at + 4..at.saturating_add(size)) {
            Some(data) => Ok(data),
            None => bad(format!(
                "the cell at {offset:#x} of {size} bytes runs past the hive"
            )),
        }
    }

    /// The root key.
    pub fn root(&self) -> Result<Key<'_>, HiveError> {
        Key::at(self, self.root)
    }
}

/// Decodes a key or value name: Latin-1 when stored "compressed", else UTF-16LE.
fn name(bytes: &[u8], compressed: bool) -> String {
    if compressed {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        utf16(bytes)
    }
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Registry names compare without regard to case.
pub fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b) || a.to_uppercase() == b.to_uppercase()
}

/// A key node (`nk` cell).
#[derive(Debug, Clone, Copy)]
pub struct Key<'h> {
    hive: &'h Hive,
    nk: &'h [u8],
    offset: u32,
}

impl<'h> Key<'h> {
    fn at(hive: &'h Hive, offset: u32) -> Result<Self, HiveError> {
        let nk = hive.cell(offset)?;
        if nk.len() < 0x4c || &nk[0..2] != b"nk" {
            return bad(format!("the cell at {offset:#x} is not a key node"));
        }
        let key = Self { hive, nk, offset };
        if 0x4c + key.name_len() > nk.len() {
            return bad(format!("the key name at {offset:#x} runs past its cell"));
        }
        Ok(key)
    }

    fn field(&self, at: usize) -> u32 {
        le32(self.nk, at).unwrap_or(0)
    }

    fn name_len(&self) -> usize {
        usize::from(le16(self.nk, 0x48).unwrap_or(0))
    }

    /// The key's own name.
    pub fn name(&self) -> String {
        let compressed = le16(self.nk, 2).unwrap_or(0) & 0x0020 != 0;
        name(&self.nk[0x4c..0x4c + self.name_len()], compressed)
    }

    /// Its direct subkeys, in the order their list keeps them.
    pub fn subkeys(&self) -> Result<Vec<Key<'h>>, HiveError> {
        let count = self.field(0x14);
        let list = self.field(0x1c);
        if count == 0 || list == u32::MAX {
            return Ok(Vec::new());
        }
        let mut offsets = Vec::new();
        self.list(list, 0, &mut offsets)?;
        offsets.into_iter().map(|o| Key::at(self.hive, o)).collect()
    }

    /// A subkey list: `li` (offsets), `lf`/`lh` (offsets with name hints), or an index root
    /// `ri` of such lists, which Windows never nests deeper.
    fn list(&self, offset: u32, depth: u8, out: &mut Vec<u32>) -> Result<(), HiveError> {
        let cell = self.hive.cell(offset)?;
        let sig = cell.get(0..2).unwrap_or_default();
        let count = usize::from(le16(cell, 2).unwrap_or(0));
        let stride = match sig {
            b"li" | b"ri" => 4,
            b"lf" | b"lh" => 8,
            _ => return bad(format!("the cell at {offset:#x} is not a subkey list")),
        };
        if 4 + count * stride > cell.len() {
            return bad(format!(
                "the subkey list at {offset:#x} claims {count} entries, more than its cell holds"
            ));
        }
        for i in 0..count {
            let entry = le32(cell, 4 + i * stride).unwrap_or(u32::MAX);
            if sig == b"ri" {
                if depth > 0 {
                    return bad(format!(
                        "the subkey index at {offset:#x} nests index roots: not a hive Windows writes"
                    ));
                }
                self.list(entry, depth + 1, out)?;
            } else {
                out.push(entry);
            }
        }
        if out.len() > self.hive.bins.len() / 8 {
            return bad(format!(
                "the key at {:#x} lists more subkeys than the hive can hold",
                self.offset
            ));
        }
        Ok(())
    }

    /// The direct subkey named `name` (any case).
    pub fn subkey(&self, name: &str) -> Result<Option<Key<'h>>, HiveError> {
        Ok(self
            .subkeys()?
            .into_iter()
            .find(|k| same_name(&k.name(), name)))
    }

    /// The key at a `\`-separated path below this one.
    pub fn path(&self, path: &str) -> Result<Option<Key<'h>>, HiveError> {
        let mut key = *self;
        for part in path.split('\\').filter(|p| !p.is_empty()) {
            match key.subkey(part)? {
                Some(k) => key = k,
                None => return Ok(None),
            }
        }
        Ok(Some(key))
    }

    /// Its values, in the order its value list keeps them.
    pub fn values(&self) -> Result<Vec<Value<'h>>, HiveError> {
        let count = self.field(0x24) as usize;
        let list = self.field(0x28);
        if count == 0 || list == u32::MAX {
            return Ok(Vec::new());
        }
        let cell = self.hive.cell(list)?;
        if count * 4 > cell.len() {
            return bad(format!(
                "the value list at {list:#x} claims {count} values, more than its cell holds"
            ));
        }
        // Each value's data is a cell of its own, so together they cannot exceed the hive: data
        // cells shared between values (a hostile hive) would multiply what is decoded.
        let mut total = 0usize;
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let value = Value::at(self.hive, le32(cell, i * 4).unwrap_or(u32::MAX))?;
            total = total.saturating_add(value.data.len());
            if total > self.hive.bins.len() {
                return bad(format!(
                    "the values of the key at {:#x} hold more data than the whole hive: their data cells are shared",
                    self.offset
                ));
            }
            out.push(value);
        }
        Ok(out)
    }

    /// The value named `name` (any case; `""` is the default value).
    pub fn value(&self, name: &str) -> Result<Option<Value<'h>>, HiveError> {
        Ok(self
            .values()?
            .into_iter()
            .find(|v| same_name(&v.name, name)))
    }
}

/// A value (`vk` cell).
#[derive(Debug, Clone)]
pub struct Value<'h> {
    pub name: String,
    pub kind: u32,
    pub data: Cow<'h, [u8]>,
}

impl<'h> Value<'h> {
    fn at(hive: &'h Hive, offset: u32) -> Result<Self, HiveError> {
        let vk = hive.cell(offset)?;
        if vk.len() < 0x14 || &vk[0..2] != b"vk" {
            return bad(format!("the cell at {offset:#x} is not a value"));
        }
        let name_len = usize::from(le16(vk, 2).unwrap_or(0));
        let Some(raw_name) = vk.get(0x14..0x14 + name_len) else {
            return bad(format!("the value name at {offset:#x} runs past its cell"));
        };
        let compressed = le16(vk, 0x10).unwrap_or(0) & 0x0001 != 0;
        let size = le32(vk, 4).unwrap_or(0);
        let data_offset = le32(vk, 8).unwrap_or(0);
        let kind = le32(vk, 12).unwrap_or(0);
        let data: Cow<'h, [u8]> = if size & 0x8000_0000 != 0 {
            // Up to 4 bytes live in the offset field itself.
            let len = (size & 0x7fff_ffff) as usize;
            Cow::Owned(vk[8..12][..len.min(4)].to_vec())
        } else if size == 0 {
            Cow::Borrowed(&[])
        } else {
            let len = size as usize;
            let cell = hive.cell(data_offset)?;
            if len > BIG_DATA_SEGMENT && hive.minor > 3 && cell.get(0..2) == Some(b"db") {
                Cow::Owned(big_data(hive, cell, len, data_offset)?)
            } else {
                match cell.get(..len) {
                    Some(d) => Cow::Borrowed(d),
                    None => {
                        return bad(format!(
                            "the value at {offset:#x} claims {len} bytes, more than its data cell holds"
                        ));
                    }
                }
            }
        };
        Ok(Self {
            name: name(raw_name, compressed),
            kind,
            data,
        })
    }

    /// A string value's text (up to its first NUL); `None` for other types.
    pub fn string(&self) -> Option<String> {
        match self.kind {
            REG_SZ | REG_EXPAND_SZ => {
                let text = utf16(&self.data);
                Some(text.split('\0').next().unwrap_or("").to_string())
            }
            _ => None,
        }
    }

    /// A DWORD or QWORD value; `None` for other types or short data.
    pub fn number(&self) -> Option<u64> {
        let d = &self.data;
        match self.kind {
            REG_DWORD => Some(u64::from(u32::from_le_bytes(d.get(..4)?.try_into().ok()?))),
            REG_DWORD_BIG_ENDIAN => {
                Some(u64::from(u32::from_be_bytes(d.get(..4)?.try_into().ok()?)))
            }
            REG_QWORD => Some(u64::from_le_bytes(d.get(..8)?.try_into().ok()?)),
            _ => None,
        }
    }

    /// The value as text for comparisons: strings as they are, numbers in decimal, the strings
    /// of a multi-string joined by newlines, anything else as lowercase hex.
    pub fn text(&self) -> String {
        if let Some(s) = self.string() {
            return s;
        }
        if let Some(n) = self.number() {
            return n.to_string();
        }
        if self.kind == REG_MULTI_SZ {
            return utf16(&self.data)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
        }
        self.data.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The segments of a big data cell, joined and cut at `len`.
fn big_data(hive: &Hive, db: &[u8], len: usize, offset: u32) -> Result<Vec<u8>, HiveError> {
    let count = usize::from(le16(db, 2).unwrap_or(0));
    let list = hive.cell(le32(db, 4).unwrap_or(u32::MAX))?;
    // A value cannot hold more than the hive it is in, however its segments alias.
    if count * 4 > list.len() || count * BIG_DATA_SEGMENT < len || len > hive.bins.len() {
        return bad(format!(
            "the big data cell at {offset:#x} does not hold the {len} bytes its value claims"
        ));
    }
    let mut out = Vec::with_capacity(len);
    for i in 0..count {
        let segment = hive.cell(le32(list, i * 4).unwrap_or(u32::MAX))?;
        let want = (len - out.len()).min(BIG_DATA_SEGMENT);
        match segment.get(..want) {
            Some(s) => out.extend_from_slice(s),
            None => {
                return bad(format!(
                    "a segment of the big data cell at {offset:#x} is short"
                ));
            }
        }
        if out.len() == len {
            break;
        }
    }
    Ok(out)
}
