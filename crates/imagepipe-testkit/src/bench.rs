//! Helpers shared by the benchmarks.

use std::time::{Duration, Instant};

/// A numeric setting from the environment.
pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The fastest of `rounds` runs: the least disturbed by the rest of a shared machine.
pub fn best(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one round")
}

/// A scratch directory for generated data (IMAGEPIPE_BENCH_DIR, default the profile directory
/// under the workspace's `target`, found from this executable: `cargo bench` runs each
/// package's benchmarks from that package's directory, which has no `target` of its own).
pub fn scratch() -> tempfile::TempDir {
    let dir = std::env::var_os("IMAGEPIPE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| "target".into());
    tempfile::tempdir_in(dir).expect("a scratch directory")
}

/// The baseline of the inventory benchmarks: the best of 3 `qemu-img convert`s of `image` to
/// a raw copy in `scratch`. qemu-img cannot open an OVA, so an OVA's disk (the tar member
/// ending in `-disk1.vmdk`, as `images::ova` and the examples' `make-ova` name it) is unpacked
/// with tar first, as a script would, inside the timing.
pub fn qemu_img_convert(image: &std::path::Path, scratch: &std::path::Path) -> Duration {
    use std::process::Command;
    let run = |c: &mut Command| {
        let status = c.status().expect("the baseline's tool runs");
        assert!(status.success(), "{c:?}");
    };
    let copy = scratch.join("baseline-copy.raw");
    let member = image.extension().is_some_and(|e| e == "ova").then(|| {
        let out = Command::new("tar")
            .arg("-tf")
            .arg(image)
            .output()
            .expect("tar runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.ends_with("-disk1.vmdk"))
            .expect("the OVA holds a disk")
            .to_string()
    });
    let took = best(3, || {
        let _ = std::fs::remove_file(&copy);
        let source = match &member {
            Some(m) => {
                run(Command::new("tar")
                    .arg("-xf")
                    .arg(image)
                    .arg("-C")
                    .arg(scratch)
                    .arg(m));
                scratch.join(m)
            }
            None => image.to_path_buf(),
        };
        run(Command::new("qemu-img")
            .args(["convert", "-q", "-O", "raw"])
            .arg(&source)
            .arg(&copy));
    });
    let _ = std::fs::remove_file(&copy);
    if let Some(m) = &member {
        let _ = std::fs::remove_file(scratch.join(m));
    }
    took
}
