//! Delivery status reported by the providers: SendGrid's Event Webhook (a JSON array of
//! events, signed with ECDSA P-256 over the timestamp and the raw body) and Twilio's
//! status callbacks (a form, signed with HMAC-SHA1 of the URL and the sorted parameters
//! under the account's auth token). Verification comes before parsing; nothing of an
//! unverified request is read further.

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::comms::model::MessageStatus;

/// At most this many events per request (SendGrid batches them).
pub const MAX_EVENTS: usize = 1_000;

/// Which message a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef {
    /// Ours, echoed back by the provider (SendGrid's custom argument).
    Id(Uuid),
    /// The provider's id of it.
    Provider(String),
}

/// One status report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub message: MessageRef,
    /// Where the message moves (if it is ahead of where it is); `None` for reports that
    /// move nothing (deferred, still sending).
    pub status: Option<MessageStatus>,
    /// The recipient asked not to get such messages again.
    pub unsubscribe: bool,
    pub at: DateTime<Utc>,
    /// The provider's words about a failure.
    pub detail: Option<String>,
    /// The provider's name of the event (`delivered`, `open`, `undelivered`, …).
    pub event: String,
}

/// Why a hook request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the signature is missing or does not verify.
    Signature,
    /// 400: the body is not what the provider sends.
    Malformed(String),
}

/// The uncompressed P-256 point of a SubjectPublicKeyInfo (base64 DER, as SendGrid shows
/// the verification key, or PEM).
fn p256_point(key: &str) -> Option<Vec<u8>> {
    const SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let base64: String = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .split_whitespace()
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    (der.len() == SPKI_PREFIX.len() + 65 && der.starts_with(&SPKI_PREFIX) && der[26] == 4)
        .then(|| der[SPKI_PREFIX.len()..].to_vec())
}

/// SendGrid's signature: `X-Twilio-Email-Event-Webhook-Signature` (base64 ASN.1 ECDSA)
/// over `X-Twilio-Email-Event-Webhook-Timestamp` followed by the raw body.
pub fn verify_sendgrid(
    verification_key: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(Refusal::Signature);
    };
    let point = p256_point(verification_key).ok_or(Refusal::Signature)?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Refusal::Signature)?;
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(&signed, &signature)
        .map_err(|_| Refusal::Signature)
}

/// Twilio's signature: `X-Twilio-Signature` = base64 HMAC-SHA1 under the auth token of
/// the URL Twilio called followed by each form parameter, sorted by name, as name+value.
pub fn verify_twilio(
    auth_token: &str,
    signature: Option<&str>,
    url: &str,
    params: &[(String, String)],
) -> Result<(), Refusal> {
    let signature = signature.ok_or(Refusal::Signature)?;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Refusal::Signature)?;
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .map_err(|_| Refusal::Signature)?;
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac.verify_slice(&expected).map_err(|_| Refusal::Signature)
}

fn malformed(message: &str) -> Refusal {
    Refusal::Malformed(message.to_owned())
}

fn text(value: &Value, max: usize) -> Option<String> {
    value
        .as_str()
        .filter(|s| !s.contains('\0'))
        .map(|s| s.chars().take(max).collect())
}

/// The events of a SendGrid Event Webhook request.
pub fn parse_sendgrid(body: &[u8]) -> Result<Vec<Report>, Refusal> {
    let events: Value =
        serde_json::from_slice(body).map_err(|_| malformed("the body is not a JSON array"))?;
    let events = events
        .as_array()
        .ok_or_else(|| malformed("the body is not a JSON array"))?;
    if events.len() > MAX_EVENTS {
        return Err(malformed("too many events in one request"));
    }
    let mut reports = Vec::with_capacity(events.len());
    for event in events {
        let name = text(&event["event"], 64).ok_or_else(|| malformed("an event has no `event`"))?;
        let message = match event["growthgraph_message_id"]
            .as_str()
            .and_then(|id| id.parse::<Uuid>().ok())
        {
            Some(id) => MessageRef::Id(id),
            None => {
                // `sg_message_id` is the `X-Message-Id` of the send, then `.filter…`.
                let id = text(&event["sg_message_id"], 200)
                    .ok_or_else(|| malformed("an event names no message"))?;
                let id = id.split('.').next().unwrap_or_default().to_owned();
                MessageRef::Provider(id)
            }
        };
        let at = event["timestamp"]
            .as_i64()
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
            .unwrap_or_else(Utc::now);
        let status = match name.as_str() {
            "processed" => Some(MessageStatus::Sent),
            "delivered" => Some(MessageStatus::Delivered),
            "open" => Some(MessageStatus::Opened),
            "click" => Some(MessageStatus::Clicked),
            "bounce" => Some(MessageStatus::Bounced),
            "dropped" => Some(MessageStatus::Failed),
            "spamreport" => Some(MessageStatus::Complained),
            _ => None, // deferred, unsubscribe, group_unsubscribe, group_resubscribe
        };
        let detail = text(&event["reason"], 500).or_else(|| text(&event["response"], 500));
        reports.push(Report {
            message,
            status,
            unsubscribe: matches!(
                name.as_str(),
                "unsubscribe" | "group_unsubscribe" | "spamreport"
            ),
            at,
            detail,
            event: name,
        });
    }
    Ok(reports)
}

