#![no_main]
// LVM metadata is untrusted, and a striped volume's table (stripe count, chunk size, the
// areas' extents) decides where each byte of the volume is read from. The input is volume
// group metadata over two physical volumes (`id = "pvfuzz0"`, `"pvfuzz1"`, 64 MiB each); every
// volume it maps must stay inside them: each byte asked for maps into one physical volume,
// with a run that is not empty and does not leave it.
use std::collections::HashMap;

use imagepipe_scanner::disk::Partition;
use imagepipe_scanner::lvm::{Volumes, map_volumes};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts = [
        Partition {
            start: 1 << 20,
            len: 64 << 20,
        },
        Partition {
            start: 65 << 20,
            len: 64 << 20,
        },
    ];
    let pvs = HashMap::from([
        ("pvfuzz0".to_string(), parts[0]),
        ("pvfuzz1".to_string(), parts[1]),
    ]);
    let mut out = Volumes::default();
    if map_volumes(text, &pvs, &mut out).is_err() {
        return;
    }
    for v in &out.readable {
        for e in &v.extents {
            // The first and last bytes, and a few in between, of each extent.
            for at in [0, 1, e.len / 3, e.len / 2 + 4095, e.len.saturating_sub(1)] {
                if at >= e.len {
                    continue;
                }
                let (physical, run) = e.map(e.logical + at);
                assert!(
                    run > 0 && run <= e.len - at,
                    "{}: run {run} at {at}",
                    v.name
                );
                assert!(
                    parts.iter().any(|p| physical >= p.start
                        && physical
                            .checked_add(run)
                            .is_some_and(|end| end <= p.start + p.len)),
                    "{}: byte {at} maps to {physical}+{run}, outside both physical volumes",
                    v.name
                );
            }
        }
    }
});
