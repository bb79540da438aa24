//! The NGINX API error object and the codes raftgate answers with.
//!
//! Every error the API gives is an [`ApiError`] (status, `error.code`, `error.text`),
//! rendered by [`error_body`] into the v2 `NginxError` shape, field order included:
//! `path`, `method`, `error {status, text, code}`, `request_id`, `href` (v2 and v3 carry
//! `path` and `method`; v4 dropped them). Reducer rejections become `ApiError`s only
//! through [`Rejected::api_error`], the one table of domain outcomes to API errors.

use std::fmt;

use bytes::Bytes;
use raftgate_raft::Rejected;
use serde::Serialize;

/// `href` of every error object: nginx points at the module's documentation.
pub const HREF: &str = "https://nginx.org/en/docs/http/ngx_http_api_module.html";

/// 404: the first path segment is not a version this server speaks (nginx, documented
/// for all versions in 2020).
pub const UNKNOWN_VERSION: &str = "UnknownVersion";
/// 404: a path under `/2` that raftgate does not serve. nginx R14 documents no code for
/// this; later nginx answers `PathNotFound`, which clients already handle.
pub const PATH_NOT_FOUND: &str = "PathNotFound";
/// 405: the path exists but the method is not one of its operations (nginx's code).
pub const METHOD_NOT_SUPPORTED: &str = "MethodNotSupported";
/// 405: a write method on a location with `api write=off` (the default).
pub const METHOD_DISABLED: &str = "MethodDisabled";
/// 404: a `/stream/...` endpoint while the configuration has no `stream {}` block.
pub const STREAM_NOT_CONFIGURED: &str = "StreamNotConfigured";
/// 400: a keyval body that is JSON but not a flat object of scalar values.
pub const KEYVAL_FORMAT_ERROR: &str = "KeyvalFormatError";
/// 415: a body that is not JSON (malformed, truncated, invalid UTF-8, empty).
pub const JSON_ERROR: &str = "JsonError";
/// 503, raftgate's own: the cluster could not serve the request and certainly changed
/// nothing (no leader, no quorum for a read index, a write that was never proposed).
pub const CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
/// 504, raftgate's own: a write was proposed but its commit could not be confirmed in
/// time; it may still apply. The reducer uses the same code for a stale retried request.
pub const WRITE_OUTCOME_UNKNOWN: &str = "WriteOutcomeUnknown";
/// 500, raftgate's own: a response could not be encoded (never expected).
pub const INTERNAL_ERROR: &str = "InternalError";

/// One API error: the HTTP status, nginx's `error.code` and a human `error.text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub text: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, text: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            text: text.into(),
        }
    }

    pub fn cache_not_found(name: &str) -> Self {
        ApiError::new(404, "CacheNotFound", format!("cache \"{name}\" not found"))
    }

    pub fn server_zone_not_found(name: &str) -> Self {
        ApiError::new(
            404,
            "ServerZoneNotFound",
            format!("server zone \"{name}\" not found"),
        )
    }

    pub fn slab_not_found(name: &str) -> Self {
        ApiError::new(404, "SlabNotFound", format!("zone \"{name}\" not found"))
    }

    pub fn upstream_not_found(name: &str) -> Self {
        ApiError::new(
            404,
            "UpstreamNotFound",
            format!("upstream not found: \"{name}\""),
        )
    }

    pub fn upstream_static(name: &str) -> Self {
        ApiError::new(
            400,
            "UpstreamStatic",
            format!("upstream \"{name}\" is static: it has no zone"),
        )
    }

    pub fn bad_server_id(id: &str) -> Self {
        ApiError::new(
            400,
            "UpstreamBadServerId",
            format!("invalid server ID \"{id}\""),
        )
    }

    pub fn conf_format(text: impl Into<String>) -> Self {
        ApiError::new(400, "UpstreamConfFormatError", text)
    }

    pub fn no_resolver(host: &str) -> Self {
        ApiError::new(
            400,
            "UpstreamConfNoResolver",
            format!("no resolver defined to resolve \"{host}\""),
        )
    }

    pub fn unknown_version() -> Self {
        ApiError::new(404, UNKNOWN_VERSION, "unknown version")
    }

    pub fn path_not_found() -> Self {
        ApiError::new(404, PATH_NOT_FOUND, "path not found")
    }

    pub fn method_not_supported() -> Self {
        ApiError::new(405, METHOD_NOT_SUPPORTED, "method not supported")
    }

    pub fn method_disabled() -> Self {
        ApiError::new(405, METHOD_DISABLED, "method disabled")
    }

    pub fn stream_not_configured() -> Self {
        ApiError::new(404, STREAM_NOT_CONFIGURED, "stream not configured")
    }

    pub fn keyval_format(text: impl Into<String>) -> Self {
        ApiError::new(400, KEYVAL_FORMAT_ERROR, text)
    }

    pub fn json(text: impl Into<String>) -> Self {
        ApiError::new(415, JSON_ERROR, text)
    }

    pub fn cluster_unavailable(text: impl Into<String>) -> Self {
        ApiError::new(503, CLUSTER_UNAVAILABLE, text)
    }

    pub fn write_outcome_unknown(text: impl Into<String>) -> Self {
        ApiError::new(504, WRITE_OUTCOME_UNKNOWN, text)
    }
}

