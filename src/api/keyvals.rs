//! `/http/keyvals/` and `/stream/keyvals/` (NGINX-PLUS.md §1.4), over the replicated
//! keyval zones.
//!
//! - `GET /keyvals/` → `{zone: {key: value}}` for every zone of that block, zones and keys
//!   sorted. `fields=` (empty) lists the zones only, each as `{}`: the answer keeps the
//!   `NginxHTTPKeyvalZonesMap` shape that clients decode [unverified: the spec says only
//!   "only zone names are output"]. A non-empty `fields=a,b` keeps
//!   only those keys in each zone: nginx's field filter applied to keyval zone objects,
//!   whose fields are their keys [unverified for keyvals]. The zone endpoint ignores
//!   `fields` (the spec gives it none there).
//! - `GET /keyvals/{zone}` → `{key: value, ...}`; `?key=k` → `{"k": "v"}`, or 404
//!   `KeyvalKeyNotFound`; an unknown zone → 404 `KeyvalNotFound`. `key` is matched
//!   exactly, whatever the zone's `type` (that is the spec's "particular key-value pair").
//! - `POST {"k": "v", ...}` → 201: several pairs only into an empty zone (the reducer
//!   decides, atomically: 400 "only one key can be added"), an existing key → 409
//!   `KeyvalKeyExists`, an empty object → 400 "no key", a `null` value → 400 (only PATCH
//!   gives `null` a meaning), the empty key → 400 "empty key" (the reducer's rule).
//! - `PATCH {"k": "v2"}` → 204, `{"k": null}` → 204 and the key is gone, a missing key →
//!   404 `KeyvalKeyNotFound`, more than one key → 400 "only one key can be updated".
//! - `DELETE` → 204 and the zone is empty.
//!
//! A refused request changes nothing: bodies are validated whole before anything is
//! proposed, and the reducer applies a command entirely or not at all.

use bytes::Bytes;
use raftgate_raft::{Command, KeyvalFormat, Kind, Rejected, State, ZoneRef};

use super::error::ApiError;
use super::json::{encode, parse_pairs, Object};
use super::route::Query;
use super::{now_ms, rejected, write, ApiResponse, Backend};

/// `GET /{http,stream}/keyvals/`.
pub(crate) fn get_all<B: Backend>(
    b: &B,
    kind: Kind,
    query: &Query,
) -> Result<ApiResponse, ApiError> {
    let fields = query.get("fields");
    let body = b.with_state(|s| all_zones(s, kind, fields))?;
    Ok(ApiResponse::json(200, body))
}

/// The collection's body; `fields` as in the module docs.
pub fn all_zones(s: &State, kind: Kind, fields: Option<&str>) -> Result<Bytes, ApiError> {
    let wanted: Option<Vec<&str>> =
        fields.map(|f| f.split(',').filter(|n| !n.is_empty()).collect());
    let zones: Vec<(&str, Vec<(&str, &str)>)> = s
        .keyval_zones()
        .filter(|z| z.kind == kind)
        .map(|z| {
            let pairs = match &wanted {
                None => s
                    .keyval_entries(z)
                    .map(Iterator::collect)
                    .unwrap_or_default(),
                Some(names) => names
                    .iter()
                    .filter_map(|n| s.keyval_get(z, n).map(|v| (*n, v)))
                    .collect::<Vec<_>>(),
            };
            (z.name.as_str(), pairs)
        })
        .map(|(name, mut pairs)| {
            // `fields` may name keys out of order or twice; the answer is sorted.
            pairs.sort_unstable();
            pairs.dedup_by(|a, b| a.0 == b.0);
            (name, pairs)
        })
        .collect();
    let objects: Vec<(&str, Object<'_, &str>)> = zones
        .iter()
        .map(|(name, pairs)| (*name, Object(pairs.as_slice())))
        .collect();
    encode(&Object(objects.as_slice()))
}

/// `GET /{http,stream}/keyvals/{zone}`.
pub(crate) fn get_zone<B: Backend>(
    b: &B,
    zone: &ZoneRef,
    query: &Query,
) -> Result<ApiResponse, ApiError> {
    let body = b.with_state(|s| one_zone(s, zone, query.get("key")))?;
    Ok(ApiResponse::json(200, body))
}

/// The zone endpoint's body: the whole zone, or only `key`.
pub fn one_zone(s: &State, zone: &ZoneRef, key: Option<&str>) -> Result<Bytes, ApiError> {
    let Some(entries) = s.keyval_entries(zone) else {
        return Err(rejected(Rejected::UnknownZone { zone: zone.clone() }));
    };
    match key {
        None => {
            let pairs: Vec<(&str, &str)> = entries.collect();
            encode(&Object(pairs.as_slice()))
        }
        Some(k) => match s.keyval_get(zone, k) {
            Some(v) => encode(&Object(&[(k, v)])),
            None => Err(rejected(Rejected::KeyNotFound { key: k.to_string() })),
        },
    }
}

/// The pairs of a POST body, checked as far as the body alone allows; the reducer
/// checks the rest against the zone.
pub fn add_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = parse_pairs(body)?;
    if pairs.is_empty() {
        return Err(rejected(Rejected::KeyvalFormat(KeyvalFormat::NoKey)));
    }
    pairs
        .into_iter()
        .map(|(k, v)| match v {
            Some(v) => Ok((k, v)),
            None => Err(ApiError::keyval_format(format!(
                "key \"{k}\" has a null value: only PATCH deletes a key with null"
            ))),
        })
        .collect()
}

/// What a PATCH body asks: set a key (`Some`) or delete it (`None`).
pub fn patch_pair(body: &[u8]) -> Result<(String, Option<String>), ApiError> {
    let mut pairs = parse_pairs(body)?;
    match pairs.len() {
        0 => Err(rejected(Rejected::KeyvalFormat(KeyvalFormat::NoKey))),
        1 => pairs
            .pop()
            .ok_or_else(|| rejected(Rejected::KeyvalFormat(KeyvalFormat::NoKey))),
        _ => Err(rejected(Rejected::KeyvalFormat(
            KeyvalFormat::OnlyOneKeyUpdated,
        ))),
    }
}

/// The command a PATCH proposes.
pub fn patch_command(zone: ZoneRef, key: String, value: Option<String>, now_ms: u64) -> Command {
    match value {
        Some(value) => Command::KeyvalSet {
            zone,
            key,
            value,
            now_ms,
        },
        None => Command::KeyvalDelete { zone, key },
    }
}

/// `POST`: 201 once the pairs are in the zone.
pub(crate) async fn post<B: Backend>(
    b: &B,
    zone: ZoneRef,
    body: &[u8],
) -> Result<ApiResponse, ApiError> {
    let pairs = add_pairs(body)?;
    let command = Command::KeyvalAdd {
        zone,
        pairs,
        now_ms: now_ms(),
    };
    write(b, command, 201).await
}

/// `PATCH`: 204 once the key is changed or deleted.
pub(crate) async fn patch<B: Backend>(
    b: &B,
    zone: ZoneRef,
    body: &[u8],
) -> Result<ApiResponse, ApiError> {
    let (key, value) = patch_pair(body)?;
    write(b, patch_command(zone, key, value, now_ms()), 204).await
}

/// `DELETE`: 204 once the zone is empty.
pub(crate) async fn delete<B: Backend>(b: &B, zone: ZoneRef) -> Result<ApiResponse, ApiError> {
    write(b, Command::KeyvalClear { zone }, 204).await
}
