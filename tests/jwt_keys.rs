//! Key sets and token checks, with real keys of every kind generated here: every
//! algorithm verifies with its key and no other, and every failure kind is told apart.

#[path = "support/jwt.rs"]
mod jwt;

use raftgate::jwt::keys::parse_jwks;
use raftgate::jwt::{Failure, KeySet};
use serde_json::json;

use jwt::{jwks, now, signer, ALGS};

fn set(keys: &[serde_json::Value]) -> KeySet {
    let (keys, warnings) = parse_jwks(&jwks(keys)).expect("a valid key set");
    assert!(warnings.is_empty(), "{warnings:?}");
    KeySet::new(keys)
}

#[test]
fn every_algorithm_verifies_with_its_own_key_and_no_other() {
    let t = now();
    for alg in ALGS {
        let mine = signer(alg);
        let other = signer(alg);
        let claims = json!({"sub": "alice", "exp": t + 60});
        let token = mine.token(json!({}), claims.clone());
        // Found by alg alone, and by kid.
        let by_alg = set(&[other.jwk(), mine.jwk()]);
        let v = by_alg
            .check(&token, t, 0)
            .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(v.claims["sub"], "alice", "{alg}");
        let by_kid = set(&[other.jwk_with_kid("a"), mine.jwk_with_kid("b")]);
        let token_b = mine.token(json!({"kid": "b"}), claims.clone());
        assert!(by_kid.check(&token_b, t, 0).is_ok(), "{alg} by kid");
        // Named with the other key's kid: that key alone is tried, and it does not verify.
        let token_a = mine.token(json!({"kid": "a"}), claims.clone());
        assert_eq!(
            by_kid.check(&token_a, t, 0).err(),
            Some(Failure::BadSignature),
            "{alg}"
        );
        // Only the other key: no signature.
        let others = set(&[other.jwk()]);
        assert_eq!(
            others.check(&token, t, 0).err(),
            Some(Failure::BadSignature),
            "{alg}"
        );
        // One flipped bit in the signature.
        let mut bad = token.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("ascii");
        assert_eq!(
            by_alg.check(&bad, t, 0).err(),
            Some(Failure::BadSignature),
            "{alg}"
        );
        // One changed claim under the old signature.
        let forged = {
            let parts: Vec<&str> = token.split('.').collect();
            let body = base64_url(json!({"sub": "mallory", "exp": t + 60}).to_string());
            format!("{}.{body}.{}", parts[0], parts[2])
        };
        assert_eq!(
            by_alg.check(&forged, t, 0).err(),
            Some(Failure::BadSignature),
            "{alg}"
        );
    }
}

fn base64_url(s: String) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn a_token_is_checked_only_with_keys_of_its_algorithm() {
    let t = now();
    let rsa = signer("RS256");
    let keys = set(&[rsa.jwk()]);
    // Key confusion: an HS256 token whose HMAC secret is the RSA public key's modulus.
    let n = rsa.jwk()["n"].as_str().expect("n").to_string();
    let confused = jwt::Signer::Hs(256, n.clone().into_bytes());
    let token = confused.token(json!({}), json!({"sub": "x"}));
    assert_eq!(keys.check(&token, t, 0).err(), Some(Failure::NoKey));
    // The same with the key's bytes.
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&n)
        .expect("n");
    let token = jwt::Signer::Hs(256, raw).token(json!({}), json!({"sub": "x"}));
    assert_eq!(keys.check(&token, t, 0).err(), Some(Failure::NoKey));
    // A key restricted to RS256 does not verify RS512, though the family fits.
    let mut restricted = rsa.jwk();
    restricted["alg"] = json!("RS256");
    let keys = set(&[restricted]);
    let rs512 = match &rsa {
        jwt::Signer::Rs(_, k) => jwt::Signer::Rs(512, k.clone()),
        _ => unreachable!(),
    };
    let token = rs512.token(json!({}), json!({}));
    assert_eq!(keys.check(&token, t, 0).err(), Some(Failure::NoKey));
    assert!(keys.check(&rsa.token(json!({}), json!({})), t, 0).is_ok());
    // ES256 against a P-384 key.
    let keys = set(&[signer("ES384").jwk()]);
    let token = signer("ES256").token(json!({}), json!({}));
    assert_eq!(keys.check(&token, t, 0).err(), Some(Failure::NoKey));
    // alg none, with or without a signature, and a kid no key has.
    let keys = set(&[rsa.jwk_with_kid("k1")]);
    let none = format!(
        "{}.{}.",
        base64_url(r#"{"alg":"none"}"#.into()),
        base64_url("{}".into())
    );
    assert_eq!(keys.check(&none, t, 0).err(), Some(Failure::BadAlg));
    let token = rsa.token(json!({"kid": "k2"}), json!({}));
    assert_eq!(keys.check(&token, t, 0).err(), Some(Failure::NoKey));
}

