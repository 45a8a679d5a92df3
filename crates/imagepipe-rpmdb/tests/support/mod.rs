//! Test helpers: fixtures, a minimal rpm header reader and a seeded random generator (the NDB
//! writer is imagepipe-testkit's `ndb_writer`).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A fixture: `bdb/...` from the BerkeleyDB databases [`bdb_fixtures`] makes, anything else
/// from tests/fixtures.
pub fn fixture_path(rel: &str) -> PathBuf {
    match rel.strip_prefix("bdb/") {
        Some(rest) => bdb_fixtures().join(rest),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    }
}

/// The BerkeleyDB fixtures, made with the real tools by tests/fixtures/gen/make-bdb-fixtures.sh
/// (rpmbuild, rpm, db5.3_load, libdb, python3) once per target directory and again whenever a
/// file of gen/ changes. They are made, not committed: 4.7 MB of binary databases would say
/// less than the script that makes them and checks each against rpm itself.
pub fn bdb_fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let gen_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gen");
        // What the fixtures were made from: every file of gen/, by name and content.
        let mut files: Vec<PathBuf> = Vec::new();
        let mut todo = vec![gen_dir.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() { todo.push(p) } else { files.push(p) }
            }
        }
        files.sort();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for f in &files {
            std::hash::Hash::hash(&f.strip_prefix(&gen_dir).unwrap(), &mut hasher);
            std::hash::Hash::hash(&std::fs::read(f).unwrap(), &mut hasher);
        }
        let made_from = format!("{:016x}\n", std::hash::Hasher::finish(&hasher));
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rpmdb-bdb-fixtures");
        let stamp = dir.join("made-from");
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == made_from) {
            return dir;
        }
        let work = dir.with_extension(format!("{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let out = Command::new("sh")
            .arg(gen_dir.join("make-bdb-fixtures.sh"))
            .arg(&work)
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        assert!(
            out.status.success(),
            "make-bdb-fixtures.sh failed (it needs rpm, rpmbuild, db5.3-util, libdb5.3-dev, a C compiler and python3: scripts/deps installs them):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(work.join("made-from"), &made_from).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&work, &dir).unwrap();
        dir
    })
}

pub fn fixture(rel: &str) -> Vec<u8> {
    let p = fixture_path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A file of go-rpmdb's `pkg/testdata` (see tests/fixtures/go-rpmdb/README.md): from
/// `$GO_RPMDB_TESTDATA` if set, else from tests/fixtures/go-rpmdb. `None` (and a note on
/// stderr) when it is not there, so that the tests using it are skipped: these files are
/// copied from another project and may be kept outside the repository.
pub fn go_rpmdb_fixture(rel: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("GO_RPMDB_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixture_path("go-rpmdb"));
    let p = dir.join(rel);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("skipped: go-rpmdb test data {}: {e}", p.display());
            None
        }
    }
}

/// `expected-blobs.bin` as `sqlite-to-dbload.py` writes it: per row of the SQLite
/// `Packages` table, ordered by hnum, u32 LE hnum, u32 LE length, the blob.
pub fn parse_blobs_file(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let hnum = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((hnum, bytes[at + 8..at + 8 + len].to_vec()));
        at += 8 + len;
    }
    out
}

/// The header blobs of the SQLite database the BerkeleyDB fixtures were made from.
pub fn expected_bdb_blobs() -> Vec<(u32, Vec<u8>)> {
    parse_blobs_file(&fixture("bdb/expected-blobs.bin"))
}

/// `hnum name epoch:version-release.arch` lines, as the fixture script has rpm print them
/// (`--qf '%{DBINSTANCE} %{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\n'`).
pub fn qa_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// The same line for a header blob.
pub fn qa_line(hnum: u32, blob: &[u8]) -> String {
    let h = Header::parse(blob).unwrap_or_else(|e| panic!("header {hnum}: {e}"));
    format!(
        "{hnum} {} {}:{}-{}.{}",
        h.name,
        h.epoch.unwrap_or(0),
        h.version,
        h.release,
        h.arch
    )
}

/// The identifying fields of a header blob (rpm's header format: big-endian index length
/// and data length, 16-byte index entries tag/type/offset/count, then the data).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub source_rpm: String,
    pub install_time: Option<u32>,
}

impl Header {
    pub fn parse(blob: &[u8]) -> Result<Header, String> {
        let be = |at: usize| -> Result<u32, String> {
            blob.get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
                .ok_or_else(|| format!("truncated at {at}"))
        };
        let il = be(0)? as usize;
        let dl = be(4)? as usize;
        if il > 0xffff || dl > 0x0fff_ffff {
            return Err("beyond rpm's limits".into());
        }
        let data_start = 8 + 16 * il;
        let data = blob
            .get(data_start..data_start + dl)
            .ok_or("data past the blob")?;
        if blob.len() != data_start + dl {
            return Err(format!(
                "{} bytes where il/dl say {}",
                blob.len(),
                data_start + dl
            ));
        }
        let string = |off: usize| -> Result<String, String> {
            let rest = data.get(off..).ok_or("string past the data")?;
            let end = rest.iter().position(|&b| b == 0).ok_or("unterminated")?;
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        let int = |off: usize| -> Result<u32, String> {
            data.get(off..off + 4)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
                .ok_or_else(|| "int past the data".to_string())
        };
        let mut h = Header::default();
        for i in 0..il {
            let at = 8 + 16 * i;
            let (tag, off) = (be(at)?, be(at + 8)? as usize);
            match tag {
                1000 => h.name = string(off)?,
                1001 => h.version = string(off)?,
                1002 => h.release = string(off)?,
                1003 => h.epoch = Some(int(off)?),
                1008 => h.install_time = Some(int(off)?),
                1022 => h.arch = string(off)?,
                1044 => h.source_rpm = string(off)?,
                _ => {}
            }
        }
        Ok(h)
    }
}

/// SplitMix64: a small deterministic generator for the mutation tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
