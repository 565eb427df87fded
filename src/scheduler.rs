//! The scheduler: periodic tasks of each tenant, run inside `serve` (unless
//! `--no-scheduler`) at every tick of the background loop, with the time a [`Clock`] gives
//! (tests move theirs). A task that runs once per period claims its run by inserting its
//! `scheduled_runs` row in the transaction that does the work, so with any number of
//! instances it runs once (a second instance's insert waits, then finds the row).
//!
//! | task | when | does |
//! |---|---|---|
//! | `appointment_reminders` | every tick | one reminder per confirmed appointment in the 24 h before it |
//! | `scheduled_campaigns` | every tick | launches draft campaigns whose `scheduled_at` has come |
//! | `campaign_workflows` | every tick | advances each due recipient of an active campaign through its workflow (see `campaigns::workflow`) |
//! | `email_sequences` | every tick | the due step of each active email sequence (see `automations::ops::run_sequence_steps`) |
//! | `monthly_status` | once a month, from the 1st at 09:00 UTC | a monthly status message to each active member |
//! | `expiration_warnings` | once a day, from 10:00 UTC | a warning to each member whose membership ends within the program's `expiration_warning_days` |
//! | `retention` | once a day | purges expired idempotency keys, finished jobs after 14 days, translations after 90 days, feedback after a year, expired demo sessions |
//!
//! Messages go through [`crate::domain::messages::ops::deliver`] with an idempotency key per
//! customer and period (or appointment and time): each is queued once, and consent is
//! checked when it is sent.

use std::sync::Mutex;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::filter::FilterSome;
use crate::db::schema::{
    club_enrollments, club_programs, club_stages, communication_templates, customers, rendez_vous,
    scheduled_runs,
};
use crate::db::{Tenant, TenantDb};
use crate::domain::comms::model::{AppointmentStatus, Channel};
use crate::domain::loyalty::model::EnrollmentStatus;
use crate::domain::messages::model::TemplateType;
use crate::domain::messages::ops::{self as messages, Outgoing};
use crate::domain::{OpError, OpResult};
use crate::error::{AppError, AppResult};

/// Where the scheduler's time comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved (for tests).
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("not poisoned") = at;
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("not poisoned") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("not poisoned")
    }
}

/// Workflow runs advanced per transaction.
const WORKFLOW_BATCH: i64 = 500;