#[test]
fn exp_and_nbf_with_leeway_and_types() {
    let t = now();
    let s = signer("ES256");
    let keys = set(&[s.jwk()]);
    let check = |claims: serde_json::Value, leeway: i64| {
        keys.check(&s.token(json!({}), claims), t, leeway)
            .map(|_| ())
    };
    assert_eq!(check(json!({"exp": t - 1}), 0), Err(Failure::Expired));
    assert_eq!(check(json!({"exp": t - 1}), 5), Ok(()));
    assert_eq!(check(json!({"exp": t - 6}), 5), Err(Failure::Expired));
    // Not accepted on or after exp (RFC 7519 §4.1.4).
    assert_eq!(check(json!({"exp": t}), 0), Err(Failure::Expired));
    assert_eq!(check(json!({"exp": t + 1}), 0), Ok(()));
    assert_eq!(check(json!({"nbf": t + 1}), 0), Err(Failure::NotYetValid));
    assert_eq!(check(json!({"nbf": t + 1}), 5), Ok(()));
    assert_eq!(check(json!({"nbf": t + 6}), 5), Err(Failure::NotYetValid));
    assert_eq!(check(json!({"exp": (t + 60) as f64 + 0.5}), 0), Ok(()));
    assert_eq!(check(json!({}), 0), Ok(()));
    for bad in [
        json!("soon"),
        json!(true),
        json!(null),
        json!([1]),
        json!({"t": 1}),
    ] {
        assert_eq!(
            check(json!({"exp": bad.clone()}), 0),
            Err(Failure::BadTimeClaim("exp")),
            "{bad}"
        );
        assert_eq!(
            check(json!({"nbf": bad.clone()}), 0),
            Err(Failure::BadTimeClaim("nbf")),
            "{bad}"
        );
    }
}

#[test]
fn a_cached_token_is_not_served_past_its_exp() {
    let t = now();
    let s = signer("RS256");
    let keys = set(&[s.jwk()]);
    let token = s.token(json!({}), json!({"exp": t + 10}));
    assert!(keys.check(&token, t, 0).is_ok());
    assert!(
        keys.check(&token, t + 9, 0).is_ok(),
        "served from the cache"
    );
    assert_eq!(keys.check(&token, t + 10, 0).err(), Some(Failure::Expired));
    assert_eq!(keys.check(&token, t + 11, 0).err(), Some(Failure::Expired));
    let early = s.token(json!({}), json!({"nbf": t + 10}));
    assert_eq!(keys.check(&early, t, 0).err(), Some(Failure::NotYetValid));
}

