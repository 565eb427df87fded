use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;

use super::model::{Delivery, DeliveryStatus, Endpoint};
use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{domain_events, webhook_deliveries, webhook_endpoints};
use crate::db::Tenant;
use crate::domain::{events, user_error, OpResult, UserErrorCode};
use crate::error::AppResult;

/// Consecutive failed deliveries after which an endpoint is disabled.
pub const DISABLE_AFTER_FAILURES: i32 = 5;

pub fn generate_secret() -> String {
    crate::auth::generate_secret("whsec_")
}

/// `v1` signature: hex HMAC-SHA256 of `"{timestamp}.{body}"` with the endpoint's secret.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub async fn create_endpoint(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    url: &str,
    event_types: Vec<String>,
    secret: Option<String>,
) -> OpResult<(Endpoint, String)> {
    let valid_url = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2000
        && url
            .parse::<axum::http::Uri>()
            .is_ok_and(|u| u.host().is_some());
    if !valid_url {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "url"],
            "url must be an http(s) URL",
        ));
    }
    if event_types.len() > 50 || event_types.iter().any(|t| t.is_empty() || t.len() > 100) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "eventTypes"],
            "at most 50 event types of 1-100 characters",
        ));
    }
    let secret = secret.unwrap_or_else(generate_secret);
    if secret.len() < 16 || secret.len() > 200 || secret.contains('\0') {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "secret"],
            "secret must be 16-200 characters",
        ));
    }
    let endpoint = diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::tenant_id.eq(scope.id()),
            webhook_endpoints::url.eq(url),
            webhook_endpoints::event_types
                .eq(event_types.into_iter().map(Some).collect::<Vec<_>>()),
            webhook_endpoints::secret.eq(&secret),
        ))
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await?;
    Ok((endpoint, secret))
}

pub async fn disable_endpoint(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> OpResult<Endpoint> {
    diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq(scope.id()))
            .filter(webhook_endpoints::id.eq(id)),
    )
    .set((
        webhook_endpoints::enabled.eq(false),
        webhook_endpoints::disabled_at.eq(Utc::now()),
    ))
    .returning(Endpoint::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(|| {
        user_error(
            UserErrorCode::NotFound,
            &["input", "id"],
            "no such webhook endpoint",
        )
    })
}

pub async fn endpoints(conn: &mut AsyncPgConnection, scope: Tenant) -> QueryResult<Vec<Endpoint>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(scope.id()))
        .select(Endpoint::as_select())
        .order((webhook_endpoints::created_at, webhook_endpoints::id))
        .load(conn)
        .await
}

/// The delivery log, newest first.
pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    endpoint: Option<Uuid>,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Delivery>> {
    use webhook_deliveries as d;
    let mut query = d::table
        .filter(d::tenant_id.eq(scope.id()))
        .select(Delivery::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(endpoint, |v| d::endpoint_id.eq(v));
    query = crate::keyset!(query, page, d::created_at, d::id, desc);
    Ok(query.load(conn).await?)
}

/// What one delivery attempt sends.
pub struct Outgoing {
    pub url: String,
    pub secret: String,
    pub event_id: i64,
    pub body: Vec<u8>,
}

/// url, secret, enabled, event id, type, subject, payload, occurred at.
type OutgoingRow = (
    String,
    String,
    bool,
    i64,
    String,
    Uuid,
    serde_json::Value,
    DateTime<Utc>,
);

/// Loads what to send for a delivery (None when the endpoint is gone or disabled).
pub async fn outgoing(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    delivery: Uuid,
) -> QueryResult<Option<Outgoing>> {
    let row: Option<OutgoingRow> = webhook_deliveries::table
        .inner_join(
            webhook_endpoints::table.on(webhook_endpoints::id.eq(webhook_deliveries::endpoint_id)),
        )
        .inner_join(domain_events::table.on(domain_events::id.eq(webhook_deliveries::event_id)))
        .filter(webhook_deliveries::tenant_id.eq(scope.id()))
        .filter(webhook_deliveries::id.eq(delivery))
        .select((
            webhook_endpoints::url,
            webhook_endpoints::secret,
            webhook_endpoints::enabled,
            domain_events::id,
            domain_events::event_type,
            domain_events::subject_id,
            domain_events::payload,
            domain_events::occurred_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.filter(|r| r.2).map(
        |(url, secret, _, event_id, event_type, subject, payload, occurred_at)| Outgoing {
            url,
            secret,
            event_id,
            body: serde_json::to_vec(&json!({
                "id": event_id.to_string(),
                "type": event_type,
                "subjectId": subject,
                "occurredAt": occurred_at,
                "payload": payload,
            }))
            .expect("serialisable"),
        },
    ))
}

/// Records an attempt's outcome: success resets the endpoint's failure streak; a final
/// failure counts towards disabling the endpoint.
pub async fn record_attempt(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    delivery: Uuid,
    outcome: Result<i32, (Option<i32>, String)>,
    final_attempt: bool,
) -> QueryResult<()> {
    use webhook_deliveries as d;
    use webhook_endpoints as e;
    let target = d::table
        .filter(d::tenant_id.eq(scope.id()))
        .filter(d::id.eq(delivery));
    let endpoint: Uuid = match &outcome {
        Ok(status) => {
            diesel::update(target)
                .set((
                    d::status.eq(DeliveryStatus::Succeeded),
                    d::attempts.eq(d::attempts + 1),
                    d::response_status.eq(Some(*status)),
                    d::error.eq(None::<String>),
                    d::delivered_at.eq(Utc::now()),
                ))
                .returning(d::endpoint_id)
                .get_result(conn)
                .await?
        }
        Err((status, error)) => {
            diesel::update(target)
                .set((
                    d::status.eq(if final_attempt {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Pending
                    }),
                    d::attempts.eq(d::attempts + 1),
                    d::response_status.eq(*status),
                    d::error.eq(Some(error.clone())),
                ))
                .returning(d::endpoint_id)
                .get_result(conn)
                .await?
        }
    };
    let endpoint_row = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .filter(e::id.eq(endpoint));
    if outcome.is_ok() {
        diesel::update(endpoint_row)
            .set(e::consecutive_failures.eq(0))
            .execute(conn)
            .await?;
        return Ok(());
    }
    let failures: i32 = diesel::update(endpoint_row)
        .set(e::consecutive_failures.eq(e::consecutive_failures + 1))
        .returning(e::consecutive_failures)
        .get_result(conn)
        .await?;
    if failures >= DISABLE_AFTER_FAILURES {
        let disabled = diesel::update(endpoint_row.filter(e::enabled.eq(true)))
            .set((e::enabled.eq(false), e::disabled_at.eq(Utc::now())))
            .execute(conn)
            .await?;
        if disabled > 0 {
            events::record(
                conn,
                scope,
                "webhook.endpoint_disabled",
                endpoint,
                json!({ "consecutiveFailures": failures }),
            )
            .await?;
        }
    }
    Ok(())
}
