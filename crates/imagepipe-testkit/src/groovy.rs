//! Runs the Jenkins shared library's harness (`jenkins/test/harness.groovy`) with Debian's
//! `groovy`.

use std::path::Path;
use std::process::{Command, Output};

/// The repository's root, from any crate of the workspace.
fn root() -> &'static Path {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("jenkins/test/harness.groovy").exists() {
        dir = dir
            .parent()
            .expect("jenkins/test/harness.groovy is in the repository");
    }
    dir
}

/// `groovy jenkins/test/harness.groovy ARGS…`, which must exit 0.
pub fn harness(args: &[&str]) -> Output {
    let mut cmd = Command::new("groovy");
    cmd.arg(root().join("jenkins/test/harness.groovy"))
        .args(args)
        .current_dir(root());
    // Debian's groovy looks for /usr/lib/jvm/default-java unless JAVA_HOME says otherwise; on
    // a machine where that link is missing, use the JVM that `java` on PATH belongs to.
    if std::env::var_os("JAVA_HOME").is_none()
        && !Path::new("/usr/lib/jvm/default-java/bin/java").exists()
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
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
