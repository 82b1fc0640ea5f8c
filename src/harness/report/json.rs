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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::results::fabricated::fabricated;

    #[test]
    fn the_file_carries_the_geomeans_per_level() {
        let r = fabricated(
            &[("a", 2), ("b", 1)],
            |s, _| if s == "rust" { 1.0 } else { 3.0 },
        );
        let back = parse(&render(&r)).unwrap();
        assert_eq!(back.geomeans, r.geomeans());
        assert!(back.geomeans.iter().any(|g| g.level == Some(2)));
        assert!(back.geomeans.iter().any(|g| g.level.is_none()));
    }
}
