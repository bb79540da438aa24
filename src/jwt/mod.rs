//! JWT authentication as NGINX Plus has it (`ngx_http_auth_jwt_module`, R14): a request
//! passes when it carries a token signed by a key of the location's key set, inside its
//! `nbf`/`exp` window; its claims and header fields then become variables.
//!
//! - [`token`] reads the compact form strictly, [`keys`] reads JWK Sets once per
//!   configuration load, [`verify`] checks signatures, [`cache`] remembers tokens already
//!   verified (never past their `exp`).

pub mod cache;
pub mod claims;
pub mod conf;
pub mod keys;
pub mod token;
pub mod verify;

use std::sync::Arc;

use serde_json::{Map, Value};

use keys::{Alg, Key};

/// Why a request did not pass. Every one answers 401; all but [`Failure::NoToken`] add
/// `error="invalid_token"` to the challenge, since a token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NoToken,
    TooLarge,
    Malformed(&'static str),
    /// `none`, or an algorithm raftgate does not know.
    BadAlg,
    /// No key of the set fits the token's `kid` and `alg`.
    NoKey,
    BadSignature,
    /// `exp` or `nbf` that is not a number.
    BadTimeClaim(&'static str),
    Expired,
    NotYetValid,
}

impl Failure {
    pub fn presented(self) -> bool {
        self != Failure::NoToken
    }

    /// For the error log.
    pub fn reason(self) -> String {
        match self {
            Failure::NoToken => "no JWT".into(),
            Failure::TooLarge => format!("JWT longer than {} bytes", token::MAX_TOKEN),
            Failure::Malformed(why) => format!("malformed JWT: {why}"),
            Failure::BadAlg => "JWT alg is none or unsupported".into(),
            Failure::NoKey => "no key fits the JWT's kid and alg".into(),
            Failure::BadSignature => "JWT signature does not verify".into(),
            Failure::BadTimeClaim(c) => format!("JWT \"{c}\" is not a number"),
            Failure::Expired => "JWT has expired".into(),
            Failure::NotYetValid => "JWT is not valid yet".into(),
        }
    }
}

/// A token that passed: what the variables read.
#[derive(Debug)]
pub struct Verified {
    pub alg: Alg,
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

impl Verified {
    /// Whether the token is inside its validity window at `now` (seconds), `leeway`
    /// seconds of clock skew allowed either way.
    fn in_window(&self, now: i64, leeway: i64) -> Result<(), Failure> {
        // RFC 7519 §4.1.4: not accepted on or after `exp`.
        if self
            .exp
            .is_some_and(|exp| exp.saturating_add(leeway) <= now)
        {
            return Err(Failure::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf.saturating_sub(leeway) > now) {
            return Err(Failure::NotYetValid);
        }
        Ok(())
    }
}

/// The most keys one token is tried against (keys without a `kid` that fit its `alg`):
/// a bound on what one forged token costs. A larger set gets a warning at load.
pub const MAX_CANDIDATES: usize = 16;

/// The keys of one `auth_jwt_key_file` (or several), parsed once per configuration load,
/// with the cache of tokens they verified.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<Key>,
    cache: cache::VerifiedCache,
}

impl KeySet {
    pub fn new(keys: Vec<Key>) -> KeySet {
        KeySet {
            keys,
            cache: cache::VerifiedCache::default(),
        }
    }

    /// Checks `token` at `now` (Unix seconds) with `leeway` seconds of skew.
    ///
    /// The order keeps the cheap refusals first: form, then a key that fits, then the
    /// time claims' types and window, and only then the signature.
    pub fn check(&self, token: &str, now: i64, leeway: i64) -> Result<Arc<Verified>, Failure> {
        if let Some(v) = self.cache.get(token, now.saturating_sub(leeway)) {
            v.in_window(now, leeway)?;
            return Ok(v);
        }
        let t = token::parse(token.as_bytes())?;
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| match (&t.kid, &k.kid) {
                // A token that names its key is checked with that key only.
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .filter(|k| k.fits(t.alg))
            .take(MAX_CANDIDATES)
            .collect();
        if candidates.is_empty() {
            return Err(Failure::NoKey);
        }
        let v = Verified {
            alg: t.alg,
            exp: token::numeric_date(&t.claims, "exp")?,
            nbf: token::numeric_date(&t.claims, "nbf")?,
            header: Map::new(),
            claims: Map::new(),
        };
        v.in_window(now, leeway)?;
        if !candidates
            .iter()
            .any(|k| verify::signature_ok(k, t.alg, &t))
        {
            return Err(Failure::BadSignature);
        }
        let v = Arc::new(Verified {
            header: t.header,
            claims: t.claims,
            ..v
        });
        self.cache.put(token, v.clone(), now.saturating_sub(leeway));
        Ok(v)
    }
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A location's auth_jwt settings. Each is inherited on its own from `http` to `server`
/// to `location`, as in nginx: a key file set at `http` serves an `auth_jwt` set in a
/// location, and `auth_jwt off` in a location leaves the key file inherited.
#[derive(Debug, Clone, Default)]
pub struct JwtLoc {
    /// `None`: not set at this level; `Some(None)`: `auth_jwt off`.
    pub auth: Option<Option<Arc<AuthJwt>>>,
    pub keys: Option<Arc<KeySet>>,
    pub leeway: Option<std::time::Duration>,
}

impl JwtLoc {
    /// The `auth_jwt` in force, if on.
    pub fn enabled(&self) -> Option<&Arc<AuthJwt>> {
        self.auth.as_ref().and_then(Option::as_ref)
    }

    fn leeway_secs(&self) -> i64 {
        self.leeway
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// `auth_jwt REALM [token=$var]`.
#[derive(Debug)]
pub struct AuthJwt {
    pub realm: crate::vars::Template,
    /// Where the token comes from instead of `Authorization: Bearer`.
    pub token: Option<crate::vars::Template>,
}

/// What one request's token gave, kept for the rest of the request: the access phase
/// and every variable read it once.
#[derive(Debug)]
pub struct Memo {
    /// The key set it was checked with (its address) and the token, so a request that
    /// moved to a location with other keys, or names another token, is checked again.
    keys: usize,
    leeway: i64,
    token: String,
    outcome: Result<Arc<Verified>, Failure>,
}

/// The token of `req` under `auth`: the `token=` value, or the credentials of an
/// `Authorization: Bearer` header. `None` when there is none (or it is empty).
fn extract(req: &mut crate::http::req::Req, auth: &AuthJwt) -> Option<String> {
    if let Some(t) = &auth.token {
        let v = t.eval(req);
        return (!v.is_empty()).then_some(v);
    }
    // Bytes that are not text still make a (malformed) token: a token was presented.
    let value = req.headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let value = String::from_utf8_lossy(value);
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_matches([' ', '\t']);
    (!token.is_empty()).then(|| token.to_string())
}

/// Checks the request's token against its location's settings; `Err(NoToken)` when
/// there is none, and `Ok(None)` when auth_jwt is off there.
fn outcome(req: &mut crate::http::req::Req) -> Option<Result<Arc<Verified>, Failure>> {
    let conf = req.loc_conf.clone()?;
    let auth = conf.jwt.enabled()?;
    // `token=$jwt_claim_x` would ask for itself: the inner read sees no token.
    if req.jwt_busy {
        return Some(Err(Failure::NoToken));
    }
    req.jwt_busy = true;
    let token = extract(req, auth);
    req.jwt_busy = false;
    let Some(token) = token else {
        return Some(Err(Failure::NoToken));
    };
    let Some(keys) = conf.jwt.keys.as_ref() else {
        return Some(Err(Failure::NoKey));
    };
    let id = Arc::as_ptr(keys) as usize;
    let leeway = conf.jwt.leeway_secs();
    if let Some(m) = &req.jwt {
        if m.keys == id && m.leeway == leeway && m.token == token {
            return Some(m.outcome.clone());
        }
    }
    let outcome = keys.check(&token, now_secs(), leeway);
    req.jwt = Some(Box::new(Memo {
        keys: id,
        leeway,
        token,
        outcome: outcome.clone(),
    }));
    Some(outcome)
}

/// The verified token of the request, for the JWT variables: `None` unless auth_jwt is
/// on where the request is and its token passes. Claims of a token that did not pass
/// never reach a variable, so they cannot steer a `map` or an `if`.
pub fn verified(req: &mut crate::http::req::Req) -> Option<Arc<Verified>> {
    outcome(req)?.ok()
}

/// The access phase: `Err` with the `WWW-Authenticate` value when the request must be
/// answered 401.
pub fn access(req: &mut crate::http::req::Req) -> Result<(), http::HeaderValue> {
    match outcome(req) {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(f)) => {
            crate::log_info!(
                "{}, client: {}, request: \"{} {}\"",
                f.reason(),
                req.conn.remote,
                req.method,
                req.request_uri
            );
            Err(challenge(req, f.presented()))
        }
    }
}

/// The challenge for a 401 where auth_jwt is on, whatever answered 401 (the access
/// phase, or a `return 401` of the configuration): RFC 7235 wants one with every 401.
pub fn challenge_for(req: &mut crate::http::req::Req) -> Option<http::HeaderValue> {
    let presented = !matches!(outcome(req)?, Err(Failure::NoToken));
    Some(challenge(req, presented))
}

fn challenge(req: &mut crate::http::req::Req, presented: bool) -> http::HeaderValue {
    let realm = req
        .loc_conf
        .clone()
        .and_then(|c| c.jwt.enabled().map(|a| a.realm.eval(req)))
        .unwrap_or_default();
    let escaped: String = realm
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let mut v = format!("Bearer realm=\"{escaped}\"");
    if presented {
        v.push_str(", error=\"invalid_token\"");
    }
    http::HeaderValue::from_str(&v)
        .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer error=\"invalid_token\""))
}
