//! The benchmark harness: `cargo bench --bench api`.
//!
//! Starts PostgreSQL (the embedded cluster in `BENCH_DATA_DIR`, or `DATABASE_URL`), loads
//! `BENCH_CUSTOMERS` synthetic customers with `seed --scale` when the data set is smaller,
//! starts `growthgraph serve` on loopback as its own process (settings from the usual
//! `GROWTHGRAPH_*` variables, so the server's default pool unless `GROWTHGRAPH_POOL_SIZE`
//! says otherwise), then drives it at each concurrency in `BENCH_CONCURRENCY` for
//! `BENCH_SECONDS` and prints throughput, p50/p95/p99 latency, the SQL statements one
//! request runs alone and, in parentheses, per request under the level's load (read
//! groups share statements; from the server's `/metrics`), the CPU time per request of the server,
//! PostgreSQL and the generator, and the hypervisor's steal during the level.
//!
//! | env | default |
//! |---|---|
//! | `BENCH_DATA_DIR` | `target/bench-data` |
//! | `BENCH_SHARED_BUFFERS` | a quarter of memory (embedded cluster only, which also asks for huge pages: `huge_pages=try`) |
//! | `BENCH_CUSTOMERS` | `100000` |
//! | `BENCH_CONCURRENCY` | `1,16,64` |
//! | `BENCH_SECONDS` | `10` |
//! | `BENCH_SCENARIOS` | `customer360,customer360_keys,pgbench360,customersPage,redeemReward,campaignMetrics,campaignsPage,leadsPage,aggregateSegments,aggregateRevenue,aggregateRecipients,growthInsights,noisyNeighbour,fanout,delivery,crmSync,importProspects,assignPromptVariant` |
//! | `BENCH_SUBSCRIBERS` | `10000` (fan-out WebSocket subscribers) |
//! | `BENCH_EVENTS` | `50` (fan-out: events written) |
//! | `BENCH_EVENT_INTERVAL_MS` | `100` (fan-out: pause between events) |
//! | `BENCH_POSTGRAPHILE_URL` | unset (`postgraphile360`: the PostGraphile server to drive) |
//! | `BENCH_POSTGRAPHILE5_URL` | unset (`postgraphile5_*`: the PostGraphile 5 server to drive) |
//! | `BENCH_MESSAGES` | `10000` (delivery: messages queued at once) |
//! | `BENCH_WORKFLOW_RECIPIENTS` | `100000` (workflow: recipients of the campaign) |
//! | `BENCH_CRM_SYNCS` | `10000` (crmSync: enrollments synced) |
//! | `BENCH_PROSPECTS` | `100000` (importProspects: candidates imported, 1 000 per call) |
//!
//! `customer360_keys` is `customer360` with the clients spread over 32 admin keys of the
//! tenant (read groups are per tenant and role, not per key). `customersPages` (not in the
//! default list) is `customersPage` over the list's first 256 pages, so that no two
//! requests in flight ask the same (identical queries of a read group run once);
//! `postgraphile5_pages` is its equivalent in PostGraphile 5.
//!
//! `postgraphile5_360`, `postgraphile5_page` and `postgraphile5_metrics` (not in the
//! default list) drive PostGraphile 5 (amber preset, `bench/postgraphile.sh URL PORT 5`) at
//! `BENCH_POSTGRAPHILE5_URL` with the queries equivalent to `customer360`, `customersPage`
//! and `campaignMetrics`; before timing, the answers of both servers to the first bodies
//! are compared on every value the queries ask for.
//!
//! `redeemReward` redeems a 10-point reward for distinct funded customers and checks the
//! ledger and stock invariants after the run.
//!
//! `delivery` queues `BENCH_MESSAGES` email messages for a tenant whose channel is SMTP,
//! all at once, and lets the server's own runner send them through its SMTP adapter to a
//! local sink (Debian's aiosmtpd, writing a maildir): messages per second from queued to
//! the last sent, p50/p99 from queued to sent, and what the sink counted (each message
//! once: none lost, none doubled).
//!
//! `crmSync` queues `BENCH_CRM_SYNCS` enrollment syncs for a tenant connected to Shopify
//! and lets the server's own runner send them through its Shopify connector to a local
//! stand-in of Shopify's Admin GraphQL API that answers HTTP 429 (`Retry-After: 0`) on every
//! tenth call: syncs per second from queued to the last completed, and what the stand-in
//! counted (each customer created once and tagged once: none lost, none doubled).
//!
//! `assignPromptVariant` asks a running A/B test (made in the tenant once) for the arm of
//! 5 000 subject keys in turn.
//!
//! `importProspects` imports `BENCH_PROSPECTS` prospect candidates with new websites, 1 000
//! per `importProspectCandidates` call, one call after another, and checks that each row
//! became one candidate.
//!
//! `workflow` launches a campaign of `BENCH_WORKFLOW_RECIPIENTS` recipients whose
//! workflow sends two messages (start → send → send → end) through the server's own
//! scheduler (it launches at `scheduledAt`), and prints workflow steps per second from the
//! launch until every recipient's run has ended, and the messages queued per recipient
//! and step (each exactly once: none lost, none doubled).
//!
//! `pgbench360` runs pgbench (from the PostgreSQL server binaries' directory) on the
//! minimal SQL of `customer360`: the one statement its request runs, for the same
//! customers, with a lookup of the customer first (as the server looks its key up).
//!
//! `postgraphile360` drives a PostGraphile v4 server (started by `bench/postgraphile.sh`)
//! at `BENCH_POSTGRAPHILE_URL` with the query equivalent to `customer360`, for the same
//! customers, with the same generator: SPEC §8 compares the two.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use growthgraph::auth::Role;
use growthgraph::db;
use growthgraph::db::cluster::{Cluster, Durability};
use growthgraph::domain::customers::prefetch::{every_part_statement, Firsts};
use growthgraph::domain::tenancy::ops as tenancy;
use http_body_util::{BodyExt, Full};
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

const CUSTOMER_360: &str = "query($id: ID) { customer(id: $id) {
  id externalId email name phone segment churnRisk ltv totalDeposit totalWithdraw lastActivityAt metadata
  createdAt updatedAt pointsBalance pointsLifetime cumulativeMembershipDays isClubMember
  currentEnrollment { status enrolledAt expiresAt stage { name discountPercentage } }
  enrollments { status enrolledAt }
  activities(first: 10) { nodes { type occurredAt } }
  orders(first: 5) { nodes { orderTotal orderedAt } }
  pointTransactions(first: 5) { nodes { points balanceAfter } }
  redemptions(first: 5) { nodes { status } }
  communicationPreferences { channel type optedIn }
  communications(first: 5) { nodes { channel status } }
  campaignHistory(first: 5) { nodes { status campaign { name } } }
  leads { id }
} }";

/// `CUSTOMER_360` in PostGraphile v4's default schema over the same tables: the same
/// columns, the same page sizes and orders (enrollments bring their stages: the current
/// enrollment is one of them), preferences and the leads not deleted.
const POSTGRAPHILE_360: &str = "query($id: UUID!) { customerById(id: $id) {
  id externalId email name phone segment churnRisk ltv totalDeposit totalWithdraw lastActivityAt metadata
  createdAt updatedAt pointsBalance pointsLifetime cumulativeDays isClubMember
  clubEnrollmentsByTenantIdAndCustomerId(orderBy: [ENROLLED_AT_ASC, CREATED_AT_ASC, ID_ASC]) {
    nodes { status enrolledAt expiresAt clubStageByTenantIdAndStageId { name discountPercentage } } }
  customerActivitiesByTenantIdAndCustomerId(first: 10, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { activityType createdAt } }
  ordersByTenantIdAndCustomerId(first: 5, orderBy: [ORDERED_AT_DESC, ID_DESC]) { nodes { orderTotal orderedAt } }
  pointTransactionsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { points balanceAfter } }
  rewardRedemptionsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { status } }
  communicationPreferencesByTenantIdAndCustomerId(orderBy: [CHANNEL_ASC, COMMUNICATION_TYPE_ASC]) { nodes { channel communicationType optedIn } }
  communicationLogsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { channel status } }
  campaignRecipientsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { status campaignByTenantIdAndCampaignId { name } } }
  leadMemoriesByTenantIdAndCustomerId(condition: { deleted: false }, orderBy: [CREATED_AT_ASC, ID_ASC]) { nodes { id } }
} }";

/// `CUSTOMER_360` in PostGraphile 5's amber preset over the same tables. The preset
/// offers orders and conditions on indexed columns only: enrollments are ordered by
/// `enrolled_at` and id (not `created_at` between them), and the leads are not filtered on
/// `deleted` (the comparison before timing checks that the answers agree).
const POSTGRAPHILE5_360: &str = "query($id: UUID!) { customerByRowId(rowId: $id) {
  rowId externalId email name phone segment churnRisk ltv totalDeposit totalWithdraw lastActivityAt metadata
  createdAt updatedAt pointsBalance pointsLifetime cumulativeDays isClubMember
  clubEnrollmentsByTenantIdAndCustomerId(orderBy: [ENROLLED_AT_ASC, ROW_ID_ASC]) {
    nodes { status enrolledAt expiresAt clubStageByTenantIdAndStageId { name discountPercentage } } }
  customerActivitiesByTenantIdAndCustomerId(first: 10, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { activityType createdAt } }
  ordersByTenantIdAndCustomerId(first: 5, orderBy: [ORDERED_AT_DESC, ROW_ID_DESC]) { nodes { orderTotal orderedAt } }
  pointTransactionsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { points balanceAfter } }
  rewardRedemptionsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { status } }
  communicationPreferencesByTenantIdAndCustomerId(orderBy: [CHANNEL_ASC, COMMUNICATION_TYPE_ASC]) { nodes { channel communicationType optedIn } }
  communicationLogsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { channel status } }
  campaignRecipientsByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { status campaignByTenantIdAndCampaignId { name } } }
  leadMemoriesByTenantIdAndCustomerId(orderBy: [CREATED_AT_ASC, ROW_ID_ASC]) { nodes { rowId } }
} }";

