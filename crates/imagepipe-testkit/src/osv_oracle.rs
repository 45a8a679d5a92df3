//! The oracle of `tests/scan_osv_differential.rs`: an independent evaluator of OSV records and
//! a generator of them, written from the OSV schema alone, not from `src/scan/osv.rs`, and kept
//! as it was written. Its own tests check it against the schema's examples.
//!
//! Independent reference implementation ("test oracle") of the OSV schema's
//! evaluation rules, written only from the OSV specification.
//!
//! Source of every quoted sentence below: the OSV schema, `docs/schema.md`,
//! "Version 1.7.5 (January 21, 2026)", github ossf/osv-schema at commit
//! `51b8156b69b9e2e9ff2301e649db61636067fcfa` (and `validation/schema.json` at the
//! same commit where said so). A fuller set of quotes, with the ambiguities and how
//! they are resolved here, is kept in the project's notes (`osv-spec.md`).
//!
//! The evaluation pseudo-code of the spec ("### Evaluation") is:
//!
//! ```text
//! func IsVulnerable(pkg, v, osv)
//!   for affected in osv.affected
//!     if affected.package == pkg
//!       if IncludedInVersions(v, affected.versions) ||
//!            IncludedInRanges(v, affected.ranges)
//!         return true
//!   return false
//!
//! func IncludedInVersions(v, versions)
//!   for version in versions
//!     if v == version
//!       return true
//!   return false
//!
//! func IncludedInRanges(v, ranges)
//!   for range in ranges
//!     if BeforeLimits(v, range)
//!       vulnerable = false
//!       for evt in sorted(range.events)
//!         if evt.introduced is present && v >= evt.introduced
//!            vulnerable = true
//!         else if evt.fixed is present && v >= evt.fixed
//!            vulnerable = false
//!         else if evt.last_affected is present && v > evt.last_affected
//!            vulnerable = false
//!       if vulnerable
//!         return true
//!   return false
//!
//! func BeforeLimits(v, range)
//!   if no limit events in range.events
//!     # implicit "*" entry is assumed
//!     return true
//!   for evt in range.events
//!     if evt.limit is present and v < evt.limit
//!       return true
//!   return false
//! ```
//!
//! This module is self-contained (only `serde_json` and `fastrand`), has no
//! `unsafe`, and never panics on record contents: malformed parts of a record are
//! skipped, as documented at each place.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// What the spec says about one installed package and one OSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The installed version is affected by the record (spec: `IsVulnerable`).
    pub affected: bool,
    /// The lowest `fixed` event value (in the ecosystem's order) of the applicable
    /// entries that is above the installed version and at which the same record
    /// says "not affected". `None` when not affected or when there is no such value.
    pub fix: Option<String>,
}

/// Evaluates one OSV record for one installed package.
///
/// `record`: one OSV record as JSON. `image_ecosystem`: the image's ecosystem with
/// release, e.g. "Debian:12". `package`: the (source) package name. `version`:
/// installed version. `cmp`: the ecosystem's version order (used for `ECOSYSTEM`
/// ranges and to order `fixed` candidates; it must be a total order).
///
/// Rules (each cited at the helper that implements it):
/// * a withdrawn record affects nothing ([`is_withdrawn`]);
/// * only `affected[]` entries for this package in an ecosystem that applies to the
///   image count ([`applicable_entries`], [`ecosystem_applies`]);
/// * "A version is considered affected if it lies within any one of the ranges or
///   is listed in the versions list." (`## affected fields`)
///   ([`included_in_versions`], [`included_in_ranges`]);
/// * the fix is computed by [`lowest_fix`].
pub fn evaluate(
    record: &Value,
    image_ecosystem: &str,
    package: &str,
    version: &str,
    cmp: &dyn Fn(&str, &str) -> Ordering,
) -> Verdict {
    if !is_vulnerable(record, image_ecosystem, package, version, cmp) {
        return Verdict {
            affected: false,
            fix: None,
        };
    }
    let fix = lowest_fix(record, image_ecosystem, package, version, cmp);
    Verdict {
        affected: true,
        fix,
    }
}

/// The spec's `IsVulnerable(pkg, v, osv)`, plus the withdrawn rule.
fn is_vulnerable(
    record: &Value,
    image_ecosystem: &str,
    package: &str,
    version: &str,
    cmp: &dyn Fn(&str, &str) -> Ordering,
) -> bool {
    if is_withdrawn(record) {
        return false;
    }
    applicable_entries(record, image_ecosystem, package)
        .into_iter()
        .any(|entry| {
            included_in_versions(version, entry) || included_in_ranges(version, entry, cmp)
        })
}

/// `## withdrawn field`: "The `withdrawn` field gives the time the entry should be
/// considered to have been withdrawn, as an RFC3339-formatted timestamp in UTC
/// (ending in "Z"). If the field is missing, then the entry has not been withdrawn."
///
/// Resolution: a present, non-`null` `withdrawn` means withdrawn; the timestamp is
/// not compared with the current time. A withdrawn record affects nothing.
fn is_withdrawn(record: &Value) -> bool {
    record.get("withdrawn").is_some_and(|w| !w.is_null())
}

/// The entries of `affected[]` for which the spec's `affected.package == pkg` holds.
///
/// `### affected[].package field`: "The `ecosystem` identifies the overall library
/// ecosystem. [...] The `name` field is a string identifying the library within its
/// ecosystem. The two fields must both be present, because the `ecosystem` serves to
/// define the interpretation of the `name`." and "Different ecosystems can define the
/// same names; they identify different packages."
///
/// `## affected fields`: "In rare cases, [...] a separate entry with the same
/// `package` in the `affected` array may be needed." — so every matching entry counts.
///
/// An entry without `package`, `name` or `ecosystem` (or with non-string values)
/// identifies no package and is skipped. `"affected": null` (allowed by
/// `validation/schema.json`, `"type": ["array", "null"]`) or a missing `affected`
/// gives no entries.
fn applicable_entries<'a>(
    record: &'a Value,
    image_ecosystem: &str,
    package: &str,
) -> Vec<&'a Map<String, Value>> {
    let Some(list) = record.get("affected").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .filter(|entry| {
            let Some(pkg) = entry.get("package").and_then(Value::as_object) else {
                return false;
            };
            let name = pkg.get("name").and_then(Value::as_str);
            let ecosystem = pkg.get("ecosystem").and_then(Value::as_str);
            match (name, ecosystem) {
                (Some(name), Some(ecosystem)) => {
                    name == package && ecosystem_applies(ecosystem, image_ecosystem)
                }
                _ => false,
            }
        })
        .collect()
}

/// Whether a record's `package.ecosystem` applies to the image's ecosystem.
///
/// `#### Defined ecosystems`, row `Debian`: "The ecosystem string might optionally
/// have a `:<RELEASE>` suffix to scope the package to a particular Debian release.
/// [...] For example, the ecosystem string "Debian:7" refers to the Debian 7
/// (wheezy) release." (The same "might optionally have a `:<RELEASE>` suffix to scope
/// the package to a particular [...] release" wording is used for `AlmaLinux` and
/// `Rocky Linux`; `validation/schema.json` accepts `^(...|Debian|...)(:.+)?$`.)
///
/// So the suffix only narrows: `Debian:12` applies to a `Debian:12` image only, and
/// a plain `Debian` (no suffix, not scoped to a release) applies to every Debian
/// release. Rule: exact equality with `image_ecosystem`, or — when the record's
/// ecosystem has no `:` at all — equality with the image ecosystem's part before its
/// first `:`. Comparison is exact, case-sensitive string equality.
fn ecosystem_applies(record_ecosystem: &str, image_ecosystem: &str) -> bool {
    if record_ecosystem == image_ecosystem {
        return true;
    }
    if record_ecosystem.contains(':') {
        return false;
    }
    let image_base = image_ecosystem
        .split_once(':')
        .map_or(image_ecosystem, |(base, _)| base);
    record_ecosystem == image_base
}

