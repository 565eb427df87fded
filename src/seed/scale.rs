//! `seed --scale N`: bulk synthetic data for benchmarks. Per customer: about 10
//! activities and 3 orders; every third customer enrolled in the club with two ledger
//! entries; every second a campaign recipient; one lead per ten customers. Loaded in
//! chunks, each one multi-CTE `INSERT … SELECT generate_series` statement inside the
//! tenant's unit of work, with a progress bar on stderr.

use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::db::tenant::in_tenant_transaction;
use crate::error::AppError;

const CHUNK_SIZE: i64 = 10_000;
const WORKERS: usize = 2;

/// Fixtures every chunk refers to: a club program with three stages and a campaign.
const FIXTURES_SQL: &str = r#"
INSERT INTO club_programs (tenant_id, name)
SELECT current_tenant_id(), 'Scale club' WHERE NOT EXISTS (SELECT 1 FROM club_programs WHERE tenant_id = current_tenant_id());
INSERT INTO club_stages (tenant_id, program_id, name, stage_order, discount_percentage, duration_months, min_purchase_amount)
SELECT p.tenant_id, p.id, s.name, s.ord, s.pct, s.months, s.minimum
FROM club_programs p, (VALUES ('Bronze', 1, 10, 3, 0), ('Silver', 2, 15, 6, 150), ('Gold', 3, 20, 12, 300)) s(name, ord, pct, months, minimum)
WHERE p.tenant_id = current_tenant_id()
ON CONFLICT (tenant_id, program_id, stage_order) DO NOTHING;
INSERT INTO campaigns (tenant_id, name, status, started_at)
SELECT current_tenant_id(), 'Scale campaign', 'active', now()
WHERE NOT EXISTS (SELECT 1 FROM campaigns WHERE tenant_id = current_tenant_id() AND name = 'Scale campaign');
INSERT INTO campaign_executions (tenant_id, campaign_id)
SELECT c.tenant_id, c.id FROM campaigns c
WHERE c.tenant_id = current_tenant_id() AND c.name = 'Scale campaign'
  AND NOT EXISTS (SELECT 1 FROM campaign_executions e WHERE e.campaign_id = c.id);
"#;

