//! OVA packages, read in place: the tar's member index, the OVF descriptor's file references,
//! and the `.mf` manifest's checksums. Nothing is extracted; each member is a byte range of the
//! stored artifact that import streams on.
//!
//! An OVA comes from a build, through stores, possibly from outside: every size, name and count
//! is checked before it is used, and every failure names the member and what is wrong.

use std::collections::BTreeMap;

use crate::store::ArtifactReader;

/// Limits that keep a hostile package from costing time or memory.
const MAX_MEMBERS: usize = 1000;
const MAX_DESCRIPTOR: u64 = 16 << 20;
const MAX_MANIFEST: u64 = 1 << 20;
const MAX_HEADER_DATA: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum OvaError {
    #[error("{location}: {message}")]
    Bad { location: String, message: String },
    #[error("{location}: {source}")]
    Io {
        location: String,
        source: std::io::Error,
    },
}

/// One member of the tar: a byte range of the artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// A checksum the manifest gives for a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// `SHA1`, `SHA256` or `SHA512`, as vSphere names them.
    pub algorithm: String,
    /// Lower-case hex.
    pub hex: String,
}

/// An OVA's parts, in upload order: the descriptor first, then the files it references.
#[derive(Debug, Clone)]
pub struct Package {
    pub descriptor: Member,
    pub manifest: Option<Member>,
    pub files: Vec<Member>,
    /// Per member name, from the manifest.
    pub checksums: BTreeMap<String, Checksum>,
}

impl Package {
    /// The descriptor and the referenced files.
    pub fn parts(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.descriptor).chain(&self.files)
    }
}

/// Reads an OVA's structure from `reader`.
pub async fn read(reader: &dyn ArtifactReader) -> Result<Package, OvaError> {
    let location = reader.location().to_string();
    let bad = |message: String| OvaError::Bad {
        location: location.clone(),
        message,
    };
    let members = index(reader).await?;
    let descriptor = members
        .first()
        .filter(|m| m.name.to_ascii_lowercase().ends_with(".ovf"))
        .cloned()
        .ok_or_else(|| {
            bad("the first member is not an OVF descriptor (.ovf); this is not an OVA".into())
        })?;
    let references = descriptor_references(reader, &descriptor).await?;
    let mut files = Vec::new();
    for (href, size) in references {
        let member = members.iter().find(|m| m.name == href).ok_or_else(|| {
            bad(format!(
                "the descriptor references `{href}`, which the OVA does not contain"
            ))
        })?;
        if let Some(size) = size
            && size != member.size
        {
            return Err(bad(format!(
                "the descriptor gives `{href}` {size} bytes, the OVA holds {}",
                member.size
            )));
        }
        files.push(member.clone());
    }

    let manifest = members
        .iter()
        .find(|m| m.name.to_ascii_lowercase().ends_with(".mf"))
        .cloned();
    let mut checksums = BTreeMap::new();
    if let Some(mf) = &manifest {
        let text = read_small(reader, mf, MAX_MANIFEST, "manifest").await?;
        checksums = parse_manifest(&text).map_err(|m| bad(format!("{}: {m}", mf.name)))?;
        for part in std::iter::once(&descriptor).chain(&files) {
            if !checksums.contains_key(&part.name) {
                return Err(bad(format!(
                    "the manifest {} has no checksum for `{}`",
                    mf.name, part.name
                )));
            }
        }
    }
    Ok(Package {
        descriptor,
        manifest,
        files,
        checksums,
    })
}

/// The files the descriptor `member` of `reader` references, with their sizes when given.
pub async fn descriptor_references(
    reader: &dyn ArtifactReader,
    member: &Member,
) -> Result<Vec<(String, Option<u64>)>, OvaError> {
    let text = read_small(reader, member, MAX_DESCRIPTOR, "descriptor").await?;
    references(&text).map_err(|m| OvaError::Bad {
        location: reader.location().to_string(),
        message: format!("{}: {m}", member.name),
    })
}