#[test]
fn broken_key_sets_are_refused_with_the_key_and_the_reason() {
    let rsa = signer("RS256").jwk();
    let ec = signer("ES256").jwk();
    let mut short_n = rsa.clone();
    short_n["n"] = json!("AQAB");
    let mut even_e = rsa.clone();
    even_e["e"] = json!("Ag");
    let mut off_curve = ec.clone();
    off_curve["y"] = off_curve["x"].clone();
    let mut wrong_size = ec.clone();
    wrong_size["crv"] = json!("P-384");
    let mut bad_alg = rsa.clone();
    bad_alg["alg"] = json!("ES256");
    let mut unknown_alg = rsa.clone();
    unknown_alg["alg"] = json!("RS1");
    let mut padded = ec.clone();
    padded["x"] = json!(format!("{}=", ec["x"].as_str().expect("x")));
    let cases: Vec<(String, &str)> = vec![
        ("{".into(), "not a JSON Web Key Set"),
        ("[]".into(), "no \"keys\" array"),
        (r#"{"keys": []}"#.into(), "no usable signature key"),
        (r#"{"keys": [1]}"#.into(), "key 1: not a JSON object"),
        (jwks(&[json!({"kty": "oct"})]), "key 1: no \"k\""),
        (
            jwks(&[json!({"kty": "oct", "k": ""})]),
            "key 1: empty \"k\"",
        ),
        (jwks(&[json!({"k": "AA"})]), "key 1: no \"kty\""),
        (
            jwks(&[rsa.clone(), short_n]),
            "key 2: an RSA modulus of 24 bits",
        ),
        (jwks(&[even_e]), "a bad RSA exponent"),
        (jwks(&[off_curve]), "the point is not on P-256"),
        (
            jwks(&[wrong_size]),
            "P-384 coordinates must be 48 bytes each",
        ),
        (jwks(&[bad_alg]), "does not fit a RSA key"),
        (jwks(&[unknown_alg]), "unsupported \"alg\" \"RS1\""),
        (jwks(&[padded]), "\"x\" is not base64url"),
        (
            jwks(&[json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA", "kid": "k"})]),
            "key 1 (kid \"k\"): unsupported curve \"secp256k1\"",
        ),
    ];
    for (text, want) in cases {
        let err = parse_jwks(&text).expect_err(&text);
        assert!(err.contains(want), "{text:.60}: {err}");
    }
    // Keys of other kinds and uses are skipped, with a warning each.
    let mut enc = ec.clone();
    enc["use"] = json!("enc");
    let (keys, warnings) =
        parse_jwks(&jwks(&[json!({"kty": "foo"}), enc, rsa])).expect("one usable key");
    assert_eq!(keys.len(), 1);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

/// Any change to a valid token — a byte flipped, cut, inserted anywhere — is refused, and
/// no input panics. Bounded, so it runs in every `cargo test`.
#[test]
fn every_mutation_of_a_valid_token_is_refused() {
    let t = now();
    let mut rng = fastrand::Rng::with_seed(11);
    for alg in ["HS256", "RS256", "ES256", "ES512", "EdDSA"] {
        let s = signer(alg);
        let keys = set(&[s.jwk()]);
        let token = s.token(json!({}), json!({"sub": "alice", "exp": t + 600}));
        assert!(keys.check(&token, t, 0).is_ok(), "{alg}");
        for _ in 0..400 {
            let mut b = token.clone().into_bytes();
            match rng.u8(0..3) {
                0 => {
                    let i = rng.usize(..b.len());
                    b[i] ^= 1 << rng.u8(0..8);
                }
                1 => {
                    let i = rng.usize(..b.len());
                    b.truncate(i);
                }
                _ => {
                    let i = rng.usize(..=b.len());
                    b.insert(i, rng.u8(..));
                }
            }
            let Ok(mutated) = String::from_utf8(b) else {
                continue;
            };
            if mutated == token {
                continue;
            }
            let r = keys.check(&mutated, t, 0);
            // base64url's last character may carry bits that decoding ignores; a
            // mutation there alone leaves the token's bytes as they were.
            let same_bytes = decodes_same(&mutated, &token);
            assert!(r.is_err() || same_bytes, "{alg}: {mutated} passed");
        }
    }
}

fn decodes_same(a: &str, b: &str) -> bool {
    use base64::Engine;
    let parts = |s: &str| -> Option<Vec<Vec<u8>>> {
        s.split('.')
            .map(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .collect()
    };
    parts(a).is_some() && parts(a) == parts(b)
}
