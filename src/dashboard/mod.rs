//! The live dashboard: one HTML page, embedded in the binary, that reads only the API.
//!
//! NGINX Plus ships `dashboard.html` as a file under `/usr/share/nginx/html` and serves it
//! with `location = /dashboard.html { root /usr/share/nginx/html; }`. raftgate accepts
//! that configuration unchanged: a file on disk wins (so an operator may replace the
//! page), and when the `root` does not hold one, the static file handler answers
//! `/dashboard.html` with this embedded copy instead of 404.

use http::{header, HeaderValue, Method, Response, StatusCode};

use crate::http::body::RespBody;
use crate::http::phases::Outcome;

/// The page, as shipped.
pub const HTML: &str = include_str!("dashboard.html");

/// Whether a missing file at `uri` is the dashboard.
pub fn serves(uri: &str) -> bool {
    uri == "/dashboard.html"
}

/// The embedded page for `GET` and `HEAD`; 405 for other methods, as for any static file.
pub(crate) fn response(method: &Method) -> Outcome {
    if method != Method::GET && method != Method::HEAD {
        return Outcome::Status(405, None);
    }
    let body = if method == Method::HEAD {
        RespBody::full(bytes::Bytes::new())
    } else {
        RespBody::full(bytes::Bytes::from_static(HTML.as_bytes()))
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(HTML.len()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Outcome::Response(r)
}
