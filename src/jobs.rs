//! Background work inside the server: the job runner (one Postgres-backed queue,
//! `queue_jobs`, claimed with `FOR UPDATE SKIP LOCKED`, retried with exponential backoff)
//! and the scheduler (enrollment expiry). Each tenant is visited as an ordinary
//! tenant-scoped unit of work, so row-level security applies here too.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use crate::db::schema::{club_enrollments, queue_jobs};
use crate::db::sql::Prepared;
use crate::db::{PgPool, TenantDb};
use crate::domain::loyalty::model::SyncStatus;
use crate::domain::loyalty::ops::{self as loyalty, CrmSync};
use crate::domain::webhooks::target;
use crate::domain::OpError;
use crate::error::{AppError, AppResult};

pub use crate::domain::crm::provider::{CrmError, CrmProvider, NoCrm};

/// Delay before attempt `attempts + 1`: 2 s, 4 s, 8 s, … capped at one hour.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = attempts.clamp(1, 12) as u32 - 1;
    chrono::Duration::seconds((2i64 << exponent).min(3600))
}

/// A job claimed by this runner (`attempts`: before this one).
#[derive(Debug, Clone, Queryable)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub max_attempts: i32,
}

#[derive(QueryableByName)]
struct TenantId {
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
}

/// The tenants with due jobs of `job_type` (pending and due, or left processing).
pub async fn tenants_with_due_jobs(pool: &PgPool, job_type: &str) -> AppResult<Vec<Uuid>> {
    let mut conn = pool.get().await?;
    let rows: Vec<TenantId> = Prepared::new("SELECT tenant_id FROM tenants_with_due_jobs($1)")
        .bind::<diesel::sql_types::Text, _>(job_type)
        .load(&mut conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.tenant_id).collect())
}

/// The queue across tenants for `/metrics`: jobs per type and status, and for those that
/// ran in the last hour, p50 and p99 of how long they waited past their time.
#[derive(QueryableByName)]
pub struct QueueMetrics {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub job_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub jobs: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub p50_seconds: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    pub p99_seconds: Option<f64>,
}

pub async fn queue_metrics(pool: &PgPool) -> AppResult<Vec<QueueMetrics>> {
    let mut conn = pool.get().await?;
    Ok(Prepared::new("SELECT * FROM job_queue_metrics()")
        .load(&mut conn)
        .await?)
}

pub async fn tenant_ids(pool: &PgPool) -> AppResult<Vec<Uuid>> {
    let mut conn = pool.get().await?;
    let rows: Vec<TenantId> = Prepared::new("SELECT tenant_id FROM scheduler_tenant_ids()")
        .load(&mut conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.tenant_id).collect())
}

/// Claims up to `limit` due jobs of one type (`FOR UPDATE SKIP LOCKED`, so concurrent
/// runners never take the same job; a job left `processing` for 5 minutes is taken again)
/// and marks them processing, in one short transaction.
async fn claim(db: &TenantDb, job_type: &'static str, limit: i64) -> AppResult<Vec<ClaimedJob>> {
    db.run(|conn, scope| claim_in(conn, scope, job_type, limit).scope_boxed())
        .await
}

/// [`claim`] inside the caller's transaction.
pub async fn claim_in(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    job_type: &'static str,
    limit: i64,
) -> AppResult<Vec<ClaimedJob>> {
    let stale = Utc::now() - chrono::Duration::minutes(5);
    let jobs: Vec<ClaimedJob> = queue_jobs::table
        .filter(queue_jobs::tenant_id.eq(scope.id()))
        .filter(queue_jobs::job_type.eq(job_type))
        .filter(
            queue_jobs::status
                .eq("pending")
                .and(queue_jobs::run_at.le(Utc::now()))
                .or(queue_jobs::status
                    .eq("processing")
                    .and(queue_jobs::started_at.lt(stale))),
        )
        .order(queue_jobs::run_at)
        .limit(limit)
        .select((
            queue_jobs::id,
            queue_jobs::payload,
            queue_jobs::attempts,
            queue_jobs::max_attempts,
        ))
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    diesel::update(
        queue_jobs::table
            .filter(queue_jobs::tenant_id.eq(scope.id()))
            .filter(queue_jobs::id.eq_any(&ids)),
    )
    .set((
        queue_jobs::status.eq("processing"),
        queue_jobs::started_at.eq(Utc::now()),
        queue_jobs::attempts.eq(queue_jobs::attempts + 1),
    ))
    .execute(conn)
    .await?;
    Ok(jobs)
}

