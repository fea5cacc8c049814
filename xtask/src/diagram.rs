// SPDX-License-Identifier: GPL-2.0

//! Text diagrams as SVG: the book's pictures are drawn in a text file with
//! box-drawing characters, arrowheads and words (`book/diagrams/NAME.txt`),
//! and rendered here into an inline `<svg>` that follows the page's text
//! colour. One character is one cell, so the drawing in the editor is the
//! drawing in the book.

/// Width and height of a character cell of a diagram, in pixels.
const CELL: (f64, f64) = (8.4, 18.0);
/// The drawing characters, each with the sides of its cell it joins (north,
/// east, south, west). The rest of a diagram is text.
const LINES: &[(char, [bool; 4])] = &[
    ('─', [false, true, false, true]),
    ('│', [true, false, true, false]),
    ('┌', [false, true, true, false]),
    ('┐', [false, false, true, true]),
    ('└', [true, true, false, false]),
    ('┘', [true, false, false, true]),
    ('├', [true, true, true, false]),
    ('┤', [true, false, true, true]),
    ('┬', [false, true, true, true]),
    ('┴', [true, true, false, true]),
    ('┼', [true, true, true, true]),
    ('┄', [false, true, false, true]),
    ('┆', [true, false, true, false]),
];
/// Rounded corners: the sides they join.
const CORNERS: &[(char, [bool; 4])] = &[
    ('╭', [false, true, true, false]),
    ('╮', [false, false, true, true]),
    ('╰', [true, true, false, false]),
    ('╯', [true, false, false, true]),
];
/// Arrowheads, pointing north, east, south, west.
const ARROWS: [char; 4] = ['▲', '▶', '▼', '◀'];
/// Characters allowed in a diagram's text besides printable ASCII: each
/// takes one cell, as the drawing characters do.
const TEXT_EXTRA: &str = "→←…·×≤≥";

fn is_drawing(c: char) -> bool {
    LINES.iter().chain(CORNERS).any(|(l, _)| *l == c) || ARROWS.contains(&c)
}

