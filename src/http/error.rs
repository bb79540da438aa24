//! Failures of a request and the one place where they become HTTP statuses.
//!
//! Every failure records which side caused it, so the log says whose fault a 502 was
//! and the statistics of later issues can count client aborts apart from upstream faults.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Malformed request line, URI or headers.
    BadRequest,
    /// Body larger than `client_max_body_size`.
    BodyTooLarge,
    /// The client went away or sent a broken body.
    ClientAbort,
    /// The client stopped sending its body for `client_body_timeout`.
    ClientTimeout,
    /// Could not connect, or the connection broke before a complete response header.
    UpstreamError,
    /// connect/read/send timeout.
    UpstreamTimeout,
    /// The upstream answered something that is not HTTP.
    UpstreamInvalid,
    /// Every server of the group is down, failed or busy.
    NoLiveUpstreams,
    /// A configuration that cannot serve this request (e.g. a name with no resolver).
    Internal,
    /// Too many rewrites or internal redirects.
    Cycle,
}

#[derive(Debug, Clone)]
pub struct Fail {
    pub side: Side,
    pub kind: Kind,
    pub msg: String,
}

impl Fail {
    pub fn new(side: Side, kind: Kind, msg: impl Into<String>) -> Fail {
        Fail {
            side,
            kind,
            msg: msg.into(),
        }
    }

    pub fn upstream(kind: Kind, msg: impl Into<String>) -> Fail {
        Fail::new(Side::Upstream, kind, msg)
    }

    pub fn internal(msg: impl Into<String>) -> Fail {
        Fail::new(Side::Internal, Kind::Internal, msg)
    }

    /// The status a client sees, as nginx gives it.
    pub fn status(&self) -> u16 {
        match self.kind {
            Kind::BadRequest => 400,
            Kind::BodyTooLarge => 413,
            Kind::ClientTimeout => 408,
            // nginx logs 499 for a client that closed the connection; nothing is sent.
            Kind::ClientAbort => 499,
            Kind::UpstreamError | Kind::UpstreamInvalid | Kind::NoLiveUpstreams => 502,
            Kind::UpstreamTimeout => 504,
            Kind::Internal | Kind::Cycle => 500,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Internal => "internal",
        };
        write!(f, "{} ({side})", self.msg)
    }
}

/// The reason phrase nginx uses in its own pages.
pub fn reason(status: u16) -> &'static str {
    match status {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Authorization Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        408 => "Request Time-out",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => "",
    }
}

/// nginx's built-in error page, signed with raftgate's name.
pub fn page(status: u16) -> String {
    let title = format!("{status} {}", reason(status));
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>raftgate</center>\r\n</body>\r\n</html>\r\n"
    )
}
