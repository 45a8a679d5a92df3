//! The hive reader's index roots (`ri`): Windows splits a key's subkey list into several `lh`
//! (or, in older hives, `li`) lists under an `ri` cell once it outgrows one cell, but hivex
//! never writes one (it grows a single `lh`, even for 3,000 subkeys). So the test takes a
//! hive hivex wrote with many subkeys under one key and moves that key's list into an `ri` of
//! three lists (an `lh`, an `li` and an `lh`) in a hive bin appended as Windows appends bins;
//! hivex itself then reads the result (`hivexregedit --export`), and the reader must list what
//! it lists.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use imagepipe_scanner::windows::hive::Hive;
use imagepipe_testkit::windows::{self, Exported, Reg, cell};

const BASE: usize = 4096;
const SUBKEYS: usize = 600;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn put(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The offset (from the first bin) of `key`'s subkey list field's cell, and the list's offset.
fn nk_of(hive: &[u8], parent_nk: usize, name: &str) -> usize {
    let list = u32_at(hive, BASE + parent_nk + 4 + 0x1c) as usize;
    let cell = BASE + list + 4;
    assert_eq!(&hive[cell..cell + 2], b"lh", "hivex writes lh lists");
    let count = usize::from(u16::from_le_bytes([hive[cell + 2], hive[cell + 3]]));
    (0..count)
        .map(|i| u32_at(hive, cell + 4 + i * 8) as usize)
        .find(|&nk| {
            let at = BASE + nk + 4;
            let len = usize::from(u16::from_le_bytes([hive[at + 0x48], hive[at + 0x49]]));
            &hive[at + 0x4c..at + 0x4c + len] == name.as_bytes()
        })
        .unwrap()
}

/// Moves the subkey list of `Big` into an index root of three lists in a new bin.
fn split_into_index_root(hive: &mut Vec<u8>) {
    let root = u32_at(hive, 36) as usize;
    let big = nk_of(hive, root, "Big");
    let list_field = BASE + big + 4 + 0x1c;
    let old = u32_at(hive, list_field) as usize;
    let cell_at = BASE + old + 4;
    assert_eq!(&hive[cell_at..cell_at + 2], b"lh");
    let count = usize::from(u16::from_le_bytes([hive[cell_at + 2], hive[cell_at + 3]]));
    assert_eq!(count, SUBKEYS);
    let entries: Vec<[u8; 8]> = (0..count)
        .map(|i| {
            hive[cell_at + 4 + i * 8..cell_at + 12 + i * 8]
                .try_into()
                .unwrap()
        })
        .collect();

    let bins_size = u32_at(hive, 40) as usize;
    let mut cells = Vec::new();
    let mut lists = Vec::new();
    for (i, chunk) in entries.chunks(SUBKEYS.div_ceil(3)).enumerate() {
        // The middle list is an `li`: offsets only, no name hints.
        let (sig, stride) = if i == 1 { (b"li", 4) } else { (b"lh", 8) };
        let mut data = sig.to_vec();
        data.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        for e in chunk {
            data.extend_from_slice(&e[..stride]);
        }
        lists.push((bins_size + 0x20 + cells.len()) as u32);
        cells.extend(cell(&data));
    }
    let ri_offset = (bins_size + 0x20 + cells.len()) as u32;
    let mut ri = b"ri".to_vec();
    ri.extend_from_slice(&(lists.len() as u16).to_le_bytes());
    for l in &lists {
        ri.extend_from_slice(&l.to_le_bytes());
    }
    cells.extend(cell(&ri));

    let bin_size = (0x20 + cells.len() + 8).div_ceil(4096) * 4096;
    let mut bin = vec![0u8; bin_size];
    bin[0..4].copy_from_slice(b"hbin");
    put(&mut bin, 4, bins_size as u32);
    put(&mut bin, 8, bin_size as u32);
    bin[0x20..0x20 + cells.len()].copy_from_slice(&cells);
    // The rest of the bin is one free cell.
    let free = 0x20 + cells.len();
    put(&mut bin, free, (bin_size - free) as u32);

    hive.truncate(BASE + bins_size);
    hive.extend_from_slice(&bin);
    put(hive, list_field, ri_offset);
    // The old list's cell is freed (a positive size), as Windows frees a replaced list.
    let old_size =
        (i32::from_le_bytes(hive[BASE + old..BASE + old + 4].try_into().unwrap())).unsigned_abs();
    put(hive, BASE + old, old_size);
    put(hive, 40, (bins_size + bin_size) as u32);
    let sum = (0..508).step_by(4).fold(0u32, |x, at| x ^ u32_at(hive, at));
    put(hive, 508, sum.clamp(1, u32::MAX - 1));
}

#[test]
fn a_subkey_index_root_lists_what_hivex_lists() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<windows::Key> = (0..SUBKEYS)
        .map(|i| {
            (
                format!("Big\\Package_{i:04}~31bf3856ad364e35~amd64~~10.0.20348.{i}"),
                vec![("CurrentState".to_string(), Reg::Dword(i as u32))],
            )
        })
        .collect();
    let path = dir.path().join("SOFTWARE");
    windows::hive(&path, "SOFTWARE", &keys);
    let mut bytes = std::fs::read(&path).unwrap();
    split_into_index_root(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();

    // hivex reads the index root: what it exports is what the reader must list.
    let exported = windows::export(&path, "\\Big");
    let want: BTreeMap<String, u64> = exported
        .iter()
        .filter_map(|(k, values)| {
            let name = k.strip_prefix("Big\\")?;
            match values.get("currentstate")? {
                Exported::Number(n) => Some((name.to_string(), *n)),
                other => panic!("{k}: {other:?}"),
            }
        })
        .collect();
    assert_eq!(want.len(), SUBKEYS, "hivex lists every subkey");

    let hive = Hive::new(bytes).unwrap();
    let big = hive.root().unwrap().path("Big").unwrap().unwrap();
    let mut got = BTreeMap::new();
    for key in big.subkeys().unwrap() {
        let n = key
            .value("CurrentState")
            .unwrap()
            .unwrap()
            .number()
            .unwrap();
        got.insert(key.name(), n);
    }
    assert_eq!(got, want);
    // Lookups by name go through the index root too, in each of its lists.
    for i in [0, SUBKEYS / 2, SUBKEYS - 1] {
        let name = format!("package_{i:04}~31bf3856ad364e35~amd64~~10.0.20348.{i}");
        assert!(big.subkey(&name).unwrap().is_some(), "{name}");
    }
}
