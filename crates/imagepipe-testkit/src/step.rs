//! Shared by the steps' integration tests: running a step binary as CI would, and checking that
//! a step's `action.yml` and its binary agree (every input reaches the step through an
//! environment variable the binary reads, never interpolated into the script, and every variable
//! the binary reads is offered as an input; every output comes from the `run` step, and every
//! output the step writes is declared; the action installs imagepipe when it is missing and says
//! which `permissions:` it needs).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use yaml_rust2::{Yaml, YamlLoader};

/// Loads `action.yml`, checks it against `binary --help`, and returns the declared outputs.
/// `secrets` are variables the step reads as secrets, never as flags.
pub fn check_action(action_yml: &str, binary: &str, secrets: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(action_yml).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    // Workflow authors copy the job's permissions from here (and docs/actions.md).
    assert!(
        text.lines().any(|l| l.starts_with("# permissions: ")),
        "{action_yml} does not say which permissions: it needs (a `# permissions: ` comment)"
    );
    let help = Command::new(binary)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let name = std::path::Path::new(binary)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();

    let steps = doc["runs"]["steps"].as_vec().unwrap();
    let run = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("run"))
        .unwrap();
    assert_eq!(
        run["run"].as_str(),
        Some(name),
        "inputs are never interpolated into the script"
    );
    let env = run["env"].as_hash().unwrap();
    // The install step's inputs go to scripts/install.sh, which must read them.
    let install = steps
        .iter()
        .find(|s| s["name"].as_str() == Some("Install imagepipe"))
        .expect("every step action installs imagepipe when it is not on PATH");
    assert_eq!(
        install["run"].as_str(),
        Some(r#""$GITHUB_ACTION_PATH/../../scripts/install.sh" --if-missing"#)
    );
    let install_script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/install.sh"
    ))
    .unwrap();
    let mut passed = Vec::new();
    for (input, _) in doc["inputs"].as_hash().unwrap() {
        let input = input.as_str().unwrap();
        if input == "working-directory" {
            continue;
        }
        let wanted = Yaml::String(format!("${{{{ inputs.{input} }}}}"));
        let find = |env: &yaml_rust2::yaml::Hash| {
            env.iter()
                .find(|(_, v)| **v == wanted)
                .map(|(k, _)| k.as_str().unwrap().to_string())
        };
        if let Some(var) = install["env"].as_hash().and_then(find) {
            assert!(
                install_script.contains(&format!("${{{var}")),
                "scripts/install.sh does not read {var} (input `{input}`)"
            );
            continue;
        }
        let var = find(env).unwrap_or_else(|| panic!("input `{input}` is not passed to the step"));
        assert!(
            secrets.contains(&var.as_str()) || help.contains(&format!("[env: {var}=]")),
            "{name} does not read {var} (input `{input}`)"
        );
        passed.push(var);
    }
    // The reverse: every variable the step reads is offered as an input, except progress, which
    // the step sets to plain lines on CI by itself.
    for var in help
        .split("[env: ")
        .skip(1)
        .filter_map(|s| s.split_once("=]"))
    {
        let var = var.0;
        assert!(
            var == "IMAGEPIPE_PROGRESS" || passed.iter().any(|p| p == var),
            "{name} reads {var}, but action.yml offers no input for it"
        );
    }
    let mut outputs = Vec::new();
    for (output, spec) in doc["outputs"].as_hash().unwrap() {
        let output = output.as_str().unwrap();
        assert_eq!(
            spec["value"].as_str(),
            Some(format!("${{{{ steps.run.outputs.{output} }}}}").as_str())
        );
        outputs.push(output.to_string());
    }
    outputs.sort();
    outputs
}

/// Parses a `$GITHUB_OUTPUT` file written with the delimiter syntax.
pub fn read_outputs(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut outputs = std::collections::BTreeMap::new();
    let mut lines = text.lines();
    while let Some(head) = lines.next() {
        let (name, delim) = head.split_once("<<").expect("delimiter syntax");
        let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
        outputs.insert(name.to_string(), value.join("\n"));
    }
    outputs
}

/// A step command in `dir`, with the test runner's own CI and imagepipe variables removed so
/// they cannot leak into the step under test, and progress off.
pub fn command(binary: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("IMAGEPIPE_")
            || k.starts_with("GITHUB_")
            || k == "CI"
            || k == "JENKINS_URL"
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("IMAGEPIPE_PROGRESS", "none");
    cmd
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\n--- stderr:\n{}\n--- stdout:\n{}",
        stderr(o),
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A step's `--help`, as a user sees it (no environment values shown).
pub fn help(binary: &str, dir: &Path) -> String {
    let out = command(binary, dir, &["--help"])
        .env_remove("IMAGEPIPE_PROGRESS")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    String::from_utf8(out.stdout).unwrap()
}

/// What a step left for GitHub Actions.
#[derive(Debug)]
pub struct GithubRun {
    pub out: Output,
    pub outputs: std::collections::BTreeMap<String, String>,
    pub summary: String,
}

/// Runs `cmd` as a GitHub Actions step would, with its output and summary files in `dir`,
/// and every input the command does not set at the default of the calling step crate's
/// `action.yml`. A macro, so that the action is the caller's: `env!` is read where it expands.
#[macro_export]
macro_rules! on_github {
    ($cmd:expr, $dir:expr $(,)?) => {
        $crate::step::on_github_with(
            $cmd,
            $dir,
            concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"),
        )
    };
}

/// [`on_github!`] for the action at `action_yml`.
pub fn on_github_with(mut cmd: Command, dir: &Path, action_yml: &str) -> GithubRun {
    action_defaults(&mut cmd, action_yml);
    let output = dir.join("gh-output");
    let summary = dir.join("gh-summary");
    let out = cmd
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let outputs = read_outputs(&std::fs::read_to_string(&output).unwrap_or_default());
    // An output the action does not declare never reaches the workflow.
    let action = std::fs::read_to_string(action_yml).unwrap();
    let doc = &YamlLoader::load_from_str(&action).unwrap()[0];
    for name in outputs.keys() {
        assert!(
            !doc["outputs"][name.as_str()].is_badvalue(),
            "the step wrote the output `{name}`, which action.yml does not declare"
        );
    }
    GithubRun {
        outputs,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        out,
    }
}

/// Sets every variable `action.yml` passes to the step, and the command does not set yet, to
/// the value it has when the workflow leaves the input at its default (often empty).
pub fn action_defaults(cmd: &mut Command, action_yml: &str) {
    let text = std::fs::read_to_string(action_yml).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let run = doc["runs"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some("run"))
        .unwrap();
    let set: Vec<std::ffi::OsString> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
    for (var, value) in run["env"].as_hash().unwrap() {
        if set.iter().any(|k| k.to_str() == var.as_str()) {
            continue;
        }
        let value = value.as_str().unwrap();
        let input = value
            .strip_prefix("${{ inputs.")
            .and_then(|v| v.strip_suffix(" }}"))
            .unwrap();
        let default = doc["inputs"][input]["default"].as_str().unwrap_or("");
        cmd.env(var.as_str().unwrap(), default);
    }
}

/// Another step's binary, which `cargo test --workspace` builds beside this package's own.
pub fn sibling_bin(this: &str, name: &str) -> std::path::PathBuf {
    let p = Path::new(this).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run the workspace's tests (`cargo test --workspace`), which build every step",
        p.display()
    );
    p
}
