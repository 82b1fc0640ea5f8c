//! `results.csv`: one row per engine × workload, summaries only
//! (every sample is in `results.json`).

use crate::harness::results::{RUST, Results, WALKER};

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.3}"))
}

pub fn render(r: &Results) -> String {
    let mut out = String::from(
        "engine,tier,workload,status,samples,reps_per_sample,median_ns,ci_low_ns,ci_high_ns,min_ns,max_ns,\
         iterations,ns_per_iteration,ratio_to_rust,ratio_to_walker,compile_median_ns,compile_min_ns\n",
    );
    for c in &r.cells {
        let w = r.workloads.iter().find(|w| w.name == c.workload);
        let e = c.execute.as_ref();
        let status = match &c.refused {
            Some(why) => format!("n/a: {why}"),
            None => "ok".into(),
        };
        let row = [
            field(&c.subject),
            field(r.tier_of(&c.subject)),
            field(&c.workload),
            field(&status),
            e.map_or(String::new(), |e| e.samples.to_string()),
            c.reps_per_sample.to_string(),
            num(e.map(|e| e.median)),
            num(e.map(|e| e.ci_low)),
            num(e.map(|e| e.ci_high)),
            num(e.map(|e| e.min)),
            num(e.map(|e| e.max)),
            w.map_or(String::new(), |w| w.iterations.to_string()),
            num(r.per_iteration(&c.subject, &c.workload)),
            num(r.ratio(&c.subject, &c.workload, RUST)),
            num(r.ratio(&c.subject, &c.workload, WALKER)),
            num(c.compile.as_ref().map(|s| s.median)),
            num(c.compile.as_ref().map(|s| s.min)),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}
