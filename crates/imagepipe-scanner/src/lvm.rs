//! LVM2 logical volumes, as RHEL-family images keep their root filesystem: the physical
//! volume label (`LABELONE`), its metadata area, and the volume group's text metadata, which
//! maps each logical volume's extents to places on the disk. Linear volumes (the installer's
//! layout) and striped ones (`lvcreate -i N`) are read; mirrored, RAID and thin volumes are
//! reported, not read.
//!
//! On-disk format: lvm2's `lib/format_text/layout.h` and `lib/label/label.h`; text metadata:
//! `lvm2 lib/format_text/import_vsn1.c`, described in `man 5 lvm.conf`-style syntax. Striping:
//! what the kernel's dm-stripe target does with the table lvm2 gives it
//! (`drivers/md/dm-stripe.c`, `stripe_map_sector`): chunk `c` of the segment is on stripe
//! `c % stripes`, at chunk `c / stripes` of that stripe's area.

use std::collections::HashMap;
use std::io;

use super::disk::{Disk, Partition};

const SECTOR: u64 = 512;
const LABEL_MAGIC: &[u8; 8] = b"LABELONE";
const LABEL_TYPE: &[u8; 8] = b"LVM2 001";
const MDA_MAGIC: &[u8; 16] = b"\x20LVM2\x20x[5A%r0N*>";
/// Bytes of text metadata a sane volume group needs many times over.
const MAX_METADATA: u64 = 4 << 20;
const MAX_DEPTH: usize = 16;

/// Most stripes a segment may have (lvm2's `MAX_STRIPES`).
const MAX_STRIPES: u64 = 128;

/// A stretch of a volume: `len` bytes at `logical` in the volume. Linear, they are at
/// `physical` on the disk; striped, they go round `striping`'s areas a chunk at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub len: u64,
    pub striping: Option<Striping>,
}

/// How a striped segment is laid out: chunks of `chunk` bytes, the first on the area starting
/// at `areas[0]` on the disk, the next on `areas[1]`, and so on round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Striping {
    pub chunk: u64,
    pub areas: Vec<u64>,
}

impl Extent {
    /// `len` bytes at `logical` in the volume, at `physical` on the disk.
    pub fn linear(logical: u64, physical: u64, len: u64) -> Self {
        Self {
            logical,
            physical,
            len,
            striping: None,
        }
    }

    /// Whether byte `at` of the volume lies in this extent.
    pub fn contains(&self, at: u64) -> bool {
        self.logical <= at && at - self.logical < self.len
    }

    /// Where byte `at` of the volume (one this extent [`contains`](Self::contains)) is on the
    /// disk, and how many bytes from there on are contiguous on the disk and in the volume.
    pub fn map(&self, at: u64) -> (u64, u64) {
        let within = at - self.logical;
        let rest = self.len - within;
        match &self.striping {
            None => (self.physical + within, rest),
            Some(s) => {
                let n = s.areas.len() as u64;
                let (chunk, offset) = (within / s.chunk, within % s.chunk);
                let area = s.areas[(chunk % n) as usize];
                (
                    area + (chunk / n) * s.chunk + offset,
                    (s.chunk - offset).min(rest),
                )
            }
        }
    }
}

/// A logical volume that can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// `vg/lv`.
    pub name: String,
    pub extents: Vec<Extent>,
    pub len: u64,
}

/// What LVM holds on a disk: readable volumes, and the names of those that are not (with why).
#[derive(Debug, Default)]
pub struct Volumes {
    pub readable: Vec<Volume>,
    pub unreadable: Vec<String>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("LVM: {message}"))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// One physical volume: its UUID (without dashes) and the metadata text of its volume group.
struct Pv {
    uuid: String,
    partition: Partition,
    metadata: Option<String>,
}

/// Reads the physical volume label of `part`, if it has one.
fn physical_volume(disk: &mut dyn Disk, part: Partition) -> io::Result<Option<Pv>> {
    if part.len < 4 * SECTOR {
        return Ok(None);
    }
    let mut head = [0u8; 4 * SECTOR as usize];
    disk.read_at(part.start, &mut head)?;
    // The label may sit in any of the first four sectors (the second, in practice).
    let Some(sector) = (0..4).find(|i| {
        let s = &head[i * 512..(i + 1) * 512];
        &s[0..8] == LABEL_MAGIC && &s[24..32] == LABEL_TYPE
    }) else {
        return Ok(None);
    };
    let label = &head[sector * 512..(sector + 1) * 512];
    let pvh = le32(label, 20) as usize;
    if !(32..=512 - 48).contains(&pvh) {
        return Err(invalid(format!(
            "the PV header offset {pvh} lies outside its label sector"
        )));
    }
    let uuid = String::from_utf8_lossy(&label[pvh..pvh + 32]).into_owned();
    // Data areas, then metadata areas: (offset, size) pairs, each list ended by zeros.
    let mut at = pvh + 40;
    let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    for list in &mut lists {
        loop {
            if at + 16 > 512 {
                return Err(invalid(
                    "the PV header's area lists run past its sector".into(),
                ));
            }
            let (offset, size) = (le64(label, at), le64(label, at + 8));
            at += 16;
            if offset == 0 && size == 0 {
                break;
            }
            list.push((offset, size));
        }
    }
    let metadata = match lists[1].first() {
        Some(&(offset, size)) => Some(read_metadata(disk, part, offset, size)?),
        None => None,
    };
    Ok(Some(Pv {
        uuid,
        partition: part,
        metadata,
    }))
}

