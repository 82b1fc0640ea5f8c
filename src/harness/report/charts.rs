//! SVG charts (plotters, SVG backend only): one horizontal bar chart per
//! workload of the median time per loop iteration with its 95 % interval,
//! and one of the geometric-mean ratio. Bars are coloured by tier and the
//! axis turns logarithmic when the spread exceeds 20×. Each axis spans the
//! engines a reader compares: `rust_opt`, which LLVM may fold to almost
//! nothing, is a dashed marker when it falls inside, a note when not.

use crate::harness::results::{RUST, Results, WALKER};
use crate::harness::stats::{fmt_ns, fmt_ratio};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

const WIDTH: u32 = 1100;

/// The candle drawn as a marker, never as a bar.
const MARKED: &str = "rust_opt";

/// One bar: label, value, and its interval (low, high).
struct Bar {
    label: String,
    tier: String,
    value: f64,
    low: f64,
    high: f64,
}

fn tier_color(tier: &str) -> RGBColor {
    match tier {
        "original" => RGBColor(52, 101, 164),
        "beyond" => RGBColor(78, 154, 6),
        "fused" => RGBColor(245, 121, 0),
        "peer" => RGBColor(117, 80, 123),
        _ => RGBColor(136, 138, 133),
    }
}

/// Colour legend for the tiers, as HTML (the charts' bars use it).
pub fn legend_html() -> String {
    ["original", "beyond", "fused", "peer", "native"]
        .iter()
        .map(|t| {
            let RGBColor(r, g, b) = tier_color(t);
            format!("<span class=\"tier\"><span class=\"swatch\" style=\"background:rgb({r},{g},{b})\"></span>{t}</span>")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn draw<X>(
    svg: &mut String,
    caption: &str,
    x_desc: &str,
    bars: &[Bar],
    marker: Option<f64>,
    x: X,
    fmt: &dyn Fn(f64) -> String,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    // Plotters counts segments from the bottom; fastest (first) goes on top.
    let bars: Vec<&Bar> = bars.iter().rev().collect();
    let bars = bars.as_slice();
    let n = bars.len() as u32;
    let height = 90 + 26 * n.max(1);
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_floor = |c: &X::CoordDescType| c.range().start;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(260)
        // `a..b` segmented has a slot for `b` too: n bars need `0..n-1`.
        .build_cartesian_2d(x, (0..n.saturating_sub(1).max(1)).into_segmented())
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = bars
        .iter()
        .map(|b| format!("{} [{}]", b.label, b.tier))
        .collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n as usize + 1)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|v| fmt(*v))
        .x_desc(x_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    let floor = x_floor(chart.as_coord_spec().x_spec());
    if let Some(m) = marker {
        let top = SegmentValue::Exact(n.saturating_sub(1).max(1));
        let grey = RGBColor(100, 100, 100);
        chart
            .draw_series(DashedLineSeries::new(
                [(m, SegmentValue::Exact(0)), (m, top.clone())],
                6,
                4,
                grey.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {MARKED} {}", fmt(m)),
                (m, top),
                ("sans-serif", 12).into_font().color(&grey),
            )))
            .map_err(|e| e.to_string())?;
    }
    for (i, b) in bars.iter().enumerate() {
        let i = i as u32;
        let color = tier_color(&b.tier);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (floor, SegmentValue::Exact(i)),
                    (b.value, SegmentValue::Exact(i + 1)),
                ],
                color.mix(0.8).filled(),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (b.low, SegmentValue::CenterOf(i)),
                    (b.high, SegmentValue::CenterOf(i)),
                ],
                BLACK.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("  {}", fmt(b.value)),
                (b.high, SegmentValue::CenterOf(i)),
                ("sans-serif", 12),
            )))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws `bars` on an axis that fits them; `marker` (the value of
/// [`MARKED`]) is a dashed line when it falls on that axis and a note in
/// the caption when it does not.
fn chart(
    caption: &str,
    x_desc: &str,
    bars: &[Bar],
    marker: Option<f64>,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let mut svg = String::new();
    let lo = bars
        .iter()
        .map(|b| b.low.min(b.value))
        .fold(f64::INFINITY, f64::min);
    let hi = bars.iter().map(|b| b.high.max(b.value)).fold(0.0, f64::max);
    let (log, start, end) = if hi / lo > 20.0 {
        // The label text needs room on the right of the longest bar.
        (true, lo / 1.5, hi * 2.5)
    } else {
        (false, 0.0, hi * 1.25)
    };
    let on_axis = marker.filter(|m| *m >= start && *m <= end);
    let caption = match marker {
        Some(m) if on_axis.is_none() => {
            format!("{caption}   ({MARKED}: {}, off this scale)", fmt(m))
        }
        _ => caption.to_string(),
    };
    let result = if bars.is_empty() || !lo.is_finite() || lo <= 0.0 {
        draw(&mut svg, &caption, x_desc, bars, None, 0.0..1.0, fmt)
    } else if log {
        draw(
            &mut svg,
            &caption,
            &format!("{x_desc} (log scale)"),
            bars,
            on_axis,
            (start..end).log_scale(),
            fmt,
        )
    } else {
        draw(&mut svg, &caption, x_desc, bars, on_axis, start..end, fmt)
    };
    if let Err(e) = result {
        svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"4\" y=\"20\">chart failed: {e}</text></svg>"
        );
    }
    svg
}