/// A diagram as an SVG image: its drawing characters become lines, rounded
/// corners and arrowheads; the rest is text, at its column, in
/// `currentColor` (readable in every theme). Fails on a character that
/// would not take exactly one cell (a tab, a CJK character, an emoji).
pub(crate) fn render_diagram(source: &str, title: &str) -> std::result::Result<String, String> {
    let rows: Vec<Vec<char>> =
        source.trim_end().lines().map(|l| l.trim_end().chars().collect()).skip_while(|r: &Vec<char>| r.is_empty()).collect();
    if rows.is_empty() {
        return Err("it is empty".into());
    }
    for (r, row) in rows.iter().enumerate() {
        if let Some((c, ch)) =
            row.iter().enumerate().find(|(_, &ch)| !(ch == ' ' || ch.is_ascii_graphic() || TEXT_EXTRA.contains(ch) || is_drawing(ch)))
        {
            return Err(format!(
                "line {}, column {}: {ch:?} is not ASCII, a drawing character ({}) or one of {TEXT_EXTRA}",
                r + 1,
                c + 1,
                LINES.iter().chain(CORNERS).map(|(l, _)| *l).chain(ARROWS).collect::<String>()
            ));
        }
    }
    let (w, h) = CELL;
    let pad = 4.0;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (width, height) = (columns as f64 * w + 2.0 * pad, rows.len() as f64 * h + 2.0 * pad);
    let (mut solid, mut dashed, mut heads, mut texts) = (String::new(), String::new(), String::new(), String::new());
    for (r, row) in rows.iter().enumerate() {
        let (top, cy) = (pad + r as f64 * h, pad + r as f64 * h + h / 2.0);
        let mut c = 0;
        while c < row.len() {
            let (left, cx) = (pad + c as f64 * w, pad + c as f64 * w + w / 2.0);
            // The middle of the cell's sides: north, east, south, west.
            let sides = [(cx, top), (left + w, cy), (cx, top + h), (left, cy)];
            let ch = row[c];
            if let Some((_, joins)) = LINES.iter().find(|(l, _)| *l == ch) {
                let path = if ch == '┄' || ch == '┆' { &mut dashed } else { &mut solid };
                for (side, _) in sides.iter().zip(joins).filter(|(_, j)| **j) {
                    path.push_str(&format!("M{cx:.1} {cy:.1}L{:.1} {:.1}", side.0, side.1));
                }
            } else if let Some((_, joins)) = CORNERS.iter().find(|(l, _)| *l == ch) {
                let ends: Vec<_> = sides.iter().zip(joins).filter(|(_, j)| **j).map(|(s, _)| s).collect();
                solid.push_str(&format!("M{:.1} {:.1}Q{cx:.1} {cy:.1} {:.1} {:.1}", ends[0].0, ends[0].1, ends[1].0, ends[1].1));
            } else if let Some(dir) = ARROWS.iter().position(|a| *a == ch) {
                // The tip on the side it points to, a line from the other side to the base.
                let (tip, back) = (sides[dir], sides[(dir + 2) % 4]);
                let (ux, uy) = [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)][dir];
                let base = (tip.0 - ux * 8.0, tip.1 - uy * 8.0);
                let (px, py) = (uy * 4.5, ux * 4.5);
                solid.push_str(&format!("M{:.1} {:.1}L{:.1} {:.1}", back.0, back.1, base.0, base.1));
                heads.push_str(&format!(
                    "M{:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z",
                    tip.0,
                    tip.1,
                    base.0 + px,
                    base.1 + py,
                    base.0 - px,
                    base.1 - py
                ));
            } else if ch != ' ' {
                // A run of text: up to a drawing character or two spaces.
                let start = c;
                while c + 1 < row.len() && !is_drawing(row[c + 1]) && !(row[c + 1] == ' ' && row.get(c + 2).is_none_or(|n| *n == ' ')) {
                    c += 1;
                }
                let run: String = row[start..=c].iter().collect::<String>().trim_end().to_string();
                texts.push_str(&format!(
                    "<text x=\"{left:.1}\" y=\"{:.1}\" textLength=\"{:.1}\" lengthAdjust=\"spacingAndGlyphs\">{}</text>\n",
                    cy + 5.0,
                    run.chars().count() as f64 * w,
                    xml_escape(&run)
                ));
            }
            c += 1;
        }
    }
    let stroke = "fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.4\"";
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" style=\"max-width:100%;height:auto\" font-family=\"monospace\" font-size=\"14\" \
         fill=\"currentColor\">\n",
        xml_escape(title)
    );
    if !solid.is_empty() {
        svg.push_str(&format!("<path {stroke} stroke-linecap=\"square\" d=\"{solid}\"/>\n"));
    }
    if !dashed.is_empty() {
        svg.push_str(&format!("<path {stroke} stroke-dasharray=\"3 3\" d=\"{dashed}\"/>\n"));
    }
    if !heads.is_empty() {
        svg.push_str(&format!("<path stroke=\"none\" d=\"{heads}\"/>\n"));
    }
    svg.push_str(&texts);
    svg.push_str("</svg>");
    Ok(svg)
}

/// `text` with XML's special characters escaped.
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagrams_render_lines_arrowheads_and_text() {
        let svg = render_diagram("╭────╮\n│ ok ├──▶ next\n╰────╯   ┆\n", "a \"box\"").unwrap();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>") && svg.contains("aria-label=\"a &quot;box&quot;\""), "{svg}");
        assert!(svg.contains("Q") && svg.contains("stroke-dasharray") && svg.contains("Z\"/>"), "{svg}");
        assert!(svg.contains(">ok</text>") && svg.contains(">next</text>"), "{svg}");
        // One blank line would end mdBook's HTML block in the middle of the SVG.
        assert!(!svg.contains("\n\n"));
        assert_eq!(render_diagram("\n\n", "x").unwrap_err(), "it is empty");
        assert!(render_diagram("名字", "x").unwrap_err().starts_with("line 1, column 1: '名'"));
    }
}
