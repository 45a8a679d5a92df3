//! The Jenkins shared library's harness (`jenkins/test/harness.groovy`), run with Debian's
//! `groovy`: every `vars/*.groovy` step against mocked pipeline steps.

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_shared_library_makes_the_calls_jenkins_expects() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new("groovy");
    cmd.arg(format!("{root}/jenkins/test/harness.groovy"))
        .current_dir(root);
    // Debian's groovy looks for /usr/lib/jvm/default-java unless JAVA_HOME says otherwise; on
    // a machine where that link is missing, use the JVM `java` on PATH belongs to.
    if std::env::var_os("JAVA_HOME").is_none()
        && !std::path::Path::new("/usr/lib/jvm/default-java/bin/java").exists()
    {
        let java = Command::new("sh")
            .args(["-c", "readlink -f \"$(command -v java)\""])
            .output()
            .unwrap();
        let java = String::from_utf8(java.stdout).unwrap();
        if let Some(home) = java.trim().strip_suffix("/bin/java") {
            cmd.env("JAVA_HOME", home);
        }
    }
    let out = cmd
        .output()
        .expect("groovy is not installed: apt-get install groovy (scripts/deps does)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all passed") && !stdout.contains("FAIL"), "{stdout}");
}
