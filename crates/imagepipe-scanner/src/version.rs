//! Package version ordering exactly as dpkg, rpm and apk define it. A vulnerability's fixed
//! version is compared with the installed one by these rules; an approximation would report a
//! patched package as vulnerable, or worse, the other way round.

use std::cmp::Ordering;

/// The ordering of one package ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `[epoch:]upstream[-revision]`, compared as `dpkg --compare-versions` does.
    Dpkg,
    /// `[epoch:]version[-release]`, compared as rpm's `rpmvercmp` (with `~` and `^`).
    Rpm,
    /// Alpine's `1.2.3[a][_suffix[N]][-rN]`, compared as apk-tools does.
    Apk,
    /// Windows builds and program versions: dot-separated parts (`10.0.20348.2849`), numbers
    /// compared as numbers.
    Windows,
}

impl Scheme {
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Self::Dpkg => dpkg(a, b),
            Self::Rpm => rpm_evr(a, b),
            Self::Apk => apk(a, b),
            Self::Windows => dotted(a, b),
        }
    }
}

/// Dot-separated versions part by part: numeric parts as numbers (of any length), before any
/// other part, which compare as bytes; a missing part counts as `0`.
pub fn dotted(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.trim().split('.'), b.trim().split('.'));
    loop {
        let (p, q) = match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (p, q) => (p.unwrap_or("0"), q.unwrap_or("0")),
        };
        let number = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        let ord = match (number(p), number(q)) {
            (true, true) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => p.cmp(q),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
}

/// Splits `[epoch:]rest`; a missing or unparsable epoch counts as 0, as the tools treat it.
fn epoch(v: &str) -> (u64, &str) {
    match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    }
}

/// dpkg: epoch, then upstream version, then revision (after the last `-`), each with
/// `verrevcmp`.
pub fn dpkg(a: &str, b: &str) -> Ordering {
    let split = |v: &str| {
        let (e, rest) = epoch(v.trim());
        match rest.rsplit_once('-') {
            Some((up, rev)) => (e, up.to_string(), rev.to_string()),
            None => (e, rest.to_string(), String::new()),
        }
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

/// dpkg's character weight: `~` before everything, even the end; letters before other
/// characters; digits are compared as numbers elsewhere.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// rpm: epoch, version, release (after the last `-`), each with [`rpmvercmp`].
pub fn rpm_evr(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = split_evr(a);
    let (eb, vb, rb) = split_evr(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| rpmvercmp(ra.unwrap_or(""), rb.unwrap_or("")))
}

fn split_evr(v: &str) -> (u64, &str, Option<&str>) {
    let (e, rest) = epoch(v.trim());
    match rest.rsplit_once('-') {
        Some((ver, rel)) => (e, ver, Some(rel)),
        None => (e, rest, None),
    }
}

/// rpm's segment comparison: alphanumeric runs, digits as numbers, letters as strings,
/// separators ignored; `~` sorts before anything, `^` after the end but before more segments.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while i < a.len() || j < b.len() {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            match (ca, cb) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {}
            }
            i += 1;
            j += 1;
            continue;
        }
        if i >= a.len() || j >= b.len() {
            break;
        }
        let numeric = a[i].is_ascii_digit();
        let run = |s: &[u8], start: usize| {
            let mut end = start;
            while end < s.len()
                && if numeric {
                    s[end].is_ascii_digit()
                } else {
                    s[end].is_ascii_alphabetic()
                }
            {
                end += 1;
            }
            end
        };
        let (ea, eb) = (run(a, i), run(b, j));
        if eb == j {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[i..ea], &b[j..eb]);
        if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            other => return other,
        }
        i = ea;
        j = eb;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (false, _) => Ordering::Greater,
        (_, false) => Ordering::Less,
    }
}

/// apk-tools' token kinds, in the order it ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Invalid,
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    RevisionNo,
    End,
}

const PRE_SUFFIXES: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

/// The kind of the token at the start of `s`, after one of kind `current`; consumes its
/// separator.
fn next_token(current: Token, s: &mut &[u8]) -> Token {
    let mut n = Token::Invalid;
    match s.first() {
        None | Some(0) => n = Token::End,
        Some(c)
            if matches!(current, Token::Digit | Token::DigitOrZero) && c.is_ascii_lowercase() =>
        {
            n = Token::Letter;
        }
        Some(c) if current == Token::Letter && c.is_ascii_digit() => n = Token::Digit,
        Some(c) if current == Token::Suffix && c.is_ascii_digit() => n = Token::SuffixNo,
        Some(c) => {
            match c {
                b'.' => n = Token::DigitOrZero,
                b'_' => n = Token::Suffix,
                b'-' if s.get(1) == Some(&b'r') => {
                    n = Token::RevisionNo;
                    *s = &s[1..];
                }
                _ => {}
            }
            *s = &s[1..];
        }
    }
    let allowed = matches!(
        (n, current),
        (Token::DigitOrZero, Token::Digit)
            | (Token::Suffix, Token::SuffixNo)
            | (Token::Digit, Token::Letter)
    );
    if n < current && !allowed {
        n = Token::Invalid;
    }
    n
}