/// The current metadata text of a metadata area: a header, then a circular buffer whose
/// current copy the header's first location points at.
fn read_metadata(
    disk: &mut dyn Disk,
    part: Partition,
    offset: u64,
    size: u64,
) -> io::Result<String> {
    if size < 2 * SECTOR || offset.checked_add(size).is_none_or(|e| e > part.len) {
        return Err(invalid(format!(
            "a metadata area of {size} bytes at {offset} does not fit the {} bytes of its volume",
            part.len
        )));
    }
    let mut h = [0u8; SECTOR as usize];
    disk.read_at(part.start + offset, &mut h)?;
    if &h[4..20] != MDA_MAGIC {
        return Err(invalid(format!(
            "no metadata area header at byte {offset} of the physical volume"
        )));
    }
    // Locations follow the header fields: (offset, size, checksum, flags).
    let (loc, len, flags) = (le64(&h, 40), le64(&h, 48), le32(&h, 60));
    if len == 0 || flags & 1 != 0 {
        return Err(invalid(
            "the metadata area holds no current metadata".into(),
        ));
    }
    let ring = size - SECTOR;
    if len > MAX_METADATA || len > ring || loc < SECTOR || loc >= size {
        return Err(invalid(format!(
            "metadata of {len} bytes at {loc} does not fit its area of {size} bytes"
        )));
    }
    let mut text = vec![0u8; len as usize];
    // The copy may wrap from the end of the area to just after its header.
    let first = len.min(size - loc) as usize;
    disk.read_at(part.start + offset + loc, &mut text[..first])?;
    if first < text.len() {
        disk.read_at(part.start + offset + SECTOR, &mut text[first..])?;
    }
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    String::from_utf8(text[..end].to_vec())
        .map_err(|_| invalid("the metadata text is not UTF-8".into()))
}

/// A value of the text metadata.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(i64),
    List(Vec<Value>),
    Section(Vec<(String, Value)>),
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Section(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn num(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Num(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn sections(&self) -> impl Iterator<Item = (&str, &Value)> {
        let fields = match self {
            Value::Section(f) => f.as_slice(),
            _ => &[],
        };
        fields
            .iter()
            .filter(|(_, v)| matches!(v, Value::Section(_)))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Parses LVM's text metadata: `key = value` and `name { … }`, values quoted strings,
/// integers or `[ … ]` lists, `#` comments.
fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let fields = p.fields(0)?;
    if p.i < p.s.len() {
        return Err(format!("an unexpected `}}` at byte {}", p.i));
    }
    Ok(Value::Section(fields))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if c == b'#' {
                while self.s.get(self.i).is_some_and(|&c| c != b'\n') {
                    self.i += 1;
                }
            } else if c.is_ascii_whitespace() {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn fields(&mut self, depth: usize) -> Result<Vec<(String, Value)>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("sections nested deeper than {MAX_DEPTH}"));
        }
        let mut out = Vec::new();
        loop {
            self.skip();
            match self.s.get(self.i) {
                None | Some(b'}') => return Ok(out),
                _ => {}
            }
            let start = self.i;
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || b"_-.+".contains(c))
            {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!("a name expected at byte {start}"));
            }
            let key = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
            self.skip();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let inner = self.fields(depth + 1)?;
                    if self.s.get(self.i) != Some(&b'}') {
                        return Err(format!("section `{key}` is not closed"));
                    }
                    self.i += 1;
                    out.push((key, Value::Section(inner)));
                }
                Some(b'=') => {
                    self.i += 1;
                    self.skip();
                    let v = self.value(true)?;
                    out.push((key, v));
                }
                _ => return Err(format!("`=` or `{{` expected after `{key}`")),
            }
        }
    }

    fn value(&mut self, list_allowed: bool) -> Result<Value, String> {
        match self.s.get(self.i) {
            Some(b'"') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err("a string is not closed".into()),
                        Some(b'"') => break,
                        Some(b'\\') if self.i + 1 < self.s.len() => {
                            out.push(self.s[self.i + 1]);
                            self.i += 2;
                        }
                        Some(&c) => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
                self.i += 1;
                Ok(Value::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(b'[') if list_allowed => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip();
                    match self.s.get(self.i) {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::List(items));
                        }
                        Some(b',') => self.i += 1,
                        None => return Err("a list is not closed".into()),
                        _ => items.push(self.value(false)?),
                    }
                }
            }
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'.')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                // Floats appear only in fields a reader never needs; they count as 0.
                text.parse::<i64>()
                    .or_else(|_| text.parse::<f64>().map(|_| 0))
                    .map(Value::Num)
                    .map_err(|_| format!("a value expected at byte {start}"))
            }
        }
    }
}

