//! Standard Webhooks secrets and signatures.
//!
//! The scheme (standardwebhooks.com, "Signature scheme"): every request
//! carries `webhook-id` (the message id, the same on every retry),
//! `webhook-timestamp` (integer Unix seconds of this attempt) and
//! `webhook-signature`, a space-separated list of `v1,<base64>` entries. Each
//! entry is the HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`
//! keyed with the bytes a `whsec_<base64>` secret decodes to. During a
//! secret rotation the sender signs with the old and the new secret, so a
//! receiver holding either one accepts the request.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the attempt's Unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a symmetric secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// The timestamp window the specification's libraries enforce (5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The specification recommends keys of 24 to 64 bytes; shorter keys are
/// weak, and every key this crate generates is 32 bytes.
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;
const GENERATED_KEY_BYTES: usize = 32;
const VERSION: &str = "v1";

/// Why a secret's text is not a usable `whsec_` secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    /// The text does not start with `whsec_`.
    #[error("a webhook secret starts with \"whsec_\"")]
    MissingPrefix,
    /// The part after the prefix is not standard base64.
    #[error("a webhook secret is \"whsec_\" followed by standard base64, which this is not")]
    NotBase64,
    /// The key is shorter or longer than the specification recommends.
    #[error("a webhook secret's key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {0}")]
    BadLength(usize),
}

/// A Standard Webhooks symmetric secret (`whsec_<base64 key>`).
///
/// Debug output never shows the key; [`WebhookSecret::expose`] is the one
/// way to read it, for showing it once to the admin who created it. There
/// is no `PartialEq`: a byte-by-byte comparison of keys would leak timing.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    /// Parses the `whsec_<base64>` text form.
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretFormatError::MissingPrefix)?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| SecretFormatError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretFormatError::BadLength(key.len()));
        }
        Ok(Self { key })
    }

    /// A new secret of 32 random bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self { key }
    }

    /// The `whsec_<base64>` text, to show once or to seal at rest.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail; the
        // fallback keeps the function total without an unwrap.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretFormatError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The `webhook-signature` header value: one `v1,<base64>` entry per secret,
