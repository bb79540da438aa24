//! The JWT variables: `$jwt_claim_NAME` and `$jwt_header_NAME` for top-level fields, and
//! the variables `auth_jwt_claim_set` / `auth_jwt_header_set` define for nested ones.

use serde_json::Value;

use crate::http::req::Req;
use crate::vars::{DynVar, VarKind};

/// The variable provider for `$jwt_claim_*` and `$jwt_header_*`. Not cached per request:
/// a request that moves to another location (a rewrite) may move to other keys; the
/// token's check itself is remembered for the request.
pub fn provider(name: &str) -> Option<VarKind> {
    let (get, suffix): (crate::vars::PrefixGetter, &str) =
        if let Some(s) = name.strip_prefix("jwt_claim_") {
            (claim, s)
        } else if let Some(s) = name.strip_prefix("jwt_header_") {
            (header, s)
        } else {
            return None;
        };
    (!suffix.is_empty()).then(|| VarKind::Prefix {
        get,
        suffix: suffix.into(),
        cache: false,
    })
}

fn claim(req: &mut Req, name: &str) -> Option<String> {
    format(super::verified(req)?.claims.get(name)?)
}

fn header(req: &mut Req, name: &str) -> Option<String> {
    format(super::verified(req)?.header.get(name)?)
}

/// `auth_jwt_claim_set $var NAME...` (or `auth_jwt_header_set`): the value at `path`,
/// one name per level of nesting.
#[derive(Debug)]
pub struct PathVar {
    pub header: bool,
    pub path: Vec<String>,
}

impl DynVar for PathVar {
    fn get(&self, req: &mut Req) -> Option<String> {
        let v = super::verified(req)?;
        let top = if self.header { &v.header } else { &v.claims };
        let (first, rest) = self.path.split_first()?;
        let mut at = top.get(first)?;
        for name in rest {
            at = at.as_object()?.get(name)?;
        }
        format(at)
    }
}

/// A claim as a variable's text: a string as itself, a number or boolean as JSON writes
/// it, an array as its elements joined with commas (strings bare, others as JSON), an
/// object as compact JSON. `null` is no value.
pub fn format(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_values_as_text() {
        assert_eq!(format(&json!("a b")), Some("a b".into()));
        assert_eq!(format(&json!(42)), Some("42".into()));
        assert_eq!(format(&json!(1.5)), Some("1.5".into()));
        assert_eq!(format(&json!(true)), Some("true".into()));
        assert_eq!(format(&json!(null)), None);
        assert_eq!(
            format(&json!(["Users", "Administrator", 3, {"x": 1}])),
            Some("Users,Administrator,3,{\"x\":1}".into())
        );
        assert_eq!(
            format(&json!({"b": 1, "a": [2]})),
            Some("{\"b\":1,\"a\":[2]}".into())
        );
        assert_eq!(format(&json!([])), Some(String::new()));
    }

    #[test]
    fn the_provider_knows_only_its_prefixes() {
        assert!(
            matches!(provider("jwt_claim_sub"), Some(VarKind::Prefix { suffix, .. }) if &*suffix == "sub")
        );
        assert!(
            matches!(provider("jwt_header_alg"), Some(VarKind::Prefix { suffix, .. }) if &*suffix == "alg")
        );
        assert!(provider("jwt_claim_").is_none());
        assert!(provider("jwt_claims").is_none());
        assert!(provider("http_jwt_claim_x").is_none());
    }
}