/// A member that is read whole (the descriptor, the manifest), refused beyond `max` bytes.
async fn read_small(
    reader: &dyn ArtifactReader,
    member: &Member,
    max: u64,
    what: &str,
) -> Result<Vec<u8>, OvaError> {
    let location = reader.location().to_string();
    if member.size > max {
        return Err(OvaError::Bad {
            location,
            message: format!(
                "the {what} {} is {} bytes; it may be at most {max}",
                member.name, member.size
            ),
        });
    }
    reader
        .read_at(member.offset, member.size as usize)
        .await
        .map_err(|source| OvaError::Io { location, source })
}

/// The regular-file members of a tar, in order.
pub async fn index(reader: &dyn ArtifactReader) -> Result<Vec<Member>, OvaError> {
    let location = reader.location().to_string();
    let bad = |message: String| OvaError::Bad {
        location: location.clone(),
        message,
    };
    let io = |source| OvaError::Io {
        location: location.clone(),
        source,
    };
    let len = reader.len();
    let mut members: Vec<Member> = Vec::new();
    let mut offset = 0u64;
    let mut next_name: Option<String> = None;
    let mut next_size: Option<u64> = None;
    for _ in 0..MAX_MEMBERS * 3 {
        if offset + 512 > len {
            return Err(bad(format!(
                "the tar ends at byte {len} inside a header at {offset}; the file is truncated"
            )));
        }
        let block = reader.read_at(offset, 512).await.map_err(io)?;
        if block.iter().all(|&b| b == 0) {
            return Ok(members);
        }
        let header =
            Header::parse(&block).map_err(|m| bad(format!("header at byte {offset}: {m}")))?;
        let data = offset + 512;
        let size = next_size.take().unwrap_or(header.size);
        let end = data
            .checked_add(size)
            .filter(|e| *e <= len)
            .ok_or_else(|| {
                bad(format!(
                    "member `{}` claims {size} bytes at {data}, beyond the end ({len}); the file is truncated",
                    header.name
                ))
            })?;
        match header.kind {
            b'L' | b'x' => {
                if size > MAX_HEADER_DATA {
                    return Err(bad(format!(
                        "an extended header of {size} bytes at {offset}"
                    )));
                }
                let bytes = reader.read_at(data, size as usize).await.map_err(io)?;
                if header.kind == b'L' {
                    next_name = Some(cstr(&bytes));
                } else {
                    let (name, size) =
                        pax(&bytes).map_err(|m| bad(format!("PAX header at {offset}: {m}")))?;
                    next_name = name.or(next_name);
                    next_size = size;
                }
            }
            b'g' => {}
            b'0' | 0 | b'7' => {
                let name = next_name.take().unwrap_or(header.name);
                let name = plain_name(&name).map_err(bad)?;
                if members.iter().any(|m| m.name == name) {
                    return Err(bad(format!("member `{name}` appears twice")));
                }
                if members.len() == MAX_MEMBERS {
                    return Err(bad(format!("more than {MAX_MEMBERS} members")));
                }
                members.push(Member {
                    name,
                    offset: data,
                    size,
                });
            }
            b'5' => {
                next_name = None;
            }
            other => {
                return Err(bad(format!(
                    "member `{}` is a {} (tar type `{}`); an OVA holds plain files only",
                    header.name,
                    match other {
                        b'1' => "hard link",
                        b'2' => "symbolic link",
                        b'3' | b'4' => "device",
                        b'6' => "FIFO",
                        _ => "special entry",
                    },
                    other as char
                )));
            }
        }
        offset = end
            .checked_next_multiple_of(512)
            .ok_or_else(|| bad("sizes overflow".into()))?;
    }
    Err(bad(format!("more than {} tar headers", MAX_MEMBERS * 3)))
}

struct Header {
    name: String,
    size: u64,
    kind: u8,
}

