//! Helpers shared by the benchmarks.

// Each benchmark is its own crate and uses some of these.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// A numeric setting from the environment.
pub(crate) fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The fastest of `rounds` runs: the least disturbed by the rest of a shared machine.
pub(crate) fn best(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one round")
}

/// A scratch directory for generated data (IMAGEPIPE_BENCH_DIR, default `target`).
pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(std::env::var("IMAGEPIPE_BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .expect("a scratch directory")
}
