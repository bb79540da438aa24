//! Extension → MIME type mapping, as nginx's `types { ... }` block.
//!
//! nginx resolves a response's Content-Type from the extension of `$uri`
//! (never from file contents), so this is a plain lookup table. The default
//! table reproduces the `conf/mime.types` file shipped with nginx 1.2x, which
//! nearly every real configuration `include`s; a config `types { ... }` block
//! replaces it wholesale (nginx does not merge a location's `types` with the
//! inherited one), which is why [`MimeTypes::from_pairs`] starts empty.

use std::collections::HashMap;

/// nginx 1.2x `conf/mime.types`, in file order: `(mime type, extensions)`.
///
/// Kept in the file's shape rather than as a flat map so it can be diffed
/// against upstream when nginx updates the file.
pub static NGINX_MIME_TYPES: &[(&str, &[&str])] = &[
    ("text/html", &["html", "htm", "shtml"]),
    ("text/css", &["css"]),
    ("text/xml", &["xml"]),
    ("image/gif", &["gif"]),
    ("image/jpeg", &["jpeg", "jpg"]),
    ("application/javascript", &["js"]),
    ("application/atom+xml", &["atom"]),
    ("application/rss+xml", &["rss"]),
    ("text/mathml", &["mml"]),
    ("text/plain", &["txt"]),
    ("text/vnd.sun.j2me.app-descriptor", &["jad"]),
    ("text/vnd.wap.wml", &["wml"]),
    ("text/x-component", &["htc"]),
    ("image/avif", &["avif"]),
    ("image/png", &["png"]),
    ("image/svg+xml", &["svg", "svgz"]),
    ("image/tiff", &["tif", "tiff"]),
    ("image/vnd.wap.wbmp", &["wbmp"]),
    ("image/webp", &["webp"]),
    ("image/x-icon", &["ico"]),
    ("image/x-jng", &["jng"]),
    ("image/x-ms-bmp", &["bmp"]),
    ("font/woff", &["woff"]),
    ("font/woff2", &["woff2"]),
    ("application/java-archive", &["jar", "war", "ear"]),
    ("application/json", &["json"]),
    ("application/mac-binhex40", &["hqx"]),
    ("application/msword", &["doc"]),
    ("application/pdf", &["pdf"]),
    ("application/postscript", &["ps", "eps", "ai"]),
    ("application/rtf", &["rtf"]),
    ("application/vnd.apple.mpegurl", &["m3u8"]),
    ("application/vnd.google-earth.kml+xml", &["kml"]),
    ("application/vnd.google-earth.kmz", &["kmz"]),
    ("application/vnd.ms-excel", &["xls"]),
    ("application/vnd.ms-fontobject", &["eot"]),
    ("application/vnd.ms-powerpoint", &["ppt"]),
    ("application/vnd.oasis.opendocument.graphics", &["odg"]),
    ("application/vnd.oasis.opendocument.presentation", &["odp"]),
    ("application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
    ("application/vnd.oasis.opendocument.text", &["odt"]),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    ("application/vnd.wap.wmlc", &["wmlc"]),
    ("application/wasm", &["wasm"]),
    ("application/x-7z-compressed", &["7z"]),
    ("application/x-cocoa", &["cco"]),
    ("application/x-java-archive-diff", &["jardiff"]),
    ("application/x-java-jnlp-file", &["jnlp"]),
    ("application/x-makeself", &["run"]),
    ("application/x-perl", &["pl", "pm"]),
    ("application/x-pilot", &["prc", "pdb"]),
    ("application/x-rar-compressed", &["rar"]),
    ("application/x-redhat-package-manager", &["rpm"]),
    ("application/x-sea", &["sea"]),
    ("application/x-shockwave-flash", &["swf"]),
    ("application/x-stuffit", &["sit"]),
    ("application/x-tcl", &["tcl", "tk"]),
    ("application/x-x509-ca-cert", &["der", "pem", "crt"]),
    ("application/x-xpinstall", &["xpi"]),
    ("application/xhtml+xml", &["xhtml"]),
    ("application/xspf+xml", &["xspf"]),
    ("application/zip", &["zip"]),
    ("application/octet-stream", &["bin", "exe", "dll"]),
    ("application/octet-stream", &["deb"]),
    ("application/octet-stream", &["dmg"]),
    ("application/octet-stream", &["iso", "img"]),
    ("application/octet-stream", &["msi", "msp", "msm"]),
    ("audio/midi", &["mid", "midi", "kar"]),
    ("audio/mpeg", &["mp3"]),
    ("audio/ogg", &["ogg"]),
    ("audio/x-m4a", &["m4a"]),
    ("audio/x-realaudio", &["ra"]),
    ("video/3gpp", &["3gpp", "3gp"]),
    ("video/mp2t", &["ts"]),
    ("video/mp4", &["mp4"]),
    ("video/mpeg", &["mpeg", "mpg"]),
    ("video/quicktime", &["mov"]),
    ("video/webm", &["webm"]),
    ("video/x-flv", &["flv"]),
    ("video/x-m4v", &["m4v"]),
    ("video/x-mng", &["mng"]),
    ("video/x-ms-asf", &["asx", "asf"]),
    ("video/x-ms-wmv", &["wmv"]),
    ("video/x-msvideo", &["avi"]),
];

/// An extension → MIME type table (one per `types` block in effect).
///
/// Extensions are stored lower-cased because nginx lower-cases both the
/// configured extensions and the request's extension before hashing, so
/// `/A.PNG` is `image/png`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MimeTypes {
    by_ext: HashMap<String, String>,
}

impl MimeTypes {
    /// The table from nginx's shipped `mime.types`.
    pub fn nginx_default() -> MimeTypes {
        MimeTypes::from_pairs(
            NGINX_MIME_TYPES
                .iter()
                .flat_map(|(mime, exts)| exts.iter().map(move |ext| (*mime, *ext))),
        )
    }