/// The chart of one workload: time per loop iteration, fastest on top.
pub fn workload_chart(r: &Results, workload: &str) -> String {
    let iters = r
        .workloads
        .iter()
        .find(|w| w.name == workload)
        .map_or(1.0, |w| w.iterations as f64);
    let bars: Vec<Bar> = r
        .ranked()
        .into_iter()
        .filter_map(|s| {
            let e = r.cell(&s.name, workload)?.execute.as_ref()?.scaled(iters);
            Some(Bar {
                label: s.name.clone(),
                tier: s.tier.clone(),
                value: e.median,
                low: e.ci_low,
                high: e.ci_high,
            })
        })
        .collect();
    let (marked, mut sorted): (Vec<Bar>, Vec<Bar>) =
        bars.into_iter().partition(|b| b.label == MARKED);
    sorted.sort_by(|a, b| a.value.total_cmp(&b.value));
    chart(
        &format!("{workload}: time per loop iteration"),
        "median (line: 95% CI)",
        &sorted,
        marked.first().map(|b| b.value),
        &|v| fmt_ns(v),
    )
}

/// The geometric mean over workloads of each row's ratio to `rust`
/// (or `walker` when no candle was measured).
pub fn geomean_chart(r: &Results) -> String {
    let base = if r.has(RUST) { RUST } else { WALKER };
    let bars: Vec<Bar> = r
        .ranked()
        .into_iter()
        .filter_map(|s| {
            let g = r.geomean_ratio(&s.name, base)?;
            Some(Bar {
                label: s.name.clone(),
                tier: s.tier.clone(),
                value: g,
                low: g,
                high: g,
            })
        })
        .collect();
    let (marked, bars): (Vec<Bar>, Vec<Bar>) = bars.into_iter().partition(|b| b.label == MARKED);
    chart(
        &format!("Geometric mean over workloads, relative to {base}"),
        "× slower than the base",
        &bars,
        marked.first().map(|b| b.value),
        &|v| fmt_ratio(v),
    )
}

/// File name of a workload's chart (also its HTML id).
pub fn file_name(workload: &str) -> String {
    format!(
        "{}.svg",
        workload.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
            "_"
        )
    )
}

/// `(file name, svg)` for every chart: the geomean chart first.
pub fn all(r: &Results) -> Vec<(String, String)> {
    let mut v = vec![("geomean.svg".to_string(), geomean_chart(r))];
    v.extend(
        r.workloads
            .iter()
            .map(|w| (file_name(&w.name), workload_chart(r, &w.name))),
    );
    v
}
