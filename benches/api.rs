//! The benchmark harness: `cargo bench --bench api`.
//!
//! Starts PostgreSQL (the embedded cluster in `BENCH_DATA_DIR`, or `DATABASE_URL`), loads
//! `BENCH_CUSTOMERS` synthetic customers with `seed --scale` when the data set is smaller,
//! starts `growthgraph serve` on loopback as its own process (settings from the usual
//! `GROWTHGRAPH_*` variables, so the server's default pool unless `GROWTHGRAPH_POOL_SIZE`
//! says otherwise), then drives it at each concurrency in `BENCH_CONCURRENCY` for
//! `BENCH_SECONDS` and prints throughput, p50/p95/p99 latency and the SQL statements one
//! request runs (from the server's `/metrics`).
//!
//! | env | default |
//! |---|---|
//! | `BENCH_DATA_DIR` | `target/bench-data` |
//! | `BENCH_CUSTOMERS` | `100000` |
//! | `BENCH_CONCURRENCY` | `1,16,64` |
//! | `BENCH_SECONDS` | `10` |
//! | `BENCH_SCENARIOS` | `customer360,customersPage,redeemReward,campaignMetrics,campaignsPage,leadsPage,growthInsights,fanout` |
//! | `BENCH_SUBSCRIBERS` | `10000` (fan-out WebSocket subscribers) |
//! | `BENCH_EVENTS` | `50` (fan-out: events written) |
//! | `BENCH_EVENT_INTERVAL_MS` | `100` (fan-out: pause between events) |
//! | `BENCH_POSTGRAPHILE_URL` | unset (`postgraphile360`: the PostGraphile server to drive) |
//!
//! `redeemReward` redeems a 10-point reward for distinct funded customers and checks the
//! ledger and stock invariants after the run.
//!
//! `postgraphile360` drives a PostGraphile v4 server (started by `bench/postgraphile.sh`)
//! at `BENCH_POSTGRAPHILE_URL` with the query equivalent to `customer360`, for the same
//! customers, with the same generator: SPEC §8 compares the two.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use growthgraph::auth::Role;
use growthgraph::db;
use growthgraph::db::cluster::{Cluster, Durability};
use growthgraph::domain::tenancy::ops as tenancy;
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

const CUSTOMERS_PAGE: &str = "{ customers(first: 50) { nodes { id pointsBalance
  currentEnrollment { stage { name } } activities(first: 5) { nodes { type } } orders(first: 3) { nodes { orderTotal } } } } }";

const CAMPAIGN_METRICS: &str = "query($id: ID!) { campaign(id: $id) { metrics { recipients sent delivered opened clicked failed deliveryRate openRate clickRate clickToOpenRate failureRate } } }";

const CAMPAIGNS_PAGE: &str = "{ campaigns(first: 50) { nodes { id name status metrics { sent openRate } executions { status } } } }";

const LEADS_PAGE: &str =
    "{ leads(first: 50) { nodes { id name urgency actions { action tag } notes { note } } } }";

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
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<16} {:>5} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>6}",
        "fanout",
        subscribers,
        latencies.len() as f64 / started.elapsed().as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        expected - latencies.len(),
        "-",
    );
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
    println!(
        "{:<16} {:>5} {:>10} {:>9.2} {:>9} {:>9.2} {:>7} {:>6}",
        "growthInsights",
        1,
        "-",
        timings[2].as_secs_f64() * 1000.0,
        "-",
        timings[4].as_secs_f64() * 1000.0,
        0,
        2,
    );
    println!("  (refreshGrowthInsights over {total} live leads: median and worst of 5 runs, ms)");
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
    async fn start(url: &str) -> Self {
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
}

