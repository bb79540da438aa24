//! Keyval request bodies in, JSON responses out.
//!
//! A keyval body is a flat JSON object: `{"key": value, ...}`. It is parsed in one pass
//! with a visitor that never descends below the object's values, so nesting depth costs
//! nothing and serde_json's recursion limit is never approached. The first problem in
//! document order decides the answer:
//!
//! - not JSON at all (malformed, truncated, trailing bytes, invalid UTF-8, a lone
//!   surrogate escape, an empty body) → 415 `JsonError`;
//! - JSON, but not an object → 400 `KeyvalFormatError`;
//! - a value that is an object or an array → 400 `KeyvalFormatError` ("nested object or
//!   list"), reported as soon as the parser reaches it: a body that is nested *and*
//!   malformed after that point answers 400, not 415;
//! - a key longer than [`MAX_KEY_BYTES`], or keys and values together longer than
//!   [`MAX_PAIRS_BYTES`] → 400 `KeyvalFormatError`.
//!
//! Values: strings are stored as given. Numbers and booleans are stored as their JSON text,
//! as NGINX API v7 does (a POST of `{"a":1}` reads back `"1"`): integers as written,
//! fractions in the shortest form that reads back the same number (`1.50` → `"1.5"`,
//! `1e3` → `"1000.0"`), since the parser keeps the number, not its spelling. `null`
//! is kept as `None`: PATCH uses it to delete a key, and POST refuses it.
//!
//! Duplicate keys in one object are kept, in order, so that the reducer can refuse a POST
//! that names a key twice (409 `KeyvalKeyExists`) rather than one of them silently winning.

use std::cell::Cell;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

use super::error::{ApiError, INTERNAL_ERROR};

/// The longest key accepted: nginx's keyval node stores a key's length in 16 bits, and
/// such a key is already far beyond anything a `keyval` lookup is built from.
pub const MAX_KEY_BYTES: usize = 65_535;

/// The most key and value bytes one request may carry. It bounds one Raft entry (every
/// node stores and applies it) whatever `client_max_body_size` allows, and with it any
/// single value.
pub const MAX_PAIRS_BYTES: usize = 1 << 20;

/// A keyval body's pairs in document order; `None` is a JSON `null`.
pub type Pairs = Vec<(String, Option<String>)>;

/// Parses a keyval POST or PATCH body (see the module docs for the rules).
pub fn parse_pairs(body: &[u8]) -> Result<Pairs, ApiError> {
    let problem = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Top { problem: &problem }
        .deserialize(&mut de)
        .and_then(|pairs| de.end().map(|()| pairs));
    match parsed {
        Ok(pairs) => Ok(pairs),
        Err(e) => Err(problem
            .take()
            .unwrap_or_else(|| ApiError::json(format!("invalid JSON: {e}")))),
    }
}

/// The body as a whole: an object, visited key by key.
struct Top<'p> {
    problem: &'p Cell<Option<ApiError>>,
}

