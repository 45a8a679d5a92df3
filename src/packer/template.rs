//! What imagepipe needs to know about a template before running Packer: which files it is made
//! of, which variables it declares, and whether it needs `packer init`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("Packer template {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read Packer template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no *.pkr.hcl or *.pkr.json file")]
    Empty(PathBuf),
    #[error(
        "{0} is a legacy JSON template; imagepipe drives HCL2 templates: convert it with \
         `packer hcl2_upgrade {0}`"
    )]
    Legacy(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The path given to Packer (a directory or a file).
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
    pub variables: BTreeSet<String>,
    pub required_plugins: bool,
    /// The keys it looks up in `var.imagepipe_parent_artifacts` (`…["disk"]`), so that a
    /// validation without a built parent can offer each one.
    pub parent_artifact_keys: BTreeSet<String>,
}

impl Template {
    pub fn inspect(path: &Path) -> Result<Self, TemplateError> {
        let read_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| TemplateError::Read { path: p, source }
        };
        if !path.exists() {
            return Err(TemplateError::Missing(path.to_path_buf()));
        }
        let mut files = Vec::new();
        if path.is_dir() {
            // Packer reads only the directory's own files, not subdirectories.
            for entry in std::fs::read_dir(path).map_err(read_err(path))? {
                let p = entry.map_err(read_err(path))?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if p.is_file() && (name.ends_with(".pkr.hcl") || name.ends_with(".pkr.json")) {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".json") && !name.ends_with(".pkr.json") {
                return Err(TemplateError::Legacy(path.to_path_buf()));
            }
            files.push(path.to_path_buf());
        }
        if files.is_empty() {
            return Err(TemplateError::Empty(path.to_path_buf()));
        }
        let mut variables = BTreeSet::new();
        let mut required_plugins = false;
        let mut parent_artifact_keys = BTreeSet::new();
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(read_err(f))?;
            required_plugins |= text.contains("required_plugins");
            parent_artifact_keys.extend(looked_up_keys(&text, "imagepipe_parent_artifacts"));
            if f.extension().is_some_and(|e| e == "json") {
                json_variables(&text, &mut variables);
            } else {
                hcl_variables(&text, &mut variables);
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            files,
            variables,
            required_plugins,
            parent_artifact_keys,
        })
    }
}

/// The string keys of `var.<map>["key"]` and `lookup(var.<map>, "key"` in HCL text.
fn looked_up_keys(text: &str, map: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(map) {
        rest = &rest[i + map.len()..];
        let after = rest.trim_start();
        let quoted = if let Some(a) = after.strip_prefix('[') {
            a.trim_start().strip_prefix('"')
        } else if let Some(a) = after.strip_prefix(',') {
            a.trim_start().strip_prefix('"')
        } else {
            None
        };
        if let Some(key) = quoted.and_then(|q| q.split_once('"')).map(|(k, _)| k)
            && !key.is_empty()
            && !key.contains("${")
        {
            keys.push(key.to_string());
        }
    }
    keys
}

/// `variable "name" {` blocks. HCL allows the label unquoted too, and leading whitespace.
fn hcl_variables(text: &str, out: &mut BTreeSet<String>) {
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("variable") else {
            continue;
        };
        if !rest.starts_with([' ', '\t', '"']) {
            continue;
        }
        let label = rest.trim_start().trim_start_matches('"');
        let name: String = label
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
}

/// HCL2 JSON syntax: `{"variable": {"name": {...}}}`.
fn json_variables(text: &str, out: &mut BTreeSet<String>) {
    if let Ok(serde_json::Value::Object(root)) = serde_json::from_str(text)
        && let Some(serde_json::Value::Object(vars)) = root.get("variable")
    {
        out.extend(vars.keys().cloned());
    }
}

/// Quotes a string for an HCL var file: escapes and neutralises template sequences, so a value
/// is always taken literally.
pub fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_artifact_keys_a_template_looks_up() {
        let text = r#"
  source = var.imagepipe_parent_artifacts["disk"]
  iso    = lookup(var.imagepipe_parent_artifacts, "iso", "")
  x      = var.imagepipe_parent_artifacts [ "ova/x.ova" ]
  all    = var.imagepipe_parent_artifacts
  y      = var.imagepipe_parent_artifacts["${var.k}"]
"#;
        assert_eq!(
            looked_up_keys(text, "imagepipe_parent_artifacts"),
            ["disk", "iso", "ova/x.ova"]
        );
    }

    #[test]
    fn finds_declared_variables_and_plugins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.pkr.hcl"),
            "variable \"imagepipe_version\" {\n  type = string\n}\n  variable imagepipe_image {}\nvariables = 1\n# variable \"commented\"\npacker {\n  required_plugins {\n  }\n}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.pkr.json"),
            r#"{"variable": {"from_json": {"type": "string"}}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "variable \"ignored\" {}").unwrap();
        let t = Template::inspect(dir.path()).unwrap();
        assert_eq!(t.files.len(), 2);
        let vars: Vec<_> = t.variables.iter().map(String::as_str).collect();
        assert_eq!(vars, ["from_json", "imagepipe_image", "imagepipe_version"]);
        assert!(t.required_plugins);

        let legacy = dir.path().join("old.json");
        std::fs::write(&legacy, "{}").unwrap();
        assert!(matches!(
            Template::inspect(&legacy),
            Err(TemplateError::Legacy(_))
        ));
        assert!(matches!(
            Template::inspect(&dir.path().join("nope")),
            Err(TemplateError::Missing(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Template::inspect(empty.path()),
            Err(TemplateError::Empty(_))
        ));
    }

    #[test]
    fn hcl_strings_are_literal() {
        assert_eq!(hcl_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(hcl_string("${var.x} %{if} $5"), r#""$${var.x} %%{if} $5""#);
        assert_eq!(hcl_string("l1\nl2\t"), r#""l1\nl2\t""#);
    }
}
