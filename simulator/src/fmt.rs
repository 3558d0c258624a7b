//! Wire formats of timestamps and ids, as Graph and the identity platform write them.

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use rand::{Rng, RngCore};

/// Message DateTimeOffset: `2024-01-15T11:26:41Z` (no fraction).
pub fn msg_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Event created/lastModified: `2024-01-15T11:26:39.1524133Z` (7 fraction digits).
pub fn evt_ts(t: DateTime<Utc>) -> String {
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() / 100)
}

/// dateTimeTimeZone.dateTime: `2024-01-22T02:30:00.0000000` (no offset).
pub fn local_ts(t: NaiveDateTime) -> String {
    format!("{}.{:07}", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() / 100)
}

/// innerError.date: `2023-02-20T05:06:48` (no zone designator).
pub fn inner_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Token endpoint timestamp: `2016-01-09 02:02:12Z`.
pub fn token_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An Exchange-looking opaque id: a prefix and base64url with padding (so it can hold `-`, `_`, `=`).
pub fn exchange_id(rng: &mut impl RngCore, prefix: &str, nbytes: usize) -> String {
    let mut b = vec![0u8; nbytes];
    rng.fill_bytes(&mut b);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE.encode(b))
}

/// A GUID string from the rng.
pub fn guid(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// An opaque random token (access/refresh tokens, codes) from the thread rng.
pub fn opaque_token(nbytes: usize) -> String {
    let mut b = vec![0u8; nbytes];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A fresh request id.
pub fn request_id() -> String {
    guid(&mut rand::rng())
}

/// Uniform float in [0, 1) from any rng.
pub fn unit(rng: &mut impl Rng) -> f64 {
    rng.random::<f64>()
}
