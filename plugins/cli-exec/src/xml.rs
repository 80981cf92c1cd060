//! A guard for the XML the products write (ESET `cfg --export-xml`, Kaspersky `avp.com
//! EXPORT`): roxmltree recurses once per element level, and a stack overflow aborts the
//! process (it cannot be caught), so a document nested deeper than [`MAX_DEPTH`] is refused
//! before it is parsed. Found by fuzzing (`fuzz/`, targets `eset_config`, `kes_windows`).
//!
//! Invariant: [`nesting_depth`] never under-estimates the depth the parser would reach on a
//! document it accepts (comments, CDATA, processing instructions and quoted attribute values
//! are skipped as the parser skips them; a DTD is refused by the parser's defaults).

/// Deeper than any product's settings (ESET and KES exports are about ten levels), and far
/// below what a 2 MiB thread stack holds in an unoptimised build.
pub const MAX_DEPTH: usize = 256;

/// The deepest element nesting in `text` (an upper bound on malformed input).
pub fn nesting_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let skip_to = |from: usize, end: &[u8]| -> usize {
        b[from..]
            .windows(end.len())
            .position(|w| w == end)
            .map_or(b.len(), |p| from + p + end.len())
    };
    let (mut i, mut depth, mut max) = (0usize, 0usize, 0usize);
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = skip_to(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_to(i + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            i = skip_to(i + 2, b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_to(i + 2, b">");
        } else {
            // A start tag: to its `>`, outside quoted attribute values.
            let mut j = i + 1;
            let mut quote = None;
            let mut self_closing = false;
            while j < b.len() {
                let c = b[j];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => {
                        self_closing = b[j - 1] == b'/';
                        break;
                    }
                    None => {}
                }
                j += 1;
            }
            if !self_closing {
                depth += 1;
                max = max.max(depth);
            }
            i = j + 1;
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_open_elements_only() {
        assert_eq!(nesting_depth(""), 0);
        assert_eq!(nesting_depth("<a/>"), 0);
        assert_eq!(nesting_depth("<a><b x=\"/>\"><c/></b></a>"), 2);
        assert_eq!(
            nesting_depth("<a><!-- </a></a> --><b><![CDATA[</b>]]><c>"),
            3
        );
        assert_eq!(
            nesting_depth("<?xml version=\"1.0\"?><a><b></b><b></b></a>"),
            2
        );
        // Unterminated: every start counts.
        assert_eq!(nesting_depth(&"<ESET>\n <PRODUSET>".repeat(1000)), 2000);
    }
}