/// `CUSTOMERS_PAGE` in PostGraphile 5 (the owner sees every tenant: the page is the
/// tenant's by condition; the current enrollment is the active one among them), and the
/// cursor after one of its pages.
const POSTGRAPHILE5_PAGE: &str = "query($t: UUID!, $after: Cursor) { allCustomers(first: 50, after: $after, condition: { tenantId: $t }, orderBy: [CREATED_AT_ASC, ROW_ID_ASC]) {
  nodes { rowId pointsBalance
    clubEnrollmentsByTenantIdAndCustomerId { nodes { status clubStageByTenantIdAndStageId { name } } }
    customerActivitiesByTenantIdAndCustomerId(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { activityType } }
    ordersByTenantIdAndCustomerId(first: 3, orderBy: [ORDERED_AT_DESC, ROW_ID_DESC]) { nodes { orderTotal } } } } }";
const POSTGRAPHILE5_PAGE_END: &str = "query($t: UUID!, $after: Cursor) { allCustomers(first: 50, after: $after, condition: { tenantId: $t }, orderBy: [CREATED_AT_ASC, ROW_ID_ASC]) { pageInfo { endCursor } } }";

/// How many distinct pages `customersPages` and `postgraphile5_pages` walk: with 64
/// clients (or any divisor of 256), no two requests in flight ask for the same page.
const PAGES: usize = 256;

/// The `after` of each of the first [`PAGES`] pages of the list `field` at `url` (the
/// first `null`), walked with `end` (which asks for the list's `pageInfo { endCursor }`)
/// and `variables`.
async fn page_cursors(
    client: &reqwest::Client,
    (url, key): (&str, &str),
    end: &str,
    variables: Value,
    field: &str,
) -> Vec<Value> {
    let mut after = vec![Value::Null];
    while after.len() < PAGES {
        let mut variables = variables.clone();
        variables["after"] = after[after.len() - 1].clone();
        let request = client
            .post(url)
            .json(&json!({ "query": end, "variables": variables }));
        let request = match key.is_empty() {
            true => request,
            false => request.bearer_auth(key),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        let next = answer["data"][field]["pageInfo"]["endCursor"].clone();
        assert!(next.is_string(), "a next page: {answer}");
        after.push(next);
    }
    after
}

/// `CAMPAIGN_METRICS` in PostGraphile 5: the same counters row (the rates are left to the
/// client).
const POSTGRAPHILE5_METRICS: &str = "query($id: UUID!) { campaignByRowId(rowId: $id) {
  campaignDeliveryCounterByTenantIdAndCampaignId { recipients sent delivered opened clicked failed } } }";

const ASSIGN_PROMPT: &str = "query($t: String!, $k: String!) { assignPromptVariant(testName: $t, subjectKey: $k) { arm variant { id variantId } } }";

/// A page of customers: the first one, or the one `$after` a cursor.
const CUSTOMERS_PAGE: &str = "query($after: String) { customers(first: 50, after: $after) { nodes { id pointsBalance
  currentEnrollment { stage { name } } activities(first: 5) { nodes { type } } orders(first: 3) { nodes { orderTotal } } } } }";

/// The cursor after a page of `CUSTOMERS_PAGE`.
const CUSTOMERS_PAGE_END: &str =
    "query($after: String) { customers(first: 50, after: $after) { pageInfo { endCursor } } }";

const CAMPAIGN_METRICS: &str = "query($id: ID!) { campaign(id: $id) { metrics { recipients sent delivered opened clicked failed deliveryRate openRate clickRate clickToOpenRate failureRate } } }";

const CAMPAIGNS_PAGE: &str = "{ campaigns(first: 50) { nodes { id name status metrics { sent openRate } executions { status } } } }";

const LEADS_PAGE: &str =
    "{ leads(first: 50) { nodes { id name urgency actions { action tag } notes { note } } } }";

/// The analysts' aggregates (issue targets: p50 ≤ 50 ms each on the 1 M data set).
const AGGREGATE_SEGMENTS: &str = "{ customersAggregate { count groupBy(by: [SEGMENT, CHURN_RISK]) { key { segment churnRisk } count sum { ltv } } } }";

const AGGREGATE_REVENUE: &str = "query($from: DateTime!, $to: DateTime!) { ordersAggregate { series(interval: DAY, from: $from, to: $to, timeZone: \"Europe/Paris\") { start count sum { orderTotal } } } }";

const AGGREGATE_RECIPIENTS: &str = "query($id: ID!) { campaign(id: $id) { recipientsAggregate { count groupBy(by: [STATUS]) { key { status } count sum { opened } } } } }";

/// The tenant `slug`, created (as `name`) when missing.
async fn tenant(owner: &mut diesel_async::AsyncPgConnection, slug: &str, name: &str) -> Uuid {
    match tenancy::find_tenant_by_slug(owner, slug).await.unwrap() {
        Some(tenant) => tenant.id,
        None => {
            let created = tenancy::create_tenant(owner, name, Some(slug)).await;
            created.map_err(|e| format!("{e:?}")).unwrap().0.id
        }
    }
}

/// The server's secret key in the crmSync scenario (it seals the stand-in's credentials).
const CRM_BENCH_KEY: &str = "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592";

/// What the Shopify stand-in counted.
#[derive(Default)]
struct ShopifyCounts {
    calls: u64,
    throttled: u64,
    /// Customer id by email, and how many times each email was created.
    ids: std::collections::HashMap<String, String>,
    created: std::collections::HashMap<String, u32>,
    /// `tagsAdd` calls per customer id.
    tagged: std::collections::HashMap<String, u32>,
}

/// crmSync: Shopify's Admin GraphQL API on loopback, answering 429 on every tenth call.
struct ShopifyStandIn {
    base_url: String,
    counts: Arc<std::sync::Mutex<ShopifyCounts>>,
}