/// A reducer rejection, by the reducer's own table (`api_error`) and text (`Display`).
impl From<&Rejected> for ApiError {
    fn from(r: &Rejected) -> Self {
        let (status, code) = r.api_error();
        ApiError::new(status, code, r.to_string())
    }
}

impl From<Rejected> for ApiError {
    fn from(r: Rejected) -> Self {
        ApiError::from(&r)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.text)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    path: &'a str,
    method: &'a str,
    error: Inner<'a>,
    request_id: &'a str,
    href: &'a str,
}

#[derive(Serialize)]
struct Inner<'a> {
    status: u16,
    text: &'a str,
    code: &'a str,
}

/// The error object for `e`, answered to `method path` with `$request_id`.
pub fn error_body(e: &ApiError, path: &str, method: &str, request_id: &str) -> Bytes {
    let body = Body {
        path,
        method,
        error: Inner {
            status: e.status,
            text: &e.text,
            code: e.code,
        },
        request_id,
        href: HREF,
    };
    // Serializing strings and integers into a Vec cannot fail; should it ever, the
    // client still gets a valid error object, only without the request's details.
    match serde_json::to_vec(&body) {
        Ok(v) => Bytes::from(v),
        Err(_) => Bytes::from_static(
            br#"{"error":{"status":500,"text":"cannot encode the error","code":"InternalError"}}"#,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftgate_raft::{KeyvalFormat, Ref};
    use serde_json::{json, Value};

    #[test]
    fn the_error_object_has_nginx_v2_fields_in_nginx_order() {
        let e = ApiError::from(Rejected::KeyExists { key: "a".into() });
        let body = error_body(&e, "/api/2/http/keyvals/one", "POST", "abc123");
        let text = std::str::from_utf8(&body).expect("utf-8");
        assert_eq!(
            text,
            r#"{"path":"/api/2/http/keyvals/one","method":"POST","error":{"status":409,"text":"key \"a\" already exists","code":"KeyvalKeyExists"},"request_id":"abc123","href":"https://nginx.org/en/docs/http/ngx_http_api_module.html"}"#
        );
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["status"], json!(409));
    }

    #[test]
    fn strings_in_the_error_object_are_escaped() {
        let e = ApiError::new(404, PATH_NOT_FOUND, "a \"quoted\"\n\u{1}text");
        let body = error_body(&e, "/api/\"x\"", "GET", "r\\1");
        let v: Value = serde_json::from_slice(&body).expect("valid json");
        assert_eq!(v["path"], json!("/api/\"x\""));
        assert_eq!(v["request_id"], json!("r\\1"));
        assert_eq!(v["error"]["text"], json!("a \"quoted\"\n\u{1}text"));
    }

    #[test]
    fn rejections_map_through_the_reducer_table() {
        let cases = [
            (
                Rejected::UnknownZone {
                    zone: Ref::http("one"),
                },
                404,
                "KeyvalNotFound",
                "keyval \"one\" not found",
            ),
            (
                Rejected::KeyNotFound { key: "k".into() },
                404,
                "KeyvalKeyNotFound",
                "key \"k\" not found",
            ),
            (
                Rejected::KeyvalFormat(KeyvalFormat::OnlyOneKeyAdded),
                400,
                "KeyvalFormatError",
                "only one key can be added",
            ),
            (
                Rejected::StaleRequest {
                    client: 1,
                    serial: 1,
                },
                504,
                WRITE_OUTCOME_UNKNOWN,
                "request retried too late: its outcome can no longer be known",
            ),
        ];
        for (r, status, code, text) in cases {
            assert_eq!(ApiError::from(&r), ApiError::new(status, code, text));
        }
    }

    #[test]
    fn raftgate_codes_and_statuses() {
        let table = [
            (ApiError::unknown_version(), 404, "UnknownVersion"),
            (ApiError::path_not_found(), 404, "PathNotFound"),
            (ApiError::method_not_supported(), 405, "MethodNotSupported"),
            (ApiError::method_disabled(), 405, "MethodDisabled"),
            (
                ApiError::stream_not_configured(),
                404,
                "StreamNotConfigured",
            ),
            (ApiError::keyval_format("x"), 400, "KeyvalFormatError"),
            (ApiError::json("x"), 415, "JsonError"),
            (
                ApiError::cluster_unavailable("x"),
                503,
                "ClusterUnavailable",
            ),
            (
                ApiError::write_outcome_unknown("x"),
                504,
                "WriteOutcomeUnknown",
            ),
        ];
        for (e, status, code) in table {
            assert_eq!((e.status, e.code), (status, code));
        }
    }
}
