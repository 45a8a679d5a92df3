//! `steps/build/action.yml` and the binary agree: every input reaches the step through an
//! environment variable the binary reads, and every output comes from the `run` step.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use yaml_rust2::YamlLoader;

#[test]
fn action_inputs_and_outputs_match_the_cli() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let help = Command::new(env!("CARGO_BIN_EXE_imagepipe-build"))
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();

    let steps = doc["runs"]["steps"].as_vec().unwrap();
    let run = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("run"))
        .unwrap();
    assert_eq!(
        run["run"].as_str(),
        Some("imagepipe-build"),
        "inputs are never interpolated into the script"
    );
    let env = run["env"].as_hash().unwrap();
    for (name, _) in doc["inputs"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        if name == "working-directory" {
            continue;
        }
        let wanted = format!("${{{{ inputs.{name} }}}}");
        let var = env
            .iter()
            .find(|(_, v)| v.as_str() == Some(wanted.as_str()))
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("input `{name}` is not passed to the step"));
        assert!(
            help.contains(&format!("[env: {var}=]")),
            "the binary does not read {var} (input `{name}`)"
        );
    }
    // Which outputs the step writes is checked against this file by the build test
    // `github_outputs_summary_and_annotations`.
    for (name, out) in doc["outputs"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        assert_eq!(
            out["value"].as_str(),
            Some(format!("${{{{ steps.run.outputs.{name} }}}}").as_str())
        );
    }
}
