//! What the server measures about itself (seed 001 `performance_metrics` and
//! `integration_logs`): each GraphQL operation over HTTP adds its duration to its tenant's
//! bucket of its operation name and minute, and each call by a partner or widget key is
//! kept (key prefix only, bodies redacted and cut at 4 KiB, the caller's address hashed).
//! The scheduler's tick writes a tenant's finished minutes (count, p50, p95, error rate)
//! and its pending calls in the tenant's own transaction ([`flush`]); both tables are
//! purged after 30 days. Memory stays bounded: at most [`MAX_SAMPLES`] durations per
//! bucket (the count stays exact), [`MAX_BUCKETS`] buckets and [`MAX_PENDING_CALLS`] calls
//! waiting; past them, what does not fit is counted in `dropped` and not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::schema::{integration_logs, performance_metrics};
use crate::db::Tenant;

/// Durations kept per bucket for its percentiles.
pub const MAX_SAMPLES: usize = 2_000;
/// Buckets (tenant × operation × minute) waiting to be written.
pub const MAX_BUCKETS: usize = 50_000;
/// Partner and widget calls waiting to be written.
pub const MAX_PENDING_CALLS: usize = 20_000;
/// A logged body is cut at this many bytes.
pub const MAX_BODY_BYTES: usize = 4_096;
/// How deep a logged body is redacted (deeper parts are replaced).
const MAX_DEPTH: usize = 32;

/// An operation's name and minute.
type BucketKey = (String, DateTime<Utc>);
/// A finished minute of an operation: its name, its start, its bucket.
type Minute = (String, DateTime<Utc>, Bucket);

#[derive(Default)]
struct Bucket {
    count: u64,
    errors: u64,
    samples: Vec<f64>,
}

/// One partner or widget call, as it is logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub tenant: Uuid,
    pub key_prefix: Option<String>,
    pub method: &'static str,
    pub request: Value,
    pub status: i32,
    pub response: Value,
    pub ip_hash: Option<String>,
    pub user_agent: Option<String>,
    pub at: DateTime<Utc>,
}

/// The collector (one per process).
pub struct Observed {
    enabled: AtomicBool,
    /// Per tenant (a tenant's tick takes its own without reading the others').
    buckets: Mutex<HashMap<Uuid, HashMap<BucketKey, Bucket>>>,
    calls: Mutex<HashMap<Uuid, Vec<Call>>>,
    /// Buckets and calls held, against [`MAX_BUCKETS`] and [`MAX_PENDING_CALLS`].
    held: Mutex<(usize, usize)>,
    pub dropped: AtomicU64,
}

pub static OBSERVED: LazyLock<Observed> = LazyLock::new(|| Observed {
    enabled: AtomicBool::new(true),
    buckets: Mutex::new(HashMap::new()),
    calls: Mutex::new(HashMap::new()),
    held: Mutex::new((0, 0)),
    dropped: AtomicU64::new(0),
});

fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

