//! `xfsls IMAGE [PATH]`: lists a directory of an XFS image (or prints a file, or a link's
//! target), the way the scanner reads one. A damaged or hostile image ends with its error
//! and exit status 2; a missing path with status 1.

// A command-line tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(image), path) = (args.get(1), args.get(2).map_or("/", String::as_str)) else {
        eprintln!("usage: xfsls IMAGE [PATH]");
        return ExitCode::from(2);
    };
    let dev = match imagepipe_xfs::FileDevice::open(image) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{image}: {e}");
            return ExitCode::from(1);
        }
    };
    let result = (|| -> Result<bool, imagepipe_xfs::Error> {
        let mut fs = imagepipe_xfs::Xfs::open(Box::new(dev))?;
        let Some(meta) = fs.metadata(path)? else {
            return Ok(false);
        };
        if meta.symlink {
            println!("{} -> {}", path, fs.read_link(path)?.unwrap_or_default());
        } else if meta.dir {
            let mut entries = fs.read_dir(path)?.unwrap_or_default();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, m) in entries {
                let kind = if m.dir {
                    'd'
                } else if m.symlink {
                    'l'
                } else {
                    '-'
                };
                println!(
                    "{kind}{:04o} {:>5} {:>5} {:>12} {name}",
                    m.mode, m.uid, m.gid, m.size
                );
            }
        } else {
            use std::io::Write;
            let data = fs.read_file(path, 256 << 20)?.unwrap_or_default();
            std::io::stdout().write_all(&data).ok();
        }
        Ok(true)
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{path}: no such file");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{image}: {e}");
            ExitCode::from(if e.is_bad_image() { 2 } else { 1 })
        }
    }
}