/// in the order given (current secret first during a rotation). An empty
/// list of secrets gives an empty string, which no receiver accepts.
pub fn sign(msg_id: &str, timestamp: i64, body: &[u8], secrets: &[&WebhookSecret]) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .map(|secret| {
            let tag = secret.mac(msg_id, &timestamp, body).finalize().into_bytes();
            format!("{VERSION},{}", BASE64.encode(tag))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three signature headers of one received request, as text.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`.
    pub timestamp: &'a str,
    /// `webhook-signature`.
    pub signature: &'a str,
}

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not an integer number of seconds.
    #[error("webhook-timestamp is not integer Unix seconds")]
    InvalidTimestamp,
    /// The timestamp is older than the tolerance allows (a replay).
    #[error("webhook-timestamp is {0} s older than the tolerance allows")]
    TooOld(u64),
    /// The timestamp is further in the future than the tolerance allows.
    #[error("webhook-timestamp is {0} s further in the future than the tolerance allows")]
    TooNew(u64),
    /// No `v1` entry matches the body under this secret.
    #[error("no v1 signature matches")]
    NoMatch,
}

/// Checks a received request the way a receiver must: the timestamp within
/// `tolerance` of `now` (Unix seconds), then any `v1` entry equal, in
/// constant time, to the HMAC of the body under `secret`.
pub fn verify(
    headers: &SignedHeaders<'_>,
    body: &[u8],
    secret: &WebhookSecret,
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = headers
        .timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    let age = now.saturating_sub(ts);
    if age > tolerance {
        return Err(VerifyError::TooOld(age.abs_diff(tolerance)));
    }
    let ahead = age.saturating_neg();
    if ahead > tolerance {
        return Err(VerifyError::TooNew(ahead.abs_diff(tolerance)));
    }
    // Signed over the timestamp text as received, which is what the sender
    // signed (the parse above only judged its freshness).
    let mac = secret.mac(headers.id, headers.timestamp.trim(), body);
    let matched = headers
        .signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, tag)| BASE64.decode(tag).ok())
        // `verify_slice` compares in constant time.
        .any(|tag| mac.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_secret() -> WebhookSecret {
        WebhookSecret::parse(SPEC_SECRET).expect("the specification's secret parses")
    }

    fn headers<'a>(ts: &'a str, signature: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id: SPEC_ID,
            timestamp: ts,
            signature,
        }
    }

    #[test]
    fn the_specification_test_vector() {
        let secret = spec_secret();
        assert_eq!(
            sign(SPEC_ID, SPEC_TS, SPEC_BODY, &[&secret]),
            SPEC_SIGNATURE
        );
        assert_eq!(secret.expose(), SPEC_SECRET);
        let ts = SPEC_TS.to_string();
        verify(
            &headers(&ts, SPEC_SIGNATURE),
            SPEC_BODY,
            &secret,
            DEFAULT_TOLERANCE,
            SPEC_TS + 10,
        )
        .expect("the published signature verifies");
    }

    #[test]
    fn two_secrets_give_two_entries_each_verifying() {
        let old = spec_secret();
        let new = WebhookSecret::generate();
        let header = sign(SPEC_ID, SPEC_TS, SPEC_BODY, &[&new, &old]);
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2, "{header}");
        assert_eq!(entries[1], SPEC_SIGNATURE);
        assert!(entries[0].starts_with("v1,") && entries[0] != SPEC_SIGNATURE);
        let ts = SPEC_TS.to_string();
        for secret in [&old, &new] {
            verify(
                &headers(&ts, &header),
                SPEC_BODY,
                secret,
                DEFAULT_TOLERANCE,
                SPEC_TS,
            )
            .expect("either secret verifies");
        }
        assert_eq!(sign(SPEC_ID, SPEC_TS, SPEC_BODY, &[]), "");
    }

    #[test]
    fn verify_rejects_what_it_must() {
        let secret = spec_secret();
        let ts = SPEC_TS.to_string();
        let check = |h: SignedHeaders<'_>, body: &[u8], secret: &WebhookSecret, now: i64| {
            verify(&h, body, secret, DEFAULT_TOLERANCE, now)
        };
        let good = headers(&ts, SPEC_SIGNATURE);
        assert_eq!(
            check(good, SPEC_BODY, &WebhookSecret::generate(), SPEC_TS),
            Err(VerifyError::NoMatch),
            "wrong secret"
        );
        assert_eq!(
            check(good, br#"{"test": 2432232315}"#, &secret, SPEC_TS),
            Err(VerifyError::NoMatch),
            "tampered body"
        );
        let other_id = SignedHeaders {
            id: "msg_other",
            ..good
        };
        assert_eq!(
            check(other_id, SPEC_BODY, &secret, SPEC_TS),
            Err(VerifyError::NoMatch),
            "another message id"
        );
        assert_eq!(
            check(good, SPEC_BODY, &secret, SPEC_TS + 301),
            Err(VerifyError::TooOld(1)),
            "old timestamp"
        );
        assert!(check(good, SPEC_BODY, &secret, SPEC_TS + 300).is_ok());
        assert_eq!(
            check(good, SPEC_BODY, &secret, SPEC_TS - 301),
            Err(VerifyError::TooNew(1)),
            "future timestamp"
        );
        assert_eq!(
            check(headers("soon", SPEC_SIGNATURE), SPEC_BODY, &secret, SPEC_TS),
            Err(VerifyError::InvalidTimestamp)
        );
        // Another scheme's entry, garbage and a truncated tag never match;
        // a good entry among them does.
        let sig = SPEC_SIGNATURE.trim_start_matches("v1,");
        let noisy = format!("v1a,{sig} v1,!!! v1,{} {SPEC_SIGNATURE}", &sig[..10]);
        assert_eq!(
            check(
                headers(&ts, &noisy[..noisy.len() - SPEC_SIGNATURE.len()]),
                SPEC_BODY,
                &secret,
                SPEC_TS
            ),
            Err(VerifyError::NoMatch)
        );
        assert!(check(headers(&ts, &noisy), SPEC_BODY, &secret, SPEC_TS).is_ok());
    }

    #[test]
    fn secrets_parse_strictly_and_never_print() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(SecretFormatError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").err(),
            Some(SecretFormatError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").err(),
            Some(SecretFormatError::BadLength(5))
        );
        let secret = WebhookSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        let again = WebhookSecret::parse(&text).expect("its own text parses");
        assert_eq!(again.expose(), text);
        assert_ne!(WebhookSecret::generate().expose(), text);
        let debug = format!("{secret:?}");
        assert!(!debug.contains(&text[SECRET_PREFIX.len()..]), "{debug}");
        assert!(debug.contains("redacted"));
    }
}
