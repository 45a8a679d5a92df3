//! The fleet view as one self-contained static HTML page: inline CSS, no script, no external
//! asset, so that it can be archived as a CI artifact or served as it is. Every value comes from
//! records, stores and servers, which are not trusted: each one is escaped.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{Fleet, Presence};

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #111; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .5em; }
h2 { font-size: 1.15em; margin: 1.5em 0 .3em; font-family: ui-monospace, monospace; }
p.meta { margin: 0 0 .4em; color: #444; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #e8e8e8; }
td.version { font-family: ui-monospace, monospace; font-weight: bold; }
td.present { background: #cdeccd; }
td.absent { background: #ffd27f; font-weight: bold; }
td.unreachable, td.unauthorised { background: #c8c8c8; color: #333; font-style: italic; }
td.imported .item { display: block; font-size: .85em; color: #225; }
td.deploy-refused, td.deploy-error, td.deploy-not_running { outline: 3px solid #c00; outline-offset: -3px; }
td.scan-failed { background: #f4b4b4; }
td.scan-overridden { background: #fff2a8; }
tr.out-of-date td.notes, tr.out-of-date td.version { background: #ff8a8a; }
tr.revocation td.notes .revocation { color: #a00; font-weight: bold; }
tr.unreadable td.version, tr.unreadable td.notes { background: #eadcf5; }
.channel { display: inline-block; background: #2a62c9; color: #fff; border-radius: 3px; padding: 0 5px; margin-right: 3px; }
.error, ul.sites li { color: #8a0000; }
";

/// The CSS class of a site's cell: the presence's state, as `--json` names it.
fn state_class(p: &Presence) -> &'static str {
    match p {
        Presence::Present => "present",
        Presence::Absent => "absent",
        Presence::Unreachable(_) => "unreachable",
        Presence::Unauthorised(_) => "unauthorised",
    }
}

impl Fleet {
    /// The page: per image a table of versions × sites (the store's presence, the library
    /// import and its deploy check), with the scan, the parent, channels, revocation and
    /// out-of-date marks; and, above, the sites whose stores could not say.
    pub fn html(&self) -> String {
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        h.push_str("<title>imagepipe fleet</title>\n<style>");
        h.push_str(STYLE);
        h.push_str("</style>\n</head>\n<body>\n<h1>imagepipe fleet</h1>\n");
        let _ = writeln!(
            h,
            "<p class=\"meta\">{} images, {} sites</p>",
            self.images.len(),
            self.sites.len()
        );

        // The sites that could not say, once each with the reason: never shown as absent.
        let mut seen = BTreeSet::new();
        let mut blind = String::new();
        for image in &self.images {
            for v in &image.versions {
                for (site, p) in &v.sites {
                    if let Presence::Unreachable(why) | Presence::Unauthorised(why) = p
                        && seen.insert(site.clone())
                    {
                        let _ = writeln!(
                            blind,
                            "<li class=\"{cell}\" data-site=\"{s}\"><b>{s}</b>: {cell} ({why})</li>",
                            cell = p.cell(),
                            s = escape(site),
                            why = escape(why)
                        );
                    }
                }
            }
        }
        if !blind.is_empty() {
            let _ = write!(
                h,
                "<h2>Sites whose store could not say</h2>\n<ul class=\"sites\">\n{blind}</ul>\n"
            );
        }

        for image in &self.images {
            let name = escape(image.name.as_str());
            let _ = writeln!(
                h,
                "<section class=\"image\" data-image=\"{name}\">\n<h2>{name}</h2>"
            );
            if let Some(parent) = &image.parent {
                let _ = writeln!(
                    h,
                    "<p class=\"meta\">built on {} {}</p>",
                    escape(parent),
                    escape(image.requirement.as_deref().unwrap_or(""))
                );
            }
            if let Some(e) = &image.error {
                let _ = writeln!(h, "<p class=\"error\">{}</p>", escape(e));
            }
            h.push_str(
                "<table>\n<thead><tr><th>version</th><th>scan</th><th>parent</th><th>channels</th>",
            );
            for s in &self.sites {
                let _ = write!(h, "<th>{}</th>", escape(s));
            }
            h.push_str("<th>notes</th></tr></thead>\n<tbody>\n");
            for v in &image.versions {
                let mut class = vec!["version"];
                if v.out_of_date.is_some() {
                    class.push("out-of-date");
                }
                if v.revoked.is_some() {
                    class.push("revocation");
                }
                if v.record_error.is_some() {
                    class.push("unreadable");
                }
                let version = escape(&v.version.to_string());
                let _ = write!(
                    h,
                    "<tr class=\"{}\" data-version=\"{version}\"><td class=\"version\">{version}</td>",
                    class.join(" ")
                );
                match &v.scan {
                    Some(s) => {
                        let s = escape(s);
                        let _ = write!(h, "<td class=\"scan scan-{s}\">{s}</td>");
                    }
                    None => h.push_str("<td class=\"scan\">-</td>"),
                }
                let _ = write!(
                    h,
                    "<td class=\"parent\">{}</td><td class=\"channels\">",
                    escape(v.parent.as_deref().unwrap_or("-"))
                );
                for c in &v.channels {
                    let _ = write!(h, "<span class=\"channel\">{}</span>", escape(c));
                }
                h.push_str("</td>");
                for s in &self.sites {
                    let p = v.sites.get(s);
                    let presence = p.map_or("-", Presence::cell);
                    let mut class = format!("site {}", p.map_or("unknown", state_class));
                    let mut item = String::new();
                    if let Some(i) = v.imports.get(s) {
                        class.push_str(" imported");
                        let _ = write!(
                            item,
                            "<span class=\"item\" title=\"imported {}\">{} / {}",
                            escape(&i.imported_at),
                            escape(&i.library),
                            escape(&i.item)
                        );
                        if let Some(d) = &i.deploy_check {
                            let d = escape(d);
                            let _ = write!(class, " deploy-{d}");
                            let _ = write!(item, " · deploy {d}");
                            if let Some(why) = &i.deploy_reason {
                                let _ = write!(item, ": {}", escape(why));
                            }
                        }
                        item.push_str("</span>");
                    }
                    let _ = write!(
                        h,
                        "<td class=\"{class}\" data-site=\"{}\">{presence}{item}</td>",
                        escape(s)
                    );
                }
                let mut notes = Vec::new();
                if let Some(r) = &v.revoked {
                    notes.push(format!("<span class=\"revocation\">{}</span>", escape(r)));
                }
                if let Some(p) = &v.out_of_date {
                    notes.push(format!(
                        "<span class=\"stale\">OUT OF DATE: {} is newer</span>",
                        escape(p)
                    ));
                }
                if let Some(e) = &v.record_error {
                    notes.push(format!(
                        "<span class=\"error\">record unreadable: {}</span>",
                        escape(e)
                    ));
                }
                let _ = writeln!(h, "<td class=\"notes\">{}</td></tr>", notes.join("<br>"));
            }
            h.push_str("</tbody>\n</table>\n</section>\n");
        }
        h.push_str("</body>\n</html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }
}