impl Header {
    fn parse(block: &[u8]) -> Result<Self, String> {
        let stored = octal(&block[148..156]).ok_or("the checksum field is not octal")?;
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if stored != sum {
            return Err(format!(
                "checksum {stored} does not match the header ({sum}); not a tar, or corrupt"
            ));
        }
        let size = if block[124] & 0x80 != 0 {
            // GNU base-256 for sizes beyond 8 GiB: the remaining bytes, big-endian.
            if block[124..128].iter().any(|&b| b & 0x7f != 0) && block[124] != 0x80 {
                return Err("a size beyond 2^64".into());
            }
            block[128..136]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        } else {
            octal(&block[124..136]).ok_or("the size field is not octal")?
        };
        let mut name = cstr(&block[0..100]);
        if &block[257..262] == b"ustar" {
            let prefix = cstr(&block[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        Ok(Self {
            name,
            size,
            kind: block[156],
        })
    }
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// `path` and `size` from PAX records (`<len> <key>=<value>\n`).
fn pax(bytes: &[u8]) -> Result<(Option<String>, Option<u64>), String> {
    let (mut name, mut size) = (None, None);
    let mut rest = bytes;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a record without a length")?;
        let n: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|n| *n > space && *n <= rest.len())
            .ok_or("a record length that does not fit")?;
        let record = &rest[space + 1..n];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        let text = String::from_utf8_lossy(record);
        if let Some((k, v)) = text.split_once('=') {
            match k {
                "path" => name = Some(v.to_string()),
                "size" => {
                    size = Some(
                        v.parse()
                            .map_err(|_| format!("size `{v}` is not a number"))?,
                    )
                }
                _ => {}
            }
        }
        rest = &rest[n..];
    }
    Ok((name, size))
}

/// OVA members sit side by side: a name is one plain component (`./` allowed).
fn plain_name(name: &str) -> Result<String, String> {
    let trimmed = name.strip_prefix("./").unwrap_or(name);
    if trimmed.is_empty()
        || trimmed == "."
        || trimmed == ".."
        || trimmed.contains(['/', '\\', '\0'])
    {
        return Err(format!(
            "member name `{}` is not a plain file name; an OVA's files sit at its top level",
            name.escape_debug()
        ));
    }
    Ok(trimmed.to_string())
}

/// The files an OVF descriptor references (`References/File`), with their sizes when given.
pub fn references(descriptor: &[u8]) -> Result<Vec<(String, Option<u64>)>, String> {
    let text = std::str::from_utf8(descriptor).map_err(|_| "the descriptor is not UTF-8")?;
    let doc = roxmltree::Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: 1 << 20,
        },
    )
    .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Envelope" {
        return Err(format!(
            "the root element is `{}`, not an OVF `Envelope`",
            root.tag_name().name()
        ));
    }
    let attr = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.attributes()
            .find(|a| a.name() == name)
            .map(|a| a.value().to_string())
    };
    let mut files = Vec::new();
    for file in root
        .children()
        .filter(|n| n.tag_name().name() == "References")
        .flat_map(|r| r.children())
        .filter(|n| n.tag_name().name() == "File")
    {
        let href = attr(file, "href").ok_or("a References/File has no ovf:href")?;
        if attr(file, "compression").is_some_and(|c| !c.is_empty() && c != "identity")
            || attr(file, "chunkSize").is_some()
        {
            return Err(format!(
                "`{href}` is compressed or chunked in the OVF sense, which content libraries do not import; package the disks as stream-optimized VMDKs"
            ));
        }
        let size = match attr(file, "size") {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| format!("`{href}` has size `{s}`, not a number"))?,
            ),
            None => None,
        };
        let href = plain_name(&href)?;
        if files.iter().any(|(h, _)| *h == href) {
            return Err(format!("`{href}` is referenced twice"));
        }
        files.push((href, size));
    }
    Ok(files)
}

