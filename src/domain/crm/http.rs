//! What the connectors share about speaking HTTP to a CRM: one client (bounded times, no
//! redirects) and one reading of its answers (rate limits, transient and permanent
//! failures, the CRM's own message kept for the admin).

use std::time::Duration;

use serde_json::Value;

use super::provider::CrmError;

/// A CRM's message as kept for the admin: at most 500 characters.
pub fn kept(message: &str) -> String {
    message.chars().take(500).collect()
}

/// The HTTP client of the connectors.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// Sends `request` to `crm` and reads its answer: the JSON body of a success (`Null` when
/// empty), else `RateLimited` (429, after its `Retry-After`, 2 s without one), `Failed`
/// (unreachable, 5xx: retried with backoff) or `Refused` (any other status, with the CRM's
/// message).
pub async fn send(crm: &str, request: reqwest::RequestBuilder) -> Result<Value, CrmError> {
    let response = request
        .send()
        .await
        .map_err(|e| CrmError::Failed(format!("{crm} could not be reached: {e}")))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0);
    let text = response
        .text()
        .await
        .map_err(|e| CrmError::Failed(format!("{crm}'s answer was cut: {e}")))?;
    let body: Option<Value> = serde_json::from_str(&text).ok();
    if status.as_u16() == 429 {
        let seconds = retry_after.unwrap_or(2.0).min(3600.0);
        return Err(CrmError::RateLimited {
            retry_after: Duration::from_secs_f64(seconds),
        });
    }
    if status.is_server_error() {
        return Err(CrmError::Failed(format!("{crm} answered {status}")));
    }
    if !status.is_success() {
        let body = body.unwrap_or(Value::Null);
        let message = match (&body["message"], &body["errors"]) {
            (Value::String(m), _) => m.clone(),
            (_, Value::String(e)) => e.clone(),
            (_, Value::Null) => text.clone(),
            (_, other) => other.to_string(),
        };
        return Err(CrmError::Refused(kept(&format!(
            "{crm} answered {status}: {message}"
        ))));
    }
    match body {
        Some(body) => Ok(body),
        None if text.trim().is_empty() => Ok(Value::Null),
        None => Err(CrmError::Failed(format!(
            "{crm} answered something that is not JSON"
        ))),
    }
}