impl Top<'_> {
    fn refuse<T, E: de::Error>(&self, text: &str) -> Result<T, E> {
        self.problem.set(Some(ApiError::keyval_format(text)));
        Err(E::custom(text))
    }

    fn not_an_object<T, E: de::Error>(&self) -> Result<T, E> {
        self.refuse("the body must be a JSON object of key-value pairs")
    }
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Pairs;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Pairs, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Pairs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of key-value pairs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
        let mut pairs = Vec::new();
        let mut total = 0usize;
        while let Some(key) = map.next_key::<String>()? {
            if key.len() > MAX_KEY_BYTES {
                return self.refuse(&format!("key is longer than {MAX_KEY_BYTES} bytes"));
            }
            let value = map.next_value_seed(Scalar {
                problem: self.problem,
            })?;
            total = total
                .saturating_add(key.len())
                .saturating_add(value.as_ref().map_or(0, String::len));
            if total > MAX_PAIRS_BYTES {
                return self.refuse(&format!(
                    "keys and values are longer than {MAX_PAIRS_BYTES} bytes"
                ));
            }
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Pairs, A::Error> {
        self.not_an_object()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Pairs, E> {
        self.not_an_object()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Pairs, E> {
        self.not_an_object()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Pairs, E> {
        self.not_an_object()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Pairs, E> {
        self.not_an_object()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Pairs, E> {
        self.not_an_object()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Pairs, E> {
        self.not_an_object()
    }
}

/// One value of the object: a scalar as the text to store, or `None` for `null`.
struct Scalar<'p> {
    problem: &'p Cell<Option<ApiError>>,
}

impl Scalar<'_> {
    /// Refuses a nested value without reading into it.
    fn nested<T, E: de::Error>(&self) -> Result<T, E> {
        self.problem
            .set(Some(ApiError::keyval_format("nested object or list")));
        Err(E::custom("nested object or list"))
    }
}

impl<'de> DeserializeSeed<'de> for Scalar<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalar<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<String>, E> {
        Ok(Some(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        // serde_json's own spelling (ryu): the JSON text of the parsed number.
        match serde_json::Number::from_f64(v) {
            Some(n) => Ok(Some(n.to_string())),
            None => Err(E::custom("not a finite number")),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Option<String>, A::Error> {
        self.nested()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Option<String>, A::Error> {
        self.nested()
    }
}

/// A JSON object from already sorted `(name, value)` pairs, serialized in that order
/// without building a map.
pub struct Object<'a, V>(pub &'a [(&'a str, V)]);

impl<V: Serialize> Serialize for Object<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (*k, v)))
    }
}

/// `value` as a JSON body, or a 500 should encoding ever fail.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::new(500, INTERNAL_ERROR, format!("cannot encode JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Pairs {
        parse_pairs(body.as_bytes()).expect("accepted")
    }

    fn err(body: &[u8]) -> (u16, &'static str, String) {
        let e = parse_pairs(body).expect_err("refused");
        (e.status, e.code, e.text)
    }

    fn s(k: &str, v: &str) -> (String, Option<String>) {
        (k.to_string(), Some(v.to_string()))
    }

    #[test]
    fn strings_numbers_booleans_and_null() {
        assert_eq!(ok(r#"{"k":"v"}"#), vec![s("k", "v")]);
        assert_eq!(
            ok(r#"{"a":1,"b":-2,"c":1.50,"d":1e3,"e":true,"f":false,"g":null}"#),
            vec![
                s("a", "1"),
                s("b", "-2"),
                s("c", "1.5"),
                s("d", "1000.0"),
                s("e", "true"),
                s("f", "false"),
                ("g".to_string(), None),
            ]
        );
        assert_eq!(ok("{}"), vec![]);
        assert_eq!(ok(" {\"é\" : \"\\u00e9\\n\"} "), vec![s("é", "é\n")]);
        assert_eq!(ok(r#"{"":""}"#), vec![s("", "")]);
    }

    #[test]
    fn duplicate_keys_are_kept_in_order() {
        assert_eq!(
            ok(r#"{"a":"1","b":"2","a":"3"}"#),
            vec![s("a", "1"), s("b", "2"), s("a", "3")]
        );
    }

    #[test]
    fn malformed_json_is_415() {
        for body in [
            &b""[..],
            b"{",
            b"{\"a\":}",
            b"{\"a\":\"b\"",
            b"{\"a\":\"b\"} x",
            b"{\"a\":\"b\",}",
            b"{'a':'b'}",
            b"{\"a\":\"\xff\"}",
            b"\xef\xbb\xbf{}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":NaN}",
        ] {
            let (status, code, text) = err(body);
            assert_eq!((status, code), (415, "JsonError"), "{body:?}: {text}");
            assert!(text.starts_with("invalid JSON: "), "{text}");
        }
    }

    #[test]
    fn valid_json_that_is_not_an_object_is_a_format_error() {
        for body in ["[]", "[{\"a\":\"b\"}]", "\"a\"", "1", "true", "null"] {
            assert_eq!(
                err(body.as_bytes()),
                (
                    400,
                    "KeyvalFormatError",
                    "the body must be a JSON object of key-value pairs".to_string()
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn nested_values_are_format_errors_at_any_depth() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        for body in [
            r#"{"a":{}}"#,
            r#"{"a":[]}"#,
            r#"{"a":{"b":"c"}}"#,
            r#"{"ok":"1","a":["x"]}"#,
            // Nested first, malformed after: the first problem wins.
            r#"{"a":[1,2"#,
            &deep,
        ] {
            assert_eq!(
                err(body.as_bytes()),
                (
                    400,
                    "KeyvalFormatError",
                    "nested object or list".to_string()
                ),
                "{}",
                &body[..body.len().min(40)]
            );
        }
        // Malformed before the nested value: 415.
        assert_eq!(err(br#"{"x" "a":{}}"#).0, 415);
    }

    #[test]
    fn size_limits() {
        let long_key = "k".repeat(MAX_KEY_BYTES);
        assert_eq!(ok(&format!(r#"{{"{long_key}":"v"}}"#)).len(), 1);
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        let (status, code, text) = err(format!(r#"{{"{too_long}":"v"}}"#).as_bytes());
        assert_eq!((status, code), (400, "KeyvalFormatError"));
        assert_eq!(text, "key is longer than 65535 bytes");

        let big = "v".repeat(MAX_PAIRS_BYTES - 1);
        assert_eq!(ok(&format!(r#"{{"k":"{big}"}}"#)).len(), 1);
        let (status, code, text) = err(format!(r#"{{"k":"{big}","l":""}}"#).as_bytes());
        assert_eq!((status, code), (400, "KeyvalFormatError"));
        assert_eq!(text, "keys and values are longer than 1048576 bytes");
    }

    #[test]
    fn objects_serialize_in_the_given_order() {
        let zone = [("a", "1"), ("b", "\"q\"")];
        assert_eq!(
            &encode(&Object(&zone)).expect("json")[..],
            br#"{"a":"1","b":"\"q\""}"#
        );
        let empty: [(&str, &str); 0] = [];
        let all = [("one", Object(&zone[..1])), ("two", Object(&empty[..]))];
        assert_eq!(
            &encode(&Object(&all)).expect("json")[..],
            br#"{"one":{"a":"1"},"two":{}}"#
        );
        assert_eq!(&encode(&[2]).expect("json")[..], b"[2]");
    }
}
