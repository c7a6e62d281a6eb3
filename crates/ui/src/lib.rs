//! The web console's assets: the JavaScript and CSS bundle that `build.rs` makes from `web/` with
//! esbuild, each pre-compressed with gzip and brotli, and the HTML page that loads them. All of it
//! is compiled into the binary; the HTTP side (`tocsin-api`'s `ui` module) picks the encoding a
//! browser accepts and fills in the route prefix. No handler logic lives here.

/// One bundled file, in three encodings.
#[derive(Debug)]
pub struct Asset {
    /// The file name under `/assets/`, with the content hash in it (`app.<hash>.js`), so a
    /// browser may cache it forever: a new build has new names.
    pub name: &'static str,
    pub content_type: &'static str,
    /// A strong entity tag (quoted) of the uncompressed content.
    pub etag: &'static str,
    pub identity: &'static [u8],
    pub gzip: &'static [u8],
    pub brotli: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Where `INDEX_HTML` wants the route prefix (the path of `--web.external-url`, without a
/// trailing slash; empty at the root).
pub const PREFIX_PLACEHOLDER: &str = "{{PREFIX}}";

/// The page every console path answers with, for the given route prefix. The prefix is escaped
/// for an HTML attribute, since it comes from a command-line flag.
pub fn index_html(prefix: &str) -> String {
    let escaped: String = prefix
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            c => c.to_string(),
        })
        .collect();
    INDEX_HTML.replace(PREFIX_PLACEHOLDER, &escaped)
}

/// The asset called `name`, if the bundle has one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// Total bytes of the embedded assets: uncompressed, gzip, brotli.
pub fn sizes() -> (usize, usize, usize) {
    ASSETS.iter().fold((0, 0, 0), |(i, g, b), a| {
        (i + a.identity.len(), g + a.gzip.len(), b + a.brotli.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_is_embedded_and_compressed() {
        let js = ASSETS.iter().find(|a| a.name.ends_with(".js"));
        assert!(js.is_some_and(|a| a.identity.len() > 1000 && a.gzip.len() < a.identity.len()));
        assert!(ASSETS.iter().all(|a| !a.brotli.is_empty()));
        for a in ASSETS {
            assert!(INDEX_HTML.contains(a.name), "{} not linked", a.name);
            assert_eq!(asset(a.name).map(|x| x.name), Some(a.name));
        }
    }

    #[test]
    fn prefix_is_filled_in_and_escaped() {
        let h = index_html("/tocsin");
        assert!(!h.contains(PREFIX_PLACEHOLDER));
        assert!(h.contains("/tocsin/assets/"));
        assert!(index_html("/a\"b").contains("/a&quot;b"));
    }
}