impl ShopifyStandIn {
    async fn start() -> ShopifyStandIn {
        use axum::response::IntoResponse;
        async fn answer(
            axum::extract::State(counts): axum::extract::State<
                Arc<std::sync::Mutex<ShopifyCounts>>,
            >,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let mut c = counts.lock().unwrap();
            c.calls += 1;
            if c.calls % 10 == 0 {
                c.throttled += 1;
                let mut response = (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({ "errors": "Exceeded 2 calls per second for api client." })),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert("retry-after", "0".parse().unwrap());
                return response;
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let query = request["query"].as_str().unwrap_or("");
            let vars = &request["variables"];
            let data = if query.starts_with("query FindCustomer") {
                let email = vars["query"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("email:\"")
                    .trim_end_matches('"');
                let nodes: Vec<Value> = c
                    .ids
                    .get(email)
                    .map(|id| json!({ "id": id, "email": email }))
                    .into_iter()
                    .collect();
                json!({ "customers": { "nodes": nodes } })
            } else if query.starts_with("mutation CreateCustomer") {
                let email = vars["input"]["email"].as_str().unwrap_or("").to_owned();
                let id = format!("gid://shopify/Customer/{}", c.ids.len() + 1);
                c.ids.entry(email.clone()).or_insert(id.clone());
                *c.created.entry(email).or_default() += 1;
                json!({ "customerCreate": { "customer": { "id": id }, "userErrors": [] } })
            } else if query.starts_with("mutation UpdateCustomer") {
                json!({ "customerUpdate": { "customer": { "id": vars["input"]["id"] }, "userErrors": [] } })
            } else if query.starts_with("mutation AddTags") {
                let id = vars["id"].as_str().unwrap_or("").to_owned();
                *c.tagged.entry(id.clone()).or_default() += 1;
                json!({ "tagsAdd": { "node": { "id": id }, "userErrors": [] } })
            } else {
                return (axum::http::StatusCode::BAD_REQUEST, "unknown operation").into_response();
            };
            axum::Json(json!({ "data": data, "extensions": { "cost": { "requestedQueryCost": 10, "actualQueryCost": 10,
                "throttleStatus": { "maximumAvailable": 2000.0, "currentlyAvailable": 1990.0, "restoreRate": 100.0 } } } }))
                .into_response()
        }
        let counts = Arc::new(std::sync::Mutex::new(ShopifyCounts::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/{{shop}}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ShopifyStandIn { base_url, counts }
    }
}

/// crmSync: see the module documentation.
async fn crm_sync(owner: &mut diesel_async::AsyncPgConnection, shopify: &ShopifyStandIn) {
    use growthgraph::domain::crm::{model::CrmPlatform, ops as crm};
    #[derive(QueryableByName)]
    struct Figures {
        #[diesel(sql_type = BigInt)]
        completed: i64,
        #[diesel(sql_type = BigInt)]
        failed: i64,
        #[diesel(sql_type = BigInt)]
        synced: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        span: f64,
    }
    let syncs: i64 = env_or("BENCH_CRM_SYNCS", 10_000);
    let tenant = tenant(owner, "crm-bench", "CRM bench").await;
    let key: growthgraph::secrets::SecretKey = CRM_BENCH_KEY.parse().unwrap();
    let sealed = key.seal(
        &crm::credentials_context(tenant, CrmPlatform::Shopify),
        json!({ "accessToken": "shpat_bench" })
            .to_string()
            .as_bytes(),
    );
    for statement in [
        "DELETE FROM queue_jobs WHERE tenant_id = $1",
        "DELETE FROM customers WHERE tenant_id = $1",
        "DELETE FROM club_programs WHERE tenant_id = $1",
        "DELETE FROM crm_connections WHERE tenant_id = $1",
    ] {
        diesel::sql_query(statement)
            .bind::<SqlUuid, _>(tenant)
            .execute(owner)
            .await
            .unwrap();
    }
    diesel::sql_query(
        "INSERT INTO crm_connections (tenant_id, provider, shop, credentials_sealed, hook_token_hash)
         VALUES ($1, 'shopify', 'crm-bench.myshopify.com', $2, gen_random_uuid()::text::bytea)",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<diesel::sql_types::Bytea, _>(sealed)
    .execute(owner)
    .await
    .unwrap();
    diesel::sql_query(
        "WITH p AS (INSERT INTO club_programs (tenant_id, name) VALUES ($1, 'Bench club') RETURNING id),
              s AS (INSERT INTO club_stages (tenant_id, program_id, name, stage_order, discount_percentage, duration_months, crm_discount_id)
                    SELECT $1, p.id, 'Bronze', 1, 10, 12, 'club-bronze' FROM p RETURNING id, program_id),
              c AS (INSERT INTO customers (tenant_id, email, name)
                    SELECT $1, 'member' || g || '@crm-bench.test', 'Member ' || g FROM generate_series(1, $2) g RETURNING id),
              e AS (INSERT INTO club_enrollments (tenant_id, customer_id, program_id, stage_id, status, enrolled_at, expires_at, sync_status)
                    SELECT $1, c.id, s.program_id, s.id, 'active', now(), now() + interval '12 months', 'pending' FROM c, s
                    RETURNING id, customer_id, stage_id)
         INSERT INTO queue_jobs (tenant_id, job_type, payload)
         SELECT $1, 'crm_sync', jsonb_build_object('enrollmentId', e.id, 'customerId', e.customer_id,
                'stageId', e.stage_id, 'crmDiscountId', 'club-bronze', 'action', 'add') FROM e",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<BigInt, _>(syncs)
    .execute(owner)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    let figures = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let f: Figures = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE j.status = 'completed') AS completed,
                    count(*) FILTER (WHERE j.status = 'failed') AS failed,
                    (SELECT count(*) FROM club_enrollments e WHERE e.tenant_id = $1 AND e.sync_status = 'synced') AS synced,
                    coalesce(extract(epoch FROM max(j.completed_at) - min(j.created_at)), 0)::float8 AS span
             FROM queue_jobs j WHERE j.tenant_id = $1 AND j.job_type = 'crm_sync'",
        )
        .bind::<SqlUuid, _>(tenant)
        .get_result(owner)
        .await
        .unwrap();
        if f.completed + f.failed >= syncs || Instant::now() > deadline {
            break f;
        }
    };
    let c = shopify.counts.lock().unwrap();
    let doubled = c.created.values().filter(|n| **n > 1).count()
        + c.tagged.values().filter(|n| **n > 1).count();
    println!(
        "\ncrmSync: {syncs} enrollment syncs queued at once through the Shopify connector to a local stand-in \
         answering 429 on every tenth call: {:.0} syncs/s ({} completed, {} failed, {} enrollments synced in {:.1} s); \
         the stand-in answered {} calls ({} of them 429), created {} customers and tagged {}: {} lost, {} doubled",
        figures.completed as f64 / figures.span.max(0.001),
        figures.completed,
        figures.failed,
        figures.synced,
        figures.span,
        c.calls,
        c.throttled,
        c.created.len(),
        c.tagged.len(),
        syncs - (c.tagged.len() as i64).min(syncs),
        doubled,
    );
}

/// workflow: see the module documentation.
async fn workflow(owner: &mut diesel_async::AsyncPgConnection) {
    #[derive(QueryableByName)]
    struct Done {
        #[diesel(sql_type = BigInt)]
        waiting: i64,
        #[diesel(sql_type = BigInt)]
        ended: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        span: f64,
    }
    #[derive(QueryableByName)]
    struct Queued {
        #[diesel(sql_type = BigInt)]
        messages: i64,
        #[diesel(sql_type = BigInt)]
        distinct_steps: i64,
    }
    let recipients: i64 = env_or("BENCH_WORKFLOW_RECIPIENTS", 100_000);
    let tenant = tenant(owner, "workflow-bench", "Workflow bench").await;
    diesel::sql_query("DELETE FROM campaigns WHERE tenant_id = $1")
        .bind::<SqlUuid, _>(tenant)
        .execute(owner)
        .await
        .unwrap();
    diesel::sql_query("DELETE FROM communication_log WHERE tenant_id = $1")
        .bind::<SqlUuid, _>(tenant)
        .execute(owner)
        .await
        .unwrap();
    diesel::sql_query(
        "INSERT INTO customers (tenant_id, email, segment)
         SELECT $1, 'wf' || g || '@bench.test', 'workflow-bench' FROM generate_series(1, $2) g
         ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<BigInt, _>(recipients)
    .execute(owner)
    .await
    .unwrap();
    #[derive(QueryableByName)]
    struct Template {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
    }
    let templates: Vec<Template> = diesel::sql_query(
        "INSERT INTO communication_templates (tenant_id, template_type, channel, name, subject, text_content)
         VALUES ($1, 'custom', 'email', 'First', 'First', 'First'), ($1, 'welcome', 'email', 'Second', 'Second', 'Second')
         ON CONFLICT (tenant_id, template_type, channel) DO UPDATE SET name = excluded.name
         RETURNING id",
    )
    .bind::<SqlUuid, _>(tenant)
    .load(owner)
    .await
    .unwrap();
    let workflow = json!({
        "nodes": [
            { "id": "start", "type": "trigger" },
            { "id": "one", "type": "send", "data": { "channel": "email", "templateId": templates[0].id } },
            { "id": "two", "type": "send", "data": { "channel": "email", "templateId": templates[1].id } },
            { "id": "end", "type": "end" },
        ],
        "edges": [
            { "id": "a", "source": "start", "target": "one" },
            { "id": "b", "source": "one", "target": "two" },
            { "id": "c", "source": "two", "target": "end" },
        ],
    });
    // As createCampaign writes it: the campaign and its funnel counters.
    diesel::sql_query(
        "WITH campaign AS (
           INSERT INTO campaigns (tenant_id, name, channel, workflow_data, target_segment, scheduled_at)
           VALUES ($1, 'Workflow bench', 'email', $2, 'workflow-bench', now()) RETURNING tenant_id, id)
         INSERT INTO campaign_delivery_counters (tenant_id, campaign_id) SELECT tenant_id, id FROM campaign",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<diesel::sql_types::Jsonb, _>(workflow)
    .execute(owner)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    let done = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let d: Done = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE r.status = 'waiting') AS waiting,
                    count(*) FILTER (WHERE r.status = 'ended') AS ended,
                    coalesce(extract(epoch FROM max(r.updated_at) - min(c.started_at)), 0)::float8 AS span
             FROM campaign_runs r JOIN campaigns c ON c.tenant_id = r.tenant_id AND c.id = r.campaign_id
             WHERE r.tenant_id = $1",
        )
        .bind::<SqlUuid, _>(tenant)
        .get_result(owner)
        .await
        .unwrap();
        if (d.ended >= recipients && d.waiting == 0) || Instant::now() > deadline {
            break d;
        }
    };
    let queued: Queued = diesel::sql_query(
        "SELECT count(*) AS messages,
                count(DISTINCT (campaign_recipient_id, template_id)) AS distinct_steps
         FROM communication_log WHERE tenant_id = $1 AND campaign_recipient_id IS NOT NULL",
    )
    .bind::<SqlUuid, _>(tenant)
    .get_result(owner)
    .await
    .unwrap();
    let steps = 2 * done.ended;
    println!(
        "\nworkflow: {recipients} recipients × 2 send steps through the scheduler: {:.0} steps/s \
         (launch → every run ended {:.1} s); runs ended {}, still waiting {}; messages queued {} \
         ({} distinct recipient × step: {} doubled, {} lost)",
        steps as f64 / done.span.max(0.001),
        done.span,
        done.ended,
        done.waiting,
        queued.messages,
        queued.distinct_steps,
        queued.messages - queued.distinct_steps,
        (2 * recipients - queued.distinct_steps).max(0),
    );
}

/// delivery: see the module documentation. `sink` is the SMTP sink's maildir.
async fn delivery(owner: &mut diesel_async::AsyncPgConnection, sink: &std::path::Path) {
    #[derive(QueryableByName)]
    struct Figures {
        #[diesel(sql_type = BigInt)]
        sent: i64,
        #[diesel(sql_type = BigInt)]
        failed: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        span: f64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        p50: f64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        p99: f64,
    }
    let messages: i64 = env_or("BENCH_MESSAGES", 10_000);
    let tenant = tenant(owner, "delivery-bench", "Delivery bench").await;
    diesel::sql_query(
        "INSERT INTO channel_configurations (tenant_id, channel_type, provider, enabled, from_address)
         VALUES ($1, 'email', 'smtp', true, 'bench@growthgraph.test') ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(tenant)
    .execute(owner)
    .await
    .unwrap();
    diesel::sql_query("DELETE FROM communication_log WHERE tenant_id = $1")
        .bind::<SqlUuid, _>(tenant)
        .execute(owner)
        .await
        .unwrap();
    let before = maildir_count(sink);
    diesel::sql_query(
        "WITH queued AS (
           INSERT INTO communication_log (tenant_id, channel, recipient, subject, content, communication_type)
           SELECT $1, 'email', 'reader' || g || '@sink.test', 'Bench ' || g, 'Hello ' || g, 'transactional'
           FROM generate_series(1, $2) g RETURNING tenant_id, id)
         INSERT INTO queue_jobs (tenant_id, job_type, payload)
         SELECT tenant_id, 'message_delivery', jsonb_build_object('messageId', id) FROM queued",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<BigInt, _>(messages)
    .execute(owner)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let figures = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let f: Figures = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    coalesce(extract(epoch FROM max(sent_at) - min(created_at)), 0)::float8 AS span,
                    coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)), 0)::float8 AS p50,
                    coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)), 0)::float8 AS p99
             FROM communication_log WHERE tenant_id = $1",
        )
        .bind::<SqlUuid, _>(tenant)
        .get_result(owner)
        .await
        .unwrap();
        if f.sent + f.failed >= messages || Instant::now() > deadline {
            break f;
        }
    };
    // The sink writes each message as its own file; give it a moment to finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = maildir_count(sink) - before;
    let ids = maildir_message_ids(sink);
    println!(
        "\ndelivery: {messages} messages queued at once through SMTP to a local sink: {:.0} messages/s \
         (queued → last sent {:.2} s), queued → sent p50 {:.0} ms, p99 {:.0} ms; sent {}, failed {}; \
         the sink received {received} ({} distinct Message-IDs: {} doubled)",
        figures.sent as f64 / figures.span.max(0.001),
        figures.span,
        figures.p50 * 1000.0,
        figures.p99 * 1000.0,
        figures.sent,
        figures.failed,
        ids.len(),
        received - ids.len().min(received),
    );
}