/// Checksums from an OVF manifest: `SHA256(name)= hex` lines.
pub fn parse_manifest(text: &[u8]) -> Result<BTreeMap<String, Checksum>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the manifest is not UTF-8")?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line.split_once('(').and_then(|(alg, rest)| {
            let (name, digest) = rest.rsplit_once(")=")?;
            Some((alg.trim(), name, digest.trim()))
        });
        let Some((alg, name, digest)) = parsed else {
            return Err(format!(
                "line {}: `{line}` is not `SHA256(file)= hex`",
                n + 1
            ));
        };
        let hex_len = match alg {
            "SHA1" => 40,
            "SHA256" => 64,
            "SHA512" => 128,
            _ => {
                return Err(format!(
                    "line {}: algorithm `{alg}` is not SHA1, SHA256 or SHA512",
                    n + 1
                ));
            }
        };
        if digest.len() != hex_len || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("line {}: `{digest}` is not a {alg} digest", n + 1));
        }
        out.insert(
            name.to_string(),
            Checksum {
                algorithm: alg.to_string(),
                hex: digest.to_ascii_lowercase(),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryReader;

    /// A ustar archive of `(name, bytes)` members, as `tar --format=ustar` writes it.
    pub(crate) fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, bytes) in members {
            let h = super::ustar_header(name, bytes.len() as u64);
            out.extend_from_slice(&h);
            out.extend_from_slice(bytes);
            out.resize(out.len().next_multiple_of(512), 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    const OVF: &str = r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="disk1.vmdk" ovf:size="5"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:diskId="d1" ovf:fileRef="file1" ovf:capacity="1"/></DiskSection>
</Envelope>"#;

    fn sha(b: &[u8]) -> String {
        crate::hash::Sha256Hex::digest(b).to_string()
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn reads_descriptor_disks_and_manifest() {
        let mf = format!(
            "SHA256(x.ovf)= {}\nSHA256(disk1.vmdk)= {}\n",
            sha(OVF.as_bytes()),
            sha(b"abcde")
        );
        let ova = tar(&[
            ("x.ovf", OVF.as_bytes()),
            ("x.mf", mf.as_bytes()),
            ("disk1.vmdk", b"abcde"),
        ]);
        let p = run(read(&MemoryReader(ova))).unwrap();
        assert_eq!(p.descriptor.name, "x.ovf");
        assert_eq!(p.files.len(), 1);
        assert_eq!((p.files[0].offset, p.files[0].size), (512 * 5, 5));
        assert_eq!(p.checksums["disk1.vmdk"].hex, sha(b"abcde"));
        assert_eq!(p.parts().count(), 2);
    }

    #[test]
    fn hostile_and_broken_packages_are_refused_by_name() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tar(&[("x.ovf", OVF.as_bytes()), ("../disk1.vmdk", b"abcde")]),
                "`../disk1.vmdk` is not a plain file name",
            ),
            (
                tar(&[("x.ovf", OVF.as_bytes())]),
                "references `disk1.vmdk`, which the OVA does not contain",
            ),
            (
                tar(&[("x.ovf", OVF.as_bytes()), ("disk1.vmdk", b"abc")]),
                "gives `disk1.vmdk` 5 bytes, the OVA holds 3",
            ),
            (
                tar(&[("disk1.vmdk", b"abcde"), ("x.ovf", OVF.as_bytes())]),
                "the first member is not an OVF descriptor",
            ),
            (
                tar(&[("x.ovf", b"<Envelope"), ("disk1.vmdk", b"abcde")]),
                "not well-formed XML",
            ),
            (
                tar(&[("x.ovf", OVF.as_bytes()), ("x.ovf", OVF.as_bytes())]),
                "member `x.ovf` appears twice",
            ),
            (
                tar(&[
                    ("x.ovf", OVF.as_bytes()),
                    ("x.mf", b"MD5(x.ovf)= 00\n"),
                    ("disk1.vmdk", b"abcde"),
                ]),
                "algorithm `MD5` is not SHA1, SHA256 or SHA512",
            ),
        ];
        for (bytes, want) in cases {
            let err = run(read(&MemoryReader(bytes))).unwrap_err().to_string();
            assert!(err.contains(want), "{err}\nwanted: {want}");
        }

        // Truncated mid-member, a corrupt header, and a size far beyond the end.
        let good = tar(&[("x.ovf", OVF.as_bytes()), ("disk1.vmdk", b"abcde")]);
        let err = run(read(&MemoryReader(good[..700].to_vec())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        let mut corrupt = good.clone();
        corrupt[0] = b'y';
        let err = run(read(&MemoryReader(corrupt))).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        let mut huge = tar(&[("x.ovf", OVF.as_bytes())]);
        huge[124..136].copy_from_slice(b"77777777777\0");
        huge[148..156].copy_from_slice(b"        ");
        let sum: u32 = huge[..512].iter().map(|&b| u32::from(b)).sum();
        huge[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let err = run(read(&MemoryReader(huge))).unwrap_err().to_string();
        assert!(err.contains("beyond the end"), "{err}");
    }

    #[test]
    fn manifests() {
        let m =
            parse_manifest(b"SHA1(a.ovf)= 0123456789abcdef0123456789ABCDEF01234567\n\n").unwrap();
        assert_eq!(m["a.ovf"].algorithm, "SHA1");
        assert_eq!(m["a.ovf"].hex, "0123456789abcdef0123456789abcdef01234567");
        assert!(parse_manifest(b"SHA256(a)= 12\n").is_err());
        assert!(parse_manifest(b"garbage\n").is_err());
    }
}

/// A loose OVF export (a descriptor, the files it references and a manifest, stored as
/// separate artifacts), presented as the OVA that holds them, so that import reads and checks
/// it the way it reads an OVA. Nothing is copied: a member's bytes are its artifact's, and the
/// tar headers between them are made up on the fly. The descriptor comes first, as in an OVA.
#[derive(Debug)]
pub struct Loose<'a> {
    location: String,
    segments: Vec<Segment<'a>>,
    len: u64,
}

#[derive(Debug)]
struct Segment<'a> {
    /// Where the member's header starts in the made-up tar.
    start: u64,
    header: [u8; 512],
    reader: &'a dyn ArtifactReader,
    size: u64,
}

impl Segment<'_> {
    fn data_start(&self) -> u64 {
        self.start + 512
    }
    /// The end of the member's data padded to a whole block.
    fn end(&self) -> u64 {
        self.data_start() + self.size.div_ceil(512) * 512
    }
}

