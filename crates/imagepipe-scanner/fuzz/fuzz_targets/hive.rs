#![no_main]
// Registry hives are untrusted: the base block, hive bins, cells, key nodes, subkey lists
// (li, lf, lh, ri), value lists, values and big data cells are all read from the hive's bytes.
// The input is either a hive of its own (first byte even) or a list of changes to a real
// SOFTWARE hive made by hivex (first byte odd; windows-base/SOFTWARE.gz, written by
// scan_windows.rs' ignored `write_fuzz_bases`): each 4 bytes an offset (u24) and a byte to XOR
// there (the base block's checksum is then made right again, so that changes reach the
// cells). Whatever they do, walking every key and value and taking the inventory must end with
// a result or an error: no panic, no hang, no unbounded memory.
use std::io::Read as _;
use std::sync::OnceLock;

use imagepipe_scanner::windows::hive::{Hive, Key};
use imagepipe_scanner::windows::{Hives, Inventory};

fn base() -> &'static [u8] {
    static HIVE: OnceLock<Vec<u8>> = OnceLock::new();
    HIVE.get_or_init(|| {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&include_bytes!("../windows-base/SOFTWARE.gz")[..])
            .read_to_end(&mut bytes)
            .expect("the base hive decompresses");
        bytes
    })
}

fn walk(key: &Key<'_>, depth: usize, budget: &mut usize) {
    if let Ok(values) = key.values() {
        for v in values {
            let _ = v.text();
        }
    }
    let Ok(subkeys) = key.subkeys() else { return };
    for k in subkeys {
        if *budget == 0 || depth > 16 {
            return;
        }
        *budget -= 1;
        let _ = k.name();
        walk(&k, depth + 1, budget);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut bytes = base().to_vec();
        for c in rest.chunks_exact(4) {
            let at = (usize::from(c[0]) | usize::from(c[1]) << 8 | usize::from(c[2]) << 16)
                % bytes.len();
            bytes[at] ^= c[3];
        }
        let word =
            |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut sum = (0..508).step_by(4).fold(0u32, |x, at| x ^ word(&bytes, at));
        if sum == 0 {
            sum = 1;
        } else if sum == u32::MAX {
            sum = u32::MAX - 1;
        }
        bytes[508..512].copy_from_slice(&sum.to_le_bytes());
        bytes
    };
    let Ok(hive) = Hive::new(bytes) else { return };
    if let Ok(root) = hive.root() {
        let mut budget = 2000;
        walk(&root, 0, &mut budget);
    }
    let hives = Hives {
        software: hive,
        system: None,
        sam: None,
        security: None,
    };
    let _ = Inventory::from_hives(&hives);
});
