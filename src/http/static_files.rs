//! Static file serving from `root` + `index`, as nginx's static module, index
//! module and not_modified filter do together.
//!
//! The function only decides *what* to answer; writing the response (status
//! line, `Last-Modified` formatting, streaming the body, error pages) is the
//! caller's, because those steps are shared with every other content handler.
//!
//! Deliberate choices, each mirroring nginx 1.2x unless noted:
//! * HEAD returns [`StaticOutcome::File`] exactly like GET (the file is opened,
//!   so an unreadable file is 403 for HEAD too, as in nginx); the caller knows
//!   the method and must not send the body.
//! * POST is resolved like GET and only refused (405) once it would be served
//!   a regular file: a directory still redirects, a missing file is still 404
//!   and `/dir/` still runs the index lookup — nginx's order. Every other
//!   method is 405 up front.
//! * `index` entries starting with `/` are absolute URIs: reaching one
//!   redirects to it without checking that it exists (nginx's "fallback"
//!   idiom `index index.html /fallback.html`). Variables in entries are not
//!   supported; the config layer must expand or reject them.
//! * When both If-None-Match and If-Modified-Since are present, the entity
//!   tag alone decides (RFC 9110 §13.2.2). nginx instead requires *both* to
//!   match; browsers send both from the same response, so this only differs
//!   for hand-made requests.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, Method};
use tokio::fs;

use super::mime::MimeTypes;

/// What to answer for a static request.
#[derive(Debug)]
pub enum StaticOutcome {
    /// 200 with this open file; the caller streams it (or, for HEAD, sends
    /// only the headers). `len` is the size of the opened file.
    File {
        file: fs::File,
        len: u64,
        content_type: String,
        last_modified: SystemTime,
        etag: String,
    },
    /// 304: the client's cached copy is current. nginx keeps ETag and
    /// Last-Modified on a 304 but drops Content-Type; `content_type` is here
    /// in case the caller wants it anyway.
    NotModified {
        last_modified: SystemTime,
        etag: String,
        content_type: String,
    },
    /// 301 to `location` (URI + `/` + `?args`): a directory requested without
    /// its trailing slash, so relative links inside it resolve correctly.
    RedirectDir { location: String },
    /// 403: directory without an index file (autoindex is off), or the
    /// filesystem denied access.
    Forbidden,
    /// 404.
    NotFound,
    /// 405: a method other than GET/HEAD reached a static file.
    MethodNotAllowed,
    /// An index file exists: the caller must re-run location matching with
    /// this URI (nginx's internal redirect), keeping the original args.
    InternalRedirect { uri: String },
    /// 412: If-Match or If-Unmodified-Since failed.
    PreconditionFailed,
}

/// One static request. `uri` is the decoded, normalized `$uri`.
#[derive(Debug, Clone, Copy)]
pub struct StaticRequest<'a> {
    pub root: &'a Path,
    /// Decoded, normalized `$uri`; must start with `/`.
    pub uri: &'a str,
    /// Query string without the `?`, if any.
    pub args: Option<&'a str>,
    /// `index` directive entries, nginx default `["index.html"]`.
    pub index: &'a [String],
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub types: &'a MimeTypes,
    /// Fallback Content-Type, nginx default `text/plain`.
    pub default_type: &'a str,
}

/// Resolves a static request.
///
/// Only errors nginx would answer with 500 are returned as `Err`; missing
/// paths, permission problems and symlink loops become outcomes.
pub async fn serve(req: &StaticRequest<'_>) -> io::Result<StaticOutcome> {
    let method = req.method;
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return Ok(StaticOutcome::MethodNotAllowed);
    }
    if !uri_is_safe(req.uri) {
        return Ok(StaticOutcome::NotFound);
    }
    if req.uri.ends_with('/') {
        serve_index(req).await
    } else {
        serve_file(req).await
    }
}

/// Rejects URIs that could leave `root`. The caller normalizes, but this is
/// the last line before the filesystem, so it re-checks: a `..` segment, a NUL
/// (truncates the path in libc), or a missing leading `/` (plain
/// concatenation would turn root `/srv/www` + `-old/x` into a sibling
/// directory).
fn uri_is_safe(uri: &str) -> bool {
    uri.starts_with('/') && !uri.contains('\0') && !uri.split('/').any(|seg| seg == "..")
}