/// One chunk: customers $1..$2 (by sequence number) and everything hanging off them.
const CHUNK_SQL: &str = r#"
WITH stage AS (
    SELECT s.id, s.program_id, s.duration_months, s.stage_order FROM club_stages s WHERE s.tenant_id = current_tenant_id()
), execution AS (
    SELECT e.id, e.campaign_id FROM campaign_executions e JOIN campaigns c ON c.id = e.campaign_id
    WHERE c.tenant_id = current_tenant_id() AND c.name = 'Scale campaign' LIMIT 1
), new_customers AS (
    INSERT INTO customers (id, tenant_id, external_id, email, name, segment, churn_risk, ltv, last_activity_at,
                           is_club_member, points_balance, points_lifetime, created_at)
    SELECT {ID}, current_tenant_id(), 'scale-' || n, 'customer' || n || '@scale.example', 'Customer ' || n,
           (ARRAY['collector', 'casual', 'club', 'corporate', 'new'])[1 + n % 5],
           (ARRAY['low', 'medium', 'high'])[1 + n % 3],
           ((n * 7919) % 500000) / 100.0, now() - make_interval(days => (n % 365)::int),
           n % 3 = 0, CASE WHEN n % 3 = 0 THEN 150 ELSE 0 END, CASE WHEN n % 3 = 0 THEN 150 ELSE 0 END,
           now() - make_interval(days => (n % 1000)::int)
    FROM generate_series($1::bigint, $2::bigint) n
    RETURNING id, tenant_id, is_club_member, created_at, (substr(external_id, 7))::bigint AS n
), activities AS (
    INSERT INTO customer_activities (id, tenant_id, customer_id, activity_type, activity_description, activity_data, created_at)
    SELECT {ID}, c.tenant_id, c.id, (ARRAY['page_view', 'email_opened', 'tasting_visit', 'order_placed', 'support_call'])[1 + (c.n + k) % 5],
           NULL, '{}'::jsonb, now() - make_interval(hours => (k * 3 + c.n % 30)::int)
    FROM new_customers c, generate_series(1, 10) k
    RETURNING 1
), orders_ AS (
    INSERT INTO orders (id, tenant_id, customer_id, order_total, subtotal, ordered_at)
    SELECT {ID}, c.tenant_id, c.id, 20 + (c.n + k) % 180, 20 + (c.n + k) % 180, now() - make_interval(days => (k * 20 + c.n % 20)::int)
    FROM new_customers c, generate_series(1, 3) k
    RETURNING 1
), enrollments AS (
    INSERT INTO club_enrollments (id, tenant_id, customer_id, program_id, stage_id, status, enrolled_at, expires_at, sync_status)
    SELECT {ID}, c.tenant_id, c.id, s.program_id, s.id, 'active', c.created_at,
           greatest(c.created_at + make_interval(months => s.duration_months), now() + interval '30 days'), 'not_configured'
    FROM new_customers c JOIN stage s ON s.stage_order = 1 + c.n % 3
    WHERE c.is_club_member
    RETURNING 1
), ledger AS (
    INSERT INTO point_transactions (id, tenant_id, customer_id, sequence, transaction_type, points, balance_after, description, created_at)
    SELECT {ID}, c.tenant_id, c.id, k, 'earned', 75, 75 * k, 'Points for an order', now() - make_interval(days => (3 - k)::int)
    FROM new_customers c, generate_series(1, 2) k
    WHERE c.is_club_member
    RETURNING 1
), recipients AS (
    INSERT INTO campaign_recipients (id, tenant_id, campaign_id, execution_id, customer_id, channel, status, sent_at, delivered_at, opened_at)
    SELECT {ID}, c.tenant_id, e.campaign_id, e.id, c.id, 'email',
           (ARRAY['pending', 'sent', 'delivered', 'opened'])[1 + c.n % 4],
           CASE WHEN c.n % 4 >= 1 THEN now() END, CASE WHEN c.n % 4 >= 2 THEN now() END, CASE WHEN c.n % 4 = 3 THEN now() END
    FROM new_customers c, execution e
    WHERE c.n % 2 = 0
    RETURNING 1
), leads AS (
    INSERT INTO lead_memory (id, tenant_id, name, email, message, intent, tone, urgency, confidence_score, language, created_at)
    SELECT {ID}, c.tenant_id, 'Lead ' || c.n, 'lead' || c.n || '@scale.example', 'Interested in your wines',
           (ARRAY['B2B partnership', 'Event supply', 'Club membership', 'Shipping enquiry', 'Gift'])[1 + c.n % 5],
           (ARRAY['Professional', 'Friendly', 'Formal', 'Energetic'])[1 + c.n % 4],
           (ARRAY['high', 'medium', 'low'])[1 + c.n % 3], ((c.n % 100) / 100.0)::numeric(3,2),
           (ARRAY['en', 'fr'])[1 + c.n % 2], now() - make_interval(days => (c.n % 60)::int)
    FROM new_customers c WHERE c.n % 10 = 0
    RETURNING 1
)
SELECT count(*) AS customers FROM new_customers
"#;

/// A time-ordered id (UUID version 7: millisecond clock, then random bits). Rows loaded
/// together land next to each other in every primary-key and `customer_id` index, so the
/// bulk load appends to indexes instead of touching random pages all over them.
const TIME_ORDERED_ID: &str = "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) \
     placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) \
     FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid";

static CHUNK: LazyLock<String> = LazyLock::new(|| CHUNK_SQL.replace("{ID}", TIME_ORDERED_ID));

/// The scale campaign's counters, recounted once after the load (chunks running in
/// parallel would otherwise queue on the one counter row).
const RECOUNT_SQL: &str = r#"
INSERT INTO campaign_delivery_counters (tenant_id, campaign_id, recipients, sent, delivered, opened, clicked, failed)
SELECT c.tenant_id, c.id, count(r.id), count(r.sent_at), count(r.delivered_at), count(r.opened_at),
       count(r.clicked_at), count(r.id) FILTER (WHERE r.status = 'failed')
FROM campaigns c LEFT JOIN campaign_recipients r ON r.tenant_id = c.tenant_id AND r.campaign_id = c.id
WHERE c.tenant_id = current_tenant_id() AND c.name = 'Scale campaign'
GROUP BY c.tenant_id, c.id
ON CONFLICT (tenant_id, campaign_id) DO UPDATE SET
    recipients = excluded.recipients, sent = excluded.sent, delivered = excluded.delivered,
    opened = excluded.opened, clicked = excluded.clicked, failed = excluded.failed
"#;

