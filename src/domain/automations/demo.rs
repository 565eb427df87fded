//! Viral demo sessions (seed 000): a visitor tries the product without signing up. The
//! session starts on the tenant's public page without a key (`POST /demo/{slug}/sessions`,
//! see `crate::http::demo`), is named afterwards by its token (shown once, stored as its
//! SHA-256), counts its shares and records its conversion once. It lives 24 hours: past
//! that it is hidden everywhere and the scheduler's retention purges it.
//!
//! A visitor is known only by the SHA-256 of their IP address (GDPR: never stored in
//! clear), and may start at most `per_hour` sessions an hour per tenant, also when their
//! requests race.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::model::DemoSession;
use crate::auth::{is_secret, sha256_hex};
use crate::db::schema::demo_sessions as d;
use crate::db::{PgPool, Tenant};
use crate::domain::customers::ops::valid_email;
use crate::domain::{check_https_url, events, user_error, OpResult, UserErrorCode};
use crate::error::AppResult;

/// How long a demo session lives.
pub const LIFETIME_HOURS: i64 = 24;

/// What a visitor gives when starting a session (both optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartDemo {
    pub visitor_email: Option<String>,
    /// Where the visitor's recorded demo video is (an `https` URL).
    pub video_url: Option<String>,
}

/// The tenant whose public page has `slug`, when there is one.
pub async fn tenant_of_slug(pool: &PgPool, slug: &str) -> AppResult<Option<Uuid>> {
    if slug.is_empty() || slug.len() > 100 {
        return Ok(None);
    }
    lookup(pool, "SELECT demo_tenant($1) AS tenant_id", slug).await
}

/// The tenant of the session whose token is `token`, when there is one.
pub async fn tenant_of_token(pool: &PgPool, token: &str) -> AppResult<Option<Uuid>> {
    if !is_secret(token, "dms_") {
        return Ok(None);
    }
    let hash = sha256_hex(token);
    lookup(pool, "SELECT demo_session_tenant($1) AS tenant_id", &hash).await
}

async fn lookup(pool: &PgPool, sql: &'static str, key: &str) -> AppResult<Option<Uuid>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
        tenant_id: Option<Uuid>,
    }
    let mut conn = pool.get().await?;
    let row: Row = diesel::sql_query(sql)
        .bind::<Text, _>(key)
        .get_result(&mut conn)
        .await?;
    Ok(row.tenant_id)
}

/// What [`start`] did.
#[derive(Debug)]
pub enum Started {
    /// The session and its token (shown once).
    Session(DemoSession, String),
    /// The visitor started their hourly number of sessions already; the next may start
    /// in this many seconds. Nothing was written.
    Limited { retry_after_secs: i64 },
}

/// Starts a session for the visitor whose IP hashes to `ip_hash`, unless they started
/// `per_hour` sessions of this tenant in the last hour; bad input is `INVALID` with its
/// field, and nothing is written.
pub async fn start(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ip_hash: &str,
    input: &StartDemo,
    per_hour: i64,
    now: DateTime<Utc>,
) -> OpResult<Started> {
    let email = input
        .visitor_email
        .as_deref()
        .map(|e| e.trim().to_lowercase());
    if email.as_deref().is_some_and(|e| !valid_email(e)) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "visitorEmail"],
            "not an email address",
        ));
    }
    check_https_url("videoUrl", input.video_url.as_deref(), 2048)?;
    // One visitor's starts take turns (per tenant), so that racing requests cannot all
    // pass the count below.
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1 || $2, 7))")
        .bind::<Text, _>(scope.id().to_string())
        .bind::<Text, _>(ip_hash)
        .execute(conn)
        .await?;
    // The visitor's starts within the hour, newest first: the `per_hour`-th leaves the
    // window first.
    let recent: Vec<DateTime<Utc>> = d::table
        .filter(d::tenant_id.eq(scope.id()))
        .filter(d::ip_hash.eq(ip_hash))
        .filter(d::created_at.gt(now - Duration::hours(1)))
        .select(d::created_at)
        .order(d::created_at.desc())
        .limit(per_hour.max(1))
        .load(conn)
        .await?;
    if recent.len() as i64 >= per_hour {
        let leaves = recent.last().map_or(now, |at| *at + Duration::hours(1));
        return Ok(Started::Limited {
            retry_after_secs: (leaves - now).num_seconds().max(1),
        });
    }
    let token = crate::auth::generate_secret("dms_");
    let session: DemoSession = diesel::insert_into(d::table)
        .values((
            d::tenant_id.eq(scope.id()),
            d::session_token.eq(sha256_hex(&token)),
            d::visitor_email.eq(email),
            d::ip_hash.eq(ip_hash),
            d::video_url.eq(&input.video_url),
            d::created_at.eq(now),
            d::expires_at.eq(now + Duration::hours(LIFETIME_HOURS)),
        ))
        .returning(DemoSession::as_returning())
        .get_result(conn)
        .await?;
    record(conn, scope, "demo_session.started", &session).await?;
    Ok(Started::Session(session, token))
}