/// The value of a token of kind `kind` at the start of `s`; advances past it and sets `kind`
/// to the next token's kind.
fn get_token(kind: &mut Token, s: &mut &[u8]) -> i64 {
    let mut i = 0;
    let mut v: i64 = 0;
    let digits = |s: &[u8], i: &mut usize, v: &mut i64| {
        while *i < s.len() && s[*i].is_ascii_digit() {
            *v = v.saturating_mul(10).saturating_add(i64::from(s[*i] - b'0'));
            *i += 1;
        }
    };
    match *kind {
        // Leading zeros in a component after a dot rank below any number.
        Token::DigitOrZero if s.first() == Some(&b'0') => {
            while i < s.len() && s[i] == b'0' {
                i += 1;
            }
            v = -(i as i64);
        }
        Token::DigitOrZero | Token::Digit | Token::SuffixNo | Token::RevisionNo => {
            digits(s, &mut i, &mut v);
        }
        Token::Letter => {
            v = s.first().map_or(0, |&c| i64::from(c));
            i = 1;
        }
        Token::Suffix => {
            if let Some(k) = PRE_SUFFIXES
                .iter()
                .position(|p| s.starts_with(p.as_bytes()))
            {
                i = PRE_SUFFIXES[k].len();
                v = k as i64 - PRE_SUFFIXES.len() as i64;
            } else if let Some(k) = POST_SUFFIXES
                .iter()
                .position(|p| s.starts_with(p.as_bytes()))
            {
                i = POST_SUFFIXES[k].len();
                v = k as i64;
            } else {
                *kind = Token::Invalid;
                return -1;
            }
        }
        Token::Invalid | Token::End => {
            *kind = Token::Invalid;
            return -1;
        }
    }
    *s = &s[i.min(s.len())..];
    *kind = if s.is_empty() {
        Token::End
    } else {
        next_token(*kind, s)
    };
    v
}

/// apk: components compared token by token; a pre-release suffix (`_alpha`, `_beta`, `_pre`,
/// `_rc`) makes a longer version older, anything else makes it newer.
pub fn apk(a: &str, b: &str) -> Ordering {
    let (mut sa, mut sb) = (a.trim().as_bytes(), b.trim().as_bytes());
    let (mut at, mut bt) = (Token::Digit, Token::Digit);
    let (mut av, mut bv) = (0, 0);
    while at == bt && at != Token::End && at != Token::Invalid && av == bv {
        av = get_token(&mut at, &mut sa);
        bv = get_token(&mut bt, &mut sb);
    }
    match av.cmp(&bv) {
        Ordering::Equal => {}
        other => return other,
    }
    if at == bt {
        return Ordering::Equal;
    }
    let (mut tt, mut rest) = (at, sa);
    if at == Token::Suffix && get_token(&mut tt, &mut rest) < 0 {
        return Ordering::Less;
    }
    let (mut tt, mut rest) = (bt, sb);
    if bt == Token::Suffix && get_token(&mut tt, &mut rest) < 0 {
        return Ordering::Greater;
    }
    // The version that goes on (not at its end) is newer.
    bt.cmp(&at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    fn check(scheme: Scheme, cases: &[(&str, Ordering, &str)]) {
        for (a, want, b) in cases {
            assert_eq!(scheme.compare(a, b), *want, "{scheme:?}: {a} vs {b}");
            assert_eq!(
                scheme.compare(b, a),
                want.reverse(),
                "{scheme:?}: {b} vs {a}"
            );
        }
    }

    #[test]
    fn dpkg_rules() {
        check(
            Scheme::Dpkg,
            &[
                ("1.0", Equal, "1.0"),
                ("1:0", Greater, "2.0"),
                ("1.0~rc1", Less, "1.0"),
                ("1.0~~", Less, "1.0~"),
                ("1.0", Less, "1.0a"),
                ("1.0a", Less, "1.0+"),
                ("1.0-1", Less, "1.0-2"),
                ("1.0-1", Less, "1.0.1-1"),
                ("2.36.1-8+deb12u1", Greater, "2.36.1-8"),
                ("0:1.0-00", Equal, "1.0-0"),
                ("1.2.3", Less, "1.10"),
                // The samples of the project's reference notes on dpkg ordering.
                ("1.0-1", Less, "2.0-2"),
                ("2.2~rc-4", Less, "2.2-1"),
                ("1.0000-1", Equal, "1.0-1"),
                ("2:2.5", Greater, "1:7.5"),
                ("1~", Less, "1"),
                ("1.09", Equal, "1.9"),
            ],
        );
    }

    #[test]
    fn rpm_rules() {
        check(
            Scheme::Rpm,
            &[
                ("1.0~rc1", Less, "1.0"),
                ("1.0^git1", Greater, "1.0"),
                ("1.0^git1", Less, "1.0.1"),
                ("1.0~rc1^git1", Greater, "1.0~rc1"),
                ("10.0001", Equal, "10.1"),
                ("1.fc39", Less, "2.fc39"),
                ("1:1.0-1", Greater, "2.0-1"),
                ("2.34-60.el9", Less, "2.34-83.el9_3"),
                ("2.0.1a", Greater, "2.0.1"),
                ("1.0^", Greater, "1.0"),
            ],
        );
        // As rpm.vercmp: a release on one side only makes that side newer.
        assert_eq!(rpm_evr("1.0", "1.0-5"), Less);
    }

    #[test]
    fn apk_rules() {
        check(
            Scheme::Apk,
            &[
                ("1.2.3", Equal, "1.2.3"),
                ("1.2.3-r1", Greater, "1.2.3"),
                ("1.2.3-r10", Greater, "1.2.3-r9"),
                ("1.2.3_rc1", Less, "1.2.3"),
                ("1.2.3_alpha", Less, "1.2.3_beta"),
                ("1.2.3_p1", Greater, "1.2.3"),
                ("1.2.3a", Greater, "1.2.3"),
                ("1.2.3a", Less, "1.2.4"),
                ("1.02", Less, "1.1"),
                ("3.1.4-r0", Less, "3.1.4-r1"),
                ("1.10", Greater, "1.9"),
                ("2.0_pre1", Less, "2.0_rc1"),
                ("1.1", Greater, "1.1_alpha1"),
                ("1.0.4-r3", Less, "1.0.4-r4"),
            ],
        );
    }
}