impl Observed {
    /// Off on instances that write nothing (no scheduler): nothing is collected.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// One operation of `tenant`: its name (as the metrics label it), duration, and
    /// whether it answered errors.
    pub fn operation(
        &self,
        tenant: Uuid,
        name: &str,
        millis: f64,
        failed: bool,
        at: DateTime<Utc>,
    ) {
        if !AtomicBool::load(&self.enabled, Ordering::Relaxed) {
            return;
        }
        let mut buckets = self.buckets.lock().expect("the buckets");
        let tenants = buckets.entry(tenant).or_default();
        let key = (name.to_owned(), minute_of(at));
        if !tenants.contains_key(&key) {
            let mut held = self.held.lock().expect("the counts");
            if held.0 >= MAX_BUCKETS {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            held.0 += 1;
        }
        let bucket = tenants.entry(key).or_default();
        bucket.count += 1;
        bucket.errors += u64::from(failed);
        if bucket.samples.len() < MAX_SAMPLES {
            bucket.samples.push(millis);
        }
    }

    /// One call of a partner or widget key.
    pub fn call(&self, call: Call) {
        if !AtomicBool::load(&self.enabled, Ordering::Relaxed) {
            return;
        }
        {
            let mut held = self.held.lock().expect("the counts");
            if held.1 >= MAX_PENDING_CALLS {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            held.1 += 1;
        }
        let mut calls = self.calls.lock().expect("the calls");
        calls.entry(call.tenant).or_default().push(call);
    }

    /// Takes `tenant`'s minutes ended before `now` and its pending calls.
    fn take(&self, tenant: Uuid, now: DateTime<Utc>) -> (Vec<Minute>, Vec<Call>) {
        let current = minute_of(now);
        let minutes: Vec<Minute> = {
            let mut buckets = self.buckets.lock().expect("the buckets");
            let Some(mine) = buckets.get_mut(&tenant) else {
                return (Vec::new(), self.take_calls(tenant));
            };
            let ended: Vec<BucketKey> = mine
                .keys()
                .filter(|(_, minute)| *minute < current)
                .cloned()
                .collect();
            let minutes = ended
                .into_iter()
                .filter_map(|key| mine.remove(&key).map(|b| (key.0, key.1, b)))
                .collect();
            if mine.is_empty() {
                buckets.remove(&tenant);
            }
            minutes
        };
        self.held.lock().expect("the counts").0 -= minutes.len();
        (minutes, self.take_calls(tenant))
    }

    fn take_calls(&self, tenant: Uuid) -> Vec<Call> {
        let mine = self
            .calls
            .lock()
            .expect("the calls")
            .remove(&tenant)
            .unwrap_or_default();
        self.held.lock().expect("the counts").1 -= mine.len();
        mine
    }
}

/// The `p`-th percentile (0–100) of `samples`, nearest rank.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil().max(1.0) as usize;
    samples[rank.min(samples.len()) - 1]
}

/// Writes the tenant's finished minutes into `performance_metrics` (one row per
/// operation and minute: `metric_value` p50 ms, `response_time_ms` p95, `success_rate`,
/// `error_count`, and in `metadata` the operation, count, p50, p95 and error rate) and its
/// pending calls into `integration_logs`. Answers how many rows of each.
pub async fn flush(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> QueryResult<(usize, usize)> {
    let (minutes, calls) = OBSERVED.take(scope.id(), now);
    let measured = minutes.len();
    if !minutes.is_empty() {
        use performance_metrics as m;
        let rows: Vec<_> = minutes
            .into_iter()
            .map(|(operation, minute, mut bucket)| {
                let p50 = percentile(&mut bucket.samples, 50.0);
                let p95 = percentile(&mut bucket.samples, 95.0);
                let error_rate = bucket.errors as f64 / bucket.count.max(1) as f64;
                let decimal = |v: f64, scale: i64| {
                    bigdecimal::BigDecimal::try_from(v)
                        .unwrap_or_default()
                        .with_scale_round(scale, bigdecimal::RoundingMode::HalfEven)
                };
                (
                    m::tenant_id.eq(scope.id()),
                    m::event_type.eq("api_response"),
                    m::metric_name.eq("response_time"),
                    m::metric_value.eq(decimal(p50, 3)),
                    m::metric_unit.eq("ms"),
                    m::response_time_ms.eq(Some(p95.round().min(i32::MAX as f64) as i32)),
                    m::success_rate.eq(Some(decimal(1.0 - error_rate, 4))),
                    m::error_count.eq(bucket.errors.min(i32::MAX as u64) as i32),
                    m::source_component.eq(Some("graphql")),
                    m::metadata.eq(json!({
                        "operationName": operation, "count": bucket.count, "p50Ms": p50,
                        "p95Ms": p95, "errorRate": error_rate,
                    })),
                    m::recorded_at.eq(minute),
                )
            })
            .collect();
        diesel::insert_into(m::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    let written = calls.len();
    if !calls.is_empty() {
        use integration_logs as l;
        let rows: Vec<_> = calls
            .into_iter()
            .map(|c| {
                (
                    l::tenant_id.eq(scope.id()),
                    l::api_key.eq(c.key_prefix),
                    l::endpoint.eq("/graphql"),
                    l::method.eq(c.method),
                    l::request_body.eq(Some(c.request)),
                    l::response_status.eq(Some(c.status)),
                    l::response_body.eq(Some(c.response)),
                    l::ip_hash.eq(c.ip_hash),
                    l::user_agent.eq(c.user_agent),
                    l::created_at.eq(c.at),
                )
            })
            .collect();
        diesel::insert_into(l::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok((measured, written))
}

// ---- redaction --------------------------------------------------------------------------

/// Whether a JSON key names a secret (its value is never logged).
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace(['_', '-'], "");
    [
        "password",
        "secret",
        "token",
        "credential",
        "authorization",
        "apikey",
        "privatekey",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// A text with its email addresses and API keys replaced.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        let is_key = (word.starts_with("gg_") || word.starts_with("wgt_")) && word.len() >= 20;
        let is_email = word
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        out.push_str(match (is_key, is_email) {
            (true, _) => "[key]",
            (_, true) => "[email]",
            _ => word,
        });
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || "._%+-@".contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A JSON value with the values of secret keys, email addresses and API keys replaced;
/// parts deeper than 32 levels are replaced too.
pub fn redact(value: &Value) -> Value {
    fn walk(value: &Value, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return json!("[deep]");
        }
        match value {
            Value::String(s) => Value::String(redact_text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, depth + 1)).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| match secret_key(k) {
                        true => (k.clone(), json!("[redacted]")),
                        false => (k.clone(), walk(v, depth + 1)),
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(value, 0)
}

/// A logged body: redacted, and past [`MAX_BODY_BYTES`] its text's beginning instead.
pub fn logged(value: &Value) -> Value {
    let redacted = redact(value);
    let text = redacted.to_string();
    if text.len() <= MAX_BODY_BYTES {
        return redacted;
    }
    let mut end = MAX_BODY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({ "truncated": true, "bytes": text.len(), "text": &text[..end] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_emails_and_keys_never_reach_a_log() {
        let body = json!({
            "query": "mutation { upsertCustomer(input: { email: \"ann@example.com\" }) { id } }",
            "variables": { "input": { "email": "bob@shop.example", "name": "Bob", "accessToken": "shpat_123",
                "credentials": { "appSecret": "s" }, "note": "key gg_partner_0123456789abcdef0123 here" } },
        });
        let logged = logged(&body);
        let text = logged.to_string();
        for secret in [
            "ann@example.com",
            "bob@shop.example",
            "shpat_123",
            "appSecret\":\"s",
            "gg_partner_0123",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(logged["variables"]["input"]["name"], "Bob");
        assert_eq!(logged["variables"]["input"]["accessToken"], "[redacted]");
        assert_eq!(logged["variables"]["input"]["email"], "[email]");
        assert!(logged["query"]
            .as_str()
            .unwrap()
            .contains("email: \"[email]\""));
        assert_eq!(logged["variables"]["input"]["note"], "key [key] here");
    }

    #[test]
    fn bodies_are_cut_at_4_kib_and_deep_ones_bounded() {
        let big = json!({ "text": "é".repeat(5_000) });
        let cut = logged(&big);
        assert_eq!(cut["truncated"], true);
        assert!(cut["text"].as_str().unwrap().len() <= MAX_BODY_BYTES);
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        // The depth past the bound is replaced.
        let cut = redact(&deep);
        assert!(cut.to_string().contains("[deep]"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut samples, 50.0), 50.0);
        assert_eq!(percentile(&mut samples, 95.0), 95.0);
        assert_eq!(percentile(&mut [7.0], 95.0), 7.0);
    }
}
