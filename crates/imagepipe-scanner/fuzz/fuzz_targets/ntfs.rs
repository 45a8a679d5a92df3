#![no_main]
// NTFS metadata is untrusted: the boot sector, MFT records and their update sequence arrays,
// attribute lists, data runs, directory index roots and B+tree index blocks are all read from
// the volume's bytes. The input is a list of changes to a real 4 MiB volume made by mkntfs and
// filled by ntfscp (windows-base/, written by scan_windows.rs' ignored `write_fuzz_bases`): its
// first byte says whether the volume ends early; then each 5 bytes are a sector among the
// volume's non-zero ones (u16), an offset in it (u16) and a byte to XOR there. Whatever they do,
// opening the volume, listing its directories, reading the hives and taking the inventory must
// end with a result or an error: no panic, no hang, no unbounded memory.
use std::io::Read as _;
use std::sync::OnceLock;

use imagepipe_scanner::disk::Disk;
use imagepipe_scanner::rootfs::Tree as _;
use imagepipe_scanner::windows;

struct Image {
    bytes: Vec<u8>,
    sectors: Vec<usize>,
}

fn base() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&include_bytes!("../windows-base/ntfs.img.gz")[..])
            .read_to_end(&mut bytes)
            .expect("the base volume decompresses");
        let sectors = (0..bytes.len())
            .step_by(512)
            .filter(|&at| bytes[at..at + 512].iter().any(|&b| b != 0))
            .collect();
        Image { bytes, sectors }
    })
}

/// The base volume with the input's changes, without copying it for each input.
struct Changed {
    base: &'static [u8],
    len: usize,
    changes: Vec<(usize, u8)>,
}

impl Disk for Changed {
    fn len(&self) -> u64 {
        self.len as u64
    }
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
    fn bytes_read(&self) -> u64 {
        0
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The reader turns a panic inside the `ntfs` crate into an error (windows::volume::guarded);
    // libFuzzer's own hook would abort on it first. A panic the reader lets through still
    // aborts: libfuzzer-sys aborts on any panic that leaves the target.
    static QUIET: OnceLock<()> = OnceLock::new();
    QUIET.get_or_init(|| std::panic::set_hook(Box::new(|_| {})));
    let Some((&mode, changes)) = data.split_first() else {
        return;
    };
    let image = base();
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
    let len = if mode & 1 != 0 {
        (image.bytes.len() / 2 + usize::from(mode >> 1) * 4096).min(image.bytes.len())
    } else {
        image.bytes.len()
    };
    let disk = Changed {
        base: &image.bytes,
        len,
        changes,
    };
    let Ok(Some(tree)) = windows::volume::open_disk(Box::new(disk)) else {
        return;
    };
    for dir in [
        "/",
        "/Windows",
        "/Windows/System32/config",
        "/Windows/WinSxS",
    ] {
        let _ = tree.list_meta(dir);
    }
    let _ = tree.read("/Windows/WinSxS/manifest-150.manifest");
    let _ = windows::inventory(&tree);
});
