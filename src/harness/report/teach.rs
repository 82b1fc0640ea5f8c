//! The report teaches: a section per engine with the summary from its
//! module doc and, folded in `<details>`, the rest of that doc and what
//! the engine compiled the `sum` workload into (`vm-perf show`), so a
//! reader who never opens the source sees what a tape, a closure tree or a
//! register program looks like.
//!
//! The docs have one source, the engine modules' leading `//!` comments:
//! `build.rs` copies them into a generated table ([`ENGINE_DOCS`]) keyed by
//! module name, which is the engine's name.

use crate::engine::engine;
use crate::harness::results::Results;
use crate::workloads::workload;
use pulldown_cmark::{BrokenLink, CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

include!(concat!(env!("OUT_DIR"), "/engine_docs.rs"));

/// The module doc of engine `name`, if this build has its module.
pub fn doc(name: &str) -> Option<&'static str> {
    ENGINE_DOCS
        .iter()
        .find(|(module, _)| *module == name)
        .map(|(_, doc)| *doc)
}

/// A doc's first paragraph (its summary) and the rest.
pub fn split(doc: &str) -> (&str, &str) {
    match doc.split_once("\n\n") {
        Some((summary, rest)) => (summary, rest.trim_start()),
        None => (doc, ""),
    }
}

/// The id of engine `name`'s section.
pub fn anchor(name: &str) -> String {
    format!("engine-{name}")
}

/// Markdown as HTML. Rustdoc's intra-doc links (`` [`Program`] ``) have
/// no target outside rustdoc: they become their text. Raw HTML is shown
/// as text, so no doc can break the page around it.
fn to_html(markdown: &str) -> String {
    let mut intra_doc = |_: BrokenLink<'_>| Some((CowStr::from(""), CowStr::from("")));
    let mut in_intra_doc = false;
    let events = Parser::new_with_broken_link_callback(
        markdown,
        Options::ENABLE_TABLES,
        Some(&mut intra_doc),
    )
    .map(|e| match e {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        e => e,
    })
    .filter(|e| match e {
        Event::Start(Tag::Link { dest_url, .. }) if dest_url.is_empty() => {
            in_intra_doc = true;
            false
        }
        Event::End(TagEnd::Link) if in_intra_doc => {
            in_intra_doc = false;
            false
        }
        _ => true,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// `text` as an HTML `<pre>` block.
fn pre(text: &str) -> String {
    let mut out = String::new();
    pulldown_cmark::html::push_html(
        &mut out,
        [
            Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)),
            Event::Text(text.into()),
            Event::End(TagEnd::CodeBlock),
        ]
        .into_iter(),
    );
    out
}

/// What engine `name` of this build compiles `sum` into, if it is one.
fn shown(name: &str) -> Option<String> {
    let program = workload("sum")?.program().ok()?;
    Some(match engine(name)?.compile(&program) {
        Ok(code) => code.show(),
        Err(e) => format!("(it does not compile `sum`: {e})"),
    })
}

/// The section of every engine of the run (candles have no module).
pub fn section(r: &Results) -> String {
    let mut out = String::from(
        "<h2 id=\"engines\">The engines</h2>\n<p>What each engine is, from the summary of its \
         module doc, and, folded, the rest of that doc and what it compiled the <code>sum</code> \
         workload into (<code>vm-perf show --engine NAME workloads/sum.vm</code>).</p>\n",
    );
    for s in r.subjects.iter().filter(|s| s.tier != "native") {
        let (summary, rest) = split(doc(&s.name).unwrap_or(""));
        out.push_str(&format!(
            "<section id=\"{}\" class=\"engine\"><h3>{} <small>{}</small></h3>\n",
            anchor(&s.name),
            s.name,
            s.tier
        ));
        out.push_str(&to_html(if summary.is_empty() {
            &s.summary
        } else {
            summary
        }));
        if !rest.is_empty() {
            out.push_str(&format!(
                "<details><summary>More from its module doc</summary>\n{}</details>\n",
                to_html(rest)
            ));
        }
        if let Some(code) = shown(&s.name) {
            out.push_str(&format!(
                "<details><summary>What it compiled <code>sum</code> into</summary>\n{}</details>\n",
                pre(&code)
            ));
        }
        out.push_str("</section>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_has_its_module_doc() {
        for e in crate::engine::engines() {
            let doc = doc(e.name()).unwrap_or_else(|| panic!("no module doc for {}", e.name()));
            let (summary, _) = split(doc);
            assert!(
                summary.contains(&format!("`{}`", e.name())),
                "{}: {summary}",
                e.name()
            );
        }
    }

    #[test]
    fn markdown_becomes_html_and_intra_doc_links_text() {
        let html = to_html("`a` — **b** uses [`Program`] and [x](https://e.org) <i>");
        assert_eq!(
            html,
            "<p><code>a</code> — <strong>b</strong> uses <code>Program</code> and \
             <a href=\"https://e.org\">x</a> &lt;i&gt;</p>\n"
        );
        assert_eq!(pre("a < b"), "<pre><code>a &lt; b</code></pre>\n");
        assert_eq!(
            split("one\nline\n\ntwo\n\nthree"),
            ("one\nline", "two\n\nthree")
        );
    }
}