impl<'a> Loose<'a> {
    /// `files` by member name, descriptor first. Names must fit a tar header (100 bytes).
    pub fn new(
        location: String,
        files: Vec<(String, &'a dyn ArtifactReader)>,
    ) -> Result<Self, OvaError> {
        let mut segments = Vec::new();
        let mut pos = 0u64;
        for (name, reader) in files {
            if name.is_empty() || name.len() > 100 || name.contains('/') {
                return Err(OvaError::Bad {
                    location,
                    message: format!(
                        "`{name}` cannot be a member of an OVA: a plain file name of at most 100 bytes"
                    ),
                });
            }
            let header = ustar_header(&name, reader.len());
            let seg = Segment {
                start: pos,
                header,
                reader,
                size: reader.len(),
            };
            pos = seg.end();
            segments.push(seg);
        }
        Ok(Self {
            location,
            segments,
            // Two zero blocks end a tar.
            len: pos + 1024,
        })
    }

    /// Copies the made-up bytes (headers, padding, the end) and the members' bytes of
    /// `offset..offset+len` into `out`.
    async fn fill(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let end = offset + out.len() as u64;
        for seg in &self.segments {
            // The header.
            let (a, b) = (offset.max(seg.start), end.min(seg.data_start()));
            if a < b {
                let src = &seg.header[(a - seg.start) as usize..(b - seg.start) as usize];
                out[(a - offset) as usize..(b - offset) as usize].copy_from_slice(src);
            }
            // The data; padding stays zero.
            let (a, b) = (
                offset.max(seg.data_start()),
                end.min(seg.data_start() + seg.size),
            );
            if a < b {
                let bytes = seg
                    .reader
                    .read_at(a - seg.data_start(), (b - a) as usize)
                    .await?;
                out[(a - offset) as usize..(b - offset) as usize].copy_from_slice(&bytes);
            }
        }
        Ok(())
    }
}

/// A ustar header for a regular file, as `tar` writes one.
fn ustar_header(name: &str, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, width: usize, value: u64| {
        let text = format!("{value:0w$o}\0", w = width - 1);
        h[at..at + width].copy_from_slice(text.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}

#[async_trait::async_trait]
impl ArtifactReader for Loose<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        if offset + len as u64 > self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: {len} bytes at {offset} are past its end",
                    self.location
                ),
            ));
        }
        let mut out = vec![0u8; len];
        self.fill(offset, &mut out).await?;
        Ok(out)
    }

    async fn stream(&self, offset: u64, len: u64) -> std::io::Result<crate::store::ByteStream> {
        // A member's bytes are its artifact's: streamed (and hashed) by its own reader.
        if let Some(seg) = self
            .segments
            .iter()
            .find(|s| offset >= s.data_start() && offset + len <= s.data_start() + s.size)
        {
            return seg.reader.stream(offset - seg.data_start(), len).await;
        }
        // Anything else (headers) is small: read whole.
        if len > MAX_HEADER_DATA {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{}: a stream across members ({len} bytes at {offset})",
                    self.location
                ),
            ));
        }
        let bytes = self.read_at(offset, len as usize).await?;
        Ok(Box::pin(futures_util::stream::once(async move {
            Ok(bytes::Bytes::from(bytes))
        })))
    }

    async fn verify_whole(&self) -> std::io::Result<()> {
        for seg in &self.segments {
            seg.reader.verify_whole().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod loose_tests {
    use super::*;
    use crate::store::MemoryReader;

    #[tokio::test]
    async fn a_loose_export_reads_as_the_ova_tar_would_make_of_it() {
        let ovf = br#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References><File ovf:id="f1" ovf:href="vm-disk-0.vmdk" ovf:size="1000"/></References></Envelope>"#.to_vec();
        let disk: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let digest = crate::hash::Sha256Hex::digest;
        let mf = format!(
            "SHA256(vm.ovf)= {}\nSHA256(vm-disk-0.vmdk)= {}\n",
            digest(&ovf),
            digest(&disk)
        )
        .into_bytes();
        let (r1, r2, r3) = (
            MemoryReader(ovf.clone()),
            MemoryReader(disk.clone()),
            MemoryReader(mf.clone()),
        );
        let loose = Loose::new(
            "export".into(),
            vec![
                ("vm.ovf".into(), &r1 as &dyn ArtifactReader),
                ("vm-disk-0.vmdk".into(), &r2),
                ("vm.mf".into(), &r3),
            ],
        )
        .unwrap();
        // GNU tar is the oracle for the made-up archive.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.ova");
        std::fs::write(&path, loose.read_at(0, loose.len() as usize).await.unwrap()).unwrap();
        let list = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(list.status.success(), "{list:?}");
        assert_eq!(
            String::from_utf8_lossy(&list.stdout),
            "vm.ovf\nvm-disk-0.vmdk\nvm.mf\n"
        );
        let member = std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&path)
            .arg("vm-disk-0.vmdk")
            .output()
            .unwrap();
        assert_eq!(member.stdout, disk);
        // Import's reading of it: the descriptor first, the disk by reference, streamed from
        // the disk's own reader.
        let package = read(&loose).await.unwrap();
        assert_eq!(package.descriptor.name, "vm.ovf");
        assert_eq!(package.files.len(), 1);
        let f = &package.files[0];
        let chunks: Vec<bytes::Bytes> =
            futures_util::TryStreamExt::try_collect(loose.stream(f.offset, f.size).await.unwrap())
                .await
                .unwrap();
        let streamed = chunks.concat();
        assert_eq!(streamed, disk);
    }

    #[test]
    fn names_that_a_tar_header_cannot_hold_are_refused() {
        let r = MemoryReader(vec![]);
        let long = "x".repeat(101);
        for name in [long.as_str(), "a/b.vmdk", ""] {
            let err = Loose::new(
                "export".into(),
                vec![(name.into(), &r as &dyn ArtifactReader)],
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("cannot be a member of an OVA"),
                "{err}"
            );
        }
    }
}