/// The form of a Twilio status callback, as (name, value) pairs for the signature.
pub fn twilio_params(body: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map_err(|_| malformed("the body is not a form"))
}

/// The report of a Twilio status callback.
pub fn parse_twilio(params: &[(String, String)]) -> Result<Report, Refusal> {
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.contains('\0'))
    };
    let sid = field("MessageSid")
        .or_else(|| field("SmsSid"))
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or_else(|| malformed("no MessageSid"))?;
    let event = field("MessageStatus")
        .or_else(|| field("SmsStatus"))
        .filter(|s| s.len() <= 32)
        .ok_or_else(|| malformed("no MessageStatus"))?;
    let status = match event {
        "sent" => Some(MessageStatus::Sent),
        "delivered" => Some(MessageStatus::Delivered),
        "read" => Some(MessageStatus::Opened),
        "undelivered" | "failed" => Some(MessageStatus::Failed),
        _ => None, // accepted, queued, sending, scheduled, canceled, …
    };
    let detail = field("ErrorCode").map(|code| match field("ErrorMessage") {
        Some(message) => format!(
            "Twilio error {code}: {}",
            message.chars().take(400).collect::<String>()
        ),
        None => format!("Twilio error {code}"),
    });
    Ok(Report {
        message: MessageRef::Provider(sid.to_owned()),
        status,
        unsubscribe: false,
        at: Utc::now(),
        detail,
        event: event.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    #[test]
    fn sendgrid_signatures_verify_with_the_public_key_and_fail_on_a_tampered_body() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let key = base64::engine::general_purpose::STANDARD.encode(&spki);
        let body = br#"[{"event":"delivered","sg_message_id":"abc.filter1","timestamp":1}]"#;
        let mut signed = b"1700000000".to_vec();
        signed.extend_from_slice(body);
        let signature = base64::engine::general_purpose::STANDARD
            .encode(pair.sign(&rng, &signed).unwrap().as_ref());
        assert_eq!(
            verify_sendgrid(&key, Some(&signature), Some("1700000000"), body),
            Ok(())
        );
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{key}\n-----END PUBLIC KEY-----\n");
        assert_eq!(
            verify_sendgrid(&pem, Some(&signature), Some("1700000000"), body),
            Ok(())
        );
        let tampered = br#"[{"event":"delivered","sg_message_id":"abd.filter1","timestamp":1}]"#;
        assert_eq!(
            verify_sendgrid(&key, Some(&signature), Some("1700000000"), tampered),
            Err(Refusal::Signature)
        );
        assert_eq!(
            verify_sendgrid(&key, Some(&signature), Some("1700000001"), body),
            Err(Refusal::Signature)
        );
        assert_eq!(
            verify_sendgrid(&key, None, Some("1"), body),
            Err(Refusal::Signature)
        );
        let reports = parse_sendgrid(body).unwrap();
        assert_eq!(reports[0].message, MessageRef::Provider("abc".into()));
        assert_eq!(reports[0].status, Some(MessageStatus::Delivered));
    }

    #[test]
    fn twilio_signatures_follow_twilios_published_example() {
        // Twilio's documentation example (auth token 12345).
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            verify_twilio("12345", Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), url, &params),
            Ok(())
        );
        assert_eq!(
            verify_twilio("12346", Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), url, &params),
            Err(Refusal::Signature)
        );
        let mut tampered = params.clone();
        tampered[2].1 = "1235".into();
        assert_eq!(
            verify_twilio(
                "12345",
                Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
                url,
                &tampered
            ),
            Err(Refusal::Signature)
        );
    }
}
