//! `vm-perf compare BASE.json NEW.json`: two runs side by side, for someone
//! changing an interpreter who asks "did my change help?".
//!
//! Per engine and workload it sets the median time per loop iteration of
//! one run against the other. The change's interval comes from the two
//! medians' 95 % confidence intervals, `[new.low / base.high, new.high /
//! base.low]`, and a change is significant only when that interval excludes
//! no change, that is when the two runs' intervals do not overlap: a
//! conservative test that, like the intervals, assumes no distribution.
//! Per engine: the geometric mean of its changes (the geometric means of
//! the interval ends as its range) and its rank in each run. Warnings say
//! what makes two runs less comparable: another machine, another build,
//! another clock, a workload that is not the same program, a native candle
//! that moved, every engine moving the same way (then the machine did, not
//! only the engines).
//!
//! Each interval is its own run's noise; drift between two runs (another
//! load on a shared machine, another clock frequency) is in neither. With
//! a reference engine (`--relative-to walker`) every value is the ratio to
//! that engine on the same workload in the same run, so drift that hits
//! every engine alike cancels, as in the reports' ratio tables.
//!
//! Files are read with serde's defaults for fields added later, so a
//! `results.json` written by an older vm-perf compares too.

use super::report::json;
use super::results::Results;
use super::stats::{fmt_ns, fmt_ratio, geomean};
use super::table::{Grid, markdown, terminal};
use serde_json::Value;
use std::path::Path;

/// What the intervals say about one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Faster,
    Slower,
    /// The intervals overlap: no change shown.
    Same,
}

impl Verdict {
    fn of(low: f64, high: f64) -> Verdict {
        if low > 1.0 {
            Verdict::Slower
        } else if high < 1.0 {
            Verdict::Faster
        } else {
            Verdict::Same
        }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Same => "no change",
        }
    }
}

/// One engine (or candle) on one workload, in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub subject: String,
    pub tier: String,
    pub workload: String,
    /// The workload's language level.
    pub level: u8,
    /// Median nanoseconds per loop iteration in the base and the new run,
    /// or the ratio to the reference engine's when there is one.
    pub base: f64,
    pub new: f64,
    /// `new / base` of the medians, and the ends of its interval.
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
    pub verdict: Verdict,
}

/// One engine over every workload both runs measured it on.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineChange {
    pub subject: String,
    pub tier: String,
    /// Geometric mean of the ratios, with its range; `None` when no
    /// workload was measured in both runs.
    pub geomean: Option<(f64, f64, f64)>,
    /// The geometric mean of the ratios per language level, when the new
    /// run has workloads of more than one level.
    pub levels: Vec<(u8, Option<f64>)>,
    pub workloads: usize,
    /// 1-based rank (fastest first) in the base and the new run.
    pub rank: (Option<usize>, Option<usize>),
}

/// Everything `vm-perf compare` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The engine every value is a ratio to, in its own run (`None`:
    /// nanoseconds per iteration).
    pub relative_to: Option<String>,
    pub changes: Vec<Change>,
    pub engines: Vec<EngineChange>,
    /// What makes the runs less comparable, and what only one of them has.
    pub warnings: Vec<String>,
}

/// Reads a `results.json`.
pub fn load(path: &Path) -> Result<Results, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read file: {e}", path.display()))?;
    json::parse(&text).map_err(|e| format!("{}: not a vm-perf results.json: {e}", path.display()))
}

/// A value that says something: older files read absent fields as empty.
fn known(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) => true,
    }
}

/// The fields of `a` and `b` (a machine, a build) that both know and that
/// differ, as one warning.
fn differences<T: serde::Serialize>(what: &str, a: &T, b: &T) -> Option<String> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return None;
    };
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let diffs: Vec<String> = a
        .iter()
        .filter_map(|(k, va)| {
            let vb = b.get(k)?;
            (known(va) && known(vb) && va != vb)
                .then(|| format!("{k} `{}` → `{}`", show(va), show(vb)))
        })
        .collect();
    (!diffs.is_empty()).then(|| {
        format!(
            "the runs come from different {what}s ({}): changes may be theirs",
            diffs.join(", ")
        )
    })
}

/// Median nanoseconds per loop iteration with its interval.
fn per_iteration(r: &Results, subject: &str, workload: &str) -> Option<(f64, f64, f64)> {
    let iterations = r.workloads.iter().find(|w| w.name == workload)?.iterations;
    let s = r
        .cell(subject, workload)?
        .execute
        .as_ref()?
        .scaled(iterations.max(1) as f64);
    Some((s.median, s.ci_low, s.ci_high))
}

