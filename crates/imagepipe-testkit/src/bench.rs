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