/// The volume groups described by `text`, their linear volumes mapped onto `pvs` (physical
/// volume UUIDs without dashes, to where they are on the disk).
pub fn map_volumes(
    text: &str,
    pvs: &HashMap<String, Partition>,
    out: &mut Volumes,
) -> Result<(), String> {
    let root = parse(text)?;
    for (vg_name, vg) in root.sections() {
        let Some(physical) = vg.get("physical_volumes") else {
            continue;
        };
        let extent = vg
            .num("extent_size")
            .filter(|&n| n > 0)
            .and_then(|n| n.checked_mul(SECTOR))
            .ok_or_else(|| format!("volume group `{vg_name}` has no extent_size"))?;
        // Metadata PV names (`pv0`) to where their extents start on this disk.
        let mut starts: HashMap<&str, Option<(Partition, u64)>> = HashMap::new();
        for (pv_name, pv) in physical.sections() {
            let uuid = pv.str("id").unwrap_or("").replace('-', "");
            let place = pvs.get(&uuid).and_then(|part| {
                let pe_start = pv.num("pe_start")?.checked_mul(SECTOR)?;
                Some((*part, pe_start))
            });
            starts.insert(pv_name, place);
        }
        let Some(lvs) = vg.get("logical_volumes") else {
            continue;
        };
        'lv: for (lv_name, lv) in lvs.sections() {
            let name = format!("{vg_name}/{lv_name}");
            let mut extents = Vec::new();
            for (_, seg) in lv.sections() {
                match seg.str("type") {
                    Some("striped") => {}
                    Some(t) => {
                        out.unreadable.push(format!("{name} (a `{t}` volume)"));
                        continue 'lv;
                    }
                    None => {
                        out.unreadable
                            .push(format!("{name} (a segment without a type)"));
                        continue 'lv;
                    }
                }
                let (Some(first), Some(count), Some(Value::List(stripes))) = (
                    seg.num("start_extent"),
                    seg.num("extent_count"),
                    seg.get("stripes"),
                ) else {
                    return Err(format!("{name}: a segment lacks its extents"));
                };
                let n = seg.num("stripe_count").unwrap_or(0);
                if n == 0 || n > MAX_STRIPES || stripes.len() as u64 != 2 * n {
                    return Err(format!(
                        "{name}: a segment of {n} stripes lists {} `\"pvN\", extent` values",
                        stripes.len()
                    ));
                }
                let overflow = || format!("{name}: extents beyond any disk");
                let logical = first.checked_mul(extent).ok_or_else(overflow)?;
                let seg_len = count.checked_mul(extent).ok_or_else(overflow)?;
                // Each stripe holds an equal share of the extents (lvm2's `area_len`), in
                // whole chunks, as dm-stripe requires of the table.
                let chunk = if n == 1 {
                    seg_len
                } else {
                    seg.num("stripe_size")
                        .filter(|&c| c > 0)
                        .and_then(|c| c.checked_mul(SECTOR))
                        .ok_or_else(|| format!("{name}: a striped segment without a stripe_size"))?
                };
                if count % n != 0 || chunk == 0 || (seg_len / n) % chunk != 0 {
                    return Err(format!(
                        "{name}: {count} extents do not split into {n} stripes of whole {chunk}-byte chunks"
                    ));
                }
                let area_len = seg_len / n;
                let mut areas = Vec::new();
                for pair in stripes.chunks_exact(2) {
                    let [Value::Str(pv), Value::Num(pe)] = pair else {
                        return Err(format!(
                            "{name}: a segment's stripes are not `\"pvN\", extent` pairs"
                        ));
                    };
                    let Some(Some((part, pe_start))) = starts.get(pv.as_str()) else {
                        out.unreadable.push(format!(
                            "{name} (on physical volume `{pv}`, not in this image)"
                        ));
                        continue 'lv;
                    };
                    let within = u64::try_from(*pe)
                        .ok()
                        .and_then(|pe| pe.checked_mul(extent))
                        .and_then(|o| o.checked_add(*pe_start))
                        .ok_or_else(overflow)?;
                    if within.checked_add(area_len).is_none_or(|e| e > part.len) {
                        return Err(format!(
                            "{name}: extents past the end of their physical volume ({} bytes)",
                            part.len
                        ));
                    }
                    areas.push(part.start + within);
                }
                extents.push(Extent {
                    logical,
                    physical: areas[0],
                    len: seg_len,
                    striping: (n > 1).then_some(Striping { chunk, areas }),
                });
            }
            extents.sort_by_key(|e| e.logical);
            // A volume's segments must tile it from its start, without gaps or overlaps; its
            // length is where the last one ends.
            let mut len = 0u64;
            for e in &extents {
                if e.logical != len {
                    return Err(format!(
                        "{name}: its segments leave a gap or overlap at byte {len}"
                    ));
                }
                len = len
                    .checked_add(e.len)
                    .ok_or_else(|| format!("{name}: extents beyond any disk"))?;
            }
            if !extents.is_empty() {
                out.readable.push(Volume { name, extents, len });
            }
        }
    }
    Ok(())
}

