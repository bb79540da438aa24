//! The compact JWS form, `HEADER.PAYLOAD.SIGNATURE`, read strictly: any input, however
//! made, is either a token with an object header naming a known algorithm and an object
//! payload, or a [`Failure`] — never a panic, and never more work than its size allows.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::keys::Alg;
use super::Failure;

/// The longest token read. Tokens carry claims, not documents: real ones are well under
/// 2 KiB, and the bound keeps a hostile header from costing more than a few decodes.
pub const MAX_TOKEN: usize = 16 * 1024;

/// A token whose form is right; its signature is not checked yet.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// `HEADER.PAYLOAD` as sent: what the signature covers.
    pub signing_input: &'a [u8],
    /// The signature's base64url text, as jsonwebtoken verifies it.
    pub sig_b64: &'a str,
    pub sig: Vec<u8>,
    pub alg: Alg,
    pub kid: Option<String>,
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
}

/// Reads a token.
pub fn parse(token: &[u8]) -> Result<Parsed<'_>, Failure> {
    if token.is_empty() {
        return Err(Failure::NoToken);
    }
    if token.len() > MAX_TOKEN {
        return Err(Failure::TooLarge);
    }
    let text = std::str::from_utf8(token).map_err(|_| Failure::Malformed("not text"))?;
    let mut parts = text.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::Malformed("not three dot-separated parts"));
    };
    let header = object(h, "header")?;
    let claims = object(p, "payload")?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Failure::Malformed("signature is not base64url"))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => Alg::parse(a).ok_or(Failure::BadAlg)?,
        Some(_) => return Err(Failure::Malformed("alg is not a string")),
        None => return Err(Failure::Malformed("no alg in the header")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Failure::Malformed("kid is not a string")),
    };
    Ok(Parsed {
        signing_input: &token[..h.len() + 1 + p.len()],
        sig_b64: s,
        sig,
        alg,
        kid,
        header,
        claims,
    })
}

fn object(part: &str, what: &'static str) -> Result<Map<String, Value>, Failure> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        Failure::Malformed(if what == "header" {
            "header is not base64url"
        } else {
            "payload is not base64url"
        })
    })?;
    // serde_json stops at 128 levels of nesting, so depth cannot exhaust the stack.
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Failure::Malformed(if what == "header" {
            "header is not a JSON object"
        } else {
            "payload is not a JSON object"
        })),
        Err(_) => Err(Failure::Malformed(if what == "header" {
            "header is not JSON"
        } else {
            "payload is not JSON"
        })),
    }
}

/// `exp` or `nbf` in whole seconds: absent is `Ok(None)`; a number (integer or not, as
/// RFC 7519's NumericDate allows) is floored; anything else is a malformed claim.
pub fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, Failure> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if n.as_u64().is_some() {
                Ok(Some(i64::MAX))
            } else {
                let f = n.as_f64().ok_or(Failure::BadTimeClaim(name))?;
                if f.is_finite() {
                    // `as` saturates at the i64 bounds, which is what a date far out
                    // of range means here.
                    Ok(Some(f.floor() as i64))
                } else {
                    Err(Failure::BadTimeClaim(name))
                }
            }
        }
        Some(_) => Err(Failure::BadTimeClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn reads_a_well_formed_token() {
        let t = token(r#"{"alg":"RS256","kid":"k1"}"#, r#"{"sub":"alice"}"#);
        let p = parse(t.as_bytes()).expect("parses");
        assert_eq!((p.alg, p.kid.as_deref()), (Alg::RS256, Some("k1")));
        assert_eq!(p.claims["sub"], "alice");
        assert_eq!(p.sig, b"sig");
        let dot = t.rfind('.').expect("dot");
        assert_eq!(p.signing_input, &t.as_bytes()[..dot]);
    }

    #[test]
    fn refuses_every_malformed_shape() {
        let good_h = r#"{"alg":"HS256"}"#;
        let cases: Vec<(String, Failure)> = vec![
            (String::new(), Failure::NoToken),
            ("a".repeat(MAX_TOKEN + 1), Failure::TooLarge),
            (
                "a.b".into(),
                Failure::Malformed("not three dot-separated parts"),
            ),
            (
                "a.b.c.d.e".into(),
                Failure::Malformed("not three dot-separated parts"),
            ),
            (
                format!("{}.{}.%%", b64(good_h), b64("{}")),
                Failure::Malformed("signature is not base64url"),
            ),
            (
                format!("{}=.{}.", b64(good_h), b64("{}")),
                Failure::Malformed("header is not base64url"),
            ),
            (
                format!("{}.{}.", b64("[1]"), b64("{}")),
                Failure::Malformed("header is not a JSON object"),
            ),
            (
                format!("{}.{}.", b64(good_h), b64("{")),
                Failure::Malformed("payload is not JSON"),
            ),
            (
                format!("{}.{}.", b64(good_h), b64("\"x\"")),
                Failure::Malformed("payload is not a JSON object"),
            ),
            (
                token(r#"{"typ":"JWT"}"#, "{}"),
                Failure::Malformed("no alg in the header"),
            ),
            (
                token(r#"{"alg":256}"#, "{}"),
                Failure::Malformed("alg is not a string"),
            ),
            (token(r#"{"alg":"none"}"#, "{}"), Failure::BadAlg),
            (token(r#"{"alg":"hs256"}"#, "{}"), Failure::BadAlg),
            (
                token(r#"{"alg":"HS256","kid":7}"#, "{}"),
                Failure::Malformed("kid is not a string"),
            ),
        ];
        for (t, want) in cases {
            let got = parse(t.as_bytes()).map(|p| p.alg);
            assert_eq!(got.err(), Some(want), "{t:.80}");
        }
        let deep = format!("{}{}", "[".repeat(1_000), "]".repeat(1_000));
        let got = parse(token(good_h, &deep).as_bytes()).err();
        assert_eq!(got, Some(Failure::Malformed("payload is not JSON")));
    }

    #[test]
    fn numeric_dates() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"a": 10, "b": 10.9, "c": "10", "d": true, "e": null, "f": 1e300, "g": 18446744073709551615}"#,
        )
        .expect("json");
        assert_eq!(numeric_date(&claims, "a"), Ok(Some(10)));
        assert_eq!(numeric_date(&claims, "b"), Ok(Some(10)));
        assert_eq!(numeric_date(&claims, "c"), Err(Failure::BadTimeClaim("c")));
        assert_eq!(numeric_date(&claims, "d"), Err(Failure::BadTimeClaim("d")));
        assert_eq!(numeric_date(&claims, "e"), Err(Failure::BadTimeClaim("e")));
        assert_eq!(numeric_date(&claims, "f"), Ok(Some(i64::MAX)));
        assert_eq!(numeric_date(&claims, "g"), Ok(Some(i64::MAX)));
        assert_eq!(numeric_date(&claims, "z"), Ok(None));
    }

    /// Any bytes at all: a result, never a panic. Bounded, so it runs in `cargo test`.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let pieces: [&[u8]; 8] = [
            b".",
            b"eyJ",
            b"fQ",
            b"=",
            b"\xff",
            b"-_",
            b"e30",
            b"IkpXVCJ9",
        ];
        for _ in 0..20_000 {
            let mut t = Vec::new();
            for _ in 0..rng.usize(0..24) {
                if rng.bool() {
                    t.extend_from_slice(pieces[rng.usize(..pieces.len())]);
                } else {
                    t.push(rng.u8(..));
                }
            }
            let _ = parse(&t);
        }
    }
}
