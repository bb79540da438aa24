//! Signature checks: jsonwebtoken's pure-Rust backend for every algorithm it has, and
//! RustCrypto's p521 for ES512, which it lacks.

use p521::ecdsa::signature::Verifier;

use super::keys::{Alg, Key, Material};
use super::token::Parsed;

/// Whether `key` verifies the token's signature under `alg`. A key of another family
/// never does (the caller only offers keys that fit, and this holds regardless).
pub fn signature_ok(key: &Key, alg: Alg, t: &Parsed<'_>) -> bool {
    if !key.fits(alg) {
        return false;
    }
    match (&key.material, alg.to_jwt()) {
        (Material::P521(vk), None) => p521::ecdsa::Signature::from_slice(&t.sig)
            .is_ok_and(|sig| vk.verify(t.signing_input, &sig).is_ok()),
        (
            Material::Oct(k) | Material::Rsa(k) | Material::Ec(_, k) | Material::Ed25519(k),
            Some(a),
        ) => jsonwebtoken::crypto::verify(t.sig_b64, t.signing_input, k, a).unwrap_or(false),
        _ => false,
    }
}
