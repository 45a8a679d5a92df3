//! Image names, versions and the tags that name them.

use std::fmt;
use std::str::FromStr;

use semver::Version;
use serde::{Deserialize, Serialize};

/// A path-like image name such as `global/debian-12`.
///
/// Names become store paths, git tag prefixes and content-library item names, so they are kept
/// to a conservative alphabet: lower-case ASCII letters, digits, `-`, `_`, `.` in segments
/// separated by single `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("image name is empty")]
    Empty,
    #[error(
        "image name `{0}` is not valid: use lower-case letters, digits, `-`, `_` and `.` in \
         segments separated by `/`, such as `global/debian-12`"
    )]
    Invalid(String),
}

impl ImageName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a single path segment (`global/debian-12` → `global-debian-12`), for places
    /// such as content-library item names that cannot hold `/`.
    pub fn flat(&self) -> String {
        self.0.replace('/', "-")
    }
}

impl FromStr for ImageName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                && seg.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
                })
        };
        // `refs/…` would be ambiguous with a tag's full ref name (`refs/tags/<image>/v1.0.0`).
        if s.len() > 200 || !s.split('/').all(segment_ok) || s == "refs" || s.starts_with("refs/") {
            return Err(NameError::Invalid(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for ImageName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ImageName> for String {
    fn from(n: ImageName) -> String {
        n.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl schemars::JsonSchema for ImageName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ImageName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$",
            "maxLength": 200,
            "not": { "pattern": "^refs(/|$)" },
            "description": "Path-like image name, e.g. `global/debian-12`."
        })
    }
}

/// One version of one image: `global/debian-12@1.4.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: ImageName,
    pub version: Version,
}

#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("`{0}` is not `<image>@<version>` (for example `global/debian-12@1.4.0`)")]
    Shape(String),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("`{input}`: version `{version}` is not semver (X.Y.Z): {source}")]
    Version {
        input: String,
        version: String,
        source: semver::Error,
    },
}

impl FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, version) = s
            .rsplit_once('@')
            .ok_or_else(|| RefError::Shape(s.to_string()))?;
        let version = version.strip_prefix('v').unwrap_or(version);
        Ok(Self {
            name: name.parse()?,
            version: Version::parse(version).map_err(|source| RefError::Version {
                input: s.to_string(),
                version: version.to_string(),
                source,
            })?,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// How image versions are spelled as git tags; `{image}/v{version}` unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFormat {
    prefix: String,
    middle: String,
    suffix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagFormatError {
    #[error(
        "tag format `{0}` must contain `{{image}}` followed by `{{version}}`, \
         with a separator between them, e.g. `{{image}}/v{{version}}`"
    )]
    Placeholders(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    #[error("tag `{tag}` does not match the tag format `{format}`")]
    Format { tag: String, format: String },
    #[error("tag `{tag}`: {reason}")]
    Invalid { tag: String, reason: String },
}

impl TagFormat {
    pub const DEFAULT: &'static str = "{image}/v{version}";

    pub fn parse(format: &str) -> Result<Self, TagFormatError> {
        let bad = || TagFormatError::Placeholders(format.to_string());
        let (prefix, rest) = format.split_once("{image}").ok_or_else(bad)?;
        let (middle, suffix) = rest.split_once("{version}").ok_or_else(bad)?;
        // Without a separator a tag like `a1.0.0` could not be split back into name and version.
        if middle.is_empty() || format.matches('{').count() != 2 {
            return Err(bad());
        }
        Ok(Self {
            prefix: prefix.into(),
            middle: middle.into(),
            suffix: suffix.into(),
        })
    }

    pub fn render(&self, image: &ImageName, version: &Version) -> String {
        format!(
            "{}{image}{}{version}{}",
            self.prefix, self.middle, self.suffix
        )
    }

    /// Splits a tag back into image and version. The version must be full semver. Split points
    /// are tried from the right, so image names may contain the separator; the first one whose
    /// right side is a version wins.
    pub fn parse_tag(&self, tag: &str) -> Result<ImageRef, TagError> {
        let format_err = || TagError::Format {
            tag: tag.to_string(),
            format: self.to_string(),
        };
        let tag = tag.strip_prefix("refs/tags/").unwrap_or(tag);
        let body = tag
            .strip_prefix(self.prefix.as_str())
            .and_then(|t| t.strip_suffix(self.suffix.as_str()))
            .ok_or_else(format_err)?;
        let invalid = |reason: String| TagError::Invalid {
            tag: tag.to_string(),
            reason,
        };
        let mut last_err = None;
        for (at, _) in body.rmatch_indices(self.middle.as_str()) {
            let (name, version) = (&body[..at], &body[at + self.middle.len()..]);
            match Version::parse(version) {
                Ok(version) => {
                    let name: ImageName = name
                        .parse()
                        .map_err(|e: NameError| invalid(e.to_string()))?;
                    return Ok(ImageRef { name, version });
                }
                Err(e) => {
                    last_err.get_or_insert_with(|| {
                        invalid(format!("`{version}` is not a semver version: {e}"))
                    });
                }
            }
        }
        Err(last_err.unwrap_or_else(format_err))
    }
}

impl Default for TagFormat {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default tag format is valid")
    }
}

