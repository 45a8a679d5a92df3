//! The next version of an image, from the commits that changed it.
//!
//! Conventional commits (<https://www.conventionalcommits.org/en/v1.0.0/>):
//! - a `!` after the type or scope, or a `BREAKING CHANGE:` / `BREAKING-CHANGE:` footer: major;
//! - `feat`: minor;
//! - `fix`, any other type, and subjects that are not conventional: patch.
//!
//! Below 1.0.0 the public surface is still settling, as semver allows: a breaking change bumps
//! the minor version and a feature the patch version. Leaving 0.x is a deliberate act: tag the
//! 1.0.0 by hand, or set `first_version = "1.0.0"`.

use std::fmt;

use semver::Version;

/// How much a change moves the version; ordered so the largest change in a range wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bump {
    Patch,
    Minor,
    Major,
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Patch => "patch",
            Self::Minor => "minor",
            Self::Major => "major",
        })
    }
}

/// A commit message's conventional-commit reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conventional<'a> {
    /// `feat`, `fix`, … (lower-cased comparison); `None` for a non-conventional subject.
    pub kind: Option<&'a str>,
    pub breaking: bool,
}

/// Reads a commit's subject and body.
pub fn classify<'a>(subject: &'a str, body: &str) -> Conventional<'a> {
    let footer_breaking = body
        .lines()
        .any(|l| l.starts_with("BREAKING CHANGE:") || l.starts_with("BREAKING-CHANGE:"));
    let Some((head, rest)) = subject.split_once(':') else {
        return Conventional {
            kind: None,
            breaking: footer_breaking,
        };
    };
    if !rest.starts_with(' ') {
        return Conventional {
            kind: None,
            breaking: footer_breaking,
        };
    }
    let (head, bang) = match head.strip_suffix('!') {
        Some(h) => (h, true),
        None => (head, false),
    };
    let kind = match head.split_once('(') {
        Some((kind, scope))
            if scope.ends_with(')') && !scope[..scope.len() - 1].contains(['(', ')']) =>
        {
            kind
        }
        Some(_) => {
            return Conventional {
                kind: None,
                breaking: footer_breaking,
            };
        }
        None => head,
    };
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Conventional {
            kind: None,
            breaking: footer_breaking,
        };
    }
    Conventional {
        kind: Some(kind),
        breaking: bang || footer_breaking,
    }
}

/// The bump one commit asks for.
pub fn bump_for(subject: &str, body: &str) -> Bump {
    let c = classify(subject, body);
    if c.breaking {
        Bump::Major
    } else if c.kind.is_some_and(|k| k.eq_ignore_ascii_case("feat")) {
        Bump::Minor
    } else {
        Bump::Patch
    }
}

/// The bump that applies to `current`: one step smaller below 1.0.0.
pub fn effective_bump(current: &Version, bump: Bump) -> Bump {
    match (current.major, bump) {
        (0, Bump::Major) => Bump::Minor,
        (0, _) => Bump::Patch,
        _ => bump,
    }
}

/// Applies a bump to a released version, with the rules below 1.0.0.
pub fn next_version(current: &Version, bump: Bump) -> Version {
    match effective_bump(current, bump) {
        Bump::Major => Version::new(current.major + 1, 0, 0),
        Bump::Minor => Version::new(current.major, current.minor + 1, 0),
        Bump::Patch => Version::new(current.major, current.minor, current.patch + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventional_subjects() {
        assert_eq!(bump_for("feat: add nginx", ""), Bump::Minor);
        assert_eq!(bump_for("feat(global): add nginx", ""), Bump::Minor);
        assert_eq!(bump_for("FEAT: shouting", ""), Bump::Minor);
        assert_eq!(bump_for("fix: typo", ""), Bump::Patch);
        assert_eq!(bump_for("chore(deps): bump", ""), Bump::Patch);
        assert_eq!(bump_for("feat!: drop python2", ""), Bump::Major);
        assert_eq!(bump_for("refactor(cis)!: new layout", ""), Bump::Major);
        assert_eq!(
            bump_for("fix: x", "details\n\nBREAKING CHANGE: sshd port moved"),
            Bump::Major
        );
        assert_eq!(bump_for("fix: x", "BREAKING-CHANGE: yes"), Bump::Major);
        assert_eq!(
            bump_for("fix: x", "mentions BREAKING CHANGE: inline only"),
            Bump::Patch
        );
        // Not conventional: patch, never an error.
        for s in [
            "Update README",
            "Merge pull request #4 from x/y",
            "feat:no space",
            "feat(a(b)): x",
            "fe at: x",
            ": empty",
        ] {
            assert_eq!(bump_for(s, ""), Bump::Patch, "{s}");
        }
    }

    #[test]
    fn bumps_at_and_above_one() {
        let v = Version::new(1, 4, 2);
        assert_eq!(next_version(&v, Bump::Patch), Version::new(1, 4, 3));
        assert_eq!(next_version(&v, Bump::Minor), Version::new(1, 5, 0));
        assert_eq!(next_version(&v, Bump::Major), Version::new(2, 0, 0));
    }

    #[test]
    fn bumps_below_one() {
        let v = Version::new(0, 3, 1);
        assert_eq!(next_version(&v, Bump::Patch), Version::new(0, 3, 2));
        assert_eq!(next_version(&v, Bump::Minor), Version::new(0, 3, 2));
        assert_eq!(next_version(&v, Bump::Major), Version::new(0, 4, 0));
    }
}