/// `root` + `uri` by plain concatenation, as nginx's `ngx_http_map_uri_to_path`.
/// `Path::join` is avoided on purpose: it would discard `root` if the URI
/// still began with `/` after stripping, e.g. `//etc/passwd`.
fn map_uri(root: &Path, uri: &str) -> PathBuf {
    let mut path = OsString::from(root.as_os_str());
    path.push(uri);
    PathBuf::from(path)
}

/// How nginx classifies a failed open/stat; `None` means "answer 500".
fn classify_error(err: &io::Error) -> Option<StaticOutcome> {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            Some(StaticOutcome::NotFound)
        }
        io::ErrorKind::PermissionDenied => Some(StaticOutcome::Forbidden),
        _ if is_loop_error(err) => Some(StaticOutcome::Forbidden),
        _ => None,
    }
}

/// ELOOP/EMLINK: nginx (built with openat) answers 403 for symlink loops.
/// `io::ErrorKind::FilesystemLoop` is unstable, hence the raw errno.
fn is_loop_error(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ELOOP | libc::EMLINK))
}

fn outcome_or_err(err: io::Error) -> io::Result<StaticOutcome> {
    classify_error(&err).ok_or(err)
}

async fn serve_file(req: &StaticRequest<'_>) -> io::Result<StaticOutcome> {
    let path = map_uri(req.root, req.uri);
    // stat first so a directory is redirected without being opened.
    let meta = match fs::metadata(&path).await {
        Ok(meta) => meta,
        Err(err) => return outcome_or_err(err),
    };
    if meta.is_dir() {
        return Ok(StaticOutcome::RedirectDir {
            location: dir_location(req.uri, req.args),
        });
    }
    // FIFOs and devices could block or never end; nginx refuses them as 404.
    if !meta.is_file() {
        return Ok(StaticOutcome::NotFound);
    }
    if req.method == Method::POST {
        return Ok(StaticOutcome::MethodNotAllowed);
    }
    let file = match fs::File::open(&path).await {
        Ok(file) => file,
        Err(err) => return outcome_or_err(err),
    };
    // Size and mtime come from the opened inode, not the earlier stat, so the
    // headers describe the bytes actually streamed even if the path was
    // replaced in between.
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Ok(StaticOutcome::NotFound);
    }
    let len = meta.len();
    let mtime = unix_seconds(meta.modified()?);
    let last_modified = from_unix_seconds(mtime);
    let etag = make_etag(mtime, len);
    let content_type = req
        .types
        .lookup_uri(req.uri)
        .unwrap_or(req.default_type)
        .to_string();

    Ok(match evaluate_preconditions(req.headers, mtime, &etag) {
        Precondition::Serve => StaticOutcome::File {
            file,
            len,
            content_type,
            last_modified,
            etag,
        },
        Precondition::NotModified => StaticOutcome::NotModified {
            last_modified,
            etag,
            content_type,
        },
        Precondition::Failed => StaticOutcome::PreconditionFailed,
    })
}

/// The 301 target for a directory: nginx appends `/` to the URI and keeps
/// the query string.
fn dir_location(uri: &str, args: Option<&str>) -> String {
    match args {
        Some(args) if !args.is_empty() => format!("{uri}/?{args}"),
        _ => format!("{uri}/"),
    }
}

async fn serve_index(req: &StaticRequest<'_>) -> io::Result<StaticOutcome> {
    let mut dir_tested = false;
    for name in req.index {
        if name.starts_with('/') {
            return Ok(StaticOutcome::InternalRedirect { uri: name.clone() });
        }
        if name.is_empty() {
            continue;
        }
        let uri = format!("{}{}", req.uri, name);
        // nginx only stats index candidates (`test_only`); whatever exists,
        // even a directory, wins and the redirected request sorts it out.
        let err = match fs::metadata(map_uri(req.root, &uri)).await {
            Ok(_) => return Ok(StaticOutcome::InternalRedirect { uri }),
            Err(err) => err,
        };
        if err.kind() != io::ErrorKind::NotFound {
            return outcome_or_err(err);
        }
        // The first miss tells apart "no index here" (403) from "no such
        // directory" (404); later misses need not repeat the check.
        if !dir_tested {
            if let Some(outcome) = test_dir(req).await? {
                return Ok(outcome);
            }
            dir_tested = true;
        }
    }
    if !dir_tested {
        if let Some(outcome) = test_dir(req).await? {
            return Ok(outcome);
        }
    }
    Ok(StaticOutcome::Forbidden)
}

