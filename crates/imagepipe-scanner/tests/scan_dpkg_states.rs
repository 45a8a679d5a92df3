//! Package states, exactly: a Debian tree whose packages dpkg itself put in every state it has
//! (installed, held, selected for removal, unpacked, half-configured, triggers pending and
//! awaited, removed with configuration left, half-installed with and without files, and one
//! known only from the journal of a dpkg that was killed), read by the scan as a directory and
//! as raw, qcow2, stream-optimized VMDK and OVA images. The oracle is dpkg-query's
//! `${db:Status-Abbrev}` together with the files on disk, not `dpkg-query -W`, which also lists
//! packages that only left configuration files behind.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{dpkg, images};

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::Stdio;

use dpkg::{Deb, Root};
use imagepipe_scanner::{inventory, rootfs};

/// Puts packages in every state dpkg has.
fn every_state(r: &Root) {
    let ok = |name| Deb {
        name,
        version: "1.0",
        ..Deb::default()
    };
    assert!(r.install(&Deb {
        source: Some("oksrc"),
        ..ok("ok")
    }));
    for name in ["held", "deinst"] {
        assert!(r.install(&ok(name)));
    }
    let mut sel = r.dpkg_cmd(&["--set-selections"]);
    let mut child = sel.stdin(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"held hold\ndeinst deinstall\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    let unpacked = r.build(&ok("unp"));
    assert!(r.dpkg(&["--unpack", unpacked.to_str().unwrap()]));
    assert!(!r.install(&Deb {
        scripts: &[("postinst", "exit 1")],
        ..ok("cfgfail")
    }));
    assert!(r.install(&Deb {
        conffile: true,
        ..ok("rmd")
    }));
    assert!(r.dpkg(&["-r", "rmd"]));
    assert!(r.install(&Deb {
        scripts: &[("postrm", "[ \"$1\" = remove ] && exit 1; exit 0")],
        ..ok("postrmfail")
    }));
    assert!(!r.dpkg(&["-r", "postrmfail"]));
    assert!(r.install(&ok("upgfail")));
    assert!(!r.install(&Deb {
        version: "2.0",
        scripts: &[
            ("preinst", "[ \"$1\" = upgrade ] && exit 1; exit 0"),
            ("postrm", "[ \"$1\" = abort-upgrade ] && exit 1; exit 0"),
        ],
        ..ok("upgfail")
    }));
    assert!(!r.install(&Deb {
        scripts: &[
            ("preinst", "exit 1"),
            ("postrm", "[ \"$1\" = abort-install ] && exit 1; exit 0"),
        ],
        ..ok("newfail")
    }));
    assert!(r.install(&Deb {
        triggers: Some("interest imagepipe-trigger\n"),
        ..ok("trigint")
    }));
    let activator = r.build(&Deb {
        triggers: Some("activate imagepipe-trigger\n"),
        ..ok("trigact")
    });
    assert!(r.dpkg(&["--no-triggers", "-i", activator.to_str().unwrap()]));
    // Last: dpkg killed in a fresh install's preinst leaves the package only in its journal.
    assert!(!r.install(&Deb {
        scripts: &[("preinst", "kill -9 $PPID")],
        ..ok("killed")
    }));
}

#[test]
fn only_packages_whose_files_are_installed_count_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let r = Root::new(dir.path());
    every_state(&r);
    std::fs::create_dir_all(r.root.join("etc")).unwrap();
    std::fs::write(r.root.join("etc/os-release"), images::DEBIAN_12_OS_RELEASE).unwrap();

    // dpkg-query's view, and the states the recipes were meant to make.
    let states = r.states();
    let abbrev: BTreeSet<String> = states.iter().map(|s| format!("{} {}", s.0, s.2)).collect();
    for want in [
        "ok ii ",
        "held hi ",
        "deinst ri ",
        "unp iU ",
        "cfgfail iF ",
        "rmd rc ",
        "postrmfail rH ",
        "upgfail iHR",
        "newfail iHR",
        "trigint it ",
        "trigact iW ",
        "killed iHR",
    ] {
        assert!(abbrev.contains(want), "dpkg made no `{want}`: {abbrev:#?}");
    }
    assert!(
        std::fs::read_to_string(r.root.join("var/lib/dpkg/updates/0000"))
            .unwrap()
            .contains("Package: killed"),
        "the killed install is only in the journal"
    );
    // Installed: what dpkg says has its files on disk, and of the half-installed ones those
    // whose files are there (the failed upgrade keeps 1.0's).
    let want: BTreeSet<String> = states
        .iter()
        .filter(|(name, _, a)| {
            dpkg::files_present(a).unwrap_or_else(|| r.root.join(Root::marker(name)).exists())
        })
        .map(|(name, version, _)| format!("{name} {version}"))
        .collect();
    assert_eq!(
        want.iter()
            .map(|w| w.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        [
            "cfgfail", "deinst", "held", "ok", "trigact", "trigint", "unp", "upgfail"
        ]
    );

    let inventory_of = |tree: &dyn rootfs::Tree| -> BTreeSet<String> {
        let (_, packages) = inventory::from_tree(tree).unwrap();
        packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect()
    };
    assert_eq!(
        inventory_of(&rootfs::DirTree(r.root.clone())),
        want,
        "the directory"
    );
    let (_, packages) = inventory::from_tree(&rootfs::DirTree(r.root.clone())).unwrap();
    let ok = packages.iter().find(|p| p.name == "ok").unwrap();
    assert_eq!(
        (ok.source.as_str(), ok.source_version.as_str()),
        ("oksrc", "1.0")
    );

    let raw = dir.path().join("disk.raw");
    images::ext4(&r.root, &raw, "root", "16M");
    for image in [
        raw.clone(),
        images::qcow2(&raw, true),
        images::vmdk(&raw, "streamOptimized"),
        images::ova(&raw, "states"),
    ] {
        let tree = rootfs::open(&image).unwrap();
        assert_eq!(inventory_of(tree.as_ref()), want, "{}", image.display());
    }
}