/// [`per_iteration`], or with a `reference` the ratio to its value on the
/// same workload in the same run (the interval ends from both intervals).
fn value(
    r: &Results,
    subject: &str,
    workload: &str,
    reference: Option<&str>,
) -> Option<(f64, f64, f64)> {
    let (m, low, high) = per_iteration(r, subject, workload)?;
    match reference {
        None => Some((m, low, high)),
        Some(base) => {
            let (b, b_low, b_high) = per_iteration(r, base, workload)?;
            Some((m / b, low / b_high, high / b_low))
        }
    }
}

fn rank(r: &Results, subject: &str) -> Option<usize> {
    r.ranked()
        .iter()
        .position(|s| s.name == subject)
        .map(|i| i + 1)
}

/// Names in `a` that `b` lacks.
fn missing<'a>(a: impl Iterator<Item = &'a String>, b: &[&String]) -> Vec<String> {
    a.filter(|n| !b.contains(n))
        .map(|n| format!("`{n}`"))
        .collect()
}

/// Sets `new` against `base`, each value relative to engine `relative_to`
/// in its own run if one is given (it must be in both).
pub fn compare(
    base: &Results,
    new: &Results,
    relative_to: Option<&str>,
) -> Result<Comparison, String> {
    if let Some(r) = relative_to
        && !(base.has(r) && new.has(r))
    {
        return Err(format!("`{r}` is not measured in both runs"));
    }
    let mut warnings: Vec<String> = [
        differences("machine", &base.machine, &new.machine),
        differences("build", &base.build, &new.build),
    ]
    .into_iter()
    .flatten()
    .collect();
    if base.settings.clock != new.settings.clock {
        warnings.push(format!(
            "the runs were timed with different clocks ({} → {})",
            base.settings.clock, new.settings.clock
        ));
    }
    for w in &new.workloads {
        if let Some(b) = base.workloads.iter().find(|b| b.name == w.name)
            && (b.args != w.args || b.nodes != w.nodes || b.expected != w.expected)
        {
            warnings.push(format!(
                "workload `{}` is not the same program in both runs (arguments {:?} → {:?}, {} → {} nodes); times per iteration are compared",
                w.name, b.args, w.args, b.nodes, w.nodes
            ));
        }
    }
    let names = |r: &Results| -> (Vec<String>, Vec<String>) {
        (
            r.subjects.iter().map(|s| s.name.clone()).collect(),
            r.workloads.iter().map(|w| w.name.clone()).collect(),
        )
    };
    let ((bs, bw), (ns, nw)) = (names(base), names(new));
    for (what, only, other) in [
        ("engines only in the base run", &bs, &ns),
        ("engines only in the new run", &ns, &bs),
        ("workloads only in the base run", &bw, &nw),
        ("workloads only in the new run", &nw, &bw),
    ] {
        let list = missing(only.iter(), &other.iter().collect::<Vec<_>>());
        if !list.is_empty() {
            warnings.push(format!("{what}, not compared: {}", list.join(", ")));
        }
    }

    let mut changes = Vec::new();
    let mut engines = Vec::new();
    let compared = |s: &&super::results::SubjectInfo| {
        base.has(&s.name) && Some(s.name.as_str()) != relative_to
    };
    for s in new.subjects.iter().filter(compared) {
        // Grouped by language level, as in every table.
        let mine: Vec<Change> = new
            .by_level()
            .into_iter()
            .filter_map(|w| {
                let (b, b_low, b_high) = value(base, &s.name, &w.name, relative_to)?;
                let (n, n_low, n_high) = value(new, &s.name, &w.name, relative_to)?;
                let (low, high) = (n_low / b_high, n_high / b_low);
                Some(Change {
                    subject: s.name.clone(),
                    tier: s.tier.clone(),
                    workload: w.name.clone(),
                    level: w.level,
                    base: b,
                    new: n,
                    ratio: n / b,
                    low,
                    high,
                    verdict: Verdict::of(low, high),
                })
            })
            .collect();
        let mean = |f: fn(&Change) -> f64| geomean(mine.iter().map(f));
        engines.push(EngineChange {
            subject: s.name.clone(),
            tier: s.tier.clone(),
            geomean: mean(|c| c.ratio)
                .zip(mean(|c| c.low))
                .zip(mean(|c| c.high))
                .map(|((g, l), h)| (g, l, h)),
            levels: match new.levels() {
                levels if levels.len() > 1 => levels
                    .into_iter()
                    .map(|l| {
                        let at = mine.iter().filter(|c| c.level == l);
                        (l, geomean(at.map(|c| c.ratio)))
                    })
                    .collect(),
                _ => Vec::new(),
            },
            workloads: mine.len(),
            rank: (rank(base, &s.name), rank(new, &s.name)),
        });
        changes.extend(mine);
    }
    // Against a reference a candle moves with it: only absolute times tell.
    for c in &changes {
        if relative_to.is_none() && c.tier == "native" && c.verdict != Verdict::Same {
            warnings.push(format!(
                "the native candle `{}` moved by {} on `{}`: the machine changed, not only the engines",
                c.subject,
                percent(c.ratio),
                c.workload
            ));
        }
    }
    // Every engine faster, or every one slower: what drift looks like
    // (or, against a reference, a change of the reference itself).
    let moved: Vec<f64> = engines
        .iter()
        .filter(|e| e.tier != "native")
        .filter_map(|e| e.geomean.map(|g| g.0))
        .collect();
    if moved.len() >= 2 && (moved.iter().all(|&g| g > 1.0) || moved.iter().all(|&g| g < 1.0)) {
        let all = percent(geomean(moved).unwrap_or(1.0));
        warnings.push(match relative_to {
            None => format!(
                "every engine moved the same way (geometric mean {all}): drift of the machine between the runs looks like this; \
                 `--relative-to walker` compares each engine's ratio to walker in its own run instead"
            ),
            Some(r) => format!(
                "every engine moved the same way against `{r}` (geometric mean {all}): `{r}` itself moved by {} \
                 (geometric mean of its own times); on a shared machine engines do not all feel its load alike",
                geomean(new.workloads.iter().filter_map(|w| {
                    Some(per_iteration(new, r, &w.name)?.0 / per_iteration(base, r, &w.name)?.0)
                }))
                .map_or("n/a".into(), percent)
            ),
        });
    }
    Ok(Comparison {
        relative_to: relative_to.map(str::to_string),
        changes,
        engines,
        warnings,
    })
}

