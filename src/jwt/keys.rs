//! JSON Web Key Sets (RFC 7517), read once per configuration load: `oct` keys for HS*,
//! `RSA` for RS*, `EC` P-256/P-384/P-521 for ES256/384/512, `OKP` Ed25519 for EdDSA.
//!
//! Every key is checked as it is read — lengths, curve points, the `alg` it names — so a
//! broken key file is a configuration error at its `auth_jwt_key_file` line rather than a
//! stream of 401s. Keys of other types (`kty` raftgate does not know) and keys marked
//! `"use": "enc"` are skipped with a warning: a key set often serves more than one purpose.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};

/// The signature algorithms a token may name, as RFC 7518 spells them (exactly, case
/// included). `none` is not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl Alg {
    pub fn parse(s: &str) -> Option<Alg> {
        Some(match s {
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "EdDSA" => Alg::EdDSA,
            _ => return None,
        })
    }

    /// jsonwebtoken's name for it; `None` for ES512, which it does not verify.
    pub(crate) fn to_jwt(self) -> Option<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm as A;
        Some(match self {
            Alg::HS256 => A::HS256,
            Alg::HS384 => A::HS384,
            Alg::HS512 => A::HS512,
            Alg::RS256 => A::RS256,
            Alg::RS384 => A::RS384,
            Alg::RS512 => A::RS512,
            Alg::ES256 => A::ES256,
            Alg::ES384 => A::ES384,
            Alg::EdDSA => A::EdDSA,
            Alg::ES512 => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

/// A key ready to verify with.
#[derive(Clone)]
pub enum Material {
    Oct(DecodingKey),
    Rsa(DecodingKey),
    Ec(Curve, DecodingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(DecodingKey),
}

impl Material {
    fn kind(&self) -> &'static str {
        match self {
            Material::Oct(_) => "oct",
            Material::Rsa(_) => "RSA",
            Material::Ec(Curve::P256, _) => "EC P-256",
            Material::Ec(Curve::P384, _) => "EC P-384",
            Material::P521(_) => "EC P-521",
            Material::Ed25519(_) => "OKP Ed25519",
        }
    }
}

/// One key of a set.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The `alg` the key is restricted to, when the key set says.
    pub alg: Option<Alg>,
    pub material: Material,
}

// Key material is not printed: a configuration dump must not carry secrets.
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kty", &self.material.kind())
            .finish()
    }
}

impl Key {
    /// Whether this key may verify a token signed with `alg`: the right family and
    /// curve (so an HMAC token is never checked against an RSA public key, the "key
    /// confusion" attack), and the key's own `alg` if it names one.
    pub fn fits(&self, alg: Alg) -> bool {
        let family = matches!(
            (&self.material, alg),
            (Material::Oct(_), Alg::HS256 | Alg::HS384 | Alg::HS512)
                | (Material::Rsa(_), Alg::RS256 | Alg::RS384 | Alg::RS512)
                | (Material::Ec(Curve::P256, _), Alg::ES256)
                | (Material::Ec(Curve::P384, _), Alg::ES384)
                | (Material::P521(_), Alg::ES512)
                | (Material::Ed25519(_), Alg::EdDSA)
        );
        family && self.alg.is_none_or(|a| a == alg)
    }
}

/// Reads a JWK Set: the keys, and a warning for each key skipped. `Err` names the first
/// key that is broken (by its position and `kid`) and why.
pub fn parse_jwks(text: &str) -> Result<(Vec<Key>, Vec<String>), String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    let keys = match doc.get("keys") {
        Some(Value::Array(keys)) => keys,
        _ => return Err("not a JSON Web Key Set: no \"keys\" array".into()),
    };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let Value::Object(k) = k else {
            return Err(format!("key {}: not a JSON object", i + 1));
        };
        let name = match k.get("kid").and_then(Value::as_str) {
            Some(kid) => format!("key {} (kid \"{kid}\")", i + 1),
            None => format!("key {}", i + 1),
        };
        match key(k) {
            Ok(Some(key)) => out.push(key),
            Ok(None) => warnings.push(format!(
                "{name} skipped: not a signature key of a supported type"
            )),
            Err(why) => return Err(format!("{name}: {why}")),
        }
    }
    if out.is_empty() {
        return Err("the key set holds no usable signature key".into());
    }
    Ok((out, warnings))
}