/// The spec's `IncludedInVersions(v, versions)`: `if v == version`.
///
/// `## affected fields`: "The `versions` list is generally recommended to always be
/// present, to allow software to easily answer the question "is this specific
/// version affected?" without having to contain code specific to every different
/// ecosystem." — so membership is exact string equality, not the ecosystem's order
/// (`cmp` is deliberately not used). Non-string items are ignored.
fn included_in_versions(version: &str, entry: &Map<String, Value>) -> bool {
    entry
        .get("versions")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|item| item.as_str() == Some(version)))
}

/// The type of a range, `### affected[].ranges[].type field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeType {
    /// "`ECOSYSTEM`: The versions `introduced` and `fixed` are arbitrary,
    /// uninterpreted strings specific to the package ecosystem, which does not
    /// conform to SemVer 2.0's version ordering." — ordered by the caller's `cmp`.
    Ecosystem,
    /// "`SEMVER`: The versions `introduced` and `fixed` are semantic versions as
    /// defined by SemVer 2.0.0, with no leading "v" prefix. The relation `u < v`
    /// denotes the precedence order defined in section 11 of SemVer 2.0." — ordered
    /// by [`semver_order`], never by `cmp`.
    Semver,
    /// "`GIT`: [...] The repository's commit graph is needed to evaluate whether a
    /// given version is in the range." and "`GIT` range inclusion queries cannot be
    /// answered without access to a copy of the underlying Git repository." — the
    /// oracle has no repository, so GIT ranges never match (and their commit hashes
    /// are never fix candidates). Unknown types are treated the same way.
    Unsupported,
}

fn range_type(range: &Map<String, Value>) -> RangeType {
    match range.get("type").and_then(Value::as_str) {
        Some("ECOSYSTEM") => RangeType::Ecosystem,
        Some("SEMVER") => RangeType::Semver,
        _ => RangeType::Unsupported,
    }
}

/// The ranges of an entry (non-object items are ignored).
fn ranges_of(entry: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    entry
        .get("ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// The kind of one event, `### affected[].ranges[].events fields`:
/// "1. Introduces a vulnerability: `{"introduced": string}`
///  2. Fixes a vulnerability: `{"fixed": string}`
///  3. Describes the last known affected version: `{"last_affected": string}`
///  4. Sets an upper limit on the range being described: `{"limit": string}`"
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

#[derive(Debug, Clone, Copy)]
struct Event<'a> {
    kind: Kind,
    value: &'a str,
}

impl Event<'_> {
    /// `#### Special values`: "`introduced` allows a version of the value `"0"` to
    /// represent a version that sorts before any other version." (Only for
    /// `introduced`; a `fixed`/`last_affected`/`limit` of "0" is an ordinary version.)
    fn is_introduced_zero(&self) -> bool {
        self.kind == Kind::Introduced && self.value == "0"
    }

    /// `#### Special values`: "`limit` allows versions containing the string `"*"` to
    /// represent "infinity"."
    fn is_infinite_limit(&self) -> bool {
        self.kind == Kind::Limit && self.value.contains('*')
    }
}

/// Parses the `events` of a range.
///
/// `#### Requirements`: "Only **a single type** (either `introduced`, `fixed`,
/// `last_affected`, `limit`) is allowed in each event object. For instance,
/// `{"introduced": "1.0.0", "fixed": "1.0.2"}` is **invalid**." — such an invalid
/// event (zero or several of the four keys, or a non-string value) is ignored.
/// Other keys of an event object are ignored.
fn events_of(range: &Map<String, Value>) -> Vec<Event<'_>> {
    const KEYS: [(&str, Kind); 4] = [
        ("introduced", Kind::Introduced),
        ("fixed", Kind::Fixed),
        ("last_affected", Kind::LastAffected),
        ("limit", Kind::Limit),
    ];
    let Some(list) = range.get("events").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .filter_map(|obj| {
            let mut found = KEYS
                .iter()
                .filter_map(|(key, kind)| obj.get(*key).map(|value| (*kind, value)));
            let (kind, value) = found.next()?;
            if found.next().is_some() {
                return None;
            }
            Some(Event {
                kind,
                value: value.as_str()?,
            })
        })
        .collect()
}

/// The spec's `IncludedInRanges(v, ranges)` for one `affected[]` entry.
fn included_in_ranges(
    version: &str,
    entry: &Map<String, Value>,
    cmp: &dyn Fn(&str, &str) -> Ordering,
) -> bool {
    ranges_of(entry).any(|range| {
        let events = events_of(range);
        match range_type(range) {
            RangeType::Ecosystem => range_includes(&events, version, cmp),
            RangeType::Semver => semver_range_includes(&events, version),
            RangeType::Unsupported => false,
        }
    })
}