/// A ratio as a signed percentage change (`+3.1%`, `−4.2%`).
fn percent(ratio: f64) -> String {
    let p = (ratio - 1.0) * 100.0;
    let digits = if p.abs() < 10.0 { 1 } else { 0 };
    format!("{p:+.digits$}%").replace('-', "−")
}

fn interval(low: f64, high: f64) -> String {
    format!("{} … {}", percent(low), percent(high))
}

fn rank_change((base, new): (Option<usize>, Option<usize>)) -> String {
    let n = |r: Option<usize>| r.map_or("—".to_string(), |r| r.to_string());
    match (base, new) {
        (Some(b), Some(a)) if a < b => format!("{b} → {a} (↑{})", b - a),
        (Some(b), Some(a)) if a > b => format!("{b} → {a} (↓{})", a - b),
        _ => format!("{} → {}", n(base), n(new)),
    }
}

impl Comparison {
    /// Changes significantly slower than the base by more than `pct` percent.
    pub fn slowdowns_above(&self, pct: f64) -> Vec<&Change> {
        self.changes
            .iter()
            .filter(|c| c.verdict == Verdict::Slower && (c.ratio - 1.0) * 100.0 > pct)
            .collect()
    }

    /// One line per significant slowdown above `pct`: `engine on workload +12%`.
    pub fn describe_slowdowns(&self, pct: f64) -> Vec<String> {
        self.slowdowns_above(pct)
            .into_iter()
            .map(|c| format!("{} on {} {}", c.subject, c.workload, percent(c.ratio)))
            .collect()
    }