/// One key; `Ok(None)` for a key of another kind or use.
fn key(k: &Map<String, Value>) -> Result<Option<Key>, String> {
    if k.get("use").and_then(Value::as_str) == Some("enc") {
        return Ok(None);
    }
    let kid = match k.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"kid\" is not a string".into()),
    };
    let alg = match k.get("alg") {
        None => None,
        Some(Value::String(s)) => match Alg::parse(s) {
            Some(a) => Some(a),
            None => return Err(format!("unsupported \"alg\" \"{s}\"")),
        },
        Some(_) => return Err("\"alg\" is not a string".into()),
    };
    let kty = match k.get("kty") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err("no \"kty\"".into()),
    };
    let material = match kty {
        "oct" => {
            let secret = bytes(k, "k")?;
            if secret.is_empty() {
                return Err("empty \"k\"".into());
            }
            Material::Oct(DecodingKey::from_secret(&secret))
        }
        "RSA" => {
            let n = unsigned(bytes(k, "n")?);
            let e = unsigned(bytes(k, "e")?);
            // rsa verifies moduli of up to 4096 bits; below 1024 a key is not one.
            if !(128..=512).contains(&n.len()) {
                return Err(format!("an RSA modulus of {} bits", n.len() * 8));
            }
            if e.is_empty() || e.len() > 8 || e == [1] || e.last().is_some_and(|b| b % 2 == 0) {
                return Err("a bad RSA exponent".into());
            }
            Material::Rsa(DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => ec(k)?,
        "OKP" => match k.get("crv").and_then(Value::as_str) {
            Some("Ed25519") => {
                let x = bytes(k, "x")?;
                if x.len() != 32 {
                    return Err("an Ed25519 \"x\" that is not 32 bytes".into());
                }
                let x = URL_SAFE_NO_PAD.encode(x);
                Material::Ed25519(DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?)
            }
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let key = Key { kid, alg, material };
    if let Some(a) = alg {
        if !key.fits(a) {
            return Err(format!(
                "\"alg\" {a:?} does not fit a {} key",
                key.material.kind()
            ));
        }
    }
    Ok(Some(key))
}

fn ec(k: &Map<String, Value>) -> Result<Material, String> {
    let crv = k.get("crv").and_then(Value::as_str).unwrap_or("");
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        "P-521" => 66,
        other => return Err(format!("unsupported curve \"{other}\"")),
    };
    let (x, y) = (bytes(k, "x")?, bytes(k, "y")?);
    if x.len() != size || y.len() != size {
        return Err(format!("{crv} coordinates must be {size} bytes each"));
    }
    let mut sec1 = Vec::with_capacity(1 + 2 * size);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    let not_on_curve = || format!("the point is not on {crv}");
    let jwt_key = || {
        DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(&x), &URL_SAFE_NO_PAD.encode(&y))
            .map_err(|e| e.to_string())
    };
    Ok(match size {
        32 => {
            p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| not_on_curve())?;
            Material::Ec(Curve::P256, jwt_key()?)
        }
        48 => {
            p384::PublicKey::from_sec1_bytes(&sec1).map_err(|_| not_on_curve())?;
            Material::Ec(Curve::P384, jwt_key()?)
        }
        _ => Material::P521(
            p521::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| not_on_curve())?,
        ),
    })
}

fn bytes(k: &Map<String, Value>, field: &str) -> Result<Vec<u8>, String> {
    match k.get(field) {
        Some(Value::String(s)) => URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| format!("\"{field}\" is not base64url")),
        Some(_) => Err(format!("\"{field}\" is not a string")),
        None => Err(format!("no \"{field}\"")),
    }
}

/// A big-endian integer without its leading zero bytes.
fn unsigned(mut b: Vec<u8>) -> Vec<u8> {
    let zeros = b.iter().take_while(|x| **x == 0).count();
    b.drain(..zeros);
    b
}