fn maildir_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The distinct Message-IDs in the sink's maildir.
fn maildir_message_ids(dir: &std::path::Path) -> std::collections::HashSet<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Default::default();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|mail| {
            mail.lines()
                .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_owned))
        })
        .collect()
}

/// An SMTP server on loopback (Debian's aiosmtpd) writing what it receives into a maildir.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = std::env::temp_dir().join(format!("growthgraph-bench-sink-{port}"));
        let child = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .spawn()
            .expect("python3 with aiosmtpd (Debian: python3-aiosmtpd)");
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpSink {
            child,
            port,
            maildir,
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// A new API key of `tenant`.
async fn api_key(
    owner: &mut diesel_async::AsyncPgConnection,
    tenant: Uuid,
    name: &str,
    role: Role,
) -> String {
    let created = db::tenant::in_tenant_transaction(owner, tenant, |conn, scope| {
        async move { tenancy::create_api_key(conn, scope, name, role).await }.scope_boxed()
    })
    .await;
    created.map_err(|e| format!("{e:?}")).unwrap().1
}

/// Tenant A's most expensive accepted query: 19 searches that match nothing (each scans
/// all of A's customers), cost 19 × (1000 + 10 × 2) = 19 380 of the 20 000 allowed.
fn noisy_query() -> String {
    let searches: String = (0..19)
        .map(|i| format!("s{i}: customers(first: 10, filter: {{ search: \"no such customer\" }}) {{ nodes {{ id }} }} "))
        .collect();
    format!("{{ {searches}}}")
}

/// noisyNeighbour: tenant A (the scale tenant) loops its most expensive accepted query
/// from 20 keys, one client each, while tenant B (a small tenant) loops a simple query
/// from one client. Prints B's latency (SPEC §8: p99 ≤ 100 ms) and how A's requests were
/// answered (throttled ones must be RATE_LIMITED, never 503).
async fn noisy_neighbour(
    owner: &mut diesel_async::AsyncPgConnection,
    base: &str,
    tenant_a: Uuid,
    seconds: u64,
) {
    let mut a_keys = Vec::new();
    for i in 0..20 {
        a_keys.push(api_key(owner, tenant_a, &format!("noisy {i}"), Role::Partner).await);
    }
    let tenant_b = tenant(owner, "quiet-neighbour", "Quiet neighbour").await;
    let b_key = api_key(owner, tenant_b, "quiet", Role::Analyst).await;
    let noisy = Bytes::from(serde_json::to_vec(&json!({ "query": noisy_query() })).unwrap());
    let simple = encode_bodies(
        1,
        |_| json!({ "query": "{ viewer { tenant { slug } } customers(first: 5) { nodes { id name } } }" }),
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let outcomes = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        usize,
    >::new()));
    let mut noisy_clients = Vec::new();
    for key in a_keys {
        let (noisy, outcomes) = (noisy.clone(), outcomes.clone());
        let mut client = Client::new(Endpoint::new(base, &key));
        noisy_clients.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (status, body) = client.answer(noisy.clone()).await;
                let code = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                    v["errors"][0]["extensions"]["code"]
                        .as_str()
                        .map(str::to_owned)
                });
                let outcome = match (status, code) {
                    (200, None) => "ok".to_owned(),
                    (status, Some(code)) => format!("{status} {code}"),
                    (status, None) => format!("{status}"),
                };
                *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
            }
        }));
    }
    // B starts once A's load is on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let quiet = drive(
        base,
        &b_key,
        1,
        seconds.saturating_sub(2).max(1),
        simple,
        None,
    )
    .await;
    for task in noisy_clients {
        task.await.unwrap();
    }
    print_figures("noisyNeighbour B", 1, &quiet, "–");
    let outcomes = outcomes.lock().unwrap();
    let answered: usize = outcomes.values().sum();
    let described: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    println!(
        "noisyNeighbour A: 20 keys, {answered} requests in {seconds} s ({}); B p50 {} ms, p99 {} ms (target ≤ 100 ms)",
        described.join(", "),
        ms(percentile(&quiet.latencies, 0.50)),
        ms(percentile(&quiet.latencies, 0.99)),
    );
}