    /// Builds a table from `(mime type, extension)` pairs in config order.
    ///
    /// A repeated extension keeps the *last* type, as nginx does (it only
    /// warns "duplicate extension").
    pub fn from_pairs<I, M, E>(pairs: I) -> MimeTypes
    where
        I: IntoIterator<Item = (M, E)>,
        M: Into<String>,
        E: AsRef<str>,
    {
        let mut types = MimeTypes::default();
        for (mime, ext) in pairs {
            types.insert(mime, ext.as_ref());
        }
        types
    }

    /// Adds one mapping, replacing any earlier one for `ext` (last wins, as
    /// in nginx), so a config parser can feed a `types` block entry by entry.
    pub fn insert(&mut self, mime: impl Into<String>, ext: &str) {
        self.by_ext.insert(ext.to_ascii_lowercase(), mime.into());
    }

    /// The MIME type for an extension given without its dot.
    pub fn lookup(&self, ext: &str) -> Option<&str> {
        // Avoid allocating on the hot path when the extension is already
        // lower case, which it almost always is.
        if ext.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_ext
                .get(&ext.to_ascii_lowercase())
                .map(String::as_str)
        } else {
            self.by_ext.get(ext).map(String::as_str)
        }
    }

    /// The MIME type for a `$uri`, using nginx's notion of its extension
    /// (see [`uri_extension`]).
    pub fn lookup_uri(&self, uri: &str) -> Option<&str> {
        uri_extension(uri).and_then(|ext| self.lookup(ext))
    }

    /// Number of extensions mapped.
    pub fn len(&self) -> usize {
        self.by_ext.len()
    }

    /// Whether no extension is mapped (an empty `types {}` block, which in
    /// nginx makes every response `default_type`).
    pub fn is_empty(&self) -> bool {
        self.by_ext.is_empty()
    }
}

/// The extension of a `$uri` exactly as nginx's `ngx_http_set_exten` finds it:
/// the text after the last `.` of the last path segment, unless that dot
/// starts the segment — so `/.htaccess` and `/dir.d/file` have none, while
/// `/file.` has the empty extension (which maps to nothing).
pub fn uri_extension(uri: &str) -> Option<&str> {
    let bytes = uri.as_bytes();
    // nginx scans down to index 2 only (`i > 1`), so a dot at index 1 is
    // never an extension separator; mirror that bound.
    let mut i = bytes.len().checked_sub(1)?;
    while i > 1 {
        match bytes[i] {
            b'.' if bytes[i - 1] != b'/' => return uri.get(i + 1..),
            b'/' => return None,
            _ => {}
        }
        i -= 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_has_common_types() {
        let t = MimeTypes::nginx_default();
        assert_eq!(t.lookup("html"), Some("text/html"));
        assert_eq!(t.lookup("htm"), Some("text/html"));
        assert_eq!(t.lookup("shtml"), Some("text/html"));
        assert_eq!(t.lookup("css"), Some("text/css"));
        assert_eq!(t.lookup("js"), Some("application/javascript"));
        assert_eq!(t.lookup("json"), Some("application/json"));
        assert_eq!(t.lookup("png"), Some("image/png"));
        assert_eq!(t.lookup("jpg"), Some("image/jpeg"));
        assert_eq!(t.lookup("txt"), Some("text/plain"));
        assert_eq!(t.lookup("woff2"), Some("font/woff2"));
        assert_eq!(t.lookup("wasm"), Some("application/wasm"));
        assert_eq!(t.lookup("msm"), Some("application/octet-stream"));
        assert_eq!(t.lookup("avi"), Some("video/x-msvideo"));
        assert_eq!(
            t.lookup("docx"),
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
    }

    #[test]
    fn lookup_is_case_insensitive() {
        let t = MimeTypes::nginx_default();
        assert_eq!(t.lookup("PNG"), Some("image/png"));
        assert_eq!(t.lookup("Html"), Some("text/html"));
        let custom = MimeTypes::from_pairs([("text/x-foo", "FOO")]);
        assert_eq!(custom.lookup("foo"), Some("text/x-foo"));
        assert_eq!(custom.lookup("fOo"), Some("text/x-foo"));
    }

    #[test]
    fn unknown_extension_is_none() {
        let t = MimeTypes::nginx_default();
        assert_eq!(t.lookup("nosuchext"), None);
        assert_eq!(t.lookup(""), None);
    }

    #[test]
    fn from_pairs_last_duplicate_wins_and_replaces_defaults() {
        let t = MimeTypes::from_pairs(vec![
            ("text/plain".to_string(), "conf"),
            ("text/x-conf".to_string(), "conf"),
        ]);
        assert_eq!(t.lookup("conf"), Some("text/x-conf"));
        assert_eq!(t.lookup("html"), None);
        assert_eq!(t.len(), 1);
        assert!(MimeTypes::from_pairs(Vec::<(String, String)>::new()).is_empty());
    }

    #[test]
    fn uri_extension_matches_nginx() {
        assert_eq!(uri_extension("/a/b.html"), Some("html"));
        assert_eq!(uri_extension("/a/b.tar.gz"), Some("gz"));
        assert_eq!(uri_extension("/a/.htaccess"), None);
        assert_eq!(uri_extension("/a.d/file"), None);
        assert_eq!(uri_extension("/file."), Some(""));
        assert_eq!(uri_extension("/"), None);
        assert_eq!(uri_extension(""), None);
        let t = MimeTypes::nginx_default();
        assert_eq!(t.lookup_uri("/x/Y.JPG"), Some("image/jpeg"));
        assert_eq!(t.lookup_uri("/x/README"), None);
    }
}