impl fmt::Display for TagFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{{image}}{}{{version}}{}",
            self.prefix, self.middle, self.suffix
        )
    }
}

/// The prefix that names a channel wherever a version can be named: `channel:prod`.
pub const CHANNEL_PREFIX: &str = "channel:";

/// The channel a version argument names (`channel:prod` → `prod`), if it names one.
pub fn channel_name(arg: &str) -> Option<&str> {
    arg.strip_prefix(CHANNEL_PREFIX)
}

/// Whether a channel name can be held by every store (a file name, an Artifactory property
/// key, a registry tag): ASCII letters, digits, `.`, `_` and `-`, a letter or digit first.
pub fn is_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["global/debian-12", "a", "vendor/rhel_9.4", "x/y/z"] {
            assert!(ok.parse::<ImageName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "A/b",
            "a/../b",
            "a b",
            "-a",
            "a/.hidden",
        ] {
            assert!(bad.parse::<ImageName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_tag_round_trip() {
        let f = TagFormat::default();
        let r: ImageRef = "global/debian-12@1.4.0-rc.1".parse().unwrap();
        let tag = f.render(&r.name, &r.version);
        assert_eq!(tag, "global/debian-12/v1.4.0-rc.1");
        assert_eq!(f.parse_tag(&tag).unwrap(), r);
        assert_eq!(
            f.parse_tag("refs/tags/global/debian-12/v1.4.0-rc.1")
                .unwrap(),
            r
        );
    }

    #[test]
    fn other_formats() {
        let f = TagFormat::parse("{image}@{version}").unwrap();
        let r = f.parse_tag("product/jdk@2.0.1").unwrap();
        assert_eq!(r.to_string(), "product/jdk@2.0.1");
        let f = TagFormat::parse("img-{image}-v{version}").unwrap();
        assert_eq!(
            f.parse_tag("img-a/b-c-v1.2.3").unwrap().to_string(),
            "a/b-c@1.2.3"
        );
        assert!(TagFormat::parse("{image}{version}").is_err());
        assert!(TagFormat::parse("v{version}").is_err());
    }

    #[test]
    fn bad_tags() {
        let f = TagFormat::default();
        assert!(matches!(
            f.parse_tag("v1.2.3"),
            Err(TagError::Format { .. })
        ));
        assert!(matches!(
            f.parse_tag("global/debian-12/v1.2"),
            Err(TagError::Invalid { .. })
        ));
        assert!(matches!(
            f.parse_tag("Global/v1.2.3"),
            Err(TagError::Invalid { .. })
        ));
    }
}
