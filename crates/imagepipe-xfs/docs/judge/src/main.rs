use std::os::unix::fs::FileExt;
struct Dev(std::fs::File);
impl lamxfs::BlockRead for Dev {
    type Error = std::io::Error;
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> Result<(), std::io::Error> { self.0.read_exact_at(buf, off) }
}
fn main() {
    let img = std::env::args().nth(1).unwrap();
    let tree = std::env::args().nth(2).unwrap();
    let mut files = vec![];
    for d in std::fs::read_dir(&tree).unwrap() {
        let d = d.unwrap();
        for f in std::fs::read_dir(d.path()).unwrap() { let f = f.unwrap(); files.push(format!("/{}/{}", d.file_name().to_str().unwrap(), f.file_name().to_str().unwrap())); }
    }
    files.sort();
    // xfs-core: reads the whole image into memory (its API takes &[u8])
    let image = std::fs::read(&img).unwrap();
    let sb = xfs::Superblock::parse(&image).unwrap();
    let (mut ok, mut bad, mut err) = (0, 0, 0);
    for f in &files {
        let want = std::fs::read(format!("{tree}{f}")).unwrap();
        match xfs::read_by_path(&image, &sb, f) {
            Ok(got) if got == want => ok += 1,
            Ok(got) => { bad += 1; if bad < 6 { eprintln!("xfs-core WRONG {f}: len {} vs {}, zeros={}", got.len(), want.len(), got.iter().all(|&b| b==0)); } }
            Err(e) => { err += 1; if err < 6 { eprintln!("xfs-core ERR {f}: {e}"); } }
        }
    }
    println!("xfs-core: {ok} ok, {bad} wrong, {err} errors of {}", files.len());
    let mut fs = lamxfs::Xfs::open(Dev(std::fs::File::open(&img).unwrap()), 0).unwrap();
    let (mut ok, mut bad, mut err) = (0, 0, 0);
    let t = std::time::Instant::now();
    for f in &files {
        let want = std::fs::read(format!("{tree}{f}")).unwrap();
        match fs.read_file(lamxfs::Path::new(f.as_bytes())) {
            Ok(got) if got == want => ok += 1,
            Ok(got) => { bad += 1; if bad < 6 { eprintln!("lamxfs WRONG {f}: len {} vs {}", got.len(), want.len()); } }
            Err(e) => { err += 1; if err < 6 { eprintln!("lamxfs ERR {f}: {e:?}"); } }
        }
    }
    println!("lamxfs: {ok} ok, {bad} wrong, {err} errors of {} in {:?}", files.len(), t.elapsed());
    let n = fs.read_dir(lamxfs::Path::new(b"/big")).map(|v| v.len());
    println!("lamxfs read_dir /big: {n:?}");
}
