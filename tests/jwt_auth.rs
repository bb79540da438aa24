//! auth_jwt on the data path, in-process with real backends: every failure answers 401
//! with its challenge and never reaches the upstream; claims and header fields become
//! variables (nested, arrays); settings inherit as in nginx; the R14 example
//! configurations load unchanged and behave as their comments say.

mod common;
#[path = "support/jwt.rs"]
mod jwt;

use bytes::Bytes;
use common::{backend, load_errors, send, start_with, Behave, Resp};
use http::Request;
use serde_json::json;

use jwt::{jwks, now, signer, Signer};

async fn bearer(addr: std::net::SocketAddr, path: &str, auth: Option<&str>) -> Resp {
    let mut r = Request::get(path).header("host", "localhost");
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    send(addr, r.body(Bytes::new()).expect("request")).await
}

fn challenge(r: &Resp) -> Option<&str> {
    r.header("www-authenticate")
}

const REALM: &str = r#"Bearer realm="api""#;
const INVALID: &str = r#"Bearer realm="api", error="invalid_token""#;

#[tokio::test]
async fn every_failure_answers_401_and_the_upstream_never_sees_it() {
    let b = backend("app", Behave::Echo).await;
    let rsa = signer("RS256");
    let hs = signer("HS256");
    let keys = jwks(&[rsa.jwk_with_kid("r1"), hs.jwk_with_kid("h1")]);
    let conf = format!(
        "events {{}}\nhttp {{\n server {{\n  listen 127.0.0.1:0;\n  auth_jwt api;\n  auth_jwt_key_file keys.json;\n  location / {{ proxy_pass http://{}; }}\n }}\n}}\n",
        b.addr
    );
    let g = start_with(&conf, &[("keys.json", &keys)]).await;
    let t = now();
    let ok = rsa.token(
        json!({"kid": "r1"}),
        json!({"sub": "alice", "exp": t + 600}),
    );

    let good = bearer(g.addr(), "/", Some(&format!("Bearer {ok}"))).await;
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(good.backend(), "app");
    assert_eq!(b.hits(), 1);
    // The scheme is case-insensitive, as RFC 7235 has it.
    let lower = bearer(g.addr(), "/", Some(&format!("bearer  {ok}"))).await;
    assert_eq!(lower.status, 200);

    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let parts: Vec<&str> = ok.split('.').collect();
    let n = rsa.jwk()["n"].as_str().expect("n").to_string();
    let confusion =
        Signer::Hs(256, n.into_bytes()).token(json!({"kid": "r1"}), json!({"sub": "x"}));
    let other_rsa = signer("RS256").token(json!({"kid": "r1"}), json!({"sub": "x"}));
    let es_with_rsa_kid = signer("ES256").token(json!({"kid": "r1"}), json!({}));
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no Authorization", None, REALM),
        ("another scheme", Some("Basic YWxpY2U6cHc=".into()), REALM),
        ("Bearer without a token", Some("Bearer ".into()), REALM),
        (
            "two parts",
            Some(format!("Bearer {}.{}", parts[0], parts[1])),
            INVALID,
        ),
        (
            "bad base64",
            Some(format!("Bearer {}.{}!.{}", parts[0], parts[1], parts[2])),
            INVALID,
        ),
        (
            "not JSON",
            Some(format!("Bearer {}.{}.{}", parts[0], b64("{"), parts[2])),
            INVALID,
        ),
        (
            "a claim changed",
            Some(format!(
                "Bearer {}.{}.{}",
                parts[0],
                b64(r#"{"sub":"mallory"}"#),
                parts[2]
            )),
            INVALID,
        ),
        (
            "signed by another key",
            Some(format!("Bearer {other_rsa}")),
            INVALID,
        ),
        (
            "unknown kid",
            Some(format!(
                "Bearer {}",
                rsa.token(json!({"kid": "nope"}), json!({}))
            )),
            INVALID,
        ),
        (
            "alg that does not fit the key",
            Some(format!("Bearer {es_with_rsa_kid}")),
            INVALID,
        ),
        (
            "alg none",
            Some(format!(
                "Bearer {}.{}.",
                b64(r#"{"alg":"none","kid":"r1"}"#),
                parts[1]
            )),
            INVALID,
        ),
        (
            "HMAC keyed with the RSA public key",
            Some(format!("Bearer {confusion}")),
            INVALID,
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                rsa.token(json!({"kid": "r1"}), json!({"exp": t - 5}))
            )),
            INVALID,
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                hs.token(json!({"kid": "h1"}), json!({"nbf": t + 60}))
            )),
            INVALID,
        ),
        (
            "exp as a string",
            Some(format!(
                "Bearer {}",
                hs.token(json!({"kid": "h1"}), json!({"exp": "tomorrow"}))
            )),
            INVALID,
        ),
        (
            "nbf as a boolean",
            Some(format!(
                "Bearer {}",
                hs.token(json!({"kid": "h1"}), json!({"nbf": true}))
            )),
            INVALID,
        ),
        (
            "oversized",
            Some(format!(
                "Bearer {}",
                hs.token(json!({"kid": "h1"}), json!({"pad": "x".repeat(20_000)}))
            )),
            INVALID,
        ),
        (
            "bytes that are not base64",
            Some("Bearer \u{ff}\u{fe}.\u{ff}.\u{ff}".into()),
            INVALID,
        ),
    ];
    for (what, auth, want) in &cases {
        let r = bearer(g.addr(), "/", auth.as_deref()).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(challenge(&r), Some(*want), "{what}");
    }
    assert_eq!(b.hits(), 2, "the upstream saw a refused request");
}