/// The live session whose token is `token` (none once expired).
pub async fn by_token(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    token: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<DemoSession>> {
    live(scope, token, now)
        .select(DemoSession::as_select())
        .first(conn)
        .await
        .optional()
}

/// One more share of the live session `token`; the session, none once expired.
pub async fn record_share(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    token: &str,
    now: DateTime<Utc>,
) -> OpResult<Option<DemoSession>> {
    let session: Option<DemoSession> = diesel::update(live(scope, token, now))
        .set(
            d::share_count.eq(diesel::dsl::sql::<diesel::sql_types::Integer>(
                "LEAST(share_count, 2147483646) + 1",
            )),
        )
        .returning(DemoSession::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(session) = &session {
        record(conn, scope, "demo_session.shared", session).await?;
    }
    Ok(session)
}

/// Records that the visitor of the live session `token` signed up (once: a second call
/// changes nothing, also when the two race); the session, none once expired.
pub async fn record_conversion(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    token: &str,
    now: DateTime<Utc>,
) -> OpResult<Option<DemoSession>> {
    let converted: Option<DemoSession> =
        diesel::update(live(scope, token, now).filter(d::converted.eq(false)))
            .set((d::converted.eq(true), d::converted_at.eq(now)))
            .returning(DemoSession::as_returning())
            .get_result(conn)
            .await
            .optional()?;
    match converted {
        Some(session) => {
            record(conn, scope, "demo_session.converted", &session).await?;
            Ok(Some(session))
        }
        None => Ok(by_token(conn, scope, token, now).await?),
    }
}

/// Deletes the tenant's sessions past their 24 hours; how many (the seed's
/// `cleanup_expired_demo_sessions`, which the scheduler's retention runs daily).
pub async fn purge_expired(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(
        d::table
            .filter(d::tenant_id.eq(scope.id()))
            .filter(d::expires_at.le(now)),
    )
    .execute(conn)
    .await
}

type Live = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<d::table, diesel::dsl::Eq<d::tenant_id, Uuid>>,
        diesel::dsl::Eq<d::session_token, String>,
    >,
    diesel::dsl::Gt<d::expires_at, DateTime<Utc>>,
>;

/// The tenant's session of `token`, while it lives.
fn live(scope: Tenant, token: &str, now: DateTime<Utc>) -> Live {
    d::table
        .filter(d::tenant_id.eq(scope.id()))
        .filter(d::session_token.eq(sha256_hex(token)))
        .filter(d::expires_at.gt(now))
}

async fn record(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    event: &str,
    session: &DemoSession,
) -> QueryResult<()> {
    let payload = json!({
        "shareCount": session.share_count, "converted": session.converted,
        "expiresAt": session.expires_at,
    });
    events::record(conn, scope, event, session.id, payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_ip_addresses_are_kept_only_as_their_sha256() {
        let token = crate::auth::generate_secret("dms_");
        assert!(is_secret(&token, "dms_"));
        assert!(!is_secret(&token[..51], "dms_"));
        assert!(!is_secret(&token.replace("dms_", "wgt_"), "dms_"));
        // FIPS 180-2's example.
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
