//! The Jenkins shared library's harness (`jenkins/test/harness.groovy`), run with Debian's
//! `groovy`: every `vars/*.groovy` step against mocked pipeline steps. What the scan step
//! archives from a real scan's result is checked in `steps/scan/tests/scan.rs`.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::groovy;

#[test]
fn the_shared_library_makes_the_calls_jenkins_expects() {
    let out = groovy::harness(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("all passed") && !stdout.contains("FAIL"),
        "{stdout}"
    );
}
