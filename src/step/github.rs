//! GitHub Actions files and workflow commands.
//! <https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands>

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

/// Escapes a workflow-command message: `%`, CR and LF.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value: as [`escape_data`], plus `:` and `,`.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Appends `name=value` to a `$GITHUB_OUTPUT` file, always in the multi-line form with a random
/// delimiter, so that a value containing newlines or `=` can never inject another output.
pub(crate) fn append_output(file: &Path, name: &str, value: &str) -> io::Result<()> {
    let delimiter = loop {
        let d = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
        if !value.contains(&d) {
            break d;
        }
    };
    let mut f = OpenOptions::new().create(true).append(true).open(file)?;
    write!(f, "{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

pub(crate) fn append_text(file: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(file)?;
    f.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        f.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn outputs_use_the_delimiter_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out");
        append_output(&f, "tags", "a/v1.0.0\nb/v2.0.0").unwrap();
        append_output(&f, "x", "").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let delim = lines[0].strip_prefix("tags<<").unwrap();
        assert!(delim.starts_with("ghadelimiter_"));
        assert_eq!(&lines[1..4], ["a/v1.0.0", "b/v2.0.0", delim]);
        assert!(lines[4].starts_with("x<<ghadelimiter_"));
        assert_eq!(lines[5], "");
    }
}
