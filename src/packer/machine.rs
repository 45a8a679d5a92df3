//! Packer's `-machine-readable` output: one event per line, `timestamp,target,type,data...`.
//! <https://developer.hashicorp.com/packer/docs/commands#machine-readable-output>

/// The three kinds of UI message Packer prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiLevel {
    Say,
    Message,
    Error,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ui {
        level: UiLevel,
        text: String,
    },
    /// `artifact,<i>,<key>,<values...>` for build `target`.
    Artifact {
        target: String,
        index: u32,
        key: String,
        values: Vec<String>,
    },
    /// A build's error, from the end-of-run summary.
    BuildError {
        target: String,
        text: String,
    },
    ErrorCount(u32),
    Version(String),
    /// A well-formed line of a type this parser has no use for.
    Other {
        kind: String,
        data: Vec<String>,
    },
    /// A line that is not machine-readable at all (a plugin crash, a shell message).
    Raw(String),
}

/// Undoes Packer's escaping inside one data field.
pub fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find(['%', '\\']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("%!(PACKER_COMMA)") {
            out.push(',');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("\\n") {
            out.push('\n');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("\\r") {
            out.push('\r');
            rest = r;
        } else {
            out.push_str(&rest[..1]);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Parses one line. Never fails: anything unrecognised comes back as [`Event::Raw`].
pub fn parse_line(line: &str) -> Event {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut parts = line.split(',');
    let (Some(ts), Some(target), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
        return Event::Raw(line.to_string());
    };
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Event::Raw(line.to_string());
    }
    let data: Vec<String> = parts.map(unescape).collect();
    let target = unescape(target);
    match (kind, data.as_slice()) {
        ("ui", [level, text, ..]) => {
            let level = match level.as_str() {
                "error" => UiLevel::Error,
                "message" => UiLevel::Message,
                _ => UiLevel::Say,
            };
            Event::Ui {
                level,
                text: text.clone(),
            }
        }
        ("artifact", [index, key, values @ ..]) => match index.parse() {
            Ok(index) => Event::Artifact {
                target,
                index,
                key: key.clone(),
                values: values.to_vec(),
            },
            Err(_) => Event::Other {
                kind: kind.to_string(),
                data,
            },
        },
        ("error", [text, ..]) => Event::BuildError {
            target,
            text: text.clone(),
        },
        ("error-count", [n, ..]) => match n.parse() {
            Ok(n) => Event::ErrorCount(n),
            Err(_) => Event::Other {
                kind: kind.to_string(),
                data,
            },
        },
        ("version", [v, ..]) => Event::Version(v.clone()),
        _ => Event::Other {
            kind: kind.to_string(),
            data,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape("a%!(PACKER_COMMA)b\\nc\\r"), "a,b\nc\r");
        assert_eq!(unescape("100% sure \\t"), "100% sure \\t");
        assert_eq!(unescape("%!(PACKER_COMMA"), "%!(PACKER_COMMA");
        assert_eq!(unescape("trailing\\"), "trailing\\");
    }

    #[test]
    fn lines_from_packer_1_6_6() {
        assert_eq!(
            parse_line("1795345269,,ui,message,    file.disk: a%!(PACKER_COMMA)b"),
            Event::Ui {
                level: UiLevel::Message,
                text: "    file.disk: a,b".into()
            }
        );
        assert_eq!(
            parse_line("1795345268,,ui,say,Warning: Undefined variable\\n\\nA \"x\" variable\n"),
            Event::Ui {
                level: UiLevel::Say,
                text: "Warning: Undefined variable\n\nA \"x\" variable".into()
            }
        );
        assert_eq!(
            parse_line("1795345269,file.disk,artifact,0,file,0,/tmp/pk/out/disk.raw"),
            Event::Artifact {
                target: "file.disk".into(),
                index: 0,
                key: "file".into(),
                values: vec!["0".into(), "/tmp/pk/out/disk.raw".into()]
            }
        );
        assert_eq!(
            parse_line(
                "1795345274,null.n,error,Script exited with non-zero exit status: 3.Allowed exit codes are: [0]"
            ),
            Event::BuildError {
                target: "null.n".into(),
                text: "Script exited with non-zero exit status: 3.Allowed exit codes are: [0]"
                    .into()
            }
        );
        assert_eq!(
            parse_line("1795345274,,error-count,1"),
            Event::ErrorCount(1)
        );
        assert_eq!(
            parse_line("1795345274,,version,1.6.6"),
            Event::Version("1.6.6".into())
        );
        assert_eq!(
            parse_line("panic: runtime error"),
            Event::Raw("panic: runtime error".into())
        );
        assert_eq!(parse_line(""), Event::Raw(String::new()));
        assert!(matches!(
            parse_line("12,x,artifact,notanumber,id,1"),
            Event::Other { .. }
        ));
        assert!(matches!(parse_line("12,,ui"), Event::Other { .. }));
    }
}