/// What both servers' answers to a `postgraphile5_*` scenario's query must agree on:
/// every value the query asks for, in one shape, numbers as text (PostGraphile renders
/// `bigint` as a string) and text in lower case. `theirs`: PostGraphile 5's answer, else
/// growthgraph's.
fn canonical(which: &str, answer: &Value, theirs: bool) -> Value {
    // Enum values in either case (growthgraph's `ACTIVE`, the column's `active`).
    fn text(v: &Value) -> Value {
        match v {
            Value::Number(n) => Value::String(n.to_string()),
            Value::String(s) => Value::String(s.to_lowercase()),
            other => other.clone(),
        }
    }
    fn list(v: &Value, field: &str) -> Vec<Value> {
        v["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().map(|n| text(&n[field])).collect())
            .unwrap_or_default()
    }
    let data = &answer["data"];
    assert!(answer["errors"].is_null(), "{answer}");
    match (which, theirs) {
        ("360", false) => {
            let c = &data["customer"];
            json!([
                c["email"],
                c["name"],
                text(&c["ltv"]),
                text(&c["pointsBalance"]),
                c["enrollments"]
                    .as_array()
                    .map(|e| e.iter().map(|e| text(&e["status"])).collect::<Vec<_>>()),
                list(&c["activities"], "type"),
                list(&c["orders"], "orderTotal"),
                list(&c["pointTransactions"], "points"),
                list(&c["redemptions"], "status"),
                list(&c["communications"], "status"),
                list(&c["campaignHistory"], "status"),
                c["leads"].as_array().map(Vec::len)
            ])
        }
        ("360", true) => {
            let c = &data["customerByRowId"];
            json!([
                c["email"],
                c["name"],
                text(&c["ltv"]),
                text(&c["pointsBalance"]),
                list(&c["clubEnrollmentsByTenantIdAndCustomerId"], "status"),
                list(
                    &c["customerActivitiesByTenantIdAndCustomerId"],
                    "activityType"
                ),
                list(&c["ordersByTenantIdAndCustomerId"], "orderTotal"),
                list(&c["pointTransactionsByTenantIdAndCustomerId"], "points"),
                list(&c["rewardRedemptionsByTenantIdAndCustomerId"], "status"),
                list(&c["communicationLogsByTenantIdAndCustomerId"], "status"),
                list(&c["campaignRecipientsByTenantIdAndCustomerId"], "status"),
                c["leadMemoriesByTenantIdAndCustomerId"]["nodes"]
                    .as_array()
                    .map(Vec::len)
            ])
        }
        ("page", false) => {
            let nodes = data["customers"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            json!(nodes
                .iter()
                .map(|c| json!([
                    c["id"],
                    text(&c["pointsBalance"]),
                    c["currentEnrollment"]["stage"]["name"],
                    list(&c["activities"], "type"),
                    list(&c["orders"], "orderTotal")
                ]))
                .collect::<Vec<_>>())
        }
        ("page", true) => {
            let nodes = data["allCustomers"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            json!(nodes
                .iter()
                .map(|c| {
                    let enrollments = c["clubEnrollmentsByTenantIdAndCustomerId"]["nodes"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let current = enrollments.iter().find(|e| e["status"] == "active");
                    json!([
                        c["rowId"],
                        text(&c["pointsBalance"]),
                        current.map_or(Value::Null, |e| e["clubStageByTenantIdAndStageId"]["name"]
                            .clone()),
                        list(
                            &c["customerActivitiesByTenantIdAndCustomerId"],
                            "activityType"
                        ),
                        list(&c["ordersByTenantIdAndCustomerId"], "orderTotal")
                    ])
                })
                .collect::<Vec<_>>())
        }
        (_, theirs) => {
            let m = match theirs {
                false => &data["campaign"]["metrics"],
                true => &data["campaignByRowId"]["campaignDeliveryCounterByTenantIdAndCampaignId"],
            };
            let counters = [
                "recipients",
                "sent",
                "delivered",
                "opened",
                "clicked",
                "failed",
            ];
            json!(counters.map(|f| text(&m[f])))
        }
    }
}

/// Fan-out: BENCH_SUBSCRIBERS WebSocket subscribers of the tenant's events; BENCH_EVENTS
/// events written BENCH_EVENT_INTERVAL_MS apart; prints delivery latency (from the writing
/// request's start to receipt) and the server's memory.
async fn fanout(client: &reqwest::Client, base: &str, key: &str, server: &Server) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let subscribers: usize = env_or("BENCH_SUBSCRIBERS", 10_000);
    let events: usize = env_or("BENCH_EVENTS", 50);
    let interval = Duration::from_millis(env_or("BENCH_EVENT_INTERVAL_MS", 100));
    let ws_url = base.replace("http://", "ws://") + "/ws";
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    // One key holds at most MAX_SOCKETS_PER_KEY sockets: spread subscribers over partner keys.
    let per_key = growthgraph::http::MAX_SOCKETS_PER_KEY;
    let mut keys = Vec::new();
    for _ in 0..subscribers.div_ceil(per_key) {
        let r: Value = client
            .post(base)
            .bearer_auth(key)
            .json(&json!({ "query": "mutation { createApiKey(input: { name: \"fan-out\", role: PARTNER }) { secret } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(
            r["data"]["createApiKey"]["secret"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut ready = Vec::new();
    for i in 0..subscribers {
        let (url, key, tx) = (ws_url.clone(), keys[i / per_key].clone(), tx.clone());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(ready_rx);
        tokio::spawn(async move {
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "graphql-transport-ws".parse().unwrap(),
            );
            // A small read buffer, as the server uses: tungstenite's 128 KiB default is
            // zeroed on every read, which made the clients the bottleneck.
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(4096);
            let Ok((mut socket, _)) =
                tokio_tungstenite::connect_async_with_config(request, Some(config), true).await
            else {
                return;
            };
            let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } });
            let _ = socket.send(Message::Text(init.to_string().into())).await;
            let _ = socket.next().await;
            let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { events(types: [\"lead.created\"]) { subjectId payload } }" } });
            let _ = socket
                .send(Message::Text(subscribe.to_string().into()))
                .await;
            let _ = ready_tx.send(());
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message {
                    // The subject id is all the client needs: find it without a full parse
                    // (the clients share this machine's two cores with the server).
                    let subject = text
                        .as_str()
                        .split_once("\"subjectId\":\"")
                        .and_then(|(_, rest)| rest.split_once('"'))
                        .map(|(id, _)| id.to_owned());
                    if let Some(subject) = subject {
                        let _ = tx.send((subject, Instant::now()));
                    }
                }
            }
        });
    }
    for r in ready {
        let _ = r.await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut sent_at = std::collections::HashMap::new();
    let started = Instant::now();
    for i in 0..events {
        let t = Instant::now();
        let r: Value = client
            .post(base)
            .bearer_auth(key)
            .json(&json!({ "query": "mutation($e: String!) { ingestLead(input: { name: \"Fan\", email: $e }) { lead { id } } }", "variables": { "e": format!("fan{i}@bench.example") } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The commit happened before the response: measure from the request's start.
        sent_at.insert(
            r["data"]["ingestLead"]["lead"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            t,
        );
        tokio::time::sleep(interval).await;
    }
    let expected = subscribers * events;
    let mut latencies = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.len() < expected && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some((subject, at))) => {
                if let Some(t) = sent_at.get(&subject) {
                    latencies.push(at - *t);
                }
            }
            _ => break,
        }
    }
    latencies.sort();
    let (rss, peak) = (server.memory("VmRSS"), server.memory("VmHWM"));
    print_row([
        "fanout",
        &subscribers.to_string(),
        &format!(
            "{:.0}",
            latencies.len() as f64 / started.elapsed().as_secs_f64()
        ),
        &ms(percentile(&latencies, 0.50)),
        &ms(percentile(&latencies, 0.95)),
        &ms(percentile(&latencies, 0.99)),
        &(expected - latencies.len()).to_string(),
        "-",
        "-",
        "-",
        "-",
        "-",
    ]);
    println!("  (fan-out: {subscribers} subscribers × {events} events; req/s column = deliveries/s; errors = undelivered; server RSS {rss} with the sockets open, peak {peak})");
}

/// `refreshGrowthInsights` over every lead of the data set (one per ten customers), five
/// times in a row: prints each duration.
async fn growth_insights(client: &reqwest::Client, base: &str, key: &str) {
    let start = "2000-01-01T00:00:00Z";
    let mut timings = Vec::new();
    let mut total = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let r: Value = client
            .post(base)
            .bearer_auth(key)
            .json(&json!({ "query": "mutation($s: DateTime) { refreshGrowthInsights(input: { periodStart: $s }) { growthInsights { totalLeads } } }", "variables": { "s": start } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        timings.push(t.elapsed());
        total = r["data"]["refreshGrowthInsights"]["growthInsights"]["totalLeads"]
            .as_i64()
            .unwrap_or(-1);
    }
    timings.sort();
    print_row([
        "growthInsights",
        "1",
        "-",
        &ms(timings[2]),
        "-",
        &ms(timings[4]),
        "0",
        "2",
        "-",
        "-",
        "-",
        "-",
    ]);
    println!("  (refreshGrowthInsights over {total} live leads: median and worst of 5 runs, ms)");
}

/// importProspects: `BENCH_PROSPECTS` new candidates (websites no run used before)
/// imported by one client in calls of 1 000 rows, one after another; prints the whole
/// import's duration and each call's median and worst latency, and checks that every row
/// became one candidate.
async fn import_prospects(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    owner: &mut diesel_async::AsyncPgConnection,
    tenant: Uuid,
) {
    let rows: usize = env_or("BENCH_PROSPECTS", 100_000);
    let run = Uuid::new_v4().simple().to_string();
    let count =
        diesel::sql_query("SELECT count(*) AS n FROM prospect_candidates WHERE tenant_id = $1")
            .bind::<SqlUuid, _>(tenant);
    let before = count.clone().get_result::<Count>(owner).await.unwrap().n;
    let industries = ["restaurant", "hospitality", "retail", "wine bar", "caterer"];
    let bodies: Vec<Value> = (0..rows.div_ceil(1_000))
        .map(|batch| {
            let input: Vec<Value> = (batch * 1_000..((batch + 1) * 1_000).min(rows))
                .map(|i| json!({
                    "businessName": format!("Prospect {i}"),
                    "website": format!("https://www.p{i}-{run}.example/"),
                    "contactEmail": format!("hello@p{i}-{run}.example"),
                    "industry": industries[i % industries.len()],
                    "region": "Rhône",
                    "formUrl": (i % 2 == 0).then(|| format!("https://p{i}-{run}.example/contact")),
                }))
                .collect();
            json!({ "query": "mutation($i: [ProspectCandidateInput!]!) { importProspectCandidates(input: $i) { userErrors { code } } }", "variables": { "i": input } })
        })
        .collect();
    let started = Instant::now();
    let mut timings = Vec::with_capacity(bodies.len());
    let (mut refused, mut failed) = (0, 0);
    for body in &bodies {
        let t = Instant::now();
        let r: Value = client
            .post(base)
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        timings.push(t.elapsed());
        match r["data"]["importProspectCandidates"]["userErrors"].as_array() {
            Some(errors) => refused += errors.len(),
            None => failed += 1,
        }
    }
    let took = started.elapsed();
    timings.sort();
    let imported = count.get_result::<Count>(owner).await.unwrap().n - before;
    print_row([
        "importProspects",
        "1",
        &format!("{:.0}", rows as f64 / took.as_secs_f64()),
        &ms(timings[timings.len() / 2]),
        "-",
        &ms(timings[timings.len() - 1]),
        "0",
        "-",
        "-",
        "-",
        "-",
        "-",
    ]);
    println!(
        "  (importProspectCandidates: {rows} rows in calls of 1 000 took {:.1} s ({:.0} rows/s; \
         throughput column), median and worst call in ms; {imported} candidates written, {refused} rows refused, {failed} calls failed)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
}

/// assignPromptVariant: a running A/B test of two variants in the benchmark's tenant
/// (made once, kept by the data set); answers its name.
async fn bench_prompt_test(client: &reqwest::Client, base: &str, key: &str) -> &'static str {
    let name = "bench prompts";
    let gql = |query: &'static str, variables: Value| async move {
        client
            .post(base)
            .bearer_auth(key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let found = gql(
        "query($t: String!) { promptAbTest(testName: $t) { status } }",
        json!({ "t": name }),
    )
    .await;
    if found["data"]["promptAbTest"]["status"] == "RUNNING" {
        return name;
    }
    let mut ids = Vec::new();
    for variant in ["bench_v1", "bench_v2"] {
        let r = gql(
            "mutation($v: String!) { createPromptVariant(input: { promptName: \"bench\", variantId: $v, text: \"Classify.\" }) { prompt { id } } }",
            json!({ "v": variant }),
        )
        .await;
        ids.push(r["data"]["createPromptVariant"]["prompt"]["id"].clone());
    }
    let r = gql(
        "mutation($c: ID!, $t: ID!) { createPromptAbTest(input: { testName: \"bench prompts\", controlVariantId: $c, treatmentVariantId: $t, controlTrafficPercentage: \"30\", treatmentTrafficPercentage: \"70\" }) { test { id } } }",
        json!({ "c": ids[0], "t": ids[1] }),
    )
    .await;
    let id = r["data"]["createPromptAbTest"]["test"]["id"].clone();
    gql(
        "mutation($id: ID!) { startPromptAbTest(id: $id) { test { status } } }",
        json!({ "id": id }),
    )
    .await;
    name
}

/// The 360's page sizes in `CUSTOMER_360`, for its minimal SQL.
const FIRSTS_360: Firsts = Firsts {
    activities: 10,
    orders: 5,
    point_transactions: 5,
    redemptions: 5,
    communications: 5,
    campaign_history: 5,
};

/// `pgbench360`: pgbench running the minimal SQL of `customer360` (the one statement its
/// request runs, from the server's own code) for the same customers, at each level, as
/// the connecting role (no row-level security) with generic plans, as the server's pool
/// has them. Each transaction first looks its customer up by a random number, as each of
/// the server's requests first looks its key up: two statements, as the server's `stmts`.
async fn pgbench_360(
    owner: &mut diesel_async::AsyncPgConnection,
    url: &str,
    tenant: Uuid,
    ids: &[Uuid],
    levels: &[usize],
    seconds: u64,
) {
    let pgbench = db::cluster::find_bin_dir(None)
        .map(|dir| dir.join("pgbench"))
        .filter(|path| path.is_file())
        .expect("pgbench360 needs pgbench beside the PostgreSQL server binaries");
    diesel_async::SimpleAsyncConnection::batch_execute(
        owner,
        "DROP TABLE IF EXISTS bench_customer_ids; \
         CREATE TABLE bench_customer_ids (n int PRIMARY KEY, id uuid NOT NULL)",
    )
    .await
    .unwrap();
    diesel::sql_query(
        "INSERT INTO bench_customer_ids SELECT n - 1, id FROM unnest($1) WITH ORDINALITY AS t(id, n)",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(ids)
    .execute(owner)
    .await
    .unwrap();
    let (statement, limits) = every_part_statement(FIRSTS_360).unwrap();
    let statement = substitute_places(&statement, |place| match place {
        1 => ":tenant".to_owned(),
        // The ids of the customers read together: here one.
        2 => "ARRAY[:id::uuid]".to_owned(),
        _ => limits
            .iter()
            .find(|(p, _)| *p == place)
            .map(|(_, limit)| limit.to_string())
            .expect("every place of the statement has a value"),
    });
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("360.sql");
    std::fs::write(
        &script,
        format!(
            "\\set n random(0, {})\nSELECT id FROM bench_customer_ids WHERE n = :n \\gset\n{statement};\n",
            ids.len() - 1
        ),
    )
    .unwrap();
    let run = |clients: usize, seconds: u64| {
        let logs = tempfile::tempdir_in(dir.path()).unwrap();
        let before = CpuSnapshot::take(None);
        let output = std::process::Command::new(&pgbench)
            .args(["-n", "-M", "prepared", "-l"])
            .args([
                "-c",
                &clients.to_string(),
                "-j",
                &clients.min(2).to_string(),
            ])
            .args(["-T", &seconds.to_string()])
            .arg("-D")
            .arg(format!("tenant={tenant}"))
            .arg("-f")
            .arg(&script)
            .arg(url)
            .env("PGOPTIONS", "-c plan_cache_mode=force_generic_plan")
            .current_dir(logs.path())
            .output()
            .expect("pgbench runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "pgbench failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        pgbench_figures(&stdout, logs.path(), before)
    };
    run(WARM_UP.0, WARM_UP.1);
    for &concurrency in levels {
        let figures = run(concurrency, seconds);
        print_figures("pgbench360", concurrency, &figures, "2");
    }
    diesel_async::SimpleAsyncConnection::batch_execute(owner, "DROP TABLE bench_customer_ids")
        .await
        .unwrap();
}

/// `text` with each `$n` replaced by `value(n)`.
fn substitute_places(text: &str, value: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (place, number) in db::sql::placeholders(text) {
        out.push_str(&text[copied..place.start]);
        match number {
            Some(number) => out.push_str(&value(number)),
            None => out.push_str(&text[place.clone()]),
        }
        copied = place.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// A pgbench level's figures: throughput from its report (connections excluded), latency
/// from its per-transaction logs (`-l`: the third field, µs), the generator's CPU being
/// pgbench's own.
fn pgbench_figures(report: &str, logs: &std::path::Path, before: CpuSnapshot) -> Figures {
    let field = |prefix: &str| -> f64 {
        report
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("pgbench reports {prefix:?}: {report}"))
    };
    let tps = field("tps = ");
    let failed = field("number of failed transactions: ");
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(logs).unwrap().flatten() {
        let log = std::fs::read_to_string(entry.path()).unwrap();
        latencies.extend(log.lines().filter_map(|line| {
            let micros = line.split_whitespace().nth(2)?.parse().ok()?;
            Some(Duration::from_micros(micros))
        }));
    }
    latencies.sort();
    let requests = latencies.len();
    let cpu = CpuSnapshot::take(None).since(&before, requests, false);
    Figures {
        requests,
        errors: failed as usize,
        elapsed: Duration::from_secs_f64(requests as f64 / tps.max(f64::MIN_POSITIVE)),
        latencies,
        cpu,
    }
}

const REDEEM: &str = "mutation($c: ID!, $r: ID!) { redeemReward(input: { customerId: $c, rewardId: $r, quantity: 1 }) {
  redemption { id status } userErrors { code } } }";

/// A 10-point reward with unlimited stock, so each funded customer can redeem often.
async fn create_bench_reward(client: &reqwest::Client, url: &str, key: &str) -> String {
    let response: Value = client
        .post(url)
        .bearer_auth(key)
        .json(&json!({ "query": "mutation { createReward(input: { name: \"Bench reward\", rewardType: MERCHANDISE, pointsCost: 10, unlimitedInventory: true }) { reward { id } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["data"]["createReward"]["reward"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createReward: {response}"))
        .to_owned()
}

/// What the machine's huge pages hold (`/proc/meminfo`): PostgreSQL maps its shared
/// buffers on them when some are reserved (`vm.nr_hugepages`; the embedded cluster asks
/// with `huge_pages=try`), and each backend then takes one page fault and one TLB entry
/// per 2 MB of buffers instead of per 4 kB (at 1 M customers ≈ 15 % of PostgreSQL's CPU
/// per `customer(id)`).
fn huge_pages_in_use() -> String {
    let meminfo = Meminfo::read();
    let field = |name: &str| meminfo.field(name).unwrap_or(0);
    let (total, free, reserved) = (
        field("HugePages_Total:"),
        field("HugePages_Free:"),
        field("HugePages_Rsvd:"),
    );
    let page_mb = field("Hugepagesize:") / 1024;
    if total == 0 {
        return "huge pages: none reserved (vm.nr_hugepages = 0): shared buffers in 4 kB pages"
            .into();
    }
    let held = total - free + reserved;
    format!(
        "huge pages: {} of {} MB held (vm.nr_hugepages = {total})",
        held * page_mb,
        total * page_mb
    )
}

/// A quarter of the machine's memory, in PostgreSQL's units: the usual size of
/// `shared_buffers` on a database server (6 GB of 24 holds the 1 M data set whole).
fn quarter_of_memory() -> String {
    let total_kb = Meminfo::read().field("MemTotal:").unwrap_or(512 * 1024);
    format!("{}MB", total_kb / 4 / 1024)
}

/// The machine's `/proc/meminfo`.
struct Meminfo(String);

impl Meminfo {
    fn read() -> Self {
        Meminfo(std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
    }

    /// The value of the line starting with `name` (kB for sizes, a count for pages).
    fn field(&self, name: &str) -> Option<u64> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server under test: `growthgraph serve` as its own process (its own file-descriptor
/// limit and memory), configured by the usual `GROWTHGRAPH_*` variables.
struct Server {
    child: std::process::Child,
    origin: String,
}

impl Server {
    /// `env`: settings of this run (the SMTP relay, Shopify's stand-in, …).
    async fn start(url: &str, env: Vec<(&'static str, String)>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(std::env::temp_dir().join("growthgraph-bench-server.log"))
            .unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_growthgraph"));
        command
            .args(["serve", "--database-url", url])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        command.envs(env);
        if std::env::var_os("GROWTHGRAPH_LOG").is_none() {
            command.env("GROWTHGRAPH_LOG", "warn");
        }
        let server = Server {
            child: command.spawn().expect("growthgraph serve starts"),
            origin: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client
                .get(format!("{}/readyz", server.origin))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return server;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Data statements the server has run (its `/metrics` counter).
    async fn data_statements(&self, client: &reqwest::Client) -> u64 {
        let text = client
            .get(format!("{}/metrics", self.origin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("growthgraph_sql_statements_total{kind=\"data\"} "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the statement counter is exported")
    }

    /// A line of the server's /proc status (`VmRSS`, `VmHWM`).
    fn memory(&self, field: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)
                    .map(|v| v.trim_start_matches(':').trim().to_owned())
            })
            .unwrap_or_else(|| "?".into())
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What the generator reads of a GraphQL response: whether it has data and no errors
/// (every byte is still parsed).
#[derive(serde::Deserialize)]
struct Outcome {
    data: Option<serde::de::IgnoredAny>,
    errors: Option<serde::de::IgnoredAny>,
}

struct Figures {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    cpu: CpuUse,
}

/// CPU time spent during a level, per request, by the server process, PostgreSQL's
/// processes and the generator itself, and the share of the machine's time the hypervisor
/// took (steal): the figures that say whether a level was disturbed, and by whom.
#[derive(Default)]
struct CpuUse {
    /// `None` when the server under test is not our process (PostGraphile).
    server_us: Option<f64>,
    postgres_us: f64,
    generator_us: f64,
    steal_percent: f64,
}

/// Clock ticks (user + system) of the processes that matter, and the machine's totals.
struct CpuSnapshot {
    server: u64,
    postgres: u64,
    generator: u64,
    steal: u64,
    total: u64,
}

impl CpuSnapshot {
    /// `server`: the server's process, when it is ours to watch.
    fn take(server: Option<u32>) -> Self {
        // Fields after the command name, which is in parentheses and may hold spaces:
        // utime and stime are the 12th and 13th, then cutime and cstime (children waited
        // for). PostgreSQL's and the generator's are counted with them: the postmaster's
        // children include the backends of connections closed during the level, and the
        // generator's the pgbench it ran.
        let ticks = |stat: &str, fields: usize| -> u64 {
            stat.rsplit_once(')')
                .map(|(_, rest)| {
                    rest.split_whitespace()
                        .skip(11)
                        .take(fields)
                        .filter_map(|f| f.parse::<u64>().ok())
                        .sum()
                })
                .unwrap_or(0)
        };
        let read = |path: String| std::fs::read_to_string(path).unwrap_or_default();
        let mut postgres = 0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            if read(format!("/proc/{pid}/comm")).starts_with("postgres") {
                postgres += ticks(&read(format!("/proc/{pid}/stat")), 4);
            }
        }
        let machine: Vec<u64> = read("/proc/stat".into())
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        CpuSnapshot {
            server: server.map_or(0, |pid| ticks(&read(format!("/proc/{pid}/stat")), 2)),
            postgres,
            generator: ticks(&read("/proc/self/stat".into()), 4),
            steal: machine.get(7).copied().unwrap_or(0),
            total: machine.iter().take(8).sum(),
        }
    }

    fn since(&self, before: &CpuSnapshot, requests: usize, server: bool) -> CpuUse {
        let tick_us = 1e6
            / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .unwrap_or(100) as f64;
        let per_request =
            |a: u64, b: u64| a.saturating_sub(b) as f64 * tick_us / requests.max(1) as f64;
        CpuUse {
            server_us: server.then(|| per_request(self.server, before.server)),
            postgres_us: per_request(self.postgres, before.postgres),
            generator_us: per_request(self.generator, before.generator),
            steal_percent: (self.steal - before.steal) as f64 * 100.0
                / (self.total - before.total).max(1) as f64,
        }
    }
}

/// One line of the results table, header included: every scenario prints through it.
fn print_row(cells: [&str; 12]) {
    const WIDTHS: [usize; 12] = [16, 5, 8, 8, 8, 8, 6, 5, 9, 7, 7, 6];
    let mut line = format!("{:<16}", cells[0]);
    for (cell, width) in cells.iter().zip(WIDTHS).skip(1) {
        line.push_str(&format!(" {cell:>width$}"));
    }
    println!("{line}");
}

fn print_header() {
    print_row([
        "scenario", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "stmts", "srv µs",
        "pg µs", "gen µs", "steal",
    ]);
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn print_figures(scenario: &str, concurrency: usize, f: &Figures, statements: &str) {
    let us = |v: f64| format!("{v:.0}");
    print_row([
        scenario,
        &concurrency.to_string(),
        &format!("{:.0}", f.requests as f64 / f.elapsed.as_secs_f64()),
        &ms(percentile(&f.latencies, 0.50)),
        &ms(percentile(&f.latencies, 0.95)),
        &ms(percentile(&f.latencies, 0.99)),
        &f.errors.to_string(),
        statements,
        &f.cpu.server_us.map_or("-".into(), us),
        &us(f.cpu.postgres_us),
        &us(f.cpu.generator_us),
        &format!("{:.1}%", f.cpu.steal_percent),
    ]);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// A scenario's request bodies, JSON-encoded before the clock starts: request `i` sends
/// `bodies[i % len]`.
type Bodies = Arc<Vec<Bytes>>;

fn encode_bodies(count: usize, body: impl Fn(usize) -> Value) -> Bodies {
    Arc::new(
        (0..count.max(1))
            .map(|i| Bytes::from(serde_json::to_vec(&body(i)).unwrap()))
            .collect(),
    )
}

/// Where the clients post: the GraphQL URL's address and path, and the key's header.
struct Endpoint {
    address: String,
    path: String,
    authorization: Option<String>,
}

impl Endpoint {
    /// `key` empty: requests without an `Authorization` header.
    fn new(url: &str, key: &str) -> Arc<Self> {
        let url = reqwest::Url::parse(url).expect("a valid URL");
        Arc::new(Endpoint {
            address: format!(
                "{}:{}",
                url.host_str().unwrap_or("127.0.0.1"),
                url.port_or_known_default().unwrap_or(80)
            ),
            path: url.path().to_owned(),
            authorization: (!key.is_empty()).then(|| format!("Bearer {key}")),
        })
    }
}

/// One simulated client: a keep-alive HTTP/1.1 connection of its own (reconnected after a
/// failure), the way a dashboard's or partner's client holds one.
struct Client {
    endpoint: Arc<Endpoint>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(endpoint: Arc<Endpoint>) -> Self {
        Client {
            endpoint,
            sender: None,
        }
    }

    /// Posts `body`; true when the response is a success with data and no errors.
    async fn post(&mut self, body: Bytes) -> bool {
        let (status, body) = self.answer(body).await;
        // The whole response is checked for `errors`, without building a tree of it.
        (200..300).contains(&status)
            && serde_json::from_slice::<Outcome>(&body)
                .is_ok_and(|o| o.data.is_some() && o.errors.is_none())
    }

    /// Posts `body`; the response's status and body (status 0: no response).
    async fn answer(&mut self, body: Bytes) -> (u16, Bytes) {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = self.connect().await;
        }
        let Some(sender) = self.sender.as_mut() else {
            return (0, Bytes::new());
        };
        let endpoint = &self.endpoint;
        let mut request = hyper::Request::post(&endpoint.path)
            .header(hyper::header::HOST, &endpoint.address)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(authorization) = &endpoint.authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization);
        }
        let request = request.body(Full::new(body)).unwrap();
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => {
                self.sender = None;
                return (0, Bytes::new());
            }
        };
        let status = response.status().as_u16();
        match response.into_body().collect().await {
            Ok(body) => (status, body.to_bytes()),
            Err(_) => {
                self.sender = None;
                (0, Bytes::new())
            }
        }
    }

    async fn connect(&self) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.endpoint.address)
            .await
            .ok()?;
        stream.set_nodelay(true).ok()?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(connection);
        Some(sender)
    }
}

/// A scenario's unmeasured run before its levels: clients and seconds, about one pass over
/// the 360's customers, so its first level does not measure reads of pages the operating
/// system has evicted since the last run.
const WARM_UP: (usize, u64) = (16, 2);

async fn warm_up(url: &str, key: &str, bodies: &Bodies, server: Option<u32>) {
    let (clients, seconds) = WARM_UP;
    drive(url, key, clients, seconds, bodies.clone(), server).await;
}

/// Drives `url` with `concurrency` clients for `seconds`, each sending its next request as
/// soon as the previous response is read (a closed loop). The generator shares the
/// machine with the server and PostgreSQL, so it does little per request: bodies are
/// encoded beforehand and each client keeps one connection.
async fn drive(
    url: &str,
    key: &str,
    concurrency: usize,
    seconds: u64,
    bodies: Bodies,
    server: Option<u32>,
) -> Figures {
    drive_keys(url, &[key], concurrency, seconds, bodies, server).await
}

/// [`drive`] with the clients spread over `keys` (client `i` uses key `i % keys.len()`).
async fn drive_keys(
    url: &str,
    keys: &[&str],
    concurrency: usize,
    seconds: u64,
    bodies: Bodies,
    server: Option<u32>,
) -> Figures {
    let endpoints: Vec<_> = keys.iter().map(|key| Endpoint::new(url, key)).collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let before = CpuSnapshot::take(server);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let endpoint = endpoints[worker % endpoints.len()].clone();
        let (mut client, bodies) = (Client::new(endpoint), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut i) = (Vec::new(), 0usize, worker);
            while Instant::now() < deadline {
                let body = bodies[i % bodies.len()].clone();
                let t = Instant::now();
                let ok = client.post(body).await;
                latencies.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
                i += concurrency;
            }
            (latencies, errors)
        }));
    }
    let mut figures = Figures {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        cpu: CpuUse::default(),
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        figures.requests += latencies.len();
        figures.errors += errors;
        figures.latencies.extend(latencies);
    }
    figures.elapsed = started.elapsed();
    figures.cpu = CpuSnapshot::take(server).since(&before, figures.requests, server.is_some());
    figures.latencies.sort();
    figures
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let data_dir =
        std::path::PathBuf::from(env_or("BENCH_DATA_DIR", "target/bench-data".to_string()));
    let customers: u64 = env_or("BENCH_CUSTOMERS", 100_000);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let levels: Vec<usize> = env_or("BENCH_CONCURRENCY", "1,16,64".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let scenarios = env_or(
        "BENCH_SCENARIOS",
        "customer360,customer360_keys,pgbench360,customersPage,redeemReward,campaignMetrics,campaignsPage,leadsPage,aggregateSegments,aggregateRevenue,aggregateRecipients,growthInsights,noisyNeighbour,fanout,delivery,crmSync,importProspects,assignPromptVariant"
            .to_string(),
    );

    let (url, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let dir = data_dir.clone();
            let shared_buffers = env_or("BENCH_SHARED_BUFFERS", quarter_of_memory());
            let cluster = tokio::task::spawn_blocking(move || {
                // Huge pages when the machine reserves them (`vm.nr_hugepages`), else
                // ordinary ones: see `huge_pages_in_use`.
                let settings = [
                    ("shared_buffers", shared_buffers.as_str()),
                    ("huge_pages", "try"),
                ];
                Cluster::start_with(&dir, None, Durability::Durable, &settings)
            })
            .await
            .unwrap()
            .expect("PostgreSQL starts");
            growthgraph::commands::create_database_if_missing(
                &cluster.url("postgres"),
                "growthgraph",
            )
            .await
            .unwrap();
            (cluster.url("growthgraph"), Some(cluster))
        }
    };
    db::migrate(&url).await.unwrap();
    let mut owner = db::connect_owner(&url).await.unwrap();
    let tenant_id = tenant(&mut owner, "scale-test", "Scale test").await;
    let present: Count =
        diesel::sql_query("SELECT count(*) AS n FROM customers WHERE tenant_id = $1")
            .bind::<SqlUuid, _>(tenant_id)
            .get_result(&mut owner)
            .await
            .unwrap();
    if (present.n as u64) < customers {
        eprintln!("loading {} customers…", customers - present.n as u64);
        let took =
            growthgraph::seed::scale::seed_scale(&url, tenant_id, customers - present.n as u64)
                .await
                .unwrap();
        eprintln!("seed --scale took {:.1} s", took.as_secs_f64());
        diesel_async::SimpleAsyncConnection::batch_execute(&mut owner, "VACUUM ANALYZE")
            .await
            .unwrap();
    }
    let key = api_key(&mut owner, tenant_id, "bench", Role::Admin).await;
    let funded: Vec<Uuid> = diesel::sql_query(
        "SELECT id FROM customers WHERE tenant_id = $1 AND points_balance >= 100 ORDER BY md5(id::text) LIMIT 20000",
    )
    .bind::<SqlUuid, _>(tenant_id)
    .load::<Id>(&mut owner)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.id)
    .collect();
    let ids: Vec<Uuid> = diesel::sql_query(
        "SELECT id FROM customers WHERE tenant_id = $1 ORDER BY md5(id::text) LIMIT 5000",
    )
    .bind::<SqlUuid, _>(tenant_id)
    .load::<Id>(&mut owner)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.id)
    .collect();

    let sink = match scenarios.contains("delivery") {
        true => Some(SmtpSink::start().await),
        false => None,
    };
    let mut env = Vec::new();
    if let Some(sink) = &sink {
        env.push((
            "GROWTHGRAPH_SMTP_URL",
            format!("smtp://127.0.0.1:{}", sink.port),
        ));
    }
    let shopify = match scenarios.contains("crmSync") {
        true => Some(ShopifyStandIn::start().await),
        false => None,
    };
    if let Some(shopify) = &shopify {
        env.push(("GROWTHGRAPH_SHOPIFY_BASE_URL", shopify.base_url.clone()));
        env.push(("GROWTHGRAPH_SECRET_KEY", CRM_BENCH_KEY.to_owned()));
    }
    if scenarios.contains("importProspects") {
        // A call of 1 000 candidates is about 250 KB: above the default body limit.
        env.push(("GROWTHGRAPH_MAX_BODY_BYTES", "1048576".to_owned()));
    }
    let server = Server::start(&url, env).await;
    let base = format!("{}/graphql", server.origin);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();

    // Idle: started, pool open, no request served yet (SPEC §8: ≤ 40 MB).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = server.memory("VmRSS");

    let total = present.n.max(customers as i64);
    println!("\ngrowthgraph benchmark: {total} customers, {seconds} s per level, loopback HTTP");
    println!("server RSS idle: {idle_rss}");
    println!("{}\n", huge_pages_in_use());
    print_header();
    let reward_id = create_bench_reward(&client, &base, &key).await;
    let campaign_id = {
        let r: Value = client
            .post(&base)
            .bearer_auth(&key)
            .json(&json!({ "query": "{ campaigns(first: 1, filter: { search: \"Scale campaign\" }) { nodes { id metrics { recipients } } } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        println!(
            "campaign scenario: 'Scale campaign' with {} recipients",
            r["data"]["campaigns"]["nodes"][0]["metrics"]["recipients"]
        );
        r["data"]["campaigns"]["nodes"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for scenario in scenarios.split(',') {
        if scenario == "pgbench360" {
            pgbench_360(&mut owner, &url, tenant_id, &ids, &levels, seconds).await;
            continue;
        }
        if let Some(which) = scenario.strip_prefix("postgraphile5_") {
            let url = std::env::var("BENCH_POSTGRAPHILE5_URL").expect(
                "postgraphile5_* needs BENCH_POSTGRAPHILE5_URL (bench/postgraphile.sh URL PORT 5)",
            );
            let (ours, theirs): (Bodies, Bodies) = match which {
                "360" => (
                    encode_bodies(
                        ids.len(),
                        |i| json!({ "query": CUSTOMER_360, "variables": { "id": ids[i] } }),
                    ),
                    encode_bodies(
                        ids.len(),
                        |i| json!({ "query": POSTGRAPHILE5_360, "variables": { "id": ids[i] } }),
                    ),
                ),
                "page" => (
                    encode_bodies(1, |_| json!({ "query": CUSTOMERS_PAGE })),
                    encode_bodies(
                        1,
                        |_| json!({ "query": POSTGRAPHILE5_PAGE, "variables": { "t": tenant_id } }),
                    ),
                ),
                "pages" => {
                    let end = CUSTOMERS_PAGE_END;
                    let ours = page_cursors(&client, (&base, &key), end, json!({}), "customers");
                    let (theirs, end) = (json!({ "t": tenant_id }), POSTGRAPHILE5_PAGE_END);
                    let theirs = page_cursors(&client, (&url, ""), end, theirs, "allCustomers");
                    let (ours, theirs) = (ours.await, theirs.await);
                    (
                        encode_bodies(
                            ours.len(),
                            |i| json!({ "query": CUSTOMERS_PAGE, "variables": { "after": ours[i] } }),
                        ),
                        encode_bodies(theirs.len(), |i| {
                            let variables = json!({ "t": tenant_id, "after": theirs[i] });
                            json!({ "query": POSTGRAPHILE5_PAGE, "variables": variables })
                        }),
                    )
                }
                "metrics" => (
                    encode_bodies(
                        1,
                        |_| json!({ "query": CAMPAIGN_METRICS, "variables": { "id": campaign_id } }),
                    ),
                    encode_bodies(
                        1,
                        |_| json!({ "query": POSTGRAPHILE5_METRICS, "variables": { "id": campaign_id } }),
                    ),
                ),
                other => panic!("unknown scenario postgraphile5_{other}"),
            };
            // The answers agree (on the first bodies) before anything is timed.
            for i in 0..ours.len().min(20) {
                let post = |url: &str, key: &str, body: &Bytes| {
                    let request = client
                        .post(url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    let request = match key.is_empty() {
                        true => request,
                        false => request.bearer_auth(key),
                    };
                    async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
                };
                let (a, b) = (
                    post(&base, &key, &ours[i]).await,
                    post(&url, "", &theirs[i]).await,
                );
                // The pages answer as the page does.
                let which = match which {
                    "pages" => "page",
                    other => other,
                };
                let (a, b) = (canonical(which, &a, false), canonical(which, &b, true));
                assert_eq!(a, b, "{scenario}: the two answers differ");
            }
            warm_up(&url, "", &theirs, None).await;
            for &concurrency in &levels {
                let f = drive(&url, "", concurrency, seconds, theirs.clone(), None).await;
                print_figures(scenario, concurrency, &f, "–");
            }
            continue;
        }
        if scenario == "postgraphile360" {
            let url = std::env::var("BENCH_POSTGRAPHILE_URL")
                .expect("postgraphile360 needs BENCH_POSTGRAPHILE_URL (bench/postgraphile.sh)");
            let bodies = encode_bodies(
                ids.len(),
                |i| json!({ "query": POSTGRAPHILE_360, "variables": { "id": ids[i] } }),
            );
            warm_up(&url, "", &bodies, None).await;
            for &concurrency in &levels {
                let f = drive(&url, "", concurrency, seconds, bodies.clone(), None).await;
                print_figures(scenario, concurrency, &f, "–");
            }
            continue;
        }
        // Every client uses the bench key, but in `customer360_keys`, where they are spread
        // over 32 admin keys of the tenant (a dashboard whose clients hold keys of their
        // own).
        let mut keys = vec![key.clone()];
        if scenario == "customer360_keys" {
            for i in keys.len()..32 {
                keys.push(
                    api_key(
                        &mut owner,
                        tenant_id,
                        &format!("dashboard {i}"),
                        Role::Admin,
                    )
                    .await,
                );
            }
        }
        let bodies = match scenario {
            "customer360" | "customer360_keys" => encode_bodies(
                ids.len(),
                |i| json!({ "query": CUSTOMER_360, "variables": { "id": ids[i] } }),
            ),
            "customersPage" => encode_bodies(1, |_| json!({ "query": CUSTOMERS_PAGE })),
            "customersPages" => {
                let end = CUSTOMERS_PAGE_END;
                let after = page_cursors(&client, (&base, &key), end, json!({}), "customers");
                let after = after.await;
                encode_bodies(
                    after.len(),
                    |i| json!({ "query": CUSTOMERS_PAGE, "variables": { "after": after[i] } }),
                )
            }
            "campaignMetrics" => encode_bodies(
                1,
                |_| json!({ "query": CAMPAIGN_METRICS, "variables": { "id": campaign_id } }),
            ),
            "campaignsPage" => encode_bodies(1, |_| json!({ "query": CAMPAIGNS_PAGE })),
            "aggregateSegments" => encode_bodies(1, |_| json!({ "query": AGGREGATE_SEGMENTS })),
            "aggregateRevenue" => {
                let to = chrono::Utc::now();
                let from = to - chrono::Duration::days(90);
                encode_bodies(
                    1,
                    |_| json!({ "query": AGGREGATE_REVENUE, "variables": { "from": from, "to": to } }),
                )
            }
            "aggregateRecipients" => encode_bodies(
                1,
                |_| json!({ "query": AGGREGATE_RECIPIENTS, "variables": { "id": campaign_id } }),
            ),
            "leadsPage" => encode_bodies(1, |_| json!({ "query": LEADS_PAGE })),
            "assignPromptVariant" => {
                let test = bench_prompt_test(&client, &base, &key).await;
                encode_bodies(
                    5_000,
                    |i| json!({ "query": ASSIGN_PROMPT, "variables": { "t": test, "k": format!("lead-{i}") } }),
                )
            }
            "fanout" => {
                fanout(&client, &base, &key, &server).await;
                continue;
            }
            "growthInsights" => {
                growth_insights(&client, &base, &key).await;
                continue;
            }
            "importProspects" => {
                import_prospects(&client, &base, &key, &mut owner, tenant_id).await;
                continue;
            }
            "noisyNeighbour" => {
                noisy_neighbour(&mut owner, &base, tenant_id, seconds).await;
                continue;
            }
            "workflow" => {
                workflow(&mut owner).await;
                continue;
            }
            "crmSync" => {
                let shopify = shopify
                    .as_ref()
                    .expect("the stand-in starts with the crmSync scenario");
                crm_sync(&mut owner, shopify).await;
                continue;
            }
            "delivery" => {
                let sink = sink
                    .as_ref()
                    .expect("the sink starts with the delivery scenario");
                delivery(&mut owner, &sink.maildir).await;
                continue;
            }
            "redeemReward" => encode_bodies(
                funded.len(),
                |i| json!({ "query": REDEEM, "variables": { "c": funded[i], "r": reward_id } }),
            ),
            other => panic!("unknown scenario {other}"),
        };
        // Statements for one request, measured alone (after the warm-up); the least of
        // three, since the server's background jobs use the same counter.
        let pid = Some(server.child.id());
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (clients, warm) = WARM_UP;
        drive_keys(
            &base,
            &key_refs,
            clients.max(keys.len()),
            warm,
            bodies.clone(),
            pid,
        )
        .await;
        let mut per_request = u64::MAX;
        let mut probe = Client::new(Endpoint::new(&base, &key));
        for i in 0..3 {
            let before = server.data_statements(&client).await;
            probe.post(bodies[(7 + i) % bodies.len()].clone()).await;
            per_request = per_request.min(server.data_statements(&client).await - before);
        }
        for &concurrency in &levels {
            let before = server.data_statements(&client).await;
            let f = drive_keys(&base, &key_refs, concurrency, seconds, bodies.clone(), pid).await;
            // Under load, queries of one key that arrive together share statements (read
            // groups): what the level sent per request, next to the count alone.
            let sent = server.data_statements(&client).await - before;
            let under_load = sent as f64 / f.requests.max(1) as f64;
            print_figures(
                scenario,
                concurrency,
                &f,
                &format!("{per_request} ({under_load:.2})"),
            );
        }
    }
    if scenarios.contains("redeemReward") {
        let check: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM customers c WHERE c.tenant_id = $1 AND (c.points_balance < 0
               OR c.points_balance <> coalesce((SELECT sum(points) FROM point_transactions p WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id), 0)
               OR c.points_balance <> coalesce((SELECT balance_after FROM point_transactions p WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id ORDER BY sequence DESC LIMIT 1), 0))",
        )
        .bind::<SqlUuid, _>(tenant_id)
        .get_result(&mut owner)
        .await
        .unwrap();
        println!("\nledger invariant after the redeemReward runs: {} customers out of balance (must be 0)", check.n);
    }
    drop(owner);
    server.stop();
    if let Some(cluster) = cluster {
        let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
    }
}