/// The tenant's rollups (see the aggregate rollups migration), recounted once after the
/// load (a superuser's chunks skip the triggers that keep them). Each is one statement:
/// writes committing meanwhile are counted either in the rows it reads or by their own
/// deltas, which it does not delete.
const RECOUNT_ROLLUPS_SQL: &str = r#"
WITH gone AS (DELETE FROM customer_rollups WHERE tenant_id = current_tenant_id())
INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv, compacted)
SELECT tenant_id, segment, churn_risk, is_club_member, count(*), sum(ltv), true
FROM customers WHERE tenant_id = current_tenant_id() GROUP BY 1, 2, 3, 4;
WITH gone AS (DELETE FROM order_rollups WHERE tenant_id = current_tenant_id())
INSERT INTO order_rollups (tenant_id, bucket, status, is_club_shipment, n, order_total, subtotal, discount_total, compacted)
SELECT tenant_id, quarter_hour(ordered_at), status, is_club_shipment, count(*), sum(order_total), sum(subtotal), sum(discount_total), true
FROM orders WHERE tenant_id = current_tenant_id() GROUP BY 1, 2, 3, 4;
WITH gone AS (DELETE FROM recipient_rollups WHERE tenant_id = current_tenant_id())
INSERT INTO recipient_rollups (tenant_id, campaign_id, status, channel, n, sent, delivered, opened, clicked, failed, compacted)
SELECT tenant_id, campaign_id, status, channel, count(*), count(sent_at), count(delivered_at), count(opened_at), count(clicked_at), count(failed_at), true
FROM campaign_recipients WHERE tenant_id = current_tenant_id() GROUP BY 1, 2, 3, 4;
"#;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    customers: i64,
}

/// Loads `count` customers (and their rows) into `tenant`. Returns the time it took.
pub async fn seed_scale(
    url: &str,
    tenant: Uuid,
    count: u64,
) -> Result<std::time::Duration, String> {
    let started = Instant::now();
    let conn = &mut crate::db::connect_owner(url).await?;
    let count = i64::try_from(count).map_err(|_| "--scale is too large")?;
    let offset: i64 = in_tenant_transaction(conn, tenant, |conn, _| {
        async move {
            conn.batch_execute(FIXTURES_SQL).await?;
            #[derive(diesel::QueryableByName)]
            struct Max {
                #[diesel(sql_type = BigInt)]
                n: i64,
            }
            let max: Max = diesel::sql_query(
                "SELECT coalesce(max(substr(external_id, 7)::bigint), 0) AS n FROM customers \
                 WHERE tenant_id = current_tenant_id() AND external_id LIKE 'scale-%'",
            )
            .get_result(conn)
            .await?;
            Ok::<_, AppError>(max.n)
        }
        .scope_boxed()
    })
    .await
    .map_err(|e| format!("{e:?}"))?;

    // Chunks are claimed by WORKERS connections in parallel (PostgreSQL does the work).
    let next = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicI64::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (url, next, done) = (url.to_owned(), next.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = crate::db::connect_owner(&url).await?;
            loop {
                let start = next.fetch_add(CHUNK_SIZE, Ordering::Relaxed);
                if start >= count {
                    return Ok::<_, String>(());
                }
                let size = CHUNK_SIZE.min(count - start);
                let (from, to) = (offset + start + 1, offset + start + size);
                let loaded = load_chunk(&mut conn, tenant, from, to).await?;
                let total = done.fetch_add(loaded, Ordering::Relaxed) + loaded;
                progress(total, count, started);
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    in_tenant_transaction(conn, tenant, |conn, _| {
        async move {
            conn.batch_execute(RECOUNT_SQL).await?;
            conn.batch_execute(RECOUNT_ROLLUPS_SQL)
                .await
                .map_err(AppError::from)
        }
        .scope_boxed()
    })
    .await
    .map_err(|e| format!("{e:?}"))?;
    eprintln!();
    Ok(started.elapsed())
}

async fn load_chunk(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    from: i64,
    to: i64,
) -> Result<i64, String> {
    let loaded: Count = in_tenant_transaction(conn, tenant, |conn, _| {
        async move {
            // Bulk load: the rows are generated consistent with every foreign key, so a
            // superuser skips the per-row FK triggers; nobody waits on the WAL either.
            conn.batch_execute(
                "SET LOCAL synchronous_commit = off; \
                 DO $$ BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN \
                 SET LOCAL session_replication_role = replica; END IF; END $$",
            )
            .await?;
            Ok::<_, AppError>(
                diesel::sql_query(CHUNK.as_str())
                    .bind::<BigInt, _>(from)
                    .bind::<BigInt, _>(to)
                    .get_result(conn)
                    .await?,
            )
        }
        .scope_boxed()
    })
    .await
    .map_err(|e| format!("{e:?}"))?;
    Ok(loaded.customers)
}

fn progress(done: i64, total: i64, started: Instant) {
    let width = 40;
    let filled = (done * width / total.max(1)) as usize;
    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
    eprint!(
        "\r[{}{}] {done}/{total} customers ({rate:.0}/s)",
        "#".repeat(filled),
        " ".repeat(width as usize - filled)
    );
    let _ = std::io::stderr().flush();
}