/// A `SEMVER` range is evaluated with SemVer 2.0 precedence (see [`RangeType::Semver`]).
///
/// Resolution: a version that is not valid SemVer 2.0 cannot lie in a SemVer range,
/// so when the installed version is not valid SemVer the range does not match; a
/// range with a non-special event value that is not valid SemVer is malformed and
/// is skipped.
fn semver_range_includes(events: &[Event<'_>], version: &str) -> bool {
    if parse_semver(version).is_none() {
        return false;
    }
    let well_formed = events.iter().all(|e| {
        e.is_introduced_zero() || e.is_infinite_limit() || parse_semver(e.value).is_some()
    });
    well_formed && range_includes(events, version, &semver_order)
}

/// The body of the spec's `IncludedInRanges` loop for one range, using `order` as
/// the range type's version order: `BeforeLimits`, then the `sorted(range.events)`
/// timeline walk, literally.
///
/// `### affected[].ranges[].events fields`: "These `events` objects represent a
/// "timeline" of status changes for the affected package." `#### Requirements`:
/// "While not required, it's also recommended to keep the `events` array sorted" —
/// so the record's order is not trusted and the events are sorted here.
fn range_includes(events: &[Event<'_>], v: &str, order: &dyn Fn(&str, &str) -> Ordering) -> bool {
    if !before_limits(events, v, order) {
        return false;
    }
    // `limit` events never change `vulnerable` in the pseudo-code, so only the other
    // three kinds take part in the timeline walk.
    let mut timeline: Vec<&Event<'_>> = events.iter().filter(|e| e.kind != Kind::Limit).collect();
    stable_sort(&mut timeline, |a, b| event_order(a, b, order));

    let mut vulnerable = false;
    for evt in timeline {
        match evt.kind {
            // "if evt.introduced is present && v >= evt.introduced: vulnerable = true"
            Kind::Introduced => {
                if evt.is_introduced_zero() || order(v, evt.value) != Ordering::Less {
                    vulnerable = true;
                }
            }
            // "else if evt.fixed is present && v >= evt.fixed: vulnerable = false"
            Kind::Fixed => {
                if order(v, evt.value) != Ordering::Less {
                    vulnerable = false;
                }
            }
            // "else if evt.last_affected is present && v > evt.last_affected:
            //  vulnerable = false" — `#### Requirements`: "Versions above
            //  `last_affected` should be considered unaffected."
            Kind::LastAffected => {
                if order(v, evt.value) == Ordering::Greater {
                    vulnerable = false;
                }
            }
            Kind::Limit => {}
        }
    }
    vulnerable
}

/// The spec's `BeforeLimits(v, range)`.
///
/// `#### Special values`: "`limit` allows versions containing the string `"*"` to
/// represent "infinity". If no limit events are provided, an implicit
/// `{ "limit": "*" }` is assumed to exist. Multiple `limit` events are allowed in
/// the same range." With several limits the pseudo-code returns true as soon as
/// `v < evt.limit` for any one of them (`#### Limit events`: "Multiple `limit` events
/// may be specified for each branch -- each expands the scope"). `v == limit` is
/// not below the limit ("including `X` and excluding `Y`").
fn before_limits(events: &[Event<'_>], v: &str, order: &dyn Fn(&str, &str) -> Ordering) -> bool {
    let mut limits = events.iter().filter(|e| e.kind == Kind::Limit).peekable();
    if limits.peek().is_none() {
        return true;
    }
    limits.any(|limit| limit.is_infinite_limit() || order(v, limit.value) == Ordering::Less)
}

/// The order used for `sorted(range.events)`: by version in the range type's order,
/// with `introduced: "0"` before everything ("a version that sorts before any other
/// version").
///
/// Ambiguity resolved here: the spec does not say how to order two events with equal
/// versions (e.g. `introduced: 5` and `fixed: 5`). [`stable_sort`] keeps such events
/// in the order of the record's `events` array (the array is a "timeline"). The
/// generator never produces such ties.
fn event_order(a: &Event<'_>, b: &Event<'_>, order: &dyn Fn(&str, &str) -> Ordering) -> Ordering {
    match (a.is_introduced_zero(), b.is_introduced_zero()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => order(a.value, b.value),
    }
}

/// A stable insertion sort (event lists are short). Written by hand so that the
/// record's order is never assumed and so that an inconsistent comparator cannot
/// make the sort panic.
fn stable_sort<T>(items: &mut [T], mut compare: impl FnMut(&T, &T) -> Ordering) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && compare(&items[j - 1], &items[j]) == Ordering::Greater {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// The fix version (a notion of the project, not of the spec).
///
/// Candidates: every `fixed` event value of every `ECOSYSTEM` or `SEMVER` range of
/// every applicable entry (never `GIT` commit hashes, which are not versions). The
/// answer is the lowest candidate in `cmp` order that is `cmp`-greater than the
/// installed version and at which the same record evaluates as not affected; ties
/// in `cmp` order are broken by plain string order, so the answer is deterministic.
fn lowest_fix(
    record: &Value,
    image_ecosystem: &str,
    package: &str,
    version: &str,
    cmp: &dyn Fn(&str, &str) -> Ordering,
) -> Option<String> {
    let mut candidates: Vec<&str> = Vec::new();
    for entry in applicable_entries(record, image_ecosystem, package) {
        for range in ranges_of(entry) {
            if range_type(range) == RangeType::Unsupported {
                continue;
            }
            for evt in events_of(range) {
                if evt.kind == Kind::Fixed && cmp(evt.value, version) == Ordering::Greater {
                    candidates.push(evt.value);
                }
            }
        }
    }
    stable_sort(&mut candidates, |a, b| cmp(a, b).then_with(|| a.cmp(b)));
    candidates.dedup();
    candidates
        .into_iter()
        .find(|candidate| !is_vulnerable(record, image_ecosystem, package, candidate, cmp))
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------
// SemVer 2.0.0 (semver.org), as referenced by the `SEMVER` range type.
// ---------------------------------------------------------------------------

/// A parsed SemVer 2.0.0 version; build metadata is validated and then dropped,
/// because semver.org §10 says "Build metadata MUST be ignored when determining
/// version precedence".
#[derive(Debug)]
struct SemVer<'a> {
    core: [&'a str; 3],
    pre: Vec<&'a str>,
}

/// Parses `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]` strictly (no leading "v", no
/// leading zeros in numeric identifiers, non-empty `[0-9A-Za-z-]` identifiers).
fn parse_semver(s: &str) -> Option<SemVer<'_>> {
    let (rest, build) = match s.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (s, None),
    };
    if build.is_some_and(|build| !build.split('.').all(is_semver_identifier)) {
        return None;
    }
    // The core contains only digits and dots, so the first '-' starts the pre-release.
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let mut parts = core.split('.');
    let major = parts.next()?;
    let minor = parts.next()?;
    let patch = parts.next()?;
    if parts.next().is_some() || ![major, minor, patch].iter().all(|p| is_semver_number(p)) {
        return None;
    }
    let pre: Vec<&str> = match pre {
        None => Vec::new(),
        Some(pre) => {
            let ids: Vec<&str> = pre.split('.').collect();
            let valid = ids.iter().all(|id| {
                is_semver_identifier(id)
                    && (!id.bytes().all(|c| c.is_ascii_digit()) || is_semver_number(id))
            });
            if !valid {
                return None;
            }
            ids
        }
    };
    Some(SemVer {
        core: [major, minor, patch],
        pre,
    })
}

fn is_semver_identifier(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// A numeric identifier: digits, no leading zero unless it is "0".
fn is_semver_number(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|c| c.is_ascii_digit()) && (id == "0" || !id.starts_with('0'))
}

/// Compares two numeric identifiers of any length (no overflow).
fn compare_numeric(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// SemVer 2.0.0 §11 precedence.
fn semver_precedence(a: &SemVer<'_>, b: &SemVer<'_>) -> Ordering {
    for (x, y) in a.core.iter().zip(b.core.iter()) {
        let o = compare_numeric(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    // "a pre-release version has lower precedence than a normal version"
    match (a.pre.is_empty(), b.pre.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    for (x, y) in a.pre.iter().zip(b.pre.iter()) {
        let x_num = x.bytes().all(|c| c.is_ascii_digit());
        let y_num = y.bytes().all(|c| c.is_ascii_digit());
        let o = match (x_num, y_num) {
            (true, true) => compare_numeric(x, y),
            // "Numeric identifiers always have lower precedence than non-numeric identifiers."
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            // "compared lexically in ASCII sort order"
            (false, false) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    // "A larger set of pre-release fields has a higher precedence than a smaller set"
    a.pre.len().cmp(&b.pre.len())
}

/// The order of `SEMVER` ranges. Values are validated before a range is evaluated;
/// invalid strings (not reached) are ordered after valid ones so the relation stays
/// total.
fn semver_order(a: &str, b: &str) -> Ordering {
    match (parse_semver(a), parse_semver(b)) {
        (Some(x), Some(y)) => semver_precedence(&x, &y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

// ---------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------

/// The `modified` time of every generated record.
const MODIFIED: &str = "2026-11-01T00:00:00Z";
const CVSS_V3: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
const CVSS_V4: &str = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";

/// Generates `n` OSV records for packages named in `packages`, using only versions
/// from `pool` (which the caller passes sorted ascending in the ecosystem's order),
/// deterministically from `seed`.
///
/// `pool` must be *strictly* ascending (no two entries equal in the ecosystem's
/// order); entries equal to "0" or containing "*" are not used, because those
/// strings are special in events. `release_ecosystem` is e.g. "Debian:12".
///
/// What the records exercise:
/// * ids `ORACLE-<seed hex>-<index>` (unique), `modified` = 2026-11-01T00:00:00Z,
///   `schema_version` 1.7.5, sometimes a CVSS_V3 or CVSS_V4 `severity`, sometimes
///   `withdrawn`;
/// * 1–3 `affected` entries: mostly the record's main package, sometimes the same
///   package twice, another package of `packages`, or a package not in it; the
///   ecosystem is `release_ecosystem`, its plain base (e.g. `Debian`), another
///   release (e.g. `Debian:11`) or a different ecosystem with the same name;
/// * `versions` lists; 1–3 ranges (0–2 when `versions` is present):
///   `ECOSYSTEM` ranges (ordered timelines with `introduced: "0"` or a version and
///   `fixed` or `last_affected` — never both in one range, as `validation/schema.json`
///   says "last_affected and fixed events are mutually exclusive" — and free-form
///   timelines in any order, each with at least one `introduced` as the spec requires
///   "There must be at least one `introduced` object in the `events` array"),
///   1–3 `limit` events including `"*"`, occasional `GIT` ranges with commit hashes
///   and occasional `SEMVER` ranges (from the pool's valid SemVer versions only);
/// * events always shuffled, and never two non-limit events of one range with equal
///   versions (so the tie ambiguity of `sorted(range.events)` never matters).
pub fn generate(
    seed: u64,
    n: usize,
    packages: &[&str],
    pool: &[&str],
    release_ecosystem: &str,
) -> Vec<Value> {
    let mut generator = Generator::new(seed, packages, pool, release_ecosystem);
    (0..n).map(|index| generator.record(index)).collect()
}

#[derive(Debug)]
struct Generator<'a> {
    rng: fastrand::Rng,
    seed: u64,
    packages: Vec<&'a str>,
    pool: Vec<&'a str>,
    semver_pool: Vec<&'a str>,
    release: String,
    base: String,
    other_release: String,
    foreign: Vec<&'static str>,
}

impl<'a> Generator<'a> {
    fn new(seed: u64, packages: &[&'a str], pool: &[&'a str], release_ecosystem: &str) -> Self {
        let pool: Vec<&str> = pool
            .iter()
            .copied()
            .filter(|v| *v != "0" && !v.contains('*'))
            .collect();
        let mut semver_pool: Vec<&str> = pool
            .iter()
            .copied()
            .filter(|v| parse_semver(v).is_some())
            .collect();
        stable_sort(&mut semver_pool, |a, b| semver_order(a, b));
        semver_pool.dedup_by(|a, b| semver_order(a, b) == Ordering::Equal);

        let (base, other_release) = match release_ecosystem.split_once(':') {
            Some((base, release)) => {
                let other = match release.parse::<u64>() {
                    Ok(number) if number > 1 => format!("{base}:{}", number - 1),
                    Ok(number) => format!("{base}:{}", number + 1),
                    Err(_) => format!("{base}:{release}-other"),
                };
                (base.to_owned(), other)
            }
            None => (
                release_ecosystem.to_owned(),
                format!("{release_ecosystem}:1"),
            ),
        };
        let foreign: Vec<&'static str> = ["PyPI", "Ubuntu:22.04:LTS", "Alpine:v3.20", "Debian:12"]
            .into_iter()
            .filter(|eco| eco.split(':').next() != Some(base.as_str()))
            .collect();

        Generator {
            rng: fastrand::Rng::with_seed(seed),
            seed,
            packages: packages.to_vec(),
            pool,
            semver_pool,
            release: release_ecosystem.to_owned(),
            base,
            other_release,
            foreign,
        }
    }

    fn percent(&mut self) -> u8 {
        self.rng.u8(..100)
    }

    fn any_package(&mut self) -> String {
        if self.packages.is_empty() {
            return "oracle-package".to_owned();
        }
        let index = self.rng.usize(..self.packages.len());
        self.packages[index].to_owned()
    }

    fn record(&mut self, index: usize) -> Value {
        let main = self.any_package();
        let entry_count = self.rng.usize(1..=3);
        let affected: Vec<Value> = (0..entry_count).map(|_| self.entry(&main)).collect();

        let mut record = Map::new();
        record.insert("schema_version".into(), "1.7.5".into());
        record.insert(
            "id".into(),
            format!("ORACLE-{:016x}-{index:06}", self.seed).into(),
        );
        record.insert("modified".into(), MODIFIED.into());
        record.insert("published".into(), "2026-10-01T00:00:00Z".into());
        record.insert(
            "summary".into(),
            format!("oracle record {index} for {main}").into(),
        );
        let severity = match self.percent() {
            0..=39 => Some(("CVSS_V3", CVSS_V3)),
            40..=59 => Some(("CVSS_V4", CVSS_V4)),
            _ => None,
        };
        if let Some((kind, score)) = severity {
            record.insert(
                "severity".into(),
                serde_json::json!([{ "type": kind, "score": score }]),
            );
        }
        if self.percent() < 6 {
            record.insert("withdrawn".into(), "2026-11-01T00:00:00Z".into());
        }
        record.insert("affected".into(), Value::Array(affected));
        Value::Object(record)
    }

    fn entry(&mut self, main: &str) -> Value {
        let name = match self.percent() {
            0..=74 => main.to_owned(),
            75..=94 => self.any_package(),
            _ => format!("{main}-not-installed"),
        };
        let ecosystem = match self.percent() {
            0..=59 => self.release.clone(),
            60..=74 => self.base.clone(),
            75..=89 => self.other_release.clone(),
            _ if self.foreign.is_empty() => self.other_release.clone(),
            _ => {
                let index = self.rng.usize(..self.foreign.len());
                self.foreign[index].to_owned()
            }
        };
        let mut entry = Map::new();
        entry.insert(
            "package".into(),
            serde_json::json!({ "ecosystem": ecosystem, "name": name }),
        );

        let with_versions = !self.pool.is_empty() && self.percent() < 35;
        if with_versions {
            let count = self.rng.usize(1..=3);
            let mut picks = distinct_indices(&mut self.rng, self.pool.len(), count);
            self.rng.shuffle(&mut picks);
            let versions: Vec<Value> = picks.into_iter().map(|i| self.pool[i].into()).collect();
            entry.insert("versions".into(), Value::Array(versions));
        }
        let range_count = if with_versions {
            self.rng.usize(0..=2)
        } else {
            self.rng.usize(1..=3)
        };
        let ranges: Vec<Value> = (0..range_count).map(|_| self.range(&name)).collect();
        if !ranges.is_empty() {
            entry.insert("ranges".into(), Value::Array(ranges));
        }
        Value::Object(entry)
    }

    fn range(&mut self, name: &str) -> Value {
        let roll = self.percent();
        if roll < 8 {
            let mut events = vec![event(
                "introduced",
                &if self.rng.bool() {
                    "0".to_owned()
                } else {
                    commit_hash(&mut self.rng)
                },
            )];
            events.push(event("fixed", &commit_hash(&mut self.rng)));
            if self.rng.bool() {
                events.push(event("limit", &commit_hash(&mut self.rng)));
            }
            self.rng.shuffle(&mut events);
            return serde_json::json!({
                "type": "GIT",
                "repo": format!("https://git.example.org/{name}.git"),
                "events": events,
            });
        }
        let (kind, events) = if roll < 14 && !self.semver_pool.is_empty() {
            ("SEMVER", linear_events(&mut self.rng, &self.semver_pool))
        } else {
            ("ECOSYSTEM", linear_events(&mut self.rng, &self.pool))
        };
        serde_json::json!({ "type": kind, "events": events })
    }
}

/// One event object with a single key (`#### Requirements`: "Only **a single type**
/// [...] is allowed in each event object").
fn event(kind: &str, value: &str) -> Value {
    let mut object = Map::new();
    object.insert(kind.to_owned(), Value::String(value.to_owned()));
    Value::Object(object)
}

fn commit_hash(rng: &mut fastrand::Rng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..40).map(|_| char::from(HEX[rng.usize(..16)])).collect()
}

/// `count` distinct indices below `len` (fewer if `len < count`), ascending.
fn distinct_indices(rng: &mut fastrand::Rng, len: usize, count: usize) -> Vec<usize> {
    let count = count.min(len);
    let mut chosen = BTreeSet::new();
    while chosen.len() < count {
        chosen.insert(rng.usize(..len));
    }
    chosen.into_iter().collect()
}

/// The events of one ECOSYSTEM or SEMVER range, drawn from `pool` (strictly
/// ascending in the range's order), shuffled. Non-limit events get distinct pool
/// entries; `fixed` and `last_affected` are never mixed in one range.
fn linear_events(rng: &mut fastrand::Rng, pool: &[&str]) -> Vec<Value> {
    let end_kind = if rng.u8(..100) < 70 {
        "fixed"
    } else {
        "last_affected"
    };
    let mut events: Vec<Value> = Vec::new();
    if pool.is_empty() {
        events.push(event("introduced", "0"));
    } else if rng.u8(..100) < 75 {
        // An ordered timeline: introduced/end pairs, ascending, the last one maybe open.
        let segments: usize = match rng.u8(..100) {
            0..=64 => 1,
            65..=92 => 2,
            _ => 3,
        };
        let zero_start = rng.u8(..100) < 40;
        let open_end = rng.u8(..100) < 20;
        let needed = 2 * segments - usize::from(zero_start) - usize::from(open_end);
        let mut picks = distinct_indices(rng, pool.len(), needed).into_iter();
        for segment in 0..segments {
            let introduced = if segment == 0 && zero_start {
                Some("0")
            } else {
                picks.next().map(|i| pool[i])
            };
            let Some(introduced) = introduced else { break };
            events.push(event("introduced", introduced));
            if segment + 1 == segments && open_end {
                break;
            }
            match picks.next() {
                Some(i) => events.push(event(end_kind, pool[i])),
                None => break,
            }
        }
        if events.is_empty() {
            events.push(event("introduced", "0"));
        }
    } else {
        // A free-form timeline: any sequence of introduced/end events, which the
        // pseudo-code evaluates just the same (e.g. a `fixed` before any `introduced`).
        let count = rng.usize(2..=5);
        let picks = distinct_indices(rng, pool.len(), count);
        let mut kinds: Vec<&str> = picks
            .iter()
            .map(|_| if rng.bool() { "introduced" } else { end_kind })
            .collect();
        if rng.u8(..100) < 30 {
            events.push(event("introduced", "0"));
        } else if !kinds.contains(&"introduced") && !kinds.is_empty() {
            let k = rng.usize(..kinds.len());
            kinds[k] = "introduced";
        }
        for (i, kind) in picks.into_iter().zip(kinds) {
            events.push(event(kind, pool[i]));
        }
        if events.is_empty() {
            events.push(event("introduced", "0"));
        }
    }
    if rng.u8(..100) < 30 {
        // `#### Special values`: "Multiple `limit` events are allowed in the same range."
        let count = rng.usize(1..=3);
        for _ in 0..count {
            let limit = if pool.is_empty() || rng.u8(..100) < 30 {
                "*"
            } else {
                pool[rng.usize(..pool.len())]
            };
            events.push(event("limit", limit));
        }
    }
    rng.shuffle(&mut events);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Test order: decimal integers compared numerically ("07" == "7"); anything
    /// else after them, by string.
    fn num(a: &str, b: &str) -> Ordering {
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    }

    const IMAGE: &str = "Debian:12";

    fn record(affected: Value) -> Value {
        json!({ "id": "TEST-1", "modified": MODIFIED, "affected": affected })
    }

    fn entry(ecosystem: &str, name: &str, ranges: Value) -> Value {
        json!({ "package": { "ecosystem": ecosystem, "name": name }, "ranges": ranges })
    }

    fn one_range(kind: &str, events: Value) -> Value {
        record(json!([entry(
            IMAGE,
            "pkg",
            json!([{ "type": kind, "events": events }])
        )]))
    }

    fn eval(rec: &Value, version: &str) -> Verdict {
        evaluate(rec, IMAGE, "pkg", version, &num)
    }

    fn affected(rec: &Value, version: &str) -> bool {
        eval(rec, version).affected
    }

    fn yes(fix: Option<&str>) -> Verdict {
        Verdict {
            affected: true,
            fix: fix.map(str::to_owned),
        }
    }

    fn no() -> Verdict {
        Verdict {
            affected: false,
            fix: None,
        }
    }

    /// `#### Unfixed vulnerability example`: "The following expresses that "every
    /// possible version is affected"." — `[{ "introduced": "0" }]`.
    #[test]
    fn unfixed_example_every_version_affected() {
        let rec = one_range("ECOSYSTEM", json!([{ "introduced": "0" }]));
        for v in ["1", "7", "20", "999999"] {
            assert_eq!(eval(&rec, v), yes(None), "version {v}");
        }
    }

    /// `#### Fixed vulnerability example`: "The following expresses that "everything
    /// before `1.0.2`" is affected." (with 10 standing for 1.0.2).
    #[test]
    fn fixed_example_everything_before_fixed() {
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "0" }, { "fixed": "10" }]),
        );
        assert_eq!(eval(&rec, "1"), yes(Some("10")));
        assert_eq!(eval(&rec, "9"), yes(Some("10")));
        assert_eq!(eval(&rec, "10"), no());
        assert_eq!(eval(&rec, "11"), no());
    }

    /// The same example verbatim, as `SEMVER` ("The relation `u < v` denotes the
    /// precedence order defined in section 11 of SemVer 2.0").
    #[test]
    fn fixed_example_verbatim_semver() {
        let rec = one_range(
            "SEMVER",
            json!([{ "introduced": "0" }, { "fixed": "1.0.2" }]),
        );
        let sem = |a: &str, b: &str| semver_order(a, b);
        let at = |v: &str| evaluate(&rec, IMAGE, "pkg", v, &sem);
        assert_eq!(at("0.0.1"), yes(Some("1.0.2")));
        assert_eq!(at("1.0.1"), yes(Some("1.0.2")));
        assert_eq!(at("1.0.2-rc.1"), yes(Some("1.0.2")));
        assert_eq!(at("1.0.2"), no());
        assert_eq!(at("1.0.2+build.5"), no());
        assert_eq!(at("1.0.10"), no());
        // Not SemVer 2.0 ("with no leading "v" prefix"; three numeric parts): never in a SEMVER range.
        assert_eq!(at("v1.0.1"), no());
        assert_eq!(at("1.0"), no());
        assert_eq!(at("7"), no());
    }

    /// `#### Multiple range example`: "The following expresses that versions in the
    /// SemVer ranges `[1.0.0, 1.0.2)` or `[3.0.0, 3.2.5)` are affected. Everything
    /// else is unaffected." Verbatim (SEMVER) and with integers (ECOSYSTEM), with the
    /// events given out of order ("it's also recommended to keep the `events` array
    /// sorted" — recommended, not required).
    #[test]
    fn multiple_range_example() {
        let rec = one_range(
            "SEMVER",
            json!([{ "fixed": "3.2.5" }, { "introduced": "1.0.0" }, { "fixed": "1.0.2" }, { "introduced": "3.0.0" }]),
        );
        let sem = |a: &str, b: &str| semver_order(a, b);
        let at = |v: &str| evaluate(&rec, IMAGE, "pkg", v, &sem).affected;
        for (v, want) in [
            ("0.9.9", false),
            ("1.0.0", true),
            ("1.0.1", true),
            ("1.0.2", false),
            ("2.9.9", false),
            ("3.0.0-rc.1", false),
            ("3.0.0", true),
            ("3.2.4", true),
            ("3.2.5", false),
            ("4.0.0", false),
        ] {
            assert_eq!(at(v), want, "version {v}");
        }

        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "fixed": "12" }, { "introduced": "10" }, { "fixed": "2" }, { "introduced": "1" }]),
        );
        assert_eq!(eval(&rec, "0"), no());
        assert_eq!(eval(&rec, "1"), yes(Some("2")));
        assert_eq!(eval(&rec, "2"), no());
        assert_eq!(eval(&rec, "9"), no());
        assert_eq!(eval(&rec, "10"), yes(Some("12")));
        assert_eq!(eval(&rec, "11"), yes(Some("12")));
        assert_eq!(eval(&rec, "12"), no());
    }

    /// `#### last_affected vs fixed example`: "the vulnerability is present in all
    /// versions of the package, up to and including version `2.1.214`. Versions above
    /// `2.1.214` are assumed to be free from the vulnerability" versus, with `fixed`:
    /// "In this case `2.1.214` is not vulnerable." (7 stands for 2.1.214.)
    #[test]
    fn last_affected_vs_fixed_example() {
        let last = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "0" }, { "last_affected": "7" }]),
        );
        assert_eq!(
            eval(&last, "6"),
            yes(None),
            "no `fixed` event, so no fix version"
        );
        assert_eq!(eval(&last, "7"), yes(None));
        assert_eq!(eval(&last, "8"), no());

        let fixed = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "0" }, { "fixed": "7" }]),
        );
        assert_eq!(eval(&fixed, "6"), yes(Some("7")));
        assert_eq!(eval(&fixed, "7"), no());
        assert_eq!(eval(&fixed, "8"), no());
    }

    /// `#### Special values`: "If no limit events are provided, an implicit
    /// `{ "limit": "*" }` is assumed to exist. Multiple `limit` events are allowed in
    /// the same range." and `BeforeLimits`: "if evt.limit is present and v <
    /// evt.limit: return true"; `#### Limit events`: "including `X` and excluding `Y`".
    #[test]
    fn limits() {
        // introduced X, limit Y: [X, Y).
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "limit": "8" }, { "introduced": "3" }]),
        );
        assert_eq!(eval(&rec, "2"), no());
        assert_eq!(eval(&rec, "3"), yes(None));
        assert_eq!(eval(&rec, "7"), yes(None));
        assert_eq!(eval(&rec, "8"), no(), "a limit is exclusive");
        assert_eq!(eval(&rec, "9"), no());

        // Several limits: below any one of them is enough.
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "2" }, { "limit": "4" }, { "limit": "9" }, { "fixed": "12" }]),
        );
        assert_eq!(eval(&rec, "3"), yes(Some("12")));
        assert_eq!(eval(&rec, "5"), yes(Some("12")), "5 < 9");
        assert_eq!(eval(&rec, "9"), no(), "not below either limit");
        assert_eq!(eval(&rec, "11"), no());

        // A limit gates the range, `fixed` still ends it below the limit.
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "0" }, { "fixed": "5" }, { "limit": "9" }]),
        );
        assert_eq!(eval(&rec, "4"), yes(Some("5")));
        assert_eq!(eval(&rec, "5"), no());
    }

    /// `#### Special values`: "`limit` allows versions containing the string `"*"` to
    /// represent "infinity"."
    #[test]
    fn star_limit_is_infinity() {
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "3" }, { "limit": "*" }]),
        );
        assert_eq!(eval(&rec, "2"), no());
        assert_eq!(eval(&rec, "3"), yes(None));
        assert_eq!(eval(&rec, "999999"), yes(None));

        // "*" next to a finite limit: the infinite one lets every version pass.
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "limit": "4" }, { "introduced": "3" }, { "limit": "*" }, { "fixed": "15" }]),
        );
        assert_eq!(eval(&rec, "10"), yes(Some("15")));
        // "containing" the string "*".
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "3" }, { "limit": "2.*" }]),
        );
        assert_eq!(eval(&rec, "50"), yes(None));
    }

    /// `#### Special values`: "`introduced` allows a version of the value `"0"` to
    /// represent a version that sorts before any other version." — even in an order
    /// where the string "0" would sort after other versions.
    #[test]
    fn introduced_zero_sorts_first() {
        let reversed = |a: &str, b: &str| num(b, a);
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "fixed": "5" }, { "introduced": "0" }]),
        );
        // In `reversed`, "9" < "5"; "0" still precedes everything.
        assert!(evaluate(&rec, IMAGE, "pkg", "9", &reversed).affected);
        assert!(!evaluate(&rec, IMAGE, "pkg", "3", &reversed).affected);
    }

    /// `## withdrawn field`: "If the field is missing, then the entry has not been
    /// withdrawn." A present `withdrawn` withdraws the record.
    #[test]
    fn withdrawn_record_affects_nothing() {
        let mut rec = one_range("ECOSYSTEM", json!([{ "introduced": "0" }]));
        assert!(affected(&rec, "5"));
        rec["withdrawn"] = json!("2026-11-01T00:00:00Z");
        assert_eq!(eval(&rec, "5"), no());
        rec["withdrawn"] = Value::Null;
        assert!(affected(&rec, "5"), "null is treated as missing");
    }

    /// `#### Defined ecosystems`, `Debian`: "The ecosystem string might optionally
    /// have a `:<RELEASE>` suffix to scope the package to a particular Debian
    /// release." — plain `Debian` is not scoped, `Debian:11` is scoped to Debian 11.
    /// `### affected[].package field`: "Different ecosystems can define the same
    /// names; they identify different packages."
    #[test]
    fn ecosystem_and_name_matching() {
        let all = json!([{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }] }]);
        for (ecosystem, name, want) in [
            ("Debian:12", "pkg", true),
            ("Debian", "pkg", true),
            ("Debian:11", "pkg", false),
            ("Debian:sid", "pkg", false),
            ("debian", "pkg", false),
            ("Debian:12", "Pkg", false),
            ("Debian:12", "pkg-doc", false),
            ("Ubuntu:22.04:LTS", "pkg", false),
            ("Ubuntu", "pkg", false),
            ("PyPI", "pkg", false),
        ] {
            let rec = record(json!([entry(ecosystem, name, all.clone())]));
            assert_eq!(affected(&rec, "5"), want, "{ecosystem} / {name}");
        }
        // An image ecosystem with several `:` parts: its base is before the first `:`.
        let rec = record(json!([entry("Ubuntu", "pkg", all.clone())]));
        assert!(evaluate(&rec, "Ubuntu:22.04:LTS", "pkg", "5", &num).affected);
        let rec = record(json!([entry("Ubuntu:22.04", "pkg", all.clone())]));
        assert!(!evaluate(&rec, "Ubuntu:22.04:LTS", "pkg", "5", &num).affected);
        // An image ecosystem without a release.
        let rec = record(json!([entry("Wolfi", "pkg", all)]));
        assert!(evaluate(&rec, "Wolfi", "pkg", "5", &num).affected);
        assert!(!evaluate(&rec, "Debian:12", "pkg", "5", &num).affected);
    }

    /// "A version is considered affected if it lies within any one of the ranges or is
    /// listed in the versions list." and `IncludedInVersions`: "if v == version" —
    /// exact strings, because the list exists to answer "without having to contain
    /// code specific to every different ecosystem".
    #[test]
    fn versions_list_is_exact_string_membership() {
        let rec = record(json!([{
            "package": { "ecosystem": "Debian", "name": "pkg" },
            "versions": ["3", "07"],
        }]));
        assert_eq!(eval(&rec, "3"), yes(None));
        assert_eq!(eval(&rec, "07"), yes(None));
        assert_eq!(
            eval(&rec, "7"),
            no(),
            "\"7\" == \"07\" in the order, but not as strings"
        );
        assert_eq!(eval(&rec, "4"), no());

        // Versions list OR ranges; the fix comes only from `fixed` events.
        let rec = record(json!([{
            "package": { "ecosystem": IMAGE, "name": "pkg" },
            "versions": ["15"],
            "ranges": [{ "type": "ECOSYSTEM", "events": [{ "introduced": "2" }, { "fixed": "6" }] }],
        }]));
        assert_eq!(eval(&rec, "3"), yes(Some("6")));
        assert_eq!(eval(&rec, "15"), yes(None), "6 is below 15");
        assert_eq!(eval(&rec, "10"), no());
    }

    /// `GIT`: "`GIT` range inclusion queries cannot be answered without access to a
    /// copy of the underlying Git repository." — ignored; commit hashes are not fix
    /// versions. The `versions` list of the same entry still counts.
    #[test]
    fn git_ranges_are_ignored() {
        let hash_a = "a".repeat(40);
        let hash_b = "b".repeat(40);
        let rec = record(json!([{
            "package": { "ecosystem": IMAGE, "name": "pkg" },
            "versions": ["4"],
            "ranges": [
                { "type": "GIT", "repo": "https://git.example.org/pkg.git",
                  "events": [{ "introduced": "0" }, { "fixed": hash_a }, { "limit": hash_b }] },
                { "type": "UNKNOWN", "events": [{ "introduced": "0" }] },
            ],
        }]));
        assert_eq!(eval(&rec, "3"), no());
        assert_eq!(eval(&rec, "4"), yes(None));
    }

    /// The pseudo-code taken literally on a timeline that is not introduced/fixed
    /// alternating ("if evt.introduced is present && v >= evt.introduced: vulnerable =
    /// true / else if evt.fixed is present && v >= evt.fixed: vulnerable = false").
    #[test]
    fn literal_timeline_walk() {
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "7" }, { "fixed": "9" }, { "fixed": "3" }, { "introduced": "5" }]),
        );
        for (v, want) in [
            ("2", false),
            ("3", false),
            ("4", false),
            ("5", true),
            ("8", true),
            ("9", false),
        ] {
            assert_eq!(affected(&rec, v), want, "version {v}");
        }
        assert_eq!(eval(&rec, "6").fix.as_deref(), Some("9"));

        // Two `last_affected` in a row: the first one above `v` ends the range (5 > 4).
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "last_affected": "4" }, { "introduced": "2" }, { "last_affected": "8" }]),
        );
        for (v, want) in [
            ("1", false),
            ("2", true),
            ("4", true),
            ("5", false),
            ("8", false),
            ("9", false),
        ] {
            assert_eq!(affected(&rec, v), want, "version {v}");
        }
    }

    /// "There must be at least one `introduced` object" and "Only **a single type**
    /// [...] is allowed in each event object. For instance, `{"introduced": "1.0.0",
    /// "fixed": "1.0.2"}` is **invalid**." — invalid events are ignored; without an
    /// `introduced` nothing is vulnerable.
    #[test]
    fn malformed_parts_are_skipped() {
        let rec = one_range("ECOSYSTEM", json!([{ "introduced": "1", "fixed": "3" }]));
        assert_eq!(eval(&rec, "2"), no());
        let rec = one_range("ECOSYSTEM", json!([{ "fixed": "3" }]));
        assert_eq!(eval(&rec, "2"), no());
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": 1 }, { "introduced": "2" }]),
        );
        assert_eq!(eval(&rec, "1"), no());
        assert_eq!(eval(&rec, "2"), yes(None));
        for rec in [
            json!({ "id": "X", "modified": MODIFIED }),
            json!({ "id": "X", "modified": MODIFIED, "affected": null }),
            json!({ "id": "X", "modified": MODIFIED, "affected": [{ "versions": ["2"] }] }),
            json!("not a record"),
        ] {
            assert_eq!(eval(&rec, "2"), no());
        }
    }

    /// Ambiguity resolution (the spec does not order equal-version events): the
    /// record's order is kept for ties ("a "timeline" of status changes").
    #[test]
    fn equal_versions_keep_record_order() {
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "5" }, { "fixed": "5" }]),
        );
        assert!(!affected(&rec, "5"));
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "fixed": "5" }, { "introduced": "5" }]),
        );
        assert!(affected(&rec, "5"));
    }

    /// The fix is the lowest `fixed` above the installed version at which the whole
    /// record (all applicable entries and ranges) is no longer affected.
    #[test]
    fn fix_is_lowest_fixed_that_is_not_affected() {
        let rec = record(json!([
            entry(
                IMAGE,
                "pkg",
                json!([{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": "5" }] }])
            ),
            entry(
                "Debian",
                "pkg",
                json!([{ "type": "ECOSYSTEM", "events": [{ "fixed": "8" }, { "introduced": "0" }] }])
            ),
            // Not applicable: other release, other name. Their `fixed` are no candidates.
            entry(
                "Debian:11",
                "pkg",
                json!([{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": "6" }] }])
            ),
            entry(
                IMAGE,
                "other",
                json!([{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": "7" }] }])
            ),
        ]));
        assert_eq!(
            eval(&rec, "3"),
            yes(Some("8")),
            "5 is still affected through the second entry"
        );
        assert_eq!(eval(&rec, "5"), yes(Some("8")));
        assert_eq!(eval(&rec, "8"), no());

        // Re-introduced after a fix: the next fix above the version.
        let rec = one_range(
            "ECOSYSTEM",
            json!([{ "introduced": "0" }, { "fixed": "3" }, { "introduced": "6" }, { "fixed": "9" }]),
        );
        assert_eq!(eval(&rec, "2"), yes(Some("3")));
        assert_eq!(eval(&rec, "7"), yes(Some("9")));

        // A fix that is re-affected by the versions list is skipped; none left → None.
        let rec = record(json!([{
            "package": { "ecosystem": IMAGE, "name": "pkg" },
            "versions": ["5"],
            "ranges": [{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": "5" }] }],
        }]));
        assert_eq!(eval(&rec, "4"), yes(None));
    }

    /// semver.org §11: "Example: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta <
    /// 1.0.0-beta < 1.0.0-beta.2 < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0." and
    /// "Example: 1.0.0 < 2.0.0 < 2.1.0 < 2.1.1."
    #[test]
    fn semver_precedence_examples() {
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
            "10.0.0",
        ];
        for pair in chain.windows(2) {
            assert_eq!(semver_order(pair[0], pair[1]), Ordering::Less, "{pair:?}");
            assert_eq!(
                semver_order(pair[1], pair[0]),
                Ordering::Greater,
                "{pair:?}"
            );
        }
        assert_eq!(semver_order("1.0.0+a", "1.0.0+b"), Ordering::Equal);
        for bad in [
            "01.0.0",
            "1.0",
            "1.0.0-",
            "1.0.0-01",
            "v1.0.0",
            "1.0.0+",
            "1.0.0-a..b",
            "",
        ] {
            assert!(parse_semver(bad).is_none(), "{bad}");
        }
        for good in [
            "0.0.0",
            "1.0.0-0A.is.legal",
            "1.0.0-x-y-z.--",
            "1.0.0+20130313144700",
            "1.2.3-1+deb12u1",
        ] {
            assert!(parse_semver(good).is_some(), "{good}");
        }
    }

    fn int_pool() -> Vec<String> {
        (1..=20).map(|i| i.to_string()).collect()
    }

    #[test]
    fn generate_is_deterministic() {
        let pool = int_pool();
        let pool: Vec<&str> = pool.iter().map(String::as_str).collect();
        let packages = ["openssl", "zlib", "glibc"];
        let a = generate(7, 200, &packages, &pool, IMAGE);
        let b = generate(7, 200, &packages, &pool, IMAGE);
        assert_eq!(a, b);
        assert_eq!(a.len(), 200);
        let c = generate(8, 200, &packages, &pool, IMAGE);
        assert_ne!(a, c);
        // A prefix property: the first records do not depend on `n`.
        assert_eq!(generate(7, 10, &packages, &pool, IMAGE), a[..10].to_vec());
    }

    /// Walks every range of every entry of generated records.
    fn for_each_range(
        records: &[Value],
        mut f: impl FnMut(&Map<String, Value>, &Map<String, Value>),
    ) {
        for rec in records {
            for entry in rec["affected"].as_array().into_iter().flatten() {
                let entry = entry.as_object().expect("generated entries are objects");
                for range in ranges_of(entry) {
                    f(entry, range);
                }
            }
        }
    }

    #[test]
    fn generated_records_are_well_formed() {
        let pool = int_pool();
        let pool: Vec<&str> = pool.iter().map(String::as_str).collect();
        let records = generate(11, 800, &["openssl", "zlib", "glibc"], &pool, IMAGE);
        let mut ids = BTreeSet::new();
        for rec in &records {
            assert!(
                ids.insert(rec["id"].as_str().expect("id").to_owned()),
                "unique id"
            );
            assert_eq!(rec["modified"], json!(MODIFIED));
            let entries = rec["affected"].as_array().expect("affected");
            assert!((1..=3).contains(&entries.len()));
            for entry in entries {
                assert!(entry.get("versions").is_some() || entry.get("ranges").is_some());
                for v in entry
                    .get("versions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    assert!(pool.contains(&v.as_str().expect("string")));
                }
            }
        }
        for_each_range(&records, |_, range| {
            let events = events_of(range);
            assert_eq!(
                events.len(),
                range["events"].as_array().expect("events").len(),
                "one key per event"
            );
            assert!(
                events.iter().any(|e| e.kind == Kind::Introduced),
                "at least one introduced"
            );
            let kinds: BTreeSet<_> = events.iter().map(|e| format!("{:?}", e.kind)).collect();
            assert!(
                !(kinds.contains("Fixed") && kinds.contains("LastAffected")),
                "mutually exclusive"
            );
            let mut seen = BTreeSet::new();
            for e in events.iter().filter(|e| e.kind != Kind::Limit) {
                assert!(
                    seen.insert(e.value),
                    "no equal versions among non-limit events"
                );
            }
            if range["type"] == json!("ECOSYSTEM") {
                for e in &events {
                    assert!(
                        pool.contains(&e.value) || e.is_introduced_zero() || e.is_infinite_limit(),
                        "{e:?}"
                    );
                }
            }
        });
    }

    /// The generator's mix reaches every rule.
    #[test]
    fn generated_records_cover_every_rule() {
        let pool = int_pool();
        let pool: Vec<&str> = pool.iter().map(String::as_str).collect();
        let packages = ["openssl", "zlib", "glibc"];
        let records = generate(3, 800, &packages, &pool, IMAGE);
        let mut seen = BTreeSet::new();
        for rec in &records {
            if rec.get("withdrawn").is_some() {
                seen.insert("withdrawn");
            }
            match rec.pointer("/severity/0/type").and_then(Value::as_str) {
                Some("CVSS_V3") => seen.insert("cvss3"),
                Some("CVSS_V4") => seen.insert("cvss4"),
                _ => seen.insert("no severity"),
            };
            let entries = rec["affected"].as_array().expect("affected");
            let names: Vec<&Value> = entries.iter().map(|e| &e["package"]).collect();
            for (i, a) in names.iter().enumerate() {
                if names[i + 1..].contains(a) {
                    seen.insert("same package twice");
                }
            }
            for entry in entries {
                match entry["package"]["ecosystem"].as_str() {
                    Some("Debian:12") => seen.insert("release"),
                    Some("Debian") => seen.insert("plain"),
                    Some("Debian:11") => seen.insert("other release"),
                    _ => seen.insert("foreign"),
                };
                if entry.get("versions").is_some() {
                    seen.insert("versions");
                }
                if entry.get("versions").is_some() && entry.get("ranges").is_none() {
                    seen.insert("versions only");
                }
            }
        }
        for_each_range(&records, |_, range| {
            let events = events_of(range);
            if range["type"] == json!("GIT") {
                seen.insert("git");
            }
            let limits = events.iter().filter(|e| e.kind == Kind::Limit).count();
            if limits > 1 {
                seen.insert("several limits");
            }
            if events.iter().any(Event::is_infinite_limit) {
                seen.insert("limit *");
            }
            if events
                .iter()
                .any(|e| e.kind == Kind::Limit && !e.is_infinite_limit())
            {
                seen.insert("finite limit");
            }
            if events.iter().any(Event::is_introduced_zero) {
                seen.insert("introduced 0");
            }
            if events.iter().any(|e| e.kind == Kind::LastAffected) {
                seen.insert("last_affected");
            }
            if events.iter().any(|e| e.kind == Kind::Fixed) {
                seen.insert("fixed");
            }
            let mut sorted = events.clone();
            stable_sort(&mut sorted, |a, b| event_order(a, b, &num));
            if range["type"] == json!("ECOSYSTEM")
                && sorted.iter().zip(&events).any(|(a, b)| a.value != b.value)
            {
                seen.insert("unsorted events");
            }
            if events.iter().filter(|e| e.kind == Kind::Introduced).count() > 1 {
                seen.insert("several introduced");
            }
        });
        // Verdicts over the whole pool.
        for rec in &records {
            for package in packages {
                for v in &pool {
                    let verdict = evaluate(rec, IMAGE, package, v, &num);
                    match (&verdict.affected, &verdict.fix) {
                        (false, _) => seen.insert("not affected"),
                        (true, None) => seen.insert("affected, no fix"),
                        (true, Some(_)) => seen.insert("affected, fix"),
                    };
                }
            }
        }
        for want in [
            "withdrawn",
            "cvss3",
            "cvss4",
            "no severity",
            "same package twice",
            "release",
            "plain",
            "other release",
            "foreign",
            "versions",
            "versions only",
            "git",
            "several limits",
            "limit *",
            "finite limit",
            "introduced 0",
            "last_affected",
            "fixed",
            "unsorted events",
            "several introduced",
            "not affected",
            "affected, no fix",
            "affected, fix",
        ] {
            assert!(seen.contains(want), "generator never produced: {want}");
        }
    }

    /// SEMVER ranges appear when the pool has valid SemVer versions, and only use them.
    #[test]
    fn generated_semver_ranges() {
        let pool = [
            "0.9.0",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "2.0.0",
            "2.0.1",
            "10.0.0",
        ];
        let records = generate(5, 400, &["lib"], &pool, "Debian:12");
        let mut semver_ranges = 0;
        for_each_range(&records, |_, range| {
            if range["type"] == json!("SEMVER") {
                semver_ranges += 1;
                for e in events_of(range) {
                    assert!(
                        pool.contains(&e.value) || e.is_introduced_zero() || e.is_infinite_limit()
                    );
                }
            }
        });
        assert!(semver_ranges > 0);
    }

    /// Properties of `evaluate` on generated records: the order of events does not
    /// matter (no ties are generated), and a returned fix is above the version and
    /// not affected.
    #[test]
    fn evaluation_properties_on_generated_records() {
        let pool = int_pool();
        let pool: Vec<&str> = pool.iter().map(String::as_str).collect();
        let packages = ["openssl", "zlib", "glibc"];
        let records = generate(99, 300, &packages, &pool, IMAGE);
        for rec in &records {
            let mut reversed = rec.clone();
            if let Some(entries) = reversed.get_mut("affected").and_then(Value::as_array_mut) {
                for entry in entries {
                    if let Some(ranges) = entry.get_mut("ranges").and_then(Value::as_array_mut) {
                        for range in ranges {
                            if let Some(events) =
                                range.get_mut("events").and_then(Value::as_array_mut)
                            {
                                events.reverse();
                            }
                        }
                    }
                }
            }
            for package in packages {
                for v in pool.iter().copied().chain(["0", "21", "100"]) {
                    let verdict = evaluate(rec, IMAGE, package, v, &num);
                    assert_eq!(
                        verdict,
                        evaluate(&reversed, IMAGE, package, v, &num),
                        "{rec}"
                    );
                    if let Some(fix) = &verdict.fix {
                        assert!(verdict.affected);
                        assert_eq!(num(fix, v), Ordering::Greater);
                        assert!(!evaluate(rec, IMAGE, package, fix, &num).affected);
                    }
                }
            }
        }
    }
}
