//! report.md: the report's blocks as CommonMark (GitHub tables), readable as plain text.

use std::fmt::Write;

use crate::report::Block;

/// Render the blocks. Figures become their captions with a pointer to report.html, where the SVGs are.
pub(crate) fn render(blocks: &[Block]) -> String {
    let mut s = String::new();
    for block in blocks {
        // Writing into a String cannot fail; the Results are discarded.
        let _ = match block {
            Block::Heading(level, text) => {
                writeln!(
                    s,
                    "{} {}\n",
                    "#".repeat(usize::from((*level).clamp(1, 6))),
                    inline(text)
                )
            }
            Block::Paragraph(text) => writeln!(s, "{}\n", inline(text)),
            Block::Pre(text) => {
                let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
                writeln!(s, "{fence}text\n{}\n{fence}\n", text.trim_end())
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(s, "- {}", inline(item));
                }
                writeln!(s)
            }
            Block::Table { head, rows } => {
                let _ = writeln!(
                    s,
                    "| {} |",
                    head.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
                );
                let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
                for row in rows {
                    let _ = writeln!(s, "| {} |", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
                }
                writeln!(s)
            }
            Block::Figure { caption, .. } => writeln!(s, "*{}* (figure in report.html)\n", inline(caption)),
        };
    }
    s
}

/// Text that must stay text: one line, markdown's inline syntax and raw HTML backslash-escaped.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A table cell: inline text, trimmed (a cell cannot start or end with spaces that matter).
fn cell(text: &str) -> String {
    inline(text.trim())
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_break_out_of_its_cell_or_become_html() {
        let md = render(&[Block::Table {
            head: vec!["a".into()],
            rows: vec![vec!["x | <b>y</b>\nz".into()]],
        }]);
        assert!(md.contains("| x \\| \\<b\\>y\\</b\\> z |"), "{md}");
    }

    #[test]
    fn preformatted_text_gets_a_longer_fence_than_it_contains() {
        let md = render(&[Block::Pre("a ```` b".into())]);
        assert!(md.starts_with("`````text\n"), "{md}");
    }
}
