//! The auth_jwt directives.
//!
//! Key files are read while the configuration loads, and a key file that cannot be read or
//! holds a broken key is an error at its line: a configuration with it is never put in
//! force (a reload keeps the running one), so a typo in a key file never turns into 401s
//! for every client.

use std::sync::Arc;

use crate::config::values::parse_time;
use crate::config::{ctx, Args, Cx, Directive, Handler, Spec};
use crate::http::build::HttpBuild;
use crate::http::LocConf;

use super::claims::PathVar;
use super::{AuthJwt, KeySet};

use ctx::{HTTP, HTTP_ANY};

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "auth_jwt", contexts: HTTP_ANY, args: Args::Between(1, 2), block: false, handler: Handler::Level(auth_jwt) },
    Spec { name: "auth_jwt_key_file", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(auth_jwt_key_file) },
    Spec { name: "auth_jwt_leeway", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(auth_jwt_leeway) },
    Spec { name: "auth_jwt_claim_set", contexts: HTTP, args: Args::AtLeast(2), block: false, handler: Handler::Http(auth_jwt_claim_set) },
    Spec { name: "auth_jwt_header_set", contexts: HTTP, args: Args::AtLeast(2), block: false, handler: Handler::Http(auth_jwt_header_set) },
];

fn auth_jwt(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    if l.jwt.auth.is_some() {
        return Err("\"auth_jwt\" directive is duplicate".into());
    }
    if d.arg(0) == "off" && d.args.len() == 1 {
        l.jwt.auth = Some(None);
        return Ok(());
    }
    let realm = cx.template(d, d.arg(0)).ok_or("")?;
    let token = match d.args.get(1) {
        None => None,
        Some(w) => {
            let v = w
                .value
                .strip_prefix("token=")
                .ok_or_else(|| format!("invalid parameter \"{}\"", w.value))?;
            if !v.starts_with('$') {
                return Err(format!(
                    "invalid token \"{v}\": the token must be a variable, e.g. token=$cookie_auth"
                ));
            }
            Some(cx.template(d, v).ok_or("")?)
        }
    };
    l.jwt.auth = Some(Some(Arc::new(AuthJwt { realm, token })));
    Ok(())
}

fn auth_jwt_key_file(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    let name = d.arg(0);
    if name.contains('$') {
        return Err(format!(
            "variables in \"auth_jwt_key_file\" are not supported: \"{name}\""
        ));
    }
    let path = cx.path(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the JWK set \"{}\": {e}", path.display()))?;
    let (keys, warnings) = super::keys::parse_jwks(&text)
        .map_err(|e| format!("the JWK set \"{}\": {e}", path.display()))?;
    for w in warnings {
        cx.diags
            .warn_at(d, &format!("the JWK set \"{}\": {w}", path.display()));
    }
    // Several files at one level make one set (as nginx 1.21.1 allows).
    let mut all = l
        .jwt
        .keys
        .as_ref()
        .map(|k| k.keys.clone())
        .unwrap_or_default();
    all.extend(keys);
    if all.iter().filter(|k| k.kid.is_none()).count() > super::MAX_CANDIDATES {
        cx.diags.warn_at(
            d,
            &format!(
                "more than {} keys without a \"kid\": a token without a \"kid\" is checked against the first {} that fit its \"alg\" only",
                super::MAX_CANDIDATES,
                super::MAX_CANDIDATES
            ),
        );
    }
    l.jwt.keys = Some(Arc::new(KeySet::new(all)));
    Ok(())
}

fn auth_jwt_leeway(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    if l.jwt.leeway.is_some() {
        return Err("\"auth_jwt_leeway\" directive is duplicate".into());
    }
    let leeway = parse_time(d.arg(0))?;
    // nginx reads it in seconds; a fraction would silently round down to nothing.
    if leeway.subsec_nanos() != 0 {
        return Err(format!(
            "invalid value \"{}\": \"auth_jwt_leeway\" takes whole seconds",
            d.arg(0)
        ));
    }
    l.jwt.leeway = Some(leeway);
    Ok(())
}

fn auth_jwt_claim_set(cx: &mut Cx, _: &mut HttpBuild, d: &Directive) -> Result<(), String> {
    path_var(cx, d, false)
}

fn auth_jwt_header_set(cx: &mut Cx, _: &mut HttpBuild, d: &Directive) -> Result<(), String> {
    path_var(cx, d, true)
}

fn path_var(cx: &mut Cx, d: &Directive, header: bool) -> Result<(), String> {
    let name = d
        .arg(0)
        .strip_prefix('$')
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("invalid variable name \"{}\"", d.arg(0)))?;
    let path = d.args[1..].iter().map(|w| w.value.clone()).collect();
    cx.vars
        .define_dyn(name, Arc::new(PathVar { header, path }))?;
    Ok(())
}
