//! One target per parser of outside data, each with its seeds (real fixtures), dictionary and
//! grammar. What each `run` asserts is written next to it.

use arbitrary::Unstructured;

mod agent;
mod armadito;
mod clamav;
mod defender;
mod eset;
mod kaspersky;

/// Builds one structured input from random bytes.
pub type Generate = fn(&mut Unstructured) -> arbitrary::Result<Vec<u8>>;

/// One parser (or family of parsers fed the same bytes).
pub struct Target {
    pub name: &'static str,
    /// What it parses, for `--list`.
    pub about: &'static str,
    /// Real inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the parser looks for (field names, keywords, separators).
    pub dict: &'static [&'static str],
    pub generate: Option<Generate>,
    /// Feeds one input and asserts what must hold; panics on a violation.
    pub run: fn(&[u8]),
}

/// Every target, in a stable order.
pub fn all() -> Vec<Target> {
    let mut v = Vec::new();
    v.extend(agent::targets());
    v.extend(clamav::targets());
    v.extend(armadito::targets());
    v.extend(defender::targets());
    v.extend(eset::targets());
    v.extend(kaspersky::targets());
    v
}

pub fn find(name: &str) -> Option<Target> {
    all().into_iter().find(|t| t.name == name)
}

/// The input as the parsers that take text see it (the agent decodes lossily, as the
/// transport and the output readers do).
pub(crate) fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Seeds from string literals.
pub(crate) fn seeds(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Pages through with `page` (at most 2 detections each, the cursor carried over) until the
/// pager says there is no more: the pages together hold exactly `whole`'s detections, each
/// once, in order. At most `max_pages + 1` pages, so a pager that never ends fails.
pub(crate) fn assert_pages_make_the_whole(
    whole: &armadito_plugin_api::model::AlertsPage,
    max_pages: usize,
    mut query: armadito_plugin_api::model::AlertsQuery,
    mut page: impl FnMut(
        &armadito_plugin_api::model::AlertsQuery,
    ) -> armadito_plugin_api::model::AlertsPage,
) {
    let mut seen = Vec::new();
    for _ in 0..=max_pages {
        let p = page(&query);
        assert!(p.detections.len() <= 2);
        seen.extend(p.detections);
        if !p.more {
            break;
        }
        query.cursor = p.next_cursor;
    }
    assert_eq!(seen, whole.detections, "paging lost or repeated detections");
}