/// The logical volumes on `parts` of `disk`: every partition with a physical volume label
/// contributes its place, and each volume group's newest metadata maps the volumes.
pub fn volumes(disk: &mut dyn Disk, parts: &[Partition]) -> io::Result<Volumes> {
    let mut pvs = Vec::new();
    for &p in parts {
        if let Some(pv) = physical_volume(disk, p)? {
            pvs.push(pv);
        }
    }
    let places: HashMap<String, Partition> = pvs
        .iter()
        .map(|pv| (pv.uuid.clone(), pv.partition))
        .collect();
    let mut out = Volumes::default();
    let mut seen = std::collections::HashSet::new();
    for pv in &pvs {
        // Every PV of a group carries the same metadata.
        let Some(text) = &pv.metadata else { continue };
        if !seen.insert(text.clone()) {
            continue;
        }
        map_volumes(text, &places, &mut out)
            .map_err(|m| invalid(format!("the volume group metadata: {m}")))?;
    }
    out.readable.sort_by(|a, b| a.name.cmp(&b.name));
    out.readable.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"vg0 {
id = "4GScnR-y3Sc-ITK7-UQHv-H851-ntHw-fXMt3N"
seqno = 3
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 2048	# 1 MiB
physical_volumes {
pv0 {
id = "B4OESY-Ci6G-1fHO-yz2l-g1NA-mT6e-KmIVGd"
pe_start = 2048
pe_count = 23
}
}
logical_volumes {
root {
segment_count = 2
segment1 {
start_extent = 0
extent_count = 4
type = "striped"
stripe_count = 1
stripes = [
"pv0", 0
]
}
segment2 {
start_extent = 4
extent_count = 4
type = "striped"
stripe_count = 1
stripes = [
"pv0", 8
]
}
}
pool {
segment1 {
start_extent = 0
extent_count = 4
type = "thin-pool"
}
}
}
}
# Generated by LVM2
contents = "Text Format Volume Group"
version = 1
creation_time = 1795371797	# Sun Nov 22 18:23:17 2026
"#;

    #[test]
    fn maps_linear_volumes_and_names_the_others() {
        let pvs = HashMap::from([(
            "B4OESYCi6G1fHOyz2lg1NAmT6eKmIVGd".to_string(),
            Partition {
                start: 10 << 20,
                len: 24 << 20,
            },
        )]);
        let mut out = Volumes::default();
        map_volumes(TEXT, &pvs, &mut out).unwrap();
        assert_eq!(
            out.readable,
            [Volume {
                name: "vg0/root".into(),
                len: 8 << 20,
                extents: vec![
                    Extent::linear(0, 11 << 20, 4 << 20),
                    Extent::linear(4 << 20, 19 << 20, 4 << 20),
                ],
            }]
        );
        assert_eq!(out.unreadable, ["vg0/pool (a `thin-pool` volume)"]);
    }

    #[test]
    fn hostile_metadata_is_an_error() {
        let pvs = HashMap::new();
        for bad in [
            "vg {",
            "vg { x = \"open",
            "vg { x = [1, 2",
            "= 1",
            &"a { ".repeat(100),
            "vg { physical_volumes { } extent_size = 0 }",
        ] {
            assert!(
                map_volumes(bad, &pvs, &mut Volumes::default()).is_err(),
                "{bad}"
            );
        }
        let past_end = TEXT.replace("\"pv0\", 8", "\"pv0\", 9000000000000");
        let pvs = HashMap::from([(
            "B4OESYCi6G1fHOyz2lg1NAmT6eKmIVGd".to_string(),
            Partition {
                start: 0,
                len: 24 << 20,
            },
        )]);
        let err = map_volumes(&past_end, &pvs, &mut Volumes::default()).unwrap_err();
        assert!(
            err.contains("beyond any disk") || err.contains("past the end"),
            "{err}"
        );
    }
}
