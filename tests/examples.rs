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
