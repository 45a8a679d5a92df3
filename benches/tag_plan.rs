//! `imagepipe-tag`'s plan against `git log --name-only` over the same range, measured in the
//! same run.
//!
//! `cargo bench --bench tag_plan` (IMAGEPIPE_BENCH_COMMITS, default 50000;
//! IMAGEPIPE_BENCH_IMAGES, default 200). The repository is generated with `git fast-import`:
//! every commit changes one or two files of random images, with conventional subjects; every
//! image has a release tag on the first commit, so the plan walks the whole history.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::bench;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use imagepipe::config::Config;

fn generate(dir: &Path, commits: usize, images: usize) {
    let run = |args: &[&str]| {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(dir)
                .status()
                .unwrap()
                .success()
        )
    };
    run(&["init", "-q", "-b", "main"]);
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut rng = fastrand::Rng::with_seed(7);
    let kinds = ["feat", "fix", "chore", "docs", "refactor"];
    let mut config = String::from("[tag]\nfirst_version = \"1.0.0\"\n");
    for i in 0..images {
        config.push_str(&format!(
            "[[image]]\nname = \"team{}/img-{i}\"\ntemplate = \"images/img-{i}\"\n",
            i % 10
        ));
    }
    for n in 1..=commits {
        let subject = format!("{}(img): change {n}", kinds[rng.usize(..kinds.len())]);
        writeln!(
            input,
            "commit refs/heads/main\nmark :{n}\ncommitter Bench <b@example.com> {} +0000",
            1_700_000_000 + n
        )
        .unwrap();
        writeln!(input, "data {}\n{subject}", subject.len()).unwrap();
        if n > 1 {
            writeln!(input, "from :{}", n - 1).unwrap();
        }
        if n == 1 {
            writeln!(
                input,
                "M 100644 inline imagepipe.toml\ndata {}\n{config}",
                config.len()
            )
            .unwrap();
        }
        for _ in 0..=rng.usize(..2) {
            let content = format!("{n}\n");
            writeln!(
                input,
                "M 100644 inline images/img-{}/f{}.txt\ndata {}\n{content}",
                rng.usize(..images),
                rng.usize(..5),
                content.len()
            )
            .unwrap();
        }
    }
    for i in 0..images {
        let msg = "release";
        writeln!(input, "tag team{}/img-{i}/v1.0.0\nfrom :1\ntagger Bench <b@example.com> 1700000000 +0000\ndata {}\n{msg}", i % 10, msg.len()).unwrap();
    }
    drop(input);
    assert!(child.wait().unwrap().success());
    run(&["checkout", "-q", "main"]);
}

fn main() {
    let commits = bench::env_num("IMAGEPIPE_BENCH_COMMITS", 50_000);
    let images = bench::env_num("IMAGEPIPE_BENCH_IMAGES", 200);
    let dir = bench::scratch();
    let t = Instant::now();
    generate(dir.path(), commits, images);
    let generated = t.elapsed();

    let config = Config::load(&dir.path().join("imagepipe.toml")).unwrap();
    let scope: Vec<_> = config.images.iter().collect();
    let head = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(dir.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let head = head.trim();
    let root = String::from_utf8(
        Command::new("git")
            .args(["rev-list", "--max-parents=0", "HEAD"])
            .current_dir(dir.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let range = format!("{}..HEAD", root.trim());

    let rounds = 3;
    let mut planned = 0;
    let plan = bench::best(rounds, || {
        planned = imagepipe::tag::plan_changes(&config, dir.path(), head, &scope)
            .unwrap()
            .0
            .len();
    });
    let git = bench::best(rounds, || {
        let out = Command::new("git")
            .args(["log", "--name-only", &range])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(out.success());
    });
    println!(
        "tag plan benchmark: {commits} commits, {images} images (generated in {:.1}s), best of {rounds}",
        generated.as_secs_f64()
    );
    println!(
        "  imagepipe-tag plan        {:>8.0} ms  ({planned} images to tag)",
        plan.as_secs_f64() * 1000.0
    );
    println!(
        "  git log --name-only       {:>8.0} ms",
        git.as_secs_f64() * 1000.0
    );
    println!(
        "  ratio                     {:>8.2}x  (target <= 1.5x)",
        plan.as_secs_f64() / git.as_secs_f64()
    );
    if std::env::var_os("IMAGEPIPE_BENCH_KEEP").is_some() {
        println!("  repository kept at {}", dir.keep().display());
    }
}
