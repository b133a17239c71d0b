//! report.html: the same blocks as report.md in one self-contained file (inline CSS and SVG; no script, no network,
//! nothing referenced outside the file), so it can be mailed, archived and opened offline years later.

use std::fmt::Write;

use crate::report::Block;
use crate::study::TargetPicture;
use crate::Error;

const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left}\
th{background:#eee}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.9em;color:#444}";

/// Render the blocks; figures' SVG is inserted as is (plots are ours; pictures went through [`embeddable_svg`]).
pub(crate) fn render(blocks: &[Block]) -> String {
    let title = blocks
        .iter()
        .find_map(|b| match b {
            Block::Heading(_, t) => Some(t.as_str()),
            _ => None,
        })
        .unwrap_or("report");
    let mut s = String::new();
    // Writing into a String cannot fail; the Results are discarded.
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n",
        escape(title)
    );
    for block in blocks {
        let _ = match block {
            Block::Heading(level, text) => {
                let l = (*level).clamp(1, 6);
                writeln!(s, "<h{l}>{}</h{l}>", escape(text))
            }
            Block::Paragraph(text) => writeln!(s, "<p>{}</p>", escape(text)),
            Block::Pre(text) => writeln!(s, "<pre>{}</pre>", escape(text.trim_end())),
            Block::List(items) => {
                let _ = writeln!(s, "<ul>");
                for item in items {
                    let _ = writeln!(s, "<li>{}</li>", escape(item));
                }
                writeln!(s, "</ul>")
            }
            Block::Table { head, rows } => {
                let _ = write!(s, "<table>\n<thead><tr>");
                for h in head {
                    let _ = write!(s, "<th>{}</th>", escape(h));
                }
                let _ = writeln!(s, "</tr></thead>\n<tbody>");
                for row in rows {
                    let _ = write!(s, "<tr>");
                    for c in row {
                        let _ = write!(s, "<td>{}</td>", escape(c));
                    }
                    let _ = writeln!(s, "</tr>");
                }
                writeln!(s, "</tbody>\n</table>")
            }
            Block::Figure { caption, svg } => {
                writeln!(
                    s,
                    "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>",
                    svg.trim(),
                    escape(caption)
                )
            }
        };
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// Escape text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A picture's SVG made fit to inline: XML prolog and doctype stripped; refused if it could run script or load
/// anything from outside the file (http(s) only in xmlns namespace names; href and url() only to `#…` or `data:`);
/// its ids prefixed `p{index}-` so several pictures' ids (each has a "title", a "legend") stay unique in the page.
pub(crate) fn embeddable_svg(index: usize, pic: &TargetPicture) -> Result<String, Error> {
    let refuse = |problem: &'static str| Error::Picture {
        index,
        trial: pic.trial,
        problem,
    };
    let mut s = pic.svg.trim_start_matches('\u{feff}').trim_start();
    if s.starts_with("<?xml") {
        let end = s.find("?>").ok_or_else(|| refuse("its XML prolog is not closed"))?;
        s = s.get(end + 2..).unwrap_or("").trim_start();
    }
    while s.starts_with("<!--") {
        let end = s
            .find("-->")
            .ok_or_else(|| refuse("a comment before <svg> is not closed"))?;
        s = s.get(end + 3..).unwrap_or("").trim_start();
    }
    if s.starts_with("<!DOCTYPE") {
        let end = s.find('>').ok_or_else(|| refuse("its DOCTYPE is not closed"))?;
        if s.get(..end).is_some_and(|d| d.contains('[')) {
            return Err(refuse("its DOCTYPE declares entities (an internal subset)"));
        }
        s = s.get(end + 1..).unwrap_or("").trim_start();
    }
    if !s.starts_with("<svg") {
        return Err(refuse("it does not start with <svg> (after an optional XML prolog)"));
    }
    let lower = s.to_ascii_lowercase();
    for (needle, problem) in [
        ("<script", "it contains a <script> element"),
        ("javascript:", "it contains a javascript: URL"),
        ("<foreignobject", "it contains a <foreignObject> (HTML inside SVG)"),
        ("@import", "its style imports a stylesheet"),
    ] {
        if lower.contains(needle) {
            return Err(refuse(problem));
        }
    }
    if has_event_attribute(&lower) {
        return Err(refuse("it has an event-handler attribute (on…=)"));
    }
    for scheme in ["http://", "https://"] {
        for (at, _) in lower.match_indices(scheme) {
            if !is_namespace_name(lower.get(..at).unwrap_or("")) {
                return Err(refuse(
                    "it references an http(s) address outside an xmlns namespace name",
                ));
            }
        }
    }
    for key in ["href=\"", "href='", "url(", "src="] {
        for (at, _) in lower.match_indices(key) {
            let rest = lower
                .get(at + key.len()..)
                .unwrap_or("")
                .trim_start_matches(['"', '\'', ' ']);
            if key == "src=" || !(rest.starts_with('#') || rest.starts_with("data:")) {
                return Err(refuse("it references something outside the file (href, url() or src)"));
            }
        }
    }
    let prefix = format!("p{index}-");
    Ok(s.replace(" id=\"", &format!(" id=\"{prefix}"))
        .replace("\nid=\"", &format!("\nid=\"{prefix}"))
        .replace("href=\"#", &format!("href=\"#{prefix}"))
        .replace("url(#", &format!("url(#{prefix}")))
}

/// Whether the text just before a URL ends in `xmlns="` or `xmlns:prefix="` (a namespace name, never fetched).
fn is_namespace_name(before: &str) -> bool {
    let Some(attr) = before.strip_suffix('"').or_else(|| before.strip_suffix('\'')) else {
        return false;
    };
    let Some(attr) = attr.trim_end().strip_suffix('=') else {
        return false;
    };
    let name = attr.trim_end().rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
    name == "xmlns" || name.starts_with("xmlns:")
}

/// ` on<letters>=` inside a tag: an event handler attribute (onload, onclick, …).
fn has_event_attribute(lower: &str) -> bool {
    lower
        .match_indices(" on")
        .chain(lower.match_indices("\non"))
        .any(|(at, m)| {
            let rest = lower.get(at + m.len()..).unwrap_or("");
            let letters = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
            letters > 0 && rest.get(letters..).is_some_and(|r| r.trim_start().starts_with('='))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pic(svg: &str) -> TargetPicture {
        TargetPicture {
            trial: 7,
            slice_mm: 1.0,
            svg: svg.into(),
        }
    }

    #[test]
    fn escapes_text() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let html = render(&[Block::Paragraph("<script>alert(1)</script>".into())]);
        assert!(!html.contains("<script") && html.contains("&lt;script&gt;"));
    }

    #[test]
    fn strips_the_prolog_and_prefixes_ids() {
        let s = embeddable_svg(
            2,
            &pic(
                "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><text id=\"title\">t</text>\
                  <image href=\"data:image/png;base64,AAAA\"/><use href=\"#title\"/></svg>",
            ),
        )
        .unwrap();
        assert!(s.starts_with("<svg "), "{s}");
        assert!(s.contains("id=\"p2-title\"") && s.contains("href=\"#p2-title\""), "{s}");
    }

    #[test]
    fn refuses_script_and_external_references() {
        let ns = "<svg xmlns=\"http://www.w3.org/2000/svg\"";
        for bad in [
            format!("{ns}><script>x</script></svg>"),
            format!("{ns} onload=\"x()\"></svg>"),
            format!("{ns}><image href=\"https://example.com/a.png\"/></svg>"),
            format!("{ns}><rect fill=\"url(file.svg#a)\"/></svg>"),
            format!("{ns}><text>see http://example.com</text></svg>"),
            "<html><svg/></html>".to_string(),
            "<!DOCTYPE svg [<!ENTITY x \"y\">]><svg/>".to_string(),
        ] {
            let e = embeddable_svg(0, &pic(&bad)).unwrap_err();
            assert!(matches!(e, Error::Picture { trial: 7, .. }), "{bad}: {e}");
        }
        assert!(embeddable_svg(
            0,
            &pic(&format!(
                "{ns} xmlns:xlink='http://www.w3.org/1999/xlink'><text>on target</text></svg>"
            ))
        )
        .is_ok());
    }
}
