//! The status page (SPEC §9): one HTML document and the files it loads, embedded in the
//! binary at build time from `crates/api/page/` (edit them and rebuild: no build step of
//! their own), served with a `Content-Security-Policy` that lets the page run only its own
//! files and talk only to this server.
//!
//! Nothing here reaches another host: uPlot is vendored (`page/vendor/`, its licence
//! beside it), the page has no font, image or script from anywhere else, and the policy
//! would refuse one if it did.

use bytes::Bytes;

/// One file of the page.
#[derive(Debug)]
pub(crate) struct Asset {
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
}

/// Every file of the page, by the path it is served at.
pub(crate) const ASSETS: [Asset; 5] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../page/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../page/app.js"),
    },
    Asset {
        path: "/assets/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../page/style.css"),
    },
    Asset {
        path: "/assets/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../page/vendor/uPlot.iife.min.js"),
    },
    Asset {
        path: "/assets/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../page/vendor/uPlot.min.css"),
    },
];

/// The page's own files and this server, nothing else: no inline script or style, no
/// other origin, no plugin, no framing, no form.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The file served at `path`, if the page has one.
pub(crate) fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

impl Asset {
    pub(crate) fn bytes(&self) -> Bytes {
        Bytes::from_static(self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_page_is_below_150_kib() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 150 * 1024, "{total} bytes");
    }

    #[test]
    fn the_pages_own_files_name_no_url() {
        // The vendored library is checked in the browser (every request it makes is
        // recorded); the page's own files carry no address of anywhere.
        for a in ASSETS.iter().filter(|a| !a.path.contains("uPlot")) {
            let text = String::from_utf8_lossy(a.body).to_ascii_lowercase();
            for scheme in [
                "http://", "https://", "ws://", "wss://", "url(//", "src=\"//",
            ] {
                assert!(!text.contains(scheme), "{} contains {scheme}", a.path);
            }
        }
    }

    #[test]
    fn every_file_the_page_loads_is_served() {
        let html = String::from_utf8_lossy(ASSETS[0].body);
        for a in &ASSETS[1..] {
            assert!(html.contains(a.path), "index.html does not load {}", a.path);
        }
    }
}
