//! `index.html`: one self-contained page (inline CSS and SVG, no scripts,
//! nothing fetched) with the tables and the charts.

use super::charts;
use super::grids::{all as grids, timed};
use crate::harness::results::Results;

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

pub fn render(r: &Results) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>vm-perf benchmark results</title>\n<style>\
         body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
         table{border-collapse:collapse;margin:1em 0;font-size:13px}\
         th,td{border:1px solid #ccc;padding:3px 8px}td.num{text-align:right;font-variant-numeric:tabular-nums}\
         th{background:#f3f3f3}tr.native td{color:#666;font-style:italic}\
         .tier{margin-right:1em}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}\
         figure{margin:1.5em 0}</style></head><body>\n<h1>vm-perf benchmark results</h1>\n",
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
        out.push_str(&format!("<h2>{}</h2>\n<table><tr>", md_inline(&g.title)));
        for h in &g.header {
            out.push_str(&format!("<th>{}</th>", esc(h)));
        }
        out.push_str("</tr>\n");
        for row in &g.rows {
            let class = row.get(1).map_or("", |t| t.as_str());
            out.push_str(&format!("<tr class=\"{}\">", esc(class)));
            for (i, c) in row.iter().enumerate() {
                let cls = if i >= 2 { " class=\"num\"" } else { "" };
                out.push_str(&format!("<td{cls}>{}</td>", esc(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    let charts = if timed(r) { charts::all(r) } else { Vec::new() };
    if !charts.is_empty() {
        out.push_str(&format!(
            "<h2>Charts</h2>\n<p>{}</p>\n",
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
    out.push_str("<h2>How to read this</h2>\n<ul>\n");
    for item in super::md::HOW_TO_READ.split("\n- ") {
        out.push_str(&format!(
            "<li>{}</li>\n",
            md_inline(item.trim_start_matches("- "))
        ));
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}
