//! A validator of JSON answers against the official NGINX Plus API v2 specification
//! (`tests/spec/nginx-plus-api-v2.yaml`, a copy of `shared/reference`): types, enums,
//! members, and the documented status codes and error codes of each operation.
//!
//! The spec lists no `required` members, so this validator requires every member a
//! definition names, except those nginx itself leaves out until they have a value (see
//! [`OPTIONAL`]), and refuses members the definition does not name: an answer must have
//! exactly the v2 shape.

use serde_json::Value;
use serde_yaml::Value as Yaml;

/// Members nginx omits until they mean something: `service` without SRV, `selected`
/// before the first pick, `downstart` while up, the timings before the first response,
/// `last_passed` before the first health check, `queue` without `queue`, `parent` and
/// `host` for servers not produced by DNS resolution, `route`/`drain` where HTTP-only.
pub const OPTIONAL: &[&str] = &[
    "service",
    "selected",
    "downstart",
    "header_time",
    "response_time",
    "last_passed",
    "queue",
    "parent",
    "host",
    "route",
    "drain",
];

pub struct Spec {
    doc: Yaml,
}

impl Spec {
    pub fn load() -> Spec {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/spec/nginx-plus-api-v2.yaml"
        );
        let text = std::fs::read_to_string(path).expect("the spec is in the repository");
        Spec {
            doc: serde_yaml::from_str(&text).expect("the spec is YAML"),
        }
    }

    /// The operation of `path` (a spec path template such as `/slabs/{slabZoneName}`)
    /// for `method`.
    fn operation(&self, path: &str, method: &str) -> &Yaml {
        let op = &self.doc["paths"][path][method.to_ascii_lowercase().as_str()];
        assert!(!op.is_null(), "the spec has no {method} {path}");
        op
    }

    /// Every path template the spec defines, with its methods.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Yaml::Mapping(paths) = &self.doc["paths"] {
            for (p, ops) in paths {
                if let (Some(p), Yaml::Mapping(ops)) = (p.as_str(), ops) {
                    for m in ops.keys().filter_map(Yaml::as_str) {
                        if m != "parameters" {
                            out.push((p.to_string(), m.to_ascii_uppercase()));
                        }
                    }
                }
            }
        }
        out
    }

    /// Checks an answer to `method path`: its status is documented for the operation,
    /// its body matches the documented schema, and an error's code is the one the spec
    /// documents for that status. Returns the problems found.
    /// `partial`: the answer was cut down by `fields=`, so members may be missing.
    pub fn check(
        &self,
        path: &str,
        method: &str,
        status: u16,
        body: &str,
        partial: bool,
    ) -> Vec<String> {
        let op = self.operation(path, method);
        let response = &op["responses"][status.to_string().as_str()];
        if response.is_null() {
            return vec![format!(
                "{method} {path}: status {status} is not documented"
            )];
        }
        let schema = &response["schema"];
        if schema.is_null() {
            return if body.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "{method} {path} {status}: a body where none is documented"
                )]
            };
        }
        let value: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return vec![format!("{method} {path} {status}: not JSON ({e}): {body}")],
        };
        let mut problems = Vec::new();
        let at = format!("{method} {path} {status}");
        self.validate(schema, &value, &at, partial, &mut problems);
        if status >= 400 {
            let code = value["error"]["code"].as_str().unwrap_or("");
            let documented = response["description"].as_str().unwrap_or("");
            if !documented.contains(&format!("*{code}*")) {
                problems.push(format!(
                    "{method} {path} {status}: code {code} is not documented ({documented:?})"
                ));
            }
        }
        problems
    }

    fn resolve<'a>(&'a self, schema: &'a Yaml) -> &'a Yaml {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/definitions/");
                self.resolve(&self.doc["definitions"][name])
            }
            None => schema,
        }
    }

    pub fn validate(
        &self,
        schema: &Yaml,
        v: &Value,
        at: &str,
        partial: bool,
        out: &mut Vec<String>,
    ) {
        let schema = self.resolve(schema);
        let ty = schema["type"].as_str().unwrap_or("object");
        let ok = match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "boolean" => v.is_boolean(),
            "number" => v.is_number(),
            _ => true,
        };
        if !ok {
            out.push(format!("{at}: expected {ty}, got {v}"));
            return;
        }
        if let Yaml::Sequence(allowed) = &schema["enum"] {
            let allowed: Vec<&str> = allowed.iter().filter_map(Yaml::as_str).collect();
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                out.push(format!("{at}: {v} is not one of {allowed:?}"));
            }
        }
        if schema["format"].as_str() == Some("date-time") {
            let s = v.as_str().unwrap_or("");
            let shape = s.len() >= 20
                && s.as_bytes()[4] == b'-'
                && s.as_bytes()[10] == b'T'
                && s.ends_with('Z');
            if !shape {
                out.push(format!("{at}: {s:?} is not an ISO 8601 date-time"));
            }
        }
        match (ty, v) {
            ("object", Value::Object(m)) => {
                if let Yaml::Mapping(props) = &schema["properties"] {
                    for (name, sub) in props {
                        let name = name.as_str().unwrap_or("");
                        match m.get(name) {
                            Some(x) => self.validate(sub, x, &format!("{at}.{name}"), partial, out),
                            None if partial || OPTIONAL.contains(&name) => {}
                            None => out.push(format!("{at}: member {name:?} is missing")),
                        }
                    }
                    for k in m.keys() {
                        if !props.contains_key(k.as_str()) {
                            out.push(format!("{at}: member {k:?} is not in the spec"));
                        }
                    }
                }
                let extra = &schema["additionalProperties"];
                if !extra.is_null() {
                    for (k, x) in m {
                        self.validate(extra, x, &format!("{at}[{k}]"), partial, out);
                    }
                }
            }
            ("array", Value::Array(items)) => {
                for (i, x) in items.iter().enumerate() {
                    self.validate(&schema["items"], x, &format!("{at}[{i}]"), partial, out);
                }
            }
            _ => {}
        }
    }
}
