//! CRC32C (Castagnoli), as v5 filesystems checksum their metadata (fs/xfs/libxfs/xfs_cksum.h):
//! seeded with !0 over the buffer with its 4-byte checksum field taken as zeros, inverted,
//! stored little-endian.

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Whether `buf` holds the right checksum in its 4 bytes at `at` (xfs_verify_cksum).
pub(crate) fn verify(buf: &[u8], at: usize) -> bool {
    let Some(field) = buf.get(at..at + 4) else {
        return false;
    };
    let stored = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
    let crc = update(update(update(!0, &buf[..at]), &[0; 4]), &buf[at + 4..]);
    !crc == stored
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(!super::update(!0, b"123456789"), 0xE306_9283);
    }
}