#[tokio::test]
async fn leeway_token_variable_and_inheritance() {
    let b = backend("app", Behave::Echo).await;
    let s = signer("ES256");
    let keys = jwks(&[s.jwk()]);
    let conf = format!(
        "events {{}}
http {{
 auth_jwt_key_file keys.json;
 auth_jwt_leeway 30s;
 server {{
  listen 127.0.0.1:0;
  auth_jwt \"realm $host\";
  location / {{ proxy_pass http://{a}; }}
  location /public {{ auth_jwt off; proxy_pass http://{a}; }}
  location /cookie {{ auth_jwt cookie token=$cookie_auth; proxy_pass http://{a}; }}
  location /arg {{ auth_jwt arg token=$arg_t; proxy_pass http://{a}; }}
 }}
}}
",
        a = b.addr
    );
    let g = start_with(&conf, &[("keys.json", &keys)]).await;
    let t = now();
    // Expired 10 s ago and not valid for 10 s: both inside the 30 s leeway.
    let skewed = s.token(json!({}), json!({"exp": t - 10, "nbf": t + 10}));
    let r = bearer(g.addr(), "/", Some(&format!("Bearer {skewed}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let late = s.token(json!({}), json!({"exp": t - 40}));
    let r = bearer(g.addr(), "/", Some(&format!("Bearer {late}"))).await;
    assert_eq!(r.status, 401);
    // The realm is evaluated per request.
    assert_eq!(
        challenge(&r),
        Some(r#"Bearer realm="realm localhost", error="invalid_token""#)
    );
    // `auth_jwt off` in a location.
    assert_eq!(bearer(g.addr(), "/public", None).await.status, 200);
    // token= from a cookie and an argument; the Authorization header is then not read.
    let ok = s.token(json!({}), json!({"sub": "c"}));
    let r = send(
        g.addr(),
        Request::get("/cookie")
            .header("host", "localhost")
            .header("cookie", format!("a=1; auth={ok}"))
            .body(Bytes::new())
            .expect("request"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = bearer(g.addr(), "/cookie", Some(&format!("Bearer {ok}"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(challenge(&r), Some(r#"Bearer realm="cookie""#));
    assert_eq!(
        bearer(g.addr(), &format!("/arg?t={ok}"), None).await.status,
        200
    );
}

#[tokio::test]
async fn claims_and_header_fields_become_variables() {
    let b = backend("app", Behave::Echo).await;
    let s = signer("ES512");
    let keys = jwks(&[s.jwk_with_kid("k-512")]);
    let conf = format!(
        "events {{}}
http {{
 auth_jwt_claim_set $email info e-mail;
 auth_jwt_claim_set $job info \"job title\";
 auth_jwt_claim_set $deep a b c;
 auth_jwt_claim_set $roles roles;
 auth_jwt_header_set $typ typ;
 server {{
  listen 127.0.0.1:0;
  auth_jwt api;
  auth_jwt_key_file keys.json;
  location / {{
   proxy_set_header X-Email $email;
   proxy_set_header X-Job $job;
   proxy_set_header X-Deep $deep;
   proxy_set_header X-Roles $roles;
   proxy_set_header X-Typ $typ;
   proxy_set_header X-Sub $jwt_claim_sub;
   proxy_set_header X-Level $jwt_claim_level;
   proxy_set_header X-Admin $jwt_claim_admin;
   proxy_set_header X-Info $jwt_claim_info;
   proxy_set_header X-Kid $jwt_header_kid;
   proxy_set_header X-Alg $jwt_header_alg;
   proxy_set_header X-Evil $jwt_claim_evil;
   proxy_set_header X-Missing $jwt_claim_missing;
   proxy_pass http://{};
  }}
 }}
}}
",
        b.addr
    );
    let g = start_with(&conf, &[("keys.json", &keys)]).await;
    let token = s.token(
        json!({"kid": "k-512", "typ": "JWT"}),
        json!({
            "sub": "alice",
            "level": 3,
            "admin": true,
            "info": {"e-mail": "a@example.com", "job title": "CTO"},
            "a": {"b": {"c": "three deep"}},
            "roles": ["ops", "Administrator", 7],
            "evil": "x\r\nX-Injected: 1",
        }),
    );
    let r = bearer(g.addr(), "/", Some(&format!("Bearer {token}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = |h: &str| r.upstream_header(h).map(str::to_string);
    assert_eq!(seen("X-Email").as_deref(), Some("a@example.com"));
    assert_eq!(seen("X-Job").as_deref(), Some("CTO"));
    assert_eq!(seen("X-Deep").as_deref(), Some("three deep"));
    assert_eq!(seen("X-Roles").as_deref(), Some("ops,Administrator,7"));
    assert_eq!(seen("X-Typ").as_deref(), Some("JWT"));
    assert_eq!(seen("X-Sub").as_deref(), Some("alice"));
    assert_eq!(seen("X-Level").as_deref(), Some("3"));
    assert_eq!(seen("X-Admin").as_deref(), Some("true"));
    assert_eq!(
        seen("X-Info").as_deref(),
        Some(r#"{"e-mail":"a@example.com","job title":"CTO"}"#)
    );
    assert_eq!(seen("X-Kid").as_deref(), Some("k-512"));
    assert_eq!(seen("X-Alg").as_deref(), Some("ES512"));
    // A claim that would split a header is not sent; one that is absent neither.
    assert_eq!(seen("X-Evil"), None);
    assert_eq!(seen("X-Injected"), None);
    assert_eq!(seen("X-Missing"), None);
}

/// A copy of an R14 seed configuration, unchanged but for its two addresses.
fn seed(name: &str, backend: std::net::SocketAddr) -> String {
    let path = format!("{}/tests/seed-configs/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("seed config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftgate"))
        .args(["-t", "-c", &path])
        .output()
        .expect("raftgate -t");
    assert!(
        out.status.success(),
        "{name} does not load unchanged: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9001", &backend.to_string())
}

#[tokio::test]
async fn the_r14_nested_claims_example_behaves_as_its_comments_say() {
    let b = backend("my_backend", Behave::Echo).await;
    let s = signer("RS256");
    let conf = seed("jwt-nested-claims.conf", b.addr);
    let g = start_with(&conf, &[("jwk.json", &jwks(&[s.jwk()]))]).await;
    let user = |groups: serde_json::Value| {
        format!(
            "Bearer {}",
            s.token(
                json!({}),
                json!({"sub": "u-42", "groups": groups, "attributes": {"name": "Alice Smith"}}),
            )
        )
    };
    // Top-level and two-level-deep claims reach the upstream as headers.
    let r = bearer(g.addr(), "/", Some(&user(json!(["Users"])))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_header("X-RealName"), Some("Alice Smith"));
    assert_eq!(r.upstream_header("X-Subject"), Some("u-42"));
    // The array joins with commas, and the map's word-boundary regex finds the group.
    let admin = user(json!(["Users", "Administrator"]));
    assert_eq!(bearer(g.addr(), "/admin", Some(&admin)).await.status, 200);
    assert_eq!(
        bearer(g.addr(), "/admin", Some(&user(json!(["Users"]))))
            .await
            .status,
        403
    );
    let almost = user(json!(["Administrators"]));
    assert_eq!(bearer(g.addr(), "/admin", Some(&almost)).await.status, 403);
    assert_eq!(
        bearer(g.addr(), "/admin", Some(&user(json!("Administrator"))))
            .await
            .status,
        200
    );
    // Without a token: 401 on /, and 403 on /admin, whose `if` runs before the access
    // phase (as in nginx: rewrite, then access).
    let hits = b.hits();
    let r = bearer(g.addr(), "/", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(challenge(&r), Some(r#"Bearer realm="closed site""#));
    assert_eq!(bearer(g.addr(), "/admin", None).await.status, 403);
    // An administrator's token that does not verify gives no claims: 403 there too.
    let forged = signer("RS256").token(json!({}), json!({"groups": ["Administrator"]}));
    let r = bearer(g.addr(), "/admin", Some(&format!("Bearer {forged}"))).await;
    assert_eq!(r.status, 403);
    assert_eq!(b.hits(), hits, "the upstream saw a refused request");
}

#[tokio::test]
async fn the_r14_rs512_example_lets_only_rs512_tokens_through() {
    let b = backend("my_backend", Behave::Echo).await;
    let rs512 = signer("RS512");
    let same_key_rs256 = match &rs512 {
        Signer::Rs(_, k) => Signer::Rs(256, k.clone()),
        _ => unreachable!(),
    };
    let conf = seed("jwt-rs512-only.conf", b.addr);
    let g = start_with(&conf, &[("jwk.json", &jwks(&[rs512.jwk()]))]).await;
    let ok = rs512.token(json!({}), json!({"sub": "s"}));
    let r = bearer(g.addr(), "/", Some(&format!("Bearer {ok}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let weaker = same_key_rs256.token(json!({}), json!({"sub": "s"}));
    let r = bearer(g.addr(), "/", Some(&format!("Bearer {weaker}"))).await;
    assert_eq!(r.status, 401, "an RS256 token passed");
    assert_eq!(
        challenge(&r),
        Some(r#"Bearer realm="closed site", error="invalid_token""#)
    );
    let r = bearer(g.addr(), "/", None).await;
    assert_eq!(
        (r.status, challenge(&r)),
        (401, Some(r#"Bearer realm="closed site""#))
    );
    assert_eq!(b.hits(), 1);
}

#[test]
fn broken_key_files_and_directives_are_configuration_errors() {
    let dir = common::temp_dir("jwt-conf");
    std::fs::write(
        dir.join("broken.json"),
        r#"{"keys": [{"kty": "RSA", "n": "AQAB"}]}"#,
    )
    .expect("write");
    let conf = |body: &str| {
        format!("events {{}}\nhttp {{\n server {{\n  listen 127.0.0.1:0;\n{body}\n }}\n}}\n")
    };
    let load = |body: &str| match raftgate::config::load_str(&conf(body), "test.conf", dir.clone())
    {
        Ok(_) => Vec::new(),
        Err(e) => e,
    };
    let cases = [
        (
            "  auth_jwt_key_file broken.json;",
            "test.conf:5: the JWK set",
            "key 1: no \"e\"",
        ),
        (
            "  auth_jwt_key_file missing.json;",
            "test.conf:5: cannot read the JWK set",
            "missing.json",
        ),
        (
            "  auth_jwt_key_file $host.json;",
            "test.conf:5: variables in \"auth_jwt_key_file\"",
            "",
        ),
        (
            "  auth_jwt api realm=x;",
            "test.conf:5: invalid parameter \"realm=x\"",
            "",
        ),
        (
            "  auth_jwt api token=cookie;",
            "test.conf:5: invalid token",
            "",
        ),
        ("  auth_jwt_leeway soon;", "test.conf:5: invalid time", ""),
        (
            "  auth_jwt_leeway 500ms;",
            "test.conf:5: invalid value \"500ms\"",
            "whole seconds",
        ),
        (
            "  auth_jwt a;\n  auth_jwt b;",
            "test.conf:6: \"auth_jwt\" directive is duplicate",
            "",
        ),
        (
            "  auth_jwt_claim_set $x a;",
            "test.conf:5:",
            "not allowed here",
        ),
    ];
    for (body, start, part) in cases {
        let errors = load(body);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(start) && e.contains(part)),
            "{body}: {errors:?}"
        );
    }
    let errors = load_errors("events {}\nhttp {\n auth_jwt_claim_set $jwt_claim_x x;\n}\n");
    assert!(
        !errors.is_empty(),
        "a claim_set over a built-in name loaded"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_reload_rotates_keys_and_a_broken_key_file_keeps_the_old_ones() {
    let b = backend("app", Behave::Echo).await;
    let old = signer("ES384");
    let new = signer("HS512");
    let conf = format!(
        "events {{}}\nhttp {{\n server {{\n  listen 127.0.0.1:0;\n  auth_jwt api;\n  auth_jwt_key_file keys.json;\n  location / {{ proxy_pass http://{}; }}\n }}\n}}\n",
        b.addr
    );
    let g = start_with(&conf, &[("keys.json", &jwks(&[old.jwk()]))]).await;
    let old_token = format!("Bearer {}", old.token(json!({}), json!({"sub": "o"})));
    let new_token = format!("Bearer {}", new.token(json!({}), json!({"sub": "n"})));
    assert_eq!(bearer(g.addr(), "/", Some(&old_token)).await.status, 200);
    assert_eq!(bearer(g.addr(), "/", Some(&new_token)).await.status, 401);

    std::fs::write(g.dir.join("keys.json"), jwks(&[new.jwk()])).expect("rotate");
    g.rt.reload().await.expect("reload");
    assert_eq!(bearer(g.addr(), "/", Some(&new_token)).await.status, 200);
    // The old token was verified and remembered before: a reload forgets it.
    assert_eq!(bearer(g.addr(), "/", Some(&old_token)).await.status, 401);

    std::fs::write(g.dir.join("keys.json"), "{\"keys\": [{\"kty\": \"oct\"}]}").expect("break");
    let errors =
        g.rt.reload()
            .await
            .expect_err("a broken key file was put in force");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("test.conf:6:") && e.contains("no \"k\"")),
        "{errors:?}"
    );
    assert_eq!(bearer(g.addr(), "/", Some(&new_token)).await.status, 200);
}

#[test]
fn auth_jwt_without_a_key_file_is_warned_about() {
    let text = "events {}\nhttp {\n server {\n  listen 127.0.0.1:0;\n  auth_jwt api;\n  location /x { return 200; }\n }\n}\n";
    let config = raftgate::config::load_str(text, "test.conf", std::env::temp_dir())
        .expect("loads, with a warning");
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.starts_with("test.conf:6:") && w.contains("no auth_jwt_key_file")),
        "{:?}",
        config.warnings
    );
}