fn print_figures(scenario: &str, concurrency: usize, f: &Figures, statements: &str) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<16} {:>5} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>6}",
        scenario,
        concurrency,
        f.requests as f64 / f.elapsed.as_secs_f64(),
        ms(percentile(&f.latencies, 0.50)),
        ms(percentile(&f.latencies, 0.95)),
        ms(percentile(&f.latencies, 0.99)),
        f.errors,
        statements,
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn drive(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    concurrency: usize,
    seconds: u64,
    body: Arc<dyn Fn(usize) -> Value + Send + Sync>,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url, key, body) =
            (client.clone(), url.to_owned(), key.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut i) = (Vec::new(), 0usize, worker);
            let authorization = format!("Bearer {key}");
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut request = client.post(&url);
                if !key.is_empty() {
                    request = request.header(reqwest::header::AUTHORIZATION, &authorization);
                }
                let response = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(&body(i)).unwrap())
                    .send()
                    .await;
                // The generator shares the machine's two cores with the server and
                // PostgreSQL: it checks the whole response for `errors` without building
                // a JSON tree of it.
                let ok = match response {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(bytes) => serde_json::from_slice::<Outcome>(&bytes)
                            .is_ok_and(|o| o.data.is_some() && o.errors.is_none()),
                        Err(_) => false,
                    },
                    _ => false,
                };
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
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        figures.requests += latencies.len();
        figures.errors += errors;
        figures.latencies.extend(latencies);
    }
    figures.elapsed = started.elapsed();
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
        "customer360,customersPage,redeemReward,campaignMetrics,campaignsPage,leadsPage,growthInsights,fanout"
            .to_string(),
    );

    let (url, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let dir = data_dir.clone();
            let cluster = tokio::task::spawn_blocking(move || {
                Cluster::start(&dir, None, Durability::Durable)
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
    let tenant = match tenancy::find_tenant_by_slug(&mut owner, "scale-test")
        .await
        .unwrap()
    {
        Some(t) => t,
        None => {
            tenancy::create_tenant(&mut owner, "Scale test", Some("scale-test"))
                .await
                .map_err(|e| format!("{e:?}"))
                .unwrap()
                .0
        }
    };
    let present: Count =
        diesel::sql_query("SELECT count(*) AS n FROM customers WHERE tenant_id = $1")
            .bind::<SqlUuid, _>(tenant.id)
            .get_result(&mut owner)
            .await
            .unwrap();
    if (present.n as u64) < customers {
        eprintln!("loading {} customers…", customers - present.n as u64);
        let took =
            growthgraph::seed::scale::seed_scale(&url, tenant.id, customers - present.n as u64)
                .await
                .unwrap();
        eprintln!("seed --scale took {:.1} s", took.as_secs_f64());
        diesel_async::SimpleAsyncConnection::batch_execute(&mut owner, "VACUUM ANALYZE")
            .await
            .unwrap();
    }
    let (_, key) = db::tenant::in_tenant_transaction(&mut owner, tenant.id, |conn, scope| {
        async move { tenancy::create_api_key(conn, scope, "bench", Role::Admin).await }
            .scope_boxed()
    })
    .await
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    let funded: Vec<Uuid> = diesel::sql_query(
        "SELECT id FROM customers WHERE tenant_id = $1 AND points_balance >= 100 ORDER BY md5(id::text) LIMIT 20000",
    )
    .bind::<SqlUuid, _>(tenant.id)
    .load::<Id>(&mut owner)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.id)
    .collect();
    let ids: Vec<Uuid> = diesel::sql_query(
        "SELECT id FROM customers WHERE tenant_id = $1 ORDER BY md5(id::text) LIMIT 5000",
    )
    .bind::<SqlUuid, _>(tenant.id)
    .load::<Id>(&mut owner)
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.id)
    .collect();

    let server = Server::start(&url).await;
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
    println!("server RSS idle: {idle_rss}\n");
    println!(
        "{:<16} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7} {:>6}",
        "scenario", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "stmts"
    );
    let ids = Arc::new(ids);
    let funded = Arc::new(funded);
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
        if scenario == "postgraphile360" {
            let url = std::env::var("BENCH_POSTGRAPHILE_URL")
                .expect("postgraphile360 needs BENCH_POSTGRAPHILE_URL (bench/postgraphile.sh)");
            let ids = ids.clone();
            let body: Arc<dyn Fn(usize) -> Value + Send + Sync> = Arc::new(
                move |i| json!({ "query": POSTGRAPHILE_360, "variables": { "id": ids[i % ids.len()] } }),
            );
            drive(&client, &url, "", 1, 1, body.clone()).await;
            for &concurrency in &levels {
                let f = drive(&client, &url, "", concurrency, seconds, body.clone()).await;
                print_figures(scenario, concurrency, &f, "–");
            }
            continue;
        }
        let body: Arc<dyn Fn(usize) -> Value + Send + Sync> = match scenario {
            "customer360" => {
                let ids = ids.clone();
                Arc::new(
                    move |i| json!({ "query": CUSTOMER_360, "variables": { "id": ids[i % ids.len()] } }),
                )
            }
            "customersPage" => Arc::new(|_| json!({ "query": CUSTOMERS_PAGE })),
            "campaignMetrics" => {
                let campaign = campaign_id.clone();
                Arc::new(
                    move |_| json!({ "query": CAMPAIGN_METRICS, "variables": { "id": campaign } }),
                )
            }
            "campaignsPage" => Arc::new(|_| json!({ "query": CAMPAIGNS_PAGE })),
            "leadsPage" => Arc::new(|_| json!({ "query": LEADS_PAGE })),
            "fanout" => {
                fanout(&client, &base, &key, &server).await;
                continue;
            }
            "growthInsights" => {
                growth_insights(&client, &base, &key).await;
                continue;
            }
            "redeemReward" => {
                let (funded, reward_id) = (funded.clone(), reward_id.clone());
                Arc::new(
                    move |i| json!({ "query": REDEEM, "variables": { "c": funded[i % funded.len()], "r": reward_id } }),
                )
            }
            other => panic!("unknown scenario {other}"),
        };
        // Statements for one request, measured alone (after a warm-up request); the least
        // of three, since the server's background jobs use the same counter.
        drive(&client, &base, &key, 1, 1, body.clone()).await;
        let mut per_request = u64::MAX;
        for i in 0..3 {
            let before = server.data_statements(&client).await;
            let _ = client
                .post(&base)
                .bearer_auth(&key)
                .json(&body(7 + i))
                .send()
                .await
                .unwrap()
                .text()
                .await;
            per_request = per_request.min(server.data_statements(&client).await - before);
        }
        for &concurrency in &levels {
            let f = drive(&client, &base, &key, concurrency, seconds, body.clone()).await;
            print_figures(scenario, concurrency, &f, &per_request.to_string());
        }
    }
    if scenarios.contains("redeemReward") {
        let check: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM customers c WHERE c.tenant_id = $1 AND (c.points_balance < 0
               OR c.points_balance <> coalesce((SELECT sum(points) FROM point_transactions p WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id), 0)
               OR c.points_balance <> coalesce((SELECT balance_after FROM point_transactions p WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id ORDER BY sequence DESC LIMIT 1), 0))",
        )
        .bind::<SqlUuid, _>(tenant.id)
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
