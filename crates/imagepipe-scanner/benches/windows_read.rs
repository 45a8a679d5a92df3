//! The inventory of a Windows image read in place (the release and full build, the programs of
//! both views and the installed updates, from the registry hives on the NTFS OS volume), from
//! qcow2 and OVA, against the time `qemu-img convert` alone takes to make a raw copy of the same
//! image (the first thing a scanner that needs a raw or mounted image does), in the same run;
//! with the bytes of each image file read.
//!
//! `cargo bench --bench windows_read` (IMAGEPIPE_BENCH_DISK_MIB, default 1024: the disk's
//! size). The disk is the tests' Windows Server 2022 layout (`imagepipe_testkit::windows`: GPT
//! with EFI, MSR, the OS volume and WinRE; hives by hivex with 400 foundation packages, as long
//! as a real system's servicing list) with the OS volume grown to fill the disk and half of it
//! filled with incompressible files through an ntfs-3g mount (root and /dev/fuse), so that the
//! image is mostly data.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{bench, images, windows};

use std::process::Command;

use imagepipe_scanner::rootfs;
use imagepipe_scanner::windows as win;
use images::{run, sbin};

fn main() {
    let disk_mib = bench::env_num("IMAGEPIPE_BENCH_DISK_MIB", 1024) as u64;
    let dir = bench::scratch();
    let hives = windows::server_2022_hives(&dir.path().join("hives"), 400);

    // EFI, MSR and WinRE as the tests lay them out; the OS volume takes the rest.
    let [efi, msr, _, recovery] = windows::LAYOUT_MIB;
    let os = disk_mib - 1 - efi - msr - recovery - 1;
    let (efi_at, msr_at, os_at) = (1, 1 + efi, 1 + efi + msr);
    let re_at = os_at + os;
    let raw = dir.path().join("windows.raw");
    windows::partition(
        &raw,
        disk_mib,
        &format!(
            "label: gpt\nstart={}, size={}, type={}\nstart={}, size={}, type={}\nstart={}, size={}, type={}\nstart={}, size={}, type={}\n",
            efi_at * 2048,
            efi * 2048,
            windows::GPT_EFI,
            msr_at * 2048,
            msr * 2048,
            windows::GPT_MSR,
            os_at * 2048,
            os * 2048,
            windows::GPT_BASIC_DATA,
            re_at * 2048,
            recovery * 2048,
            windows::GPT_RECOVERY
        ),
    );
    let esp = dir.path().join("esp.fat");
    run(Command::new(sbin("mkfs.vfat"))
        .args(["-F", "32", "-n", "SYSTEM", "-C"])
        .arg(&esp)
        .arg((efi * 1024).to_string()));
    windows::place(&raw, &esp, efi_at << 20);

    // The OS volume: the hives and a kernel by ntfscp (`windows::ntfs`), then the filler
    // through an ntfs-3g mount.
    let volume = dir.path().join("os.ntfs");
    let kernel = dir.path().join("ntoskrnl.exe");
    std::fs::write(&kernel, b"MZ not a kernel").unwrap();
    let mut files: Vec<(String, std::path::PathBuf)> = hives
        .names
        .iter()
        .map(|n| (format!("/Windows/System32/config/{n}"), hives.path(n)))
        .collect();
    files.push(("/Windows/System32/ntoskrnl.exe".into(), kernel));
    let refs: Vec<(&str, &std::path::Path)> = files
        .iter()
        .map(|(p, f)| (p.as_str(), f.as_path()))
        .collect();
    windows::ntfs(&volume, os, "Windows", os_at * 2048, &refs);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("ntfs-3g").arg(&volume).arg(&mnt));
    let filler = mnt.join("Windows/Installer");
    let mut rng = fastrand::Rng::with_seed(21);
    let mut block = vec![0u8; 1 << 20];
    let filled = std::fs::create_dir_all(&filler).and_then(|()| {
        (0..os / 2).try_for_each(|i| {
            rng.fill(&mut block);
            std::fs::write(filler.join(format!("{i:04}.msp")), &block)
        })
    });
    run(Command::new("fusermount").arg("-u").arg(&mnt));
    filled.unwrap();
    windows::place(&raw, &volume, os_at << 20);
    std::fs::remove_file(&volume).unwrap();
    let re = dir.path().join("re.ntfs");
    windows::ntfs(&re, recovery, "Recovery", re_at * 2048, &[]);
    windows::place(&raw, &re, re_at << 20);
    std::fs::remove_file(&re).unwrap();

    let qcow2 = images::qcow2(&raw, true);
    let ova = images::ova(&raw, "bench");
    let want = windows::PROGRAMS.len();
    println!(
        "a {disk_mib} MiB GPT disk of Windows Server 2022's layout, {} MiB of files on its {os} MiB OS volume, {want} programs, {} updates",
        os / 2,
        windows::KBS.len()
    );
    for (name, image) in [("raw", &raw), ("qcow2 (compressed)", &qcow2), ("OVA", &ova)] {
        let file_size = std::fs::metadata(image).unwrap().len();
        let baseline = bench::qemu_img_convert(image, dir.path());
        let mut read = 0;
        let ours = bench::best(5, || {
            let tree = rootfs::open(image).unwrap();
            let (inv, _) = win::inventory(tree.as_ref()).unwrap().unwrap();
            assert_eq!(inv.os.build, "10.0.20348.2849");
            assert_eq!(inv.programs.len(), want);
            assert_eq!(inv.updates.len(), windows::KBS.len());
            read = tree.bytes_read();
        });
        println!(
            "{name:<20} inventory {:>7.1} ms, qemu-img convert to raw {:>8.1} ms ({:.0}x the inventory's time); read {} of {} bytes ({:.3}%)",
            ours.as_secs_f64() * 1e3,
            baseline.as_secs_f64() * 1e3,
            baseline.as_secs_f64() / ours.as_secs_f64(),
            read,
            file_size,
            read as f64 * 100.0 / file_size as f64
        );
    }
}
