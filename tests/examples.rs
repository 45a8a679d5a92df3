//! The CI/CD recipes in `examples/workflows` agree with the imagepipe.toml beside them: the
//! configuration loads as the steps load it, every site is imported (one GitHub job and one
//! Jenkins stage each), and every credential it names is set by each recipe.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/workflows");

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(DIR).join(name)).unwrap()
}

#[test]
fn the_recipes_import_every_site_with_the_credentials_the_config_names() {
    let path = Path::new(DIR).join("imagepipe.toml");
    imagepipe::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let toml: toml::Table = read("imagepipe.toml").parse().unwrap();
    let sites: BTreeSet<String> = toml["site"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sites.len(), 3);
    // Every credential variable the configuration names, per site and for the primary store.
    let mut variables = BTreeSet::new();
    let mut collect = |t: &toml::Value| {
        for key in ["token_env", "username_env", "password_env"] {
            if let Some(v) = t.get(key).and_then(|v| v.as_str()) {
                variables.insert(v.to_string());
            }
        }
    };
    collect(&toml["store"]);
    for s in toml["site"].as_array().unwrap() {
        collect(&s["store"]);
        collect(&s["library"]);
    }

    let cd = read("cd.yml");
    let doc = &yaml_rust2::YamlLoader::load_from_str(&cd).unwrap()[0];
    let matrix: BTreeSet<String> = doc["jobs"]["import"]["strategy"]["matrix"]["site"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(matrix, sites, "cd.yml imports every site");
    let jenkins = read("Jenkinsfile");
    for site in &sites {
        assert!(
            jenkins.contains(&format!("stage('{site}')"))
                && jenkins.contains(&format!("sites: '{site}'")),
            "the Jenkinsfile imports {site}"
        );
    }
    // The Spinnaker pipeline: one Run Job import per site, each a step of the container image.
    let spinnaker: serde_json::Value =
        serde_json::from_str(&read("spinnaker-pipeline.json")).unwrap();
    let mut imported = BTreeSet::new();
    for stage in spinnaker["stages"].as_array().unwrap() {
        if stage["type"] != "runJobManifest" {
            continue;
        }
        let container = &stage["manifest"]["spec"]["template"]["spec"]["containers"][0];
        assert!(
            container["image"]
                .as_str()
                .unwrap()
                .starts_with("ghcr.io/imagepipe/imagepipe:"),
            "{container}"
        );
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args[0].starts_with("imagepipe-"), "{args:?}");
        if args[0] == "imagepipe-import" {
            assert_eq!(args[1], "--sites");
            imported.insert(args[2].to_string());
        }
    }
    assert_eq!(imported, sites, "Spinnaker imports every site");
    for var in &variables {
        assert!(
            cd.contains(&format!("{var}: ${{{{ secrets.{var} }}}}")),
            "cd.yml does not set {var}"
        );
        // Jenkins binds secret text by variable, usernames and passwords by prefix.
        let prefix = var
            .strip_suffix("_USER")
            .or_else(|| var.strip_suffix("_PASSWORD"));
        let bound = match prefix {
            Some(p) => jenkins.contains(&format!("[{p}: '")),
            None => jenkins.contains(&format!("{var}: '")) || jenkins.contains(&format!("{var} ")),
        };
        assert!(bound, "the Jenkinsfile does not bind {var}");
    }
}

/// Every template the example configuration names passes `packer validate` with Debian's
/// Packer, offline, with the variables imagepipe gives it and the credentials CI would set.
#[test]
fn every_example_template_passes_packer_validate() {
    let toml: toml::Table = read("imagepipe.toml").parse().unwrap();
    let images = toml["image"].as_array().unwrap();
    assert_eq!(images.len(), 4, "vendor → global → product → service");
    let scratch = tempfile::tempdir().unwrap();
    for image in images {
        let name = image["name"].as_str().unwrap();
        let template = Path::new(DIR).join(image["template"].as_str().unwrap());
        let mut cmd = std::process::Command::new("packer");
        cmd.arg("validate")
            .current_dir(&template)
            .env("CHECKPOINT_DISABLE", "1");
        let mut vars = vec![
            format!(
                "imagepipe_output_dir={}",
                scratch.path().join("out").display()
            ),
            format!(
                "imagepipe_manifest={}",
                scratch.path().join("manifest.json").display()
            ),
            "imagepipe_version=1.0.0".to_string(),
            "vsphere_username=validate-user".to_string(),
            "vsphere_password=validate-password".to_string(),
        ];
        if let Some(parent) = image.get("parent").and_then(|p| p.as_str()) {
            vars.push(format!("imagepipe_image={name}"));
            vars.push(format!("imagepipe_parent_image={parent}"));
            vars.push("imagepipe_parent_version=1.0.0".to_string());
            vars.push(format!(
                "imagepipe_parent_artifacts={{qemu=\"{}\"}}",
                scratch.path().join("parent.qcow2").display()
            ));
        } else {
            // The vendor layer's ISO checksum is set by CI from the mirror's SHA256SUMS.
            vars.push(format!("iso_checksum=sha256:{}", "0".repeat(64)));
        }
        for v in &vars {
            cmd.arg("-var").arg(v);
        }
        let out = cmd
            .arg(".")
            .output()
            .expect("packer is installed (scripts/deps)");
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
