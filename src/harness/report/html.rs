//! `index.html`: one self-contained page (inline CSS and SVG, no scripts,
//! nothing fetched) with the tables and the charts, the break-even
//! section, and a section per engine that its name links to.

use super::grids::{all as grids, timed};
use super::{breakeven, charts, teach};
use crate::harness::results::Results;
use crate::harness::table::Grid;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline code spans of the Markdown help text as HTML.
fn md_inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            let mut bold = false;
            for (j, p) in part.split("**").enumerate() {
                if j > 0 {
                    out.push_str(if bold { "</b>" } else { "<b>" });
                    bold = !bold;
                }
                out.push_str(p);
            }
        }
    }
    out
}

/// A grid as an HTML table under its title (a heading of `level`); names
/// in column 0 that are in `linked` link to their engine's section.
fn table(g: &Grid, level: u8, linked: &[&str]) -> String {
    let mut out = format!("<h{level}>{}</h{level}>\n<table><tr>", md_inline(&g.title));
    for h in &g.header {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr>\n");
    for row in &g.rows {
        let class = row.get(1).map_or("", |t| t.as_str());
        out.push_str(&format!("<tr class=\"{}\">", esc(class)));
        for (i, c) in row.iter().enumerate() {
            let cls = if i >= 2 { " class=\"num\"" } else { "" };
            let cell = if i == 0 && linked.contains(&c.as_str()) {
                format!("<a href=\"#{}\">{}</a>", teach::anchor(c), esc(c))
            } else {
                esc(c)
            };
            out.push_str(&format!("<td{cls}>{cell}</td>"));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// When compiling more pays off: the explanation, the tables, the charts.
fn breakeven_section(r: &Results, linked: &[&str]) -> String {
    let mut out = format!(
        "<h2 id=\"breakeven\">When does compiling more pay off?</h2>\n<p>{}</p>\n",
        md_inline(breakeven::EXPLAIN)
    );
    for g in breakeven::grids(r) {
        out.push_str(&table(&g, 3, linked));
    }
    for (file, svg) in breakeven::charts(r) {
        let id = file.trim_end_matches(".svg");
        out.push_str(&format!("<figure id=\"{}\">\n{svg}\n</figure>\n", esc(id)));
    }
    out
}

pub fn render(r: &Results) -> String {
    let linked: Vec<&str> = r
        .subjects
        .iter()
        .filter(|s| s.tier != "native")
        .map(|s| s.name.as_str())
        .collect();
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>vm-perf benchmark results</title>\n<style>\
         body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
         table{border-collapse:collapse;margin:1em 0;font-size:13px}\
         th,td{border:1px solid #ccc;padding:3px 8px}td.num{text-align:right;font-variant-numeric:tabular-nums}\
         th{background:#f3f3f3}tr.native td{color:#666;font-style:italic}\
         .tier{margin-right:1em}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}\
         figure{margin:1.5em 0}section.engine{border-top:1px solid #ddd;margin-top:1.5em}\
         h3 small{color:#666;font-weight:normal}details{margin:.5em 0}summary{cursor:pointer}\
         pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}</style></head><body>\n<h1>vm-perf benchmark results</h1>\n\
         <p><a href=\"#charts\">Charts</a> · <a href=\"#breakeven\">When does compiling pay off?</a> · \
         <a href=\"#engines\">The engines</a> · <a href=\"#how-to-read\">How to read this</a></p>\n",
    );
    out.push_str(&format!(
        "<p>Machine: {}<br>Build: {}",
        esc(&r.machine.line()),
        esc(&r.build.line()),
    ));
    if timed(r) {
        out.push_str(&format!(
            "<br>Run: {}.<br>Spans: {}",
            esc(&super::md::run_line(r)),
            esc(super::md::SPANS)
        ));
    }
    if let Some(line) = super::grids::counts_line(r) {
        out.push_str(&format!("<br>Instruction counts: {}", esc(&line)));
    }
    out.push_str("</p>\n");
    for g in grids(r) {
        out.push_str(&table(&g, 2, &linked));
    }
    let charts = if timed(r) { charts::all(r) } else { Vec::new() };
    if !charts.is_empty() {
        out.push_str(&format!(
            "<h2 id=\"charts\">Charts</h2>\n<p>{}</p>\n",
            charts::legend_html()
        ));
    }
    for (file, svg) in charts {
        let id = file.trim_end_matches(".svg");
        out.push_str(&format!(
            "<figure id=\"chart-{}\">\n{svg}\n</figure>\n",
            esc(id)
        ));
    }
    out.push_str(&breakeven_section(r, &linked));
    out.push_str(&teach::section(r));
    out.push_str("<h2 id=\"how-to-read\">How to read this</h2>\n<ul>\n");
    for item in super::md::HOW_TO_READ.split("\n- ") {
        out.push_str(&format!(
            "<li>{}</li>\n",
            md_inline(item.trim_start_matches("- "))
        ));
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}