    /// One row per engine and workload (only the significant ones if asked).
    pub fn changes_grid(&self, significant_only: bool) -> Grid {
        let show = |v: f64| match self.relative_to {
            Some(_) => fmt_ratio(v),
            None => fmt_ns(v),
        };
        let rows = self
            .changes
            .iter()
            .filter(|c| !significant_only || c.verdict != Verdict::Same)
            .map(|c| {
                vec![
                    c.subject.clone(),
                    c.workload.clone(),
                    show(c.base),
                    show(c.new),
                    percent(c.ratio),
                    interval(c.low, c.high),
                    c.verdict.text().to_string(),
                ]
            })
            .collect();
        Grid {
            title: match (significant_only, &self.relative_to) {
                (true, _) => "Significant changes".into(),
                (false, None) => "Change in median time per loop iteration (interval: from the two runs' 95% CIs)".into(),
                (false, Some(r)) => format!("Change in median time per loop iteration relative to `{r}` in the same run (interval: from the four 95% CIs)"),
            },
            header: [
                "engine", "workload", "base", "new", "change", "interval", "verdict",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    /// One row per engine: geometric-mean change (per language level, when
    /// the run has several, and over all workloads) and rank in each run.
    pub fn engines_grid(&self) -> Grid {
        let levels: Vec<u8> = self
            .engines
            .first()
            .map_or(Vec::new(), |e| e.levels.iter().map(|l| l.0).collect());
        let rows = self
            .engines
            .iter()
            .map(|e| {
                let (g, range, verdict) = match e.geomean {
                    Some((g, l, h)) => (
                        percent(g),
                        interval(l, h),
                        Verdict::of(l, h).text().to_string(),
                    ),
                    None => ("n/a".into(), String::new(), String::new()),
                };
                let mut row = vec![e.subject.clone(), e.tier.clone()];
                row.extend(
                    e.levels
                        .iter()
                        .map(|(_, g)| g.map_or("n/a".into(), percent)),
                );
                row.extend([
                    g,
                    range,
                    verdict,
                    rank_change(e.rank),
                    e.workloads.to_string(),
                ]);
                row
            })
            .collect();
        let mut header = vec!["engine".to_string(), "tier".to_string()];
        header.extend(levels.iter().map(|l| format!("Level {l} change")));
        header
            .extend(["geomean change", "range", "verdict", "rank", "workloads"].map(String::from));
        Grid {
            title: "Per engine: geometric mean of the changes over the workloads, and rank (fastest first)".into(),
            header,
            rows,
        }
    }

    fn tally(&self) -> String {
        let n = |v: Verdict| self.changes.iter().filter(|c| c.verdict == v).count();
        format!(
            "{} of {} engine × workload cells changed significantly: {} faster, {} slower.",
            n(Verdict::Faster) + n(Verdict::Slower),
            self.changes.len(),
            n(Verdict::Faster),
            n(Verdict::Slower)
        )
    }

    /// For the terminal: every cell, then the per-engine summary.
    pub fn terminal(&self, base: &str, new: &str) -> String {
        let mut out = format!("Comparing {new} against {base}\n");
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.push('\n');
        out.push_str(&terminal(&self.changes_grid(false)));
        out.push('\n');
        out.push_str(&terminal(&self.engines_grid()));
        out.push_str(&format!("{}\n", self.tally()));
        out
    }

    /// For a pull request: the summary, the significant changes, and every
    /// cell folded away.
    pub fn markdown(&self, base: &str, new: &str) -> String {
        let mut out = format!("### vm-perf: `{new}` against `{base}`\n\n");
        for w in &self.warnings {
            out.push_str(&format!("> **Warning**: {w}\n>\n"));
        }
        if !self.warnings.is_empty() {
            out.truncate(out.len() - 2);
            out.push('\n');
        }
        out.push_str(&format!("{}\n\n", self.tally()));
        out.push_str(&markdown(&self.engines_grid()));
        out.push('\n');
        let significant = self.changes_grid(true);
        if significant.rows.is_empty() {
            out.push_str("No significant change on any engine and workload.\n\n");
        } else {
            out.push_str(&markdown(&significant));
            out.push('\n');
        }
        out.push_str(&format!(
            "<details><summary>All {} engine × workload cells</summary>\n\n{}\n</details>\n",
            self.changes.len(),
            markdown(&self.changes_grid(false))
        ));
        out
    }
}

/// `vm-perf compare` in one call: the comparison of the runs in `base` and
/// `new` as text (Markdown or for the terminal) and, with `fail_above`, the
/// message that names every significant slowdown above it (`None`: none).
pub fn run(
    base: &Path,
    new: &Path,
    relative_to: Option<&str>,
    as_markdown: bool,
    fail_above: Option<f64>,
) -> Result<(String, Option<String>), String> {
    let c = compare(&load(base)?, &load(new)?, relative_to)?;
    let (b, n) = (base.display().to_string(), new.display().to_string());
    let text = if as_markdown {
        c.markdown(&b, &n)
    } else {
        c.terminal(&b, &n)
    };
    let slower = fail_above.and_then(|pct| match c.describe_slowdowns(pct).as_slice() {
        [] => None,
        slow => Some(format!(
            "{} significant slowdown{} above {pct}%: {}",
            slow.len(),
            if slow.len() == 1 { "" } else { "s" },
            slow.join(", ")
        )),
    });
    Ok((text, slower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significance_needs_intervals_apart() {
        assert_eq!(Verdict::of(1.01, 1.2), Verdict::Slower);
        assert_eq!(Verdict::of(0.8, 0.99), Verdict::Faster);
        assert_eq!(Verdict::of(0.9, 1.1), Verdict::Same);
        assert_eq!(percent(1.031), "+3.1%");
        assert_eq!(percent(0.5), "−50%");
        assert_eq!(rank_change((Some(3), Some(1))), "3 → 1 (↑2)");
        assert_eq!(rank_change((None, Some(4))), "— → 4");
    }

    #[test]
    fn empty_or_absent_fields_are_not_differences() {
        #[derive(serde::Serialize)]
        struct M {
            cpu: String,
            cores: usize,
            flags: Vec<String>,
        }
        let old = M {
            cpu: "X".into(),
            cores: 0,
            flags: vec![],
        };
        let same = M {
            cpu: "X".into(),
            cores: 8,
            flags: vec!["avx2".into()],
        };
        assert_eq!(differences("machine", &old, &same), None);
        let other = M {
            cpu: "Y".into(),
            ..same
        };
        let w = differences("machine", &old, &other).unwrap();
        assert!(w.contains("cpu `X` → `Y`"), "{w}");
    }
}