/// nginx's `ngx_http_index_test_dir`: `Some` when the directory itself rules
/// the answer, `None` when it exists (or cannot be stat'ed for lack of
/// permission, which nginx also lets through because searching it worked).
async fn test_dir(req: &StaticRequest<'_>) -> io::Result<Option<StaticOutcome>> {
    match fs::metadata(map_uri(req.root, req.uri)).await {
        Ok(meta) if meta.is_dir() => Ok(None),
        Ok(_) => Err(io::Error::other("index lookup base is not a directory")),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => Ok(None),
        Err(err) => classify_error(&err).map(Some).ok_or(err),
    }
}

/// Seconds since the epoch, floored like `st_mtime` (so a pre-1970 mtime
/// with a fractional part rounds down, as the kernel reports it).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let d = before.duration();
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            i64::try_from(secs).map_or(i64::MIN, |s| -s)
        }
    }
}

/// The whole-second time nginx advertises, so Last-Modified and the ETag
/// agree and an echoed If-Modified-Since compares equal.
fn from_unix_seconds(secs: i64) -> SystemTime {
    let abs = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + abs
    } else {
        UNIX_EPOCH - abs
    }
}

/// nginx's `"%xT-%xO"`: hex mtime and hex size. Clients only compare it
/// byte for byte, but matching nginx keeps caches valid across a migration.
fn make_etag(mtime: i64, len: u64) -> String {
    if mtime < 0 {
        format!("\"-{:x}-{:x}\"", mtime.unsigned_abs(), len)
    } else {
        format!("\"{mtime:x}-{len:x}\"")
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    Serve,
    NotModified,
    Failed,
}

/// The not_modified filter: If-Unmodified-Since, then If-Match (412 on
/// failure), then If-None-Match or else If-Modified-Since (304 on match).
fn evaluate_preconditions(headers: &HeaderMap, mtime: i64, etag: &str) -> Precondition {
    if let Some(value) = headers.get(header::IF_UNMODIFIED_SINCE) {
        // An unparsable date fails the test, as in nginx (it parses to -1).
        match parse_date(value) {
            Some(date) if date >= mtime => {}
            _ => return Precondition::Failed,
        }
    }
    if let Some(list) = joined(headers, header::IF_MATCH) {
        if !etag_list_matches(&list, etag, false) {
            return Precondition::Failed;
        }
    }
    if let Some(list) = joined(headers, header::IF_NONE_MATCH) {
        return if etag_list_matches(&list, etag, true) {
            Precondition::NotModified
        } else {
            Precondition::Serve
        };
    }
    if let Some(value) = headers.get(header::IF_MODIFIED_SINCE) {
        // `if_modified_since exact` (nginx default): only an equal date is
        // proof the client holds this version.
        if parse_date(value) == Some(mtime) {
            return Precondition::NotModified;
        }
    }
    Precondition::Serve
}

fn parse_date(value: &http::HeaderValue) -> Option<i64> {
    httpdate::parse_http_date(value.to_str().ok()?.trim())
        .ok()
        .map(unix_seconds)
}

/// All field lines of a list header as one comma-separated list, as HTTP
/// allows a list to be split across lines.
fn joined(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter();
    let mut list = values.next()?.as_bytes().to_vec();
    for value in values {
        list.extend_from_slice(b", ");
        list.extend_from_slice(value.as_bytes());
    }
    Some(list)
}

/// Whether an If-Match / If-None-Match list names `etag`. `*` matches any
/// existing file. `weak` enables the weak comparison If-None-Match uses, so
/// `W/"..."` from a compressing proxy still validates.
fn etag_list_matches(list: &[u8], etag: &str, weak: bool) -> bool {
    let list = list.trim_ascii();
    if list == b"*" {
        return true;
    }
    let ours = etag.as_bytes();
    let ours = match ours.strip_prefix(b"W/") {
        Some(stripped) if weak => stripped,
        _ => ours,
    };
    list.split(|&b| b == b',').any(|item| {
        let item = item.trim_ascii();
        let item = match item.strip_prefix(b"W/") {
            Some(stripped) if weak => stripped,
            _ => item,
        };
        item == ours
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;

    /// 2023-11-14T22:13:20Z = 0x6553f100: a fixed mtime makes ETags exact.
    const MTIME: u64 = 1_700_000_000;

    /// A scratch tree under the system temp dir, removed on drop so a failing
    /// assertion does not leak directories. Requests are served from `root/`.
    struct Tree(PathBuf);

    impl Tree {
        /// `files` is whitespace-separated, relative to the tree (not `root/`).
        fn new(files: &str) -> Tree {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let tree = Tree(
                std::env::temp_dir().join(format!("raftgate-static-{}-{n}", std::process::id())),
            );
            std::fs::create_dir_all(tree.0.join("root")).expect("create root");
            for rel in files.split_whitespace() {
                let path = tree.0.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).expect("create parent");
                }
                std::fs::write(&path, rel.as_bytes()).expect("write file");
                let file = std::fs::File::options().write(true).open(&path);
                file.and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME)))
                    .expect("set mtime");
            }
            tree
        }

        async fn run(
            &self,
            method: Method,
            uri: &str,
            args: Option<&str>,
            index: &[&str],
            headers: &[(header::HeaderName, &str)],
        ) -> StaticOutcome {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(name, value.parse().expect("header value"));
            }
            let index: Vec<String> = index.iter().map(|s| s.to_string()).collect();
            let req = StaticRequest {
                root: &self.0.join("root"),
                uri,
                args,
                index: &index,
                method: &method,
                headers: &map,
                types: &MimeTypes::nginx_default(),
                default_type: "text/plain",
            };
            serve(&req).await.expect("serve")
        }

        /// GET with default `index` and the given headers, summarized.
        async fn get(&self, uri: &str, headers: &[(header::HeaderName, &str)]) -> String {
            let outcome = self.run(Method::GET, uri, None, &["index.html"], headers);
            summary(&outcome.await)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// One line per outcome so each case is a single `assert_eq!`; the ETag
    /// already encodes the length.
    fn summary(outcome: &StaticOutcome) -> String {
        match outcome {
            StaticOutcome::File {
                content_type, etag, ..
            } => format!("200 {content_type} {etag}"),
            StaticOutcome::NotModified { etag, .. } => format!("304 {etag}"),
            StaticOutcome::RedirectDir { location } => format!("301 {location}"),
            StaticOutcome::InternalRedirect { uri } => format!("internal {uri}"),
            StaticOutcome::Forbidden => "403".into(),
            StaticOutcome::NotFound => "404".into(),
            StaticOutcome::MethodNotAllowed => "405".into(),
            StaticOutcome::PreconditionFailed => "412".into(),
        }
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[tokio::test]
    async fn serves_file_with_type_len_and_nginx_etag() {
        let t = Tree::new("root/css/site.css root/A.PNG root/README root/.htaccess");
        let outcome = t.run(Method::GET, "/css/site.css", None, &[], &[]).await;
        assert_eq!(summary(&outcome), "200 text/css \"6553f100-11\"");
        if let StaticOutcome::File {
            mut file,
            len,
            last_modified,
            ..
        } = outcome
        {
            assert_eq!(len, 17);
            assert_eq!(last_modified, UNIX_EPOCH + Duration::from_secs(MTIME));
            let mut body = String::new();
            file.read_to_string(&mut body).await.expect("read body");
            assert_eq!(body, "root/css/site.css");
        }
        for (uri, want) in [
            ("/A.PNG", "200 image/png \"6553f100-a\""),
            ("/README", "200 text/plain \"6553f100-b\""),
            ("/.htaccess", "200 text/plain \"6553f100-e\""),
        ] {
            assert_eq!(t.get(uri, &[]).await, want);
        }
        let head = t.run(Method::HEAD, "/README", None, &[], &[]).await;
        assert_eq!(summary(&head), "200 text/plain \"6553f100-b\"");
    }

    #[tokio::test]
    async fn index_and_directories() {
        let t = Tree::new("root/d/index.html root/d/index.htm root/e/other.html");
        let order = ["nope.html", "index.htm", "index.html"];
        let fallback = ["index.html", "/fallback.html"];
        for (uri, args, index, want) in [
            ("/d/", None, &order[..], "internal /d/index.htm"),
            ("/d/", None, &order[2..], "internal /d/index.html"),
            // An absolute entry is an unconditional fallback URI.
            ("/e/", None, &fallback[..], "internal /fallback.html"),
            ("/e/", None, &order[..], "403"),
            ("/e/", None, &[], "403"),
            ("/e", Some("a=1&b=2"), &order[..], "301 /e/?a=1&b=2"),
            ("/e", None, &order[..], "301 /e/"),
        ] {
            let outcome = t.run(Method::GET, uri, args, index, &[]).await;
            assert_eq!(summary(&outcome), want, "{uri} {index:?}");
        }
        // POST still looks up the index; the redirected request answers 405.
        let outcome = t.run(Method::POST, "/d/", None, &order[2..], &[]).await;
        assert_eq!(summary(&outcome), "internal /d/index.html");
    }

    #[tokio::test]
    async fn missing_or_outside_root_is_not_found() {
        let t = Tree::new("secret.txt root-old/secret.txt root/ok.txt");
        let missing = "/nope.txt /nope/ /nope/x.txt /ok.txt/ /ok.txt/x";
        let escaping = "/../secret.txt /ok/../../secret.txt /.. -old/secret.txt";
        for uri in missing.split(' ').chain(escaping.split(' ')) {
            assert_eq!(t.get(uri, &[]).await, "404", "{uri:?}");
        }
        assert_eq!(t.get("", &[]).await, "404");
        assert_eq!(t.get("/ok.txt\0.png", &[]).await, "404");
        // Doubled slashes stay inside root instead of becoming absolute.
        let doubled = t.get("//ok.txt", &[]).await;
        assert_eq!(doubled, "200 text/plain \"6553f100-b\"");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlink_loop_is_forbidden() {
        let t = Tree::new("");
        let root = t.0.join("root");
        std::os::unix::fs::symlink(root.join("b"), root.join("a")).expect("symlink a");
        std::os::unix::fs::symlink(root.join("a"), root.join("b")).expect("symlink b");
        assert_eq!(t.get("/a", &[]).await, "403");
    }

    #[tokio::test]
    async fn conditional_requests() {
        let t = Tree::new("root/a.js");
        let ok = "200 application/javascript \"6553f100-9\"";
        let not_modified = "304 \"6553f100-9\"";
        let (exact, later, earlier) = (date(MTIME), date(MTIME + 1), date(MTIME - 1));
        let (inm, ims) = (header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE);
        let (im, ius) = (header::IF_MATCH, header::IF_UNMODIFIED_SINCE);
        let cases: &[(&[(header::HeaderName, &str)], &str)] = &[
            (&[(inm.clone(), "\"6553f100-9\"")], not_modified),
            (&[(inm.clone(), "W/\"6553f100-9\"")], not_modified),
            (&[(inm.clone(), "\"x\", \"6553f100-9\"")], not_modified),
            (&[(inm.clone(), " * ")], not_modified),
            (&[(ims.clone(), &exact)], not_modified),
            (&[(ims.clone(), &later)], ok),
            (&[(ims.clone(), &earlier)], ok),
            (&[(ims.clone(), "garbage")], ok),
            // A mismatching tag wins over a matching date.
            (&[(inm.clone(), "\"6553f100-8\""), (ims, &exact)], ok),
            (&[(im.clone(), "\"nope\"")], "412"),
            (&[(im.clone(), "W/\"6553f100-9\"")], "412"),
            (&[(im.clone(), "\"6553f100-9\"")], ok),
            (&[(im, "*")], ok),
            (&[(ius.clone(), &earlier)], "412"),
            (&[(ius, &exact)], ok),
        ];
        for (headers, want) in cases {
            assert_eq!(t.get("/a.js", headers).await, *want, "{headers:?}");
        }
    }

    #[tokio::test]
    async fn methods_other_than_get_head() {
        let t = Tree::new("root/a.txt root/d/x");
        for (method, uri, want) in [
            (Method::POST, "/a.txt", "405"),
            (Method::POST, "/d", "301 /d/"),
            (Method::POST, "/missing", "404"),
            (Method::PUT, "/a.txt", "405"),
            (Method::DELETE, "/missing", "405"),
            (Method::OPTIONS, "/d/", "405"),
        ] {
            let outcome = t.run(method.clone(), uri, None, &[], &[]).await;
            assert_eq!(summary(&outcome), want, "{method} {uri}");
        }
    }

    #[test]
    fn etag_formatting_and_matching() {
        assert_eq!(make_etag(0x5f, 0), "\"5f-0\"");
        assert_eq!(make_etag(-1, 16), "\"-1-10\"");
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(1500)), -2);
        assert!(etag_list_matches(b"\"a\",\"b\"", "\"b\"", false));
        assert!(!etag_list_matches(b"\"ab\"", "\"a\"", true));
        assert!(!etag_list_matches(b"", "\"a\"", true));
    }
}
