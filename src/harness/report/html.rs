//! `index.html`: one self-contained page (inline CSS and SVG, no scripts,
//! nothing fetched). It opens with the ladder and the geometric-mean chart,
//! then the tables, the charts per workload, the break-even section, and a
//! section per engine that its name links to.

use super::grids::{all as grids, timed};
use super::{breakeven, charts, ladder, teach};
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
    let mut out = format!(
        "<h{level}>{}</h{level}>\n<div class=\"wide\"><table><tr>",
        md_inline(&g.title)
    );
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
    out.push_str("</table></div>\n");
    out
}

/// A ladder table: inline Markdown in every cell, engine names that are
/// in `linked` link to their section.
fn ladder_table(t: &ladder::Table, id: &str, linked: &[&str]) -> String {
    let align = |i: usize| {
        if t.left.get(i).copied().unwrap_or(false) {
            ""
        } else {
            " class=\"num\""
        }
    };
    let mut out = format!("<div class=\"wide\"><table id=\"{id}\"><tr>");
    for (i, h) in t.header.iter().enumerate() {
        out.push_str(&format!("<th{}>{}</th>", align(i), md_inline(h)));
    }
    out.push_str("</tr>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let name = c.trim_matches('`');
            let cell = if c.starts_with('`') && linked.contains(&name) {
                format!(
                    "<a href=\"#{}\"><code>{}</code></a>",
                    teach::anchor(name),
                    esc(name)
                )
            } else {
                md_inline(c)
            };
            out.push_str(&format!("<td{}>{cell}</td>", align(i)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
    out
}

/// The first screen: the ladder, the peers beside it, the geomean chart.
fn ladder_section(r: &Results, linked: &[&str]) -> String {
    let mut out = String::from(
        "<h2 id=\"ladder\">From a tree walker to a JIT, one step at a time</h2>\n\
         <p>Each step changes one thing about the engine named in its row; <i>this step</i> \
         is what that one change buys, measured in this run. Lower times are faster.</p>\n",
    );
    out.push_str(&ladder_table(&ladder::ladder(r), "ladder-steps", linked));
    out.push_str(&ladder_table(&ladder::peers(r), "ladder-peers", linked));
    if let Some(levels) = ladder::levels(r) {
        out.push_str(
            "<p>Every engine's place on each level (geometric means of its time vs \
             <code>walker</code> over that level's workloads), in its Level-2 order:</p>\n",
        );
        out.push_str(&ladder_table(&levels, "ladder-levels", linked));
    }
    out.push_str(&format!("<p>{}</p>\n", md_inline(&ladder::note(r))));
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
         table{border-collapse:collapse;margin:1em 0;font-size:13px}div.wide{overflow-x:auto}\
         th,td{border:1px solid #ccc;padding:3px 8px}\
         td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
         th{background:#f3f3f3}tr.native td{color:#666;font-style:italic}\
         .tier{margin-right:1em}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}\
         figure{margin:1.5em 0}figure svg{width:100%;height:auto}section.engine{border-top:1px solid #ddd;margin-top:1.5em}\
         h3 small{color:#666;font-weight:normal}details{margin:.5em 0}summary{cursor:pointer}\
         pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}</style></head><body>\n<h1>vm-perf benchmark results</h1>\n\
         <p><a href=\"#ladder\">The ladder</a> · <a href=\"#tables\">Tables</a> · \
         <a href=\"#charts\">Charts</a> · <a href=\"#breakeven\">When does compiling pay off?</a> · \
         <a href=\"#engines\">The engines</a> · <a href=\"#how-to-read\">How to read this</a></p>\n",
    );
    let mut charts = if timed(r) { charts::all(r) } else { Vec::new() };
    if timed(r) {
        out.push_str(&ladder_section(r, &linked));
    }
    let figure = |(file, svg): (String, String)| {
        format!(
            "<figure id=\"chart-{}\">\n{svg}\n</figure>\n",
            esc(file.trim_end_matches(".svg"))
        )
    };
    if !charts.is_empty() {
        // The geomean chart, first of all, stays with the ladder.
        out.push_str(&format!("<p>{}</p>\n", charts::legend_html()));
        out.push_str(&figure(charts.remove(0)));
    }
    out.push_str(&format!(
        "<h2 id=\"tables\">The run</h2>\n<p>Machine: {}<br>Build: {}",
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
    out.push_str(&format!(
        "<h2 id=\"charts\">Charts</h2>\n<p>{}</p>\n",
        if charts.is_empty() {
            "No times in this run.".to_string()
        } else {
            format!(
                "Time per loop iteration, fastest on top, each chart scaled to the engines it \
                 compares; <code>rust_opt</code>, which LLVM may fold to almost nothing, is a \
                 dashed marker or a note. {}",
                charts::legend_html()
            )
        }
    ));
    for c in charts {
        out.push_str(&figure(c));
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
