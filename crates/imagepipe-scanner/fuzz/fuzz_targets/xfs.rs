#![no_main]
// XFS metadata is untrusted: superblock, inodes, extent lists, bmap and directory B+trees,
// directory blocks and links are all read from the image's bytes. A whole 16 MiB image is too
// big an input for libFuzzer to mutate well, so the input is a list of changes to one of two
// real images made by mkfs.xfs (xfs-base/make.sh): its first byte picks the image and whether
// v5 checksums are verified (off lets damage reach the structural checks behind them); then
// each 5 bytes are a sector among the image's non-zero ones (u16), an offset in it (u16) and a
// byte to XOR there. Whatever they do, opening and walking the whole tree must end with a
// result or an error: no panic, no hang, no unbounded memory.
use std::io::Read as _;
use std::sync::OnceLock;

use imagepipe_xfs::{ReadAt, Xfs};

struct Image {
    bytes: Vec<u8>,
    /// Offsets of the sectors that hold anything: metadata and the few data blocks.
    sectors: Vec<usize>,
}

fn base(which: usize) -> &'static Image {
    static IMAGES: [OnceLock<Image>; 2] = [OnceLock::new(), OnceLock::new()];
    IMAGES[which].get_or_init(|| {
        let gz: &[u8] = if which == 0 {
            include_bytes!("../xfs-base/v5.img.gz")
        } else {
            include_bytes!("../xfs-base/v4.img.gz")
        };
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut bytes)
            .expect("the base image decompresses");
        let sectors = (0..bytes.len())
            .step_by(512)
            .filter(|&at| bytes[at..at + 512].iter().any(|&b| b != 0))
            .collect();
        Image { bytes, sectors }
    })
}

/// The base image with the input's changes, without copying its 16 MiB for each input.
struct Changed {
    base: &'static [u8],
    len: usize,
    /// (offset, byte to XOR), sorted by offset.
    changes: Vec<(usize, u8)>,
}

impl ReadAt for Changed {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&end| end <= self.len)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self.base[start..end]);
        let first = self.changes.partition_point(|&(at, _)| at < start);
        for &(at, x) in self.changes[first..]
            .iter()
            .take_while(|&&(at, _)| at < end)
        {
            buf[at - start] ^= x;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len as u64
    }
}

/// Lists, stats, reads and follows everything under `dir`, to a bounded depth and count.
fn walk(fs: &mut Xfs, dir: &str, depth: usize, budget: &mut usize) {
    let Ok(Some(entries)) = fs.read_dir(dir) else {
        return;
    };
    // Every listing is whole; of a big directory only some entries are looked into, so that
    // an input runs fast enough to be worth mutating.
    let step = if entries.len() > 50 { 37 } else { 1 };
    for (name, meta) in entries.into_iter().step_by(step) {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        let _ = fs.metadata(&path);
        if meta.symlink {
            let _ = fs.read_link(&path);
        } else if meta.dir {
            if depth < 8 {
                walk(fs, &path, depth + 1, budget);
            }
        } else {
            let _ = fs.read_file(&path, 1 << 20);
            let mut buf = [0u8; 700];
            let _ = fs.read_range(&path, 4000, &mut buf);
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, changes)) = data.split_first() else {
        return;
    };
    let image = base(usize::from(mode & 1));
    let mut changes: Vec<(usize, u8)> = changes
        .chunks_exact(5)
        .map(|c| {
            let sector =
                image.sectors[usize::from(u16::from_le_bytes([c[0], c[1]])) % image.sectors.len()];
            (
                sector + usize::from(u16::from_le_bytes([c[2], c[3]])) % 512,
                c[4],
            )
        })
        .collect();
    changes.sort_by_key(|&(at, _)| at);
    // Sometimes a device shorter than the filesystem says.
    let len = if mode & 4 != 0 {
        image.bytes.len() / 2 + usize::from(mode >> 3) * 4096
    } else {
        image.bytes.len()
    };
    let dev = Changed {
        base: &image.bytes,
        len,
        changes,
    };
    let Ok(mut fs) = Xfs::open_with(Box::new(dev), mode & 2 == 0) else {
        return;
    };
    let mut budget = 500;
    walk(&mut fs, "/", 0, &mut budget);
    for path in [
        "/etc/os-release",
        "/link",
        "/node/entry-name-number-for-node-form-77",
        "/leaf/x",
    ] {
        let _ = fs.metadata(path);
        let _ = fs.read_file(path, 1 << 20);
    }
});