/// What one tick did for a tenant: each task that ran and its result.
pub type Ran = Vec<(&'static str, Value)>;

/// Runs the tenant's tasks due at `now`.
pub async fn tick(db: &TenantDb, now: DateTime<Utc>) -> AppResult<Ran> {
    let mut ran = Ran::new();
    let reminders = in_unit(db, move |conn, scope| {
        async move { appointment_reminders(conn, scope, now).await }.scope_boxed()
    })
    .await?;
    if reminders > 0 {
        ran.push(("appointment_reminders", json!({ "queued": reminders })));
    }
    let (launched, refused) = in_unit(db, move |conn, scope| {
        async move { crate::domain::campaigns::workflow::launch_scheduled(conn, scope, now).await }
            .scope_boxed()
    })
    .await?;
    if !launched.is_empty() || !refused.is_empty() {
        ran.push((
            "scheduled_campaigns",
            json!({ "launched": launched, "notLaunched": refused }),
        ));
    }
    // Batches of runs, each its own transaction, until none is due (or a minute passed).
    // A full first batch means more are due: two workers go on at once (the database
    // locks each run for one of them); most ticks find none, and read once.
    let began = std::time::Instant::now();
    let batch = || {
        in_unit(db, move |conn, scope| {
            async move {
                crate::domain::campaigns::workflow::run_steps(conn, scope, now, WORKFLOW_BATCH)
                    .await
            }
            .scope_boxed()
        })
    };
    let more = |runs: usize| {
        runs == WORKFLOW_BATCH as usize && began.elapsed() < std::time::Duration::from_secs(60)
    };
    let worker = || async {
        let mut steps = 0;
        loop {
            let (runs, taken) = batch().await?;
            steps += taken;
            if !more(runs) {
                return AppResult::Ok(steps);
            }
        }
    };
    let (runs, mut workflow_steps) = batch().await?;
    if more(runs) {
        let (one, two) = futures_util::future::join(worker(), worker()).await;
        workflow_steps += one? + two?;
    }
    if workflow_steps > 0 {
        ran.push(("campaign_workflows", json!({ "steps": workflow_steps })));
    }
    let steps = in_unit(db, move |conn, scope| {
        async move {
            crate::domain::automations::ops::run_sequence_steps(conn, scope, now, 500).await
        }
        .scope_boxed()
    })
    .await?;
    if steps > 0 {
        ran.push(("email_sequences", json!({ "queued": steps })));
    }
    let follow_ups = in_unit(db, move |conn, scope| {
        async move { crate::domain::outreach::ops::send_follow_ups(conn, scope, now).await }
            .scope_boxed()
    })
    .await?;
    if follow_ups > 0 {
        ran.push(("outreach_follow_ups", json!({ "queued": follow_ups })));
    }
    let timed_out = in_unit(db, move |conn, scope| {
        async move { Ok(crate::domain::outreach::ops::time_out_form_tests(conn, scope, now).await?) }
            .scope_boxed()
    })
    .await?;
    if timed_out > 0 {
        ran.push(("form_test_timeouts", json!({ "timedOut": timed_out })));
    }
    let tests = in_unit(db, move |conn, scope| {
        async move { crate::domain::prompts::ops::close_expired_tests(conn, scope, now).await }
            .scope_boxed()
    })
    .await?;
    if tests > 0 {
        ran.push(("prompt_tests", json!({ "closed": tests })));
    }
    let learned = in_unit(db, move |conn, scope| {
        async move { Ok(crate::domain::prompts::ops::process_feedback(conn, scope, now).await?) }
            .scope_boxed()
    })
    .await?;
    if learned > 0 {
        ran.push(("feedback_learning", json!({ "processed": learned })));
    }
    let (minutes, calls) = in_unit(db, move |conn, scope| {
        async move { Ok(crate::observed::flush(conn, scope, now).await?) }.scope_boxed()
    })
    .await?;
    if minutes + calls > 0 {
        ran.push((
            "self_measurement",
            json!({ "minutes": minutes, "calls": calls }),
        ));
    }
    let folded = in_unit(db, move |conn, _| {
        async move { Ok(compact_rollups(conn).await?) }.scope_boxed()
    })
    .await?;
    if folded > 0 {
        ran.push(("rollups", json!({ "folded": folded })));
    }
    let tasks: [(&'static str, Option<String>); 3] = [
        (
            "monthly_status",
            (now.hour() >= 9).then(|| now.format("%Y-%m").to_string()),
        ),
        (
            "expiration_warnings",
            (now.hour() >= 10).then(|| now.format("%Y-%m-%d").to_string()),
        ),
        ("retention", Some(now.format("%Y-%m-%d").to_string())),
    ];
    for (task, period) in tasks {
        let Some(period) = period else { continue };
        let result = in_unit(db, move |conn, scope| {
            async move {
                if !claim(conn, scope, task, &period).await? {
                    return Ok(None);
                }
                let result = match task {
                    "monthly_status" => monthly_status(conn, scope, now).await?,
                    "expiration_warnings" => expiration_warnings(conn, scope, now).await?,
                    _ => retention(conn, scope, now).await?,
                };
                diesel::update(
                    scheduled_runs::table
                        .filter(scheduled_runs::tenant_id.eq(scope.id()))
                        .filter(scheduled_runs::task.eq(task))
                        .filter(scheduled_runs::period.eq(&period)),
                )
                .set(scheduled_runs::result.eq(&result))
                .execute(conn)
                .await?;
                Ok(Some(result))
            }
            .scope_boxed()
        })
        .await?;
        if let Some(result) = result {
            ran.push((task, result));
        }
    }
    Ok(ran)
}

/// Folds the tenant's new rollup deltas (see the aggregate rollups migration) into one
/// row per key: the rows an aggregate reads stay few. Returns the rows folded.
pub async fn compact_rollups(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    #[derive(diesel::QueryableByName)]
    struct Folded {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        folded: i64,
    }
    let folded: Folded = diesel::sql_query("SELECT compact_rollups() AS folded")
        .get_result(conn)
        .await?;
    Ok(folded.folded)
}

async fn in_unit<'a, R, F>(db: &TenantDb, work: F) -> AppResult<R>
where
    F: crate::db::tenant::Work<'a, OpResult<R>>,
    R: Send + 'a,
{
    db.run(work).await.map_err(|e: OpError| AppError::from(e))
}

/// Claims the run of `task` for `period`: true when this transaction holds it (no run of
/// that period committed, none in flight elsewhere).
async fn claim(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    task: &str,
    period: &str,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(scheduled_runs::table)
        .values((
            scheduled_runs::tenant_id.eq(scope.id()),
            scheduled_runs::task.eq(task),
            scheduled_runs::period.eq(period),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// The tenant's active template of `kind` on `channel`.
async fn template(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    kind: TemplateType,
    channel: Channel,
) -> QueryResult<Option<Uuid>> {
    use communication_templates as t;
    t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::template_type.eq(kind))
        .filter(t::channel.eq(channel))
        .filter(t::is_active.eq(true))
        .select(t::id)
        .first(conn)
        .await
        .optional()
}

/// Queues a club or appointment notice; a notice its template cannot render is skipped
/// (counted), never a failed task.
async fn notice(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    outgoing: Outgoing,
    counts: &mut (i64, i64),
) -> OpResult<()> {
    // A notice refused (its template does not render) takes nothing else back.
    match crate::domain::in_savepoint(conn, async |conn| {
        messages::deliver(conn, scope, outgoing).await
    })
    .await?
    {
        Ok(_) => counts.0 += 1,
        Err(_) => counts.1 += 1,
    }
    Ok(())
}

/// Members with an active membership: (enrollment, customer, stage name, expires at,
/// points, lifetime points).
type Member = (Uuid, Uuid, String, DateTime<Utc>, i64, i64);

async fn members(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    expiring_before: Option<DateTime<Utc>>,
) -> QueryResult<Vec<Member>> {
    use club_enrollments as e;
    let query = e::table
        .inner_join(
            club_stages::table.on(club_stages::id
                .eq(e::stage_id)
                .and(club_stages::tenant_id.eq(e::tenant_id))),
        )
        .inner_join(
            customers::table.on(customers::id
                .eq(e::customer_id)
                .and(customers::tenant_id.eq(e::tenant_id))),
        )
        .filter(e::tenant_id.eq(scope.id()))
        .filter(e::status.eq(EnrollmentStatus::Active))
        .select((
            e::id,
            e::customer_id,
            club_stages::name,
            e::expires_at,
            customers::points_balance,
            customers::points_lifetime,
        ))
        .order(e::id)
        .into_boxed()
        .filter_some(expiring_before, |v| e::expires_at.le(v));
    query.load(conn).await
}

/// The monthly status message (points, stage, expiry) to every active member, once per
/// customer and month.
async fn monthly_status(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> OpResult<Value> {
    let Some(template) = template(conn, scope, TemplateType::MonthlyStatus, Channel::Email).await?
    else {
        return Ok(json!({ "skipped": "no active monthly_status email template" }));
    };
    let month = now.format("%Y-%m").to_string();
    let mut counts = (0, 0);
    for (_, customer, stage, expires_at, points, lifetime) in members(conn, scope, None).await? {
        let variables = json!({
            "points": points, "lifetimePoints": lifetime, "stage": stage,
            "expiresAt": expires_at.format("%Y-%m-%d").to_string(), "month": month,
        });
        let outgoing = Outgoing {
            customer_id: Some(customer),
            idempotency_key: Some(format!("monthly_status/{customer}/{month}")),
            ..Outgoing::of_template(Channel::Email, template, variables)
        };
        notice(conn, scope, outgoing, &mut counts).await?;
    }
    Ok(json!({ "queued": counts.0, "skipped": counts.1 }))
}

/// A warning to each member whose membership ends within the program's
/// `expiration_warning_days`, once per membership and expiry date.
async fn expiration_warnings(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> OpResult<Value> {
    let Some(template) =
        template(conn, scope, TemplateType::ExpirationWarning, Channel::Email).await?
    else {
        return Ok(json!({ "skipped": "no active expiration_warning email template" }));
    };
    let days: i32 = club_programs::table
        .filter(club_programs::tenant_id.eq(scope.id()))
        .select(club_programs::expiration_warning_days)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(30);
    let mut counts = (0, 0);
    let expiring = members(conn, scope, Some(now + Duration::days(i64::from(days)))).await?;
    for (enrollment, customer, stage, expires_at, points, _) in expiring {
        let days_left = (expires_at - now).num_days().max(0);
        let variables = json!({
            "stage": stage, "points": points, "daysLeft": days_left,
            "expiresAt": expires_at.format("%Y-%m-%d").to_string(),
        });
        let key = format!(
            "expiration_warning/{enrollment}/{}",
            expires_at.format("%Y-%m-%d")
        );
        let outgoing = Outgoing {
            customer_id: Some(customer),
            idempotency_key: Some(key),
            ..Outgoing::of_template(Channel::Email, template, variables)
        };
        notice(conn, scope, outgoing, &mut counts).await?;
    }
    Ok(json!({ "queued": counts.0, "skipped": counts.1 }))
}

/// An appointment whose reminder may be due: id, customer, client name, email and phone,
/// date, time and service.
type DueAppointment = (
    Uuid,
    Option<Uuid>,
    String,
    Option<String>,
    Option<String>,
    chrono::NaiveDate,
    chrono::NaiveTime,
    Option<String>,
);

/// One reminder per confirmed appointment in the 24 h before it starts (appointment times
/// are UTC), by email when the client has an address and an email template exists, else
/// by SMS. The appointment is marked in the same transaction; rescheduling re-arms it.
async fn appointment_reminders(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> OpResult<i64> {
    use rendez_vous as r;
    let today = now.date_naive();
    let due: Vec<DueAppointment> = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .filter(r::status.eq(AppointmentStatus::Confirmed))
        .filter(r::reminder_24h_sent.eq(false))
        .filter(r::rdv_date.between(today, today + Duration::days(1)))
        .select((
            r::id,
            r::customer_id,
            r::client_name,
            r::client_email,
            r::client_phone,
            r::rdv_date,
            r::rdv_time,
            r::service_type,
        ))
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    // Every tick visits every tenant: no template lookups when nothing is due.
    if due.is_empty() {
        return Ok(0);
    }
    let email = template(
        conn,
        scope,
        TemplateType::AppointmentReminder,
        Channel::Email,
    )
    .await?;
    let sms = template(conn, scope, TemplateType::AppointmentReminder, Channel::Sms).await?;
    let mut counts = (0, 0);
    for (id, customer, name, client_email, client_phone, date, time, service) in due {
        let starts = NaiveDateTime::new(date, time).and_utc();
        if !(now >= starts - Duration::hours(24) && now < starts) {
            continue;
        }
        let (channel, to, template) = match (client_email, email, client_phone, sms) {
            (Some(address), Some(t), _, _) => (Channel::Email, address, t),
            (_, _, Some(phone), Some(t)) => (Channel::Sms, phone, t),
            _ => continue,
        };
        let variables = json!({
            "name": name, "date": date.to_string(), "time": time.format("%H:%M").to_string(),
            "service": service,
        });
        let outgoing = Outgoing {
            customer_id: customer,
            to: Some(to),
            idempotency_key: Some(format!("appointment_reminder/{id}/{starts}")),
            ..Outgoing::of_template(channel, template, variables)
        };
        notice(conn, scope, outgoing, &mut counts).await?;
        diesel::update(
            r::table
                .filter(r::tenant_id.eq(scope.id()))
                .filter(r::id.eq(id)),
        )
        .set((r::reminder_24h_sent.eq(true), r::reminder_sent_at.eq(now)))
        .execute(conn)
        .await?;
    }
    Ok(counts.0)
}

/// Purges what the product keeps only for a while; returns the counts.
async fn retention(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> OpResult<Value> {
    let purge = |sql: &'static str, before: DateTime<Utc>| {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Uuid, _>(scope.id())
            .bind::<diesel::sql_types::Timestamptz, _>(before)
    };
    let idempotency_keys = purge(
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND expires_at < $2",
        now,
    )
    .execute(conn)
    .await?;
    let jobs = purge(
        "DELETE FROM queue_jobs WHERE tenant_id = $1 AND status IN ('completed', 'cancelled')
           AND updated_at < $2",
        now - Duration::days(14),
    )
    .execute(conn)
    .await?;
    let translations = purge(
        "DELETE FROM translation_cache WHERE tenant_id = $1 AND expires_at <= $2",
        now,
    )
    .execute(conn)
    .await?;
    let feedback = purge(
        "DELETE FROM feedback_tracking WHERE tenant_id = $1 AND created_at < $2",
        now - Duration::days(365),
    )
    .execute(conn)
    .await?;
    let performance = purge(
        "DELETE FROM performance_metrics WHERE tenant_id = $1 AND recorded_at < $2",
        now - Duration::days(30),
    )
    .execute(conn)
    .await?;
    let integration_logs = purge(
        "DELETE FROM integration_logs WHERE tenant_id = $1 AND created_at < $2",
        now - Duration::days(30),
    )
    .execute(conn)
    .await?;
    let demo_sessions = crate::domain::automations::demo::purge_expired(conn, scope, now).await?;
    Ok(json!({
        "idempotencyKeys": idempotency_keys, "jobs": jobs, "translations": translations,
        "feedback": feedback, "demoSessions": demo_sessions,
        "performanceMetrics": performance, "integrationLogs": integration_logs,
    }))
}

/// Rows the retention task purged so far, per kind (`jobs`, `demoSessions`, …), over
/// every tenant and instance: `/metrics`' `growthgraph_retention_purged_total`.
pub async fn retention_metrics(pool: &crate::db::PgPool) -> AppResult<Vec<(String, i64)>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        purged: i64,
    }
    let mut conn = pool.get().await?;
    let rows: Vec<Row> = diesel::sql_query("SELECT kind, purged FROM retention_metrics()")
        .load(&mut conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.purged)).collect())
}

/// The first day of `now`'s month (for tests and callers that move the clock by months).
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now.with_day(1)
        .and_then(|d| d.with_hour(0))
        .and_then(|d| d.with_minute(0))
        .and_then(|d| d.with_second(0))
        .unwrap_or(now)
}