/// Marks claimed jobs completed, all at once.
pub async fn complete(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    ids: &[Uuid],
) -> QueryResult<()> {
    diesel::update(
        queue_jobs::table
            .filter(queue_jobs::tenant_id.eq(scope.id()))
            .filter(queue_jobs::id.eq_any(ids)),
    )
    .set((
        queue_jobs::status.eq("completed"),
        queue_jobs::completed_at.eq(Utc::now()),
        queue_jobs::result.eq(json!({ "ok": true })),
        queue_jobs::error.eq(None::<String>),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// The error of a CRM sync job of a tenant without a CRM.
pub const NOT_CONFIGURED: &str = "not_configured: no CRM is configured for this tenant";

/// Fails a claimed job for good, without retries.
async fn fail_now(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    job: &ClaimedJob,
    error: &str,
) -> QueryResult<()> {
    diesel::update(
        queue_jobs::table
            .filter(queue_jobs::tenant_id.eq(scope.id()))
            .filter(queue_jobs::id.eq(job.id)),
    )
    .set((
        queue_jobs::status.eq("failed"),
        queue_jobs::error.eq(Some(error)),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Finishes a claimed job: completed, or retried after `backoff`, or failed for good once
/// its attempts are used up. Returns whether this was the final failure.
pub async fn finish(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    job: &ClaimedJob,
    outcome: Result<(), String>,
) -> QueryResult<bool> {
    let target = queue_jobs::table
        .filter(queue_jobs::tenant_id.eq(scope.id()))
        .filter(queue_jobs::id.eq(job.id));
    let attempt = job.attempts + 1;
    match outcome {
        Ok(()) => {
            complete(conn, scope, &[job.id]).await?;
            Ok(false)
        }
        Err(error) => {
            let give_up = attempt >= job.max_attempts;
            let run_at: DateTime<Utc> = Utc::now() + backoff(attempt);
            diesel::update(target)
                .set((
                    queue_jobs::status.eq(if give_up { "failed" } else { "pending" }),
                    queue_jobs::run_at.eq(run_at),
                    queue_jobs::error.eq(Some(error)),
                ))
                .execute(conn)
                .await?;
            Ok(give_up)
        }
    }
}

/// Runs the tenant's due CRM sync jobs (at most `limit`); returns how many ran. A
/// refusal fails its job at once (the CRM's message kept); the CRM's rate limit puts the
/// job, and the rest of this run's, back until the CRM takes calls again (an attempt not
/// counted).
pub async fn run_due_crm_jobs(
    db: &TenantDb,
    crm: &dyn CrmProvider,
    limit: i64,
) -> AppResult<usize> {
    Ok(run_crm_batch(db, crm, limit).await?.ran)
}

/// The longest rate-limit wait a CRM sync waits out in its batch (Shopify's REST limit
/// asks for 2 s); a longer one puts the batch back in the queue.
const SHORT_CRM_WAIT: Duration = Duration::from_secs(2);

/// What one batch of CRM syncs did.
struct CrmBatch {
    claimed: usize,
    ran: usize,
    /// The CRM asked to wait this long before the next call.
    rate_limited: Option<Duration>,
}

async fn run_crm_batch(db: &TenantDb, crm: &dyn CrmProvider, limit: i64) -> AppResult<CrmBatch> {
    let claimed = claim(db, "crm_sync", limit).await?;
    let mut ran = 0;
    let mut rate_limited = None;
    for (index, job) in claimed.iter().enumerate() {
        let sync = serde_json::from_value::<CrmSync>(job.payload.clone())
            .map_err(|e| format!("malformed payload: {e}"));
        // A short wait is waited out here, the batch kept; a long one gives it back.
        let mut waits = 0;
        let outcome = loop {
            let outcome = match &sync {
                Ok(sync) => crm.sync_discount(db.tenant().id(), sync).await,
                Err(e) => Err(CrmError::Failed(e.clone())),
            };
            match outcome {
                Err(CrmError::RateLimited { retry_after })
                    if retry_after <= SHORT_CRM_WAIT && waits < 10 =>
                {
                    waits += 1;
                    tokio::time::sleep(retry_after).await;
                }
                outcome => break outcome,
            }
        };
        if let Err(CrmError::RateLimited { retry_after }) = outcome {
            let waiting = &claimed[index..];
            db.run(|conn, scope| {
                async move { Ok::<_, AppError>(put_back(conn, scope, waiting, retry_after).await?) }
                    .scope_boxed()
            })
            .await?;
            rate_limited = Some(retry_after);
            break;
        }
        ran += 1;
        db.run(|conn, scope| {
            async move {
                let status = match outcome {
                    Ok(()) => {
                        finish(conn, scope, job, Ok(())).await?;
                        Some(SyncStatus::Synced)
                    }
                    // Nothing to retry until a CRM is configured (`retryCrmSync` then).
                    Err(CrmError::NotConfigured) => {
                        fail_now(conn, scope, job, NOT_CONFIGURED).await?;
                        Some(SyncStatus::NotConfigured)
                    }
                    Err(CrmError::Refused(error)) => {
                        fail_now(conn, scope, job, &error).await?;
                        Some(SyncStatus::Failed)
                    }
                    Err(CrmError::Failed(error)) => finish(conn, scope, job, Err(error))
                        .await?
                        .then_some(SyncStatus::Failed),
                    Err(CrmError::RateLimited { .. }) => None,
                };
                if let (Ok(sync), Some(status)) = (sync, status) {
                    mark_enrollment(conn, scope, sync.enrollment_id, status).await?;
                }
                Ok::<_, AppError>(())
            }
            .scope_boxed()
        })
        .await?;
    }
    Ok(CrmBatch {
        claimed: claimed.len(),
        ran,
        rate_limited,
    })
}

/// Runs the tenant's due CRM sync jobs 100 at a time until none is due or `budget` has
/// passed (the next tick goes on); when the CRM asks to wait, waits within the budget, or
/// leaves the rest to a later tick. Returns how many ran.
pub async fn drain_crm_jobs(
    db: &TenantDb,
    crm: &dyn CrmProvider,
    budget: Duration,
) -> AppResult<usize> {
    const BATCH: i64 = 100;
    let started = std::time::Instant::now();
    let mut total = 0;
    loop {
        let batch = run_crm_batch(db, crm, BATCH).await?;
        total += batch.ran;
        let left = budget.saturating_sub(started.elapsed());
        match batch.rate_limited {
            Some(wait) if wait < left => tokio::time::sleep(wait).await,
            Some(_) => return Ok(total),
            None if batch.claimed < BATCH as usize || left.is_zero() => return Ok(total),
            None => {}
        }
    }
}

/// Puts claimed jobs back in the queue, due after `wait`, their attempts as they were.
async fn put_back(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    jobs: &[ClaimedJob],
    wait: Duration,
) -> QueryResult<()> {
    let run_at = Utc::now()
        + chrono::Duration::from_std(wait).unwrap_or_else(|_| chrono::Duration::hours(1));
    // One statement: each claim counted an attempt, which this gives back.
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    diesel::update(
        queue_jobs::table
            .filter(queue_jobs::tenant_id.eq(scope.id()))
            .filter(queue_jobs::id.eq_any(&ids)),
    )
    .set((
        queue_jobs::status.eq("pending"),
        queue_jobs::run_at.eq(run_at),
        queue_jobs::attempts.eq(queue_jobs::attempts - 1),
        queue_jobs::error.eq(Some("rate limited by the CRM")),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Runs the tenant's due webhook deliveries: POST the event with its signature headers,
/// with `client` ([`crate::domain::webhooks::target::delivery_client`]), to endpoints
/// whose address may be reached (`allow_insecure`: the operator's development flag).
pub async fn run_due_webhook_jobs(
    db: &TenantDb,
    client: &reqwest::Client,
    allow_insecure: bool,
    limit: i64,
) -> AppResult<usize> {
    use crate::domain::webhooks::ops as webhooks;
    let claimed = claim(db, "webhook_delivery", limit).await?;
    for job in &claimed {
        let delivery = job.payload["deliveryId"]
            .as_str()
            .and_then(|d| d.parse::<Uuid>().ok());
        let Some(delivery) = delivery else {
            db.run(|conn, scope| {
                async move {
                    Ok::<_, AppError>(
                        finish(conn, scope, job, Err("malformed payload".into())).await?,
                    )
                }
                .scope_boxed()
            })
            .await?;
            continue;
        };
        let outgoing = db
            .query(|conn, scope| webhooks::outgoing(conn, scope, delivery).scope_boxed())
            .await?;
        let Some(outgoing) = outgoing else {
            // The endpoint was disabled or removed: nothing to send any more.
            db.run(|conn, scope| {
                async move { Ok::<_, AppError>(finish(conn, scope, job, Ok(())).await?) }
                    .scope_boxed()
            })
            .await?;
            continue;
        };
        let timestamp = Utc::now().timestamp();
        let signature = webhooks::sign(&outgoing.secret, timestamp, &outgoing.body);
        let allowed = target::literal_is_allowed(&outgoing.url, allow_insecure);
        let response = client
            .post(&outgoing.url)
            .header("content-type", "application/json")
            .header("x-growthgraph-event-id", outgoing.event_id.to_string())
            .header("x-growthgraph-timestamp", timestamp.to_string())
            .header(
                "x-growthgraph-signature",
                format!("t={timestamp},v1={signature}"),
            )
            .body(outgoing.body);
        let response = match allowed {
            true => Some(response.send().await),
            false => None,
        };
        let attempt: Result<i32, (Option<i32>, String)> = match response {
            None => Err((None, "refused: the endpoint's address is not public".into())),
            Some(response) => match response {
                Ok(r) if r.status().is_success() => Ok(i32::from(r.status().as_u16())),
                Ok(r) => Err((
                    Some(i32::from(r.status().as_u16())),
                    format!("endpoint answered {}", r.status()),
                )),
                // The resolver's refusal is in the error's source chain.
                Err(e) => Err((None, format!("request failed: {}", error_chain(&e)))),
            },
        };
        db.run(|conn, scope| {
            async move {
                let job_outcome = attempt.as_ref().map(|_| ()).map_err(|(_, e)| e.clone());
                let gave_up = finish(conn, scope, job, job_outcome).await?;
                webhooks::record_attempt(conn, scope, delivery, attempt, gave_up).await?;
                Ok::<_, AppError>(())
            }
            .scope_boxed()
        })
        .await?;
    }
    Ok(claimed.len())
}

async fn mark_enrollment(
    conn: &mut diesel_async::AsyncPgConnection,
    scope: crate::db::Tenant,
    id: Uuid,
    status: SyncStatus,
) -> QueryResult<()> {
    // Only the latest job's outcome counts: a newer change re-queued a sync meanwhile
    // only if a job for it is still pending.
    let newer_pending = loyalty::queued_crm_syncs(conn, scope, id).await?;
    if newer_pending > 0 && status != SyncStatus::Failed {
        return Ok(());
    }
    let target = club_enrollments::table
        .filter(club_enrollments::tenant_id.eq(scope.id()))
        .filter(club_enrollments::id.eq(id));
    if status == SyncStatus::Synced {
        diesel::update(target)
            .set((
                club_enrollments::sync_status.eq(status),
                club_enrollments::last_synced_at.eq(Utc::now()),
            ))
            .execute(conn)
            .await?;
    } else {
        diesel::update(target)
            .set(club_enrollments::sync_status.eq(status))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Expires the tenant's overdue enrollments; returns how many.
pub async fn expire_enrollments(db: &TenantDb) -> AppResult<usize> {
    let expired = db
        .run(|conn, scope| {
            async move { loyalty::expire_due(conn, scope, Utc::now()).await }.scope_boxed()
        })
        .await
        .map_err(AppError::from)?;
    Ok(expired.len())
}

/// An error and its sources, one after the other.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Recomputes the tenant's growth insights when the last analysis is a week old.
pub async fn refresh_growth_insights_weekly(db: &TenantDb) -> AppResult<bool> {
    db.run(|conn, scope| {
        async move {
            if !crate::domain::growth::ops::weekly_refresh_due(conn, scope).await? {
                return Ok(false);
            }
            crate::domain::growth::ops::refresh(conn, scope, None, None).await?;
            Ok(true)
        }
        .scope_boxed()
    })
    .await
    .map_err(|e: OpError| AppError::from(e))
}

/// Starts the runner and the scheduler ([`crate::scheduler`], with `clock`); they stop
/// when the returned handle is aborted.
pub fn spawn_background(
    pool: PgPool,
    crm: Arc<dyn CrmProvider>,
    clock: Arc<dyn crate::scheduler::Clock>,
    every: Duration,
    allow_insecure_webhooks: bool,
) -> tokio::task::JoinHandle<()> {
    let client = target::delivery_client(allow_insecure_webhooks);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let tenants = match tenant_ids(&pool).await {
                Ok(tenants) => tenants,
                Err(error) => {
                    tracing::warn!(?error, "scheduler cannot list tenants");
                    continue;
                }
            };
            for tenant in tenants {
                let db = TenantDb::new(pool.clone(), tenant);
                if let Err(error) = expire_enrollments(&db).await {
                    tracing::warn!(?error, %tenant, "enrollment expiry failed");
                }
                if let Err(error) = crm.refresh_sessions(tenant).await {
                    tracing::warn!(?error, %tenant, "CRM session refresh failed");
                }
                let budget = Duration::from_secs(4);
                if let Err(error) = drain_crm_jobs(&db, crm.as_ref(), budget).await {
                    tracing::warn!(?error, %tenant, "CRM sync jobs failed");
                }
                let insecure = allow_insecure_webhooks;
                if let Err(error) = run_due_webhook_jobs(&db, &client, insecure, 100).await {
                    tracing::warn!(?error, %tenant, "webhook deliveries failed");
                }
                if let Err(error) = refresh_growth_insights_weekly(&db).await {
                    tracing::warn!(?error, %tenant, "weekly growth insights failed");
                }
                if let Err(error) = crate::scheduler::tick(&db, clock.now()).await {
                    tracing::warn!(?error, %tenant, "scheduled tasks failed");
                }
            }
        }
    })
}

/// Starts the message runner: every `every`, the due deliveries of each tenant that has
/// some are sent (three runners, batches of 100, until none is left). It stops when the returned handle
/// is aborted.
pub fn spawn_delivery(
    pool: PgPool,
    providers: Arc<crate::domain::messages::providers::Providers>,
    key: Option<crate::secrets::SecretKey>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    const BATCH: i64 = 100;
    const RUNNERS: usize = 3;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let tenants = match tenants_with_due_jobs(&pool, "message_delivery").await {
                Ok(tenants) => tenants,
                Err(error) => {
                    tracing::warn!(?error, "message runner cannot list tenants");
                    continue;
                }
            };
            for tenant in tenants {
                let db = TenantDb::new(pool.clone(), tenant);
                // A few runners side by side (each claims its own jobs): one sends while
                // another records its batch or claims the next.
                let runner = || async {
                    loop {
                        let ran = crate::domain::messages::ops::run_due(
                            &db,
                            &providers,
                            key.as_ref(),
                            BATCH,
                        )
                        .await;
                        match ran {
                            Ok(n) if n as i64 == BATCH => continue,
                            Ok(_) => break,
                            Err(error) => {
                                tracing::warn!(?error, %tenant, "message deliveries failed");
                                break;
                            }
                        }
                    }
                };
                futures_util::future::join_all((0..RUNNERS).map(|_| runner())).await;
            }
        }
    })
}
