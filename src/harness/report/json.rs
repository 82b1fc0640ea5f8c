//! `results.json`: every sample and all metadata, via serde.

use crate::harness::results::Results;

/// The results, with their geometric means per level derived afresh.
pub fn render(r: &Results) -> String {
    let r = Results {
        geomeans: r.geomeans(),
        ..r.clone()
    };
    serde_json::to_string_pretty(&r).expect("results serialise")
}

pub fn parse(text: &str) -> Result<Results, serde_json::Error> {
    serde_json::from_str(text)
}
