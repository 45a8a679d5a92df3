//! A real browser for tests of HTML pages: headless Chromium (Debian's `chromium`, installed by
//! `scripts/deps`), run once per page for the DOM it builds and once for a screenshot, and a
//! PNG reader for asserting on the screenshot's pixels.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Chromium binary: `IMAGEPIPE_CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
/// A test that needs it fails when it is missing, naming the package, rather than passing
/// without having looked.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("IMAGEPIPE_CHROMIUM") {
        return p.into();
    }
    for name in ["chromium", "chromium-browser"] {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|d| d.join(name).is_file())
        {
            return dir.join(name);
        }
    }
    panic!("headless Chromium is needed for this test: install Debian's `chromium` (scripts/deps)");
}

fn run(args: &[String], profile: &Path) -> std::process::Output {
    // `timeout` bounds a browser that hangs: the test fails naming it instead of hanging.
    let out = Command::new("timeout")
        .args(["--kill-after=10", "120"])
        .arg(chromium())
        // Root in a container has no user namespace for the sandbox; the page is our own. The
        // colour profile is fixed so the screenshot's pixels are the page's CSS colours.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--force-color-profile=srgb",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn file_url(page: &Path) -> String {
    format!("file://{}", page.canonicalize().unwrap().display())
}

/// The DOM Chromium built from the page (after any script on it ran), serialised.
pub fn dump_dom(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = run(&["--dump-dom".to_string(), file_url(page)], profile.path());
    String::from_utf8(out.stdout).unwrap()
}

/// A screenshot of the page at `width`×`height` CSS pixels, written to `png`.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
    let profile = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(png);
    run(
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_string(),
            "--force-device-scale-factor=1".to_string(),
            file_url(page),
        ],
        profile.path(),
    );
    assert!(
        png.is_file(),
        "chromium wrote no screenshot at {}",
        png.display()
    );
}

/// A decoded 8-bit RGB(A) PNG: its size and its pixels as RGB.
#[derive(Debug)]
pub struct Png {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<[u8; 3]>,
}

impl Png {
    /// Reads a non-interlaced 8-bit RGB or RGBA PNG (what Chromium writes), undoing the
    /// scanline filters of the PNG specification (section 9).
    pub fn read(path: &Path) -> Png {
        let data = std::fs::read(path).unwrap();
        assert_eq!(
            &data[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            path.display()
        );
        let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
        let mut idat = Vec::new();
        let mut at = 8;
        while at + 8 <= data.len() {
            let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let kind = &data[at + 4..at + 8];
            let body = &data[at + 8..at + 8 + len];
            match kind {
                b"IHDR" => {
                    width = u32::from_be_bytes(body[0..4].try_into().unwrap());
                    height = u32::from_be_bytes(body[4..8].try_into().unwrap());
                    assert_eq!(body[8], 8, "only 8-bit PNGs");
                    channels = match body[9] {
                        2 => 3,
                        6 => 4,
                        t => panic!("PNG colour type {t} is not RGB(A)"),
                    };
                    assert_eq!(body[12], 0, "interlaced PNG");
                }
                b"IDAT" => idat.extend_from_slice(body),
                b"IEND" => break,
                _ => {}
            }
            at += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&idat[..])
            .read_to_end(&mut raw)
            .unwrap();
        let stride = width as usize * channels;
        assert_eq!(raw.len(), (stride + 1) * height as usize, "PNG data size");
        let mut prev = vec![0u8; stride];
        let mut rgb = Vec::with_capacity(width as usize * height as usize);
        for row in raw.chunks(stride + 1) {
            let (filter, line) = (row[0], &row[1..]);
            let mut cur = vec![0u8; stride];
            for i in 0..stride {
                let a = if i >= channels { cur[i - channels] } else { 0 };
                let b = prev[i];
                let c = if i >= channels { prev[i - channels] } else { 0 };
                let pred = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    4 => {
                        let p = i16::from(a) + i16::from(b) - i16::from(c);
                        let (pa, pb, pc) = (
                            (p - i16::from(a)).abs(),
                            (p - i16::from(b)).abs(),
                            (p - i16::from(c)).abs(),
                        );
                        if pa <= pb && pa <= pc {
                            a
                        } else if pb <= pc {
                            b
                        } else {
                            c
                        }
                    }
                    f => panic!("PNG filter {f}"),
                };
                cur[i] = line[i].wrapping_add(pred);
            }
            rgb.extend(cur.chunks(channels).map(|p| [p[0], p[1], p[2]]));
            prev = cur;
        }
        Png { width, height, rgb }
    }

    /// How many pixels have exactly this colour.
    pub fn count(&self, colour: [u8; 3]) -> usize {
        self.rgb.iter().filter(|p| **p == colour).count()
    }
}
