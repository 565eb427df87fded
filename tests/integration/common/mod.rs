//! The test harness: one throwaway PostgreSQL cluster per test run (found like the
//! embedded default), a template database migrated once, and a fresh database per test
//! cloned from it, so tests run in parallel. The cluster dies with the test process
//! (parent-death signal), even when a test panics.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use growthgraph::app::AppState;
use growthgraph::auth::Role;
use growthgraph::config::ServeArgs;
use growthgraph::db::cluster::{Cluster, Durability};
use growthgraph::db::replica::Replica;
use growthgraph::db::{self, PgPool, StatementCounter};
use growthgraph::domain::tenancy::ops as tenancy;
use growthgraph::events::EventHub;
use serde_json::{json, Value};
use uuid::Uuid;

const TEMPLATE: &str = "gg_template";

struct Shared {
    root: PathBuf,
    cluster: Mutex<Cluster>,
    base_url: String,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Removes test clusters left by earlier runs whose postmaster is gone. A directory is
/// named after the test process that made it (`growthgraph-test-<pid>[-…]`): one whose
/// process still runs is kept (it may be a cluster another test of this run is creating,
/// with no postmaster yet).
fn sweep_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_string_lossy()
            .strip_prefix("growthgraph-test-")
            .map(|rest| rest.split('-').next().unwrap_or_default().to_owned())
        else {
            continue;
        };
        if !owner.is_empty() && alive(&owner) {
            continue;
        }
        let pid = std::fs::read_to_string(entry.path().join("pgdata/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        if !pid.is_some_and(|pid| alive(&pid.to_string())) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Server settings of the test cluster, on top of its throwaway durability: a test that
/// waits on a lock it can never get fails after 30 s instead of hanging the suite.
pub const TEST_SETTINGS: &[(&str, &str)] = &[("lock_timeout", "30s")];

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                std::env::var("GROWTHGRAPH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
        sweep_stale_clusters();
        let root = std::env::temp_dir().join(format!("growthgraph-test-{}", std::process::id()));
        let cluster = Cluster::start_with(&root, None, Durability::Throwaway, TEST_SETTINGS)
            .expect("test cluster starts");
        let maintenance = cluster.url("postgres");
        let template = cluster.url(TEMPLATE);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                growthgraph::commands::create_database_if_missing(&maintenance, TEMPLATE)
                    .await
                    .unwrap();
                db::migrate(&template).await.unwrap();
            });
        })
        .join()
        .expect("template database migrates");
        let base_url = cluster
            .url("postgres")
            .trim_end_matches("/postgres")
            .to_owned();
        Shared {
            root,
            cluster: Mutex::new(cluster),
            base_url,
        }
    })
}

pub fn cluster_root() -> PathBuf {
    shared().root.clone()
}

pub fn postmaster_pid() -> u32 {
    shared().cluster.lock().unwrap().pid()
}

pub fn database_url(name: &str) -> String {
    format!("{}/{name}", shared().base_url)
}

async fn create_database(sql: String) {
    let mut conn = db::connect_owner(&database_url("postgres")).await.unwrap();
    conn.batch_execute(&sql).await.unwrap();
}

/// A new database with every migration applied (cloned from the template).
pub async fn fresh_database() -> String {
    let name = format!(
        "gg_t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    shared();
    create_database(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}")).await;
    database_url(&name)
}

/// A new database with nothing in it (for migration tests).
pub async fn empty_database() -> String {
    let name = format!(
        "gg_e{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    shared();
    create_database(format!("CREATE DATABASE {name} TEMPLATE template0")).await;
    database_url(&name)
}

pub struct TestTenant {
    pub id: Uuid,
    pub slug: String,
    pub admin_key: String,
}

/// The server, on an ephemeral loopback port, over its own fresh database.
pub struct TestApp {
    pub database_url: String,
    pub base: String,
    pub pool: PgPool,
    pub statements: Arc<StatementCounter>,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(ServeArgs::default()).await
    }

    pub async fn start_with(args: ServeArgs) -> Self {
        Self::serve(fresh_database().await, args).await
    }

    /// Another server instance on the same database.
    pub async fn second_instance(&self) -> Self {
        self.second_instance_with(ServeArgs::default()).await
    }

    /// Another server instance on the same database, with `args`.
    pub async fn second_instance_with(&self, args: ServeArgs) -> Self {
        Self::serve(self.database_url.clone(), args).await
    }

    /// A server on `database_url` whose reads may go to the replica at `replica_url` while
    /// it lags by less than `max_lag`.
    pub async fn with_replica(database_url: String, replica_url: &str, max_lag: Duration) -> Self {
        let replica = (replica_url, max_lag);
        Self::serve_with(database_url, Some(replica), ServeArgs::default()).await
    }

    async fn serve(database_url: String, args: ServeArgs) -> Self {
        Self::serve_with(database_url, None, args).await
    }

    /// A server whose GraphiQL is pre-filled with the admin key of its one tenant (with
    /// the demo rows), as `cargo run` serves it on loopback.
    pub async fn with_graphiql_key() -> (Self, TestTenant) {
        let database_url = fresh_database().await;
        let mut conn = db::connect_owner(&database_url).await.unwrap();
        let (tenant, admin_key) = tenancy::create_tenant(&mut conn, "GraphiQL Winery", None)
            .await
            .unwrap();
        growthgraph::db::tenant::in_tenant_transaction(&mut conn, tenant.id, |conn, scope| {
            use scoped_futures::ScopedFutureExt;
            async move { growthgraph::seed::demo::load_demo_rows(conn, scope).await }.scope_boxed()
        })
        .await
        .unwrap();
        let key = Some(admin_key.clone());
        let app = Self::serve_keyed(database_url, None, ServeArgs::default(), key).await;
        let tenant = TestTenant {
            id: tenant.id,
            slug: tenant.slug,
            admin_key,
        };
        (app, tenant)
    }

    async fn serve_with(
        database_url: String,
        replica: Option<(&str, Duration)>,
        args: ServeArgs,
    ) -> Self {
        Self::serve_keyed(database_url, replica, args, None).await
    }

    async fn serve_keyed(
        database_url: String,
        replica: Option<(&str, Duration)>,
        mut args: ServeArgs,
        graphiql_key: Option<String>,
    ) -> Self {
        let statements = Arc::new(StatementCounter::default());
        let pool = db::build_pool(
            &database_url,
            8,
            Duration::from_secs(10),
            statements.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        args.listen = addr;
        let hub = EventHub::new(db::build_pool(
            &database_url,
            4,
            Duration::from_secs(10),
            Default::default(),
        ));
        let replica = replica.map(|(url, max_lag)| {
            let replica_pool = db::build_pool(url, 8, Duration::from_secs(10), statements.clone());
            Replica::watch(replica_pool, pool.clone(), max_lag)
        });
        let trusted = args
            .trusted_documents
            .as_deref()
            .map(|path| growthgraph::http::persisted::PersistedDocuments::load(path).unwrap());
        let mut state = AppState::new(
            pool.clone(),
            replica,
            statements.clone(),
            args,
            graphiql_key,
            hub,
        );
        if let Some(documents) = trusted {
            state = state.with_trusted_documents(documents);
        }
        state.hub.spawn_listener(database_url.clone());
        // Listening, the hub forgets the keys remembered before: wait for it, so that it
        // forgets none a test has just had looked up.
        let hub = state.hub.clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !hub.is_listening() {
            assert!(
                std::time::Instant::now() < deadline,
                "the event listener never connected"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::spawn(async move {
            axum::serve(listener, growthgraph::http::service(state))
                .await
                .unwrap();
        });
        TestApp {
            database_url,
            base: format!("http://{addr}"),
            pool,
            statements,
            client: reqwest::Client::new(),
        }
    }

    pub async fn owner(&self) -> AsyncPgConnection {
        db::connect_owner(&self.database_url).await.unwrap()
    }

    /// A tenant with its admin key and the demo rows of every domain.
    pub async fn tenant(&self, name: &str) -> TestTenant {
        let mut conn = self.owner().await;
        let (tenant, admin_key) = tenancy::create_tenant(&mut conn, name, None).await.unwrap();
        growthgraph::db::tenant::in_tenant_transaction(&mut conn, tenant.id, |conn, scope| {
            use scoped_futures::ScopedFutureExt;
            async move { growthgraph::seed::demo::load_demo_rows(conn, scope).await }.scope_boxed()
        })
        .await
        .unwrap();
        TestTenant {
            id: tenant.id,
            slug: tenant.slug,
            admin_key,
        }
    }

    /// A tenant with its admin key and no data at all.
    pub async fn bare_tenant(&self, name: &str) -> TestTenant {
        let mut conn = self.owner().await;
        let (tenant, admin_key) = tenancy::create_tenant(&mut conn, name, None).await.unwrap();
        TestTenant {
            id: tenant.id,
            slug: tenant.slug,
            admin_key,
        }
    }

    pub async fn key(&self, tenant: &TestTenant, role: Role) -> String {
        let resp = self
            .gql(
                &tenant.admin_key,
                "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret userErrors { code } } }",
                json!({ "input": { "name": format!("{role:?} key"), "role": format!("{role:?}").to_uppercase() } }),
            )
            .await;
        resp["data"]["createApiKey"]["secret"]
            .as_str()
            .expect("key created")
            .to_owned()
    }

    pub async fn post(&self, key: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn gql(&self, key: &str, query: &str, variables: Value) -> Value {
        self.post(Some(key), json!({ "query": query, "variables": variables }))
            .await
            .1
    }

    /// A value of the server's `/metrics`, by its full series name.
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in /metrics"))
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.base.replace("http://", "ws://"))
    }
}

/// The PostgreSQL backend serving `conn` (tells a kept connection from a replaced one).
pub async fn backend_pid(conn: &mut AsyncPgConnection) -> i32 {
    use diesel_async::RunQueryDsl;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
        "pg_backend_pid()",
    ))
    .get_result(conn)
    .await
    .unwrap()
}

/// What a connection's current transaction (or its absence) looks like from inside.
#[derive(diesel::QueryableByName)]
pub struct SnapshotState {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub tenant: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub isolation: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub read_only: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub customers: i64,
}

/// The tenant setting of the connection's transaction (or session), its isolation and
/// access mode, and how many customers row-level security lets it see.
pub const SNAPSHOT_STATE: &str = "SELECT current_setting('app.tenant_id', true) AS tenant,
        current_setting('transaction_isolation') AS isolation,
        current_setting('transaction_read_only') AS read_only,
        (SELECT count(*) FROM customers) AS customers";

pub async fn snapshot_state(conn: &mut AsyncPgConnection) -> SnapshotState {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(SNAPSHOT_STATE)
        .get_result(conn)
        .await
        .unwrap()
}

/// The `n` that `sql` (run as the owner: no row-level security) answers: how many rows
/// tests count in tables the API does not show.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    diesel::sql_query(sql)
        .get_result::<Count>(&mut app.owner().await)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
        .n
}

/// The code of `mutation`'s first user error (`null` when it has none).
/// The data statements `request` costs, counted between two moments when the app's
/// background work (event delivery reacting to a write, which runs on the same counter)
/// has settled, so that requests with the same writes compare alike whatever the timing.
pub async fn statements_of<T>(
    app: &TestApp,
    request: impl std::future::Future<Output = T>,
) -> (T, u64) {
    async fn settled(app: &TestApp) -> u64 {
        let mut last = app.statements.data_statements();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = app.statements.data_statements();
            if now == last {
                break;
            }
            last = now;
        }
        last
    }
    let before = settled(app).await;
    let answer = request.await;
    (answer, settled(app).await - before)
}

pub fn user_error_code<'a>(response: &'a Value, mutation: &str) -> &'a Value {
    &response["data"][mutation]["userErrors"][0]["code"]
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// Processes whose command line mentions `needle` (e.g. a data directory).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}

/// Paging through root connections against the database, for the read-only lists.
impl TestApp {
    /// The ids `table` holds for `tenant` (optionally only where `column = value`), newest
    /// first, by a statement independent of the server's.
    pub async fn ids_by_sql(
        &self,
        table: &str,
        tenant: &TestTenant,
        only: Option<(&str, &str)>,
    ) -> Vec<String> {
        use diesel::sql_types::{Text, Uuid as SqlUuid};
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = SqlUuid)]
            id: Uuid,
        }
        let mut owner = self.owner().await;
        let (column, value) = only.unwrap_or(("$2", ""));
        let matching = format!("{column} = $2");
        diesel::sql_query(format!(
            "SELECT id FROM {table} WHERE tenant_id = $1 AND {matching} \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind::<SqlUuid, _>(tenant.id)
        .bind::<Text, _>(value)
        .load::<Row>(&mut owner)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id.to_string())
        .collect()
    }

    /// Every row `tenant` has in `table`, whole (as JSON text, by id), and how many
    /// `event_type` events it has: what a refused write must leave as it was (read as the
    /// owner).
    pub async fn rows_and_events(
        &self,
        table: &str,
        tenant: Uuid,
        event_type: &str,
    ) -> (Vec<String>, i64) {
        use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            row: String,
        }
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut owner = self.owner().await;
        let rows = diesel::sql_query(format!(
            "SELECT row_to_json(r)::text AS row FROM {table} r WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind::<SqlUuid, _>(tenant)
        .load::<Row>(&mut owner)
        .await
        .unwrap();
        let events = diesel::sql_query(
            "SELECT count(*) AS n FROM domain_events WHERE tenant_id = $1 AND event_type = $2",
        )
        .bind::<SqlUuid, _>(tenant)
        .bind::<Text, _>(event_type)
        .get_result::<Count>(&mut owner)
        .await
        .unwrap();
        (rows.into_iter().map(|r| r.row).collect(), events.n)
    }

    /// Runs `sql` as the owner with `$1` bound to `tenant`'s id: rows for tables the API
    /// does not write.
    pub async fn insert_for(&self, tenant: &TestTenant, sql: &str) {
        use diesel::sql_types::Uuid as SqlUuid;
        use diesel_async::RunQueryDsl;
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(tenant.id)
            .execute(&mut self.owner().await)
            .await
            .unwrap();
    }

    /// Pages through the root list `field` as each tenant and checks it against `table`:
    /// the same ids in the same order, and none of `a`'s rows in `b`'s list. Returns how
    /// many rows `a` has.
    pub async fn assert_lists_own_rows(
        &self,
        field: &str,
        table: &str,
        a: &TestTenant,
        b: &TestTenant,
    ) -> usize {
        let mine = self.ids_by_sql(table, a, None).await;
        assert_eq!(
            self.page_ids(&a.admin_key, field, "").await,
            mine,
            "{field}"
        );
        let theirs = self.page_ids(&b.admin_key, field, "").await;
        assert_eq!(theirs, self.ids_by_sql(table, b, None).await, "{field}");
        assert!(theirs.iter().all(|id| !mine.contains(id)), "{field}");
        mine.len()
    }

    /// Every cursor of the root connection `field` (with extra `args`), one per page:
    /// forward from the start (`first`/`after`), or backward from the end (`last`/`before`),
    /// in the list's order either way.
    pub async fn page_cursors(
        &self,
        key: &str,
        field: &str,
        args: &str,
        backward: bool,
    ) -> Vec<String> {
        self.walk(key, field, args, 1, backward, ("edges", "cursor"))
            .await
    }

    /// Every id of the root connection `field` (with extra `args`), two per page.
    pub async fn page_ids(&self, key: &str, field: &str, args: &str) -> Vec<String> {
        self.walk(key, field, args, 2, false, ("nodes", "id")).await
    }

    /// Every id of the root connection `field` (with extra `args`), two per page, walking
    /// backward from the end (`last`/`before`), in the list's order.
    pub async fn page_ids_backward(&self, key: &str, field: &str, args: &str) -> Vec<String> {
        self.walk(key, field, args, 2, true, ("nodes", "id")).await
    }

    /// Walks the root connection `field` `per_page` at a time, forward or `backward`,
    /// collecting `what` (the list, `nodes` or `edges`, and the string field of each item),
    /// in the list's order.
    async fn walk(
        &self,
        key: &str,
        field: &str,
        args: &str,
        per_page: usize,
        backward: bool,
        what: (&str, &str),
    ) -> Vec<String> {
        let (size, from, more, next) = match backward {
            false => ("first", "after", "hasNextPage", "endCursor"),
            true => ("last", "before", "hasPreviousPage", "startCursor"),
        };
        let (items, leaf) = what;
        let mut found = Vec::new();
        let mut from_cursor = Value::Null;
        loop {
            let query = format!(
                "query($c: String) {{ {field}({size}: {per_page}, {from}: $c{args}) \
                 {{ pageInfo {{ {more} {next} }} {items} {{ {leaf} }} }} }}"
            );
            let r = self.gql(key, &query, json!({ "c": from_cursor })).await;
            assert!(r["errors"].is_null(), "{field}: {r}");
            let connection = &r["data"][field];
            let page = connection[items]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item[leaf].as_str().unwrap().to_owned());
            match backward {
                false => found.extend(page),
                true => {
                    found.splice(0..0, page);
                }
            }
            if connection["pageInfo"][more] != true {
                return found;
            }
            from_cursor = connection["pageInfo"][next].clone();
        }
    }
}

/// The field and code a mutation was refused with: its payload's first user error, or,
/// for input refused before anything ran (a NUL character), its first top-level error.
pub fn refusal<'a>(r: &'a Value, mutation: &str) -> (&'a Value, &'a Value) {
    match r["errors"].get(0) {
        Some(error) => (&error["extensions"]["field"], &error["extensions"]["code"]),
        None => {
            let error = &r["data"][mutation]["userErrors"][0];
            (&error["field"], &error["code"])
        }
    }
}

/// A response without its tenant's budget (`extensions.cost.throttleStatus`), which
/// changes from one response to the next: for comparing answers.
pub fn without_budget(mut response: Value) -> Value {
    if let Some(cost) = response
        .get_mut("extensions")
        .and_then(|e| e.get_mut("cost"))
        .and_then(Value::as_object_mut)
    {
        cost.remove("throttleStatus");
    }
    response
}

/// A page that reads its nodes' relations with the page (`page-relations`) answers each
/// of `selections` as the loaders do (a server on the same database with the switch off),
/// and asking for the two relations `both` selects costs no statement more than the page
/// alone (`alone`): one statement reads the page and both, where the loaders run a batch
/// each after the page.
pub async fn assert_page_relations_as_loaders(
    app: &TestApp,
    key: &str,
    selections: &[&str],
    (both, alone): (&str, &str),
) {
    use growthgraph::speed::{Mechanism, Speed};
    // A debug build on a busy machine can take longer than the default 1 ms batch window
    // to resolve a page's nodes; a wider one keeps one batch per relation deterministic.
    let loaders = app
        .second_instance_with(ServeArgs {
            speed: Speed::without(&[Mechanism::PageRelations]),
            batch_window_us: 50_000,
            ..ServeArgs::default()
        })
        .await;
    for server in [app, &loaders] {
        server
            .gql(key, "{ viewer { tenant { id } } }", json!({}))
            .await;
    }
    // (The key's first use recorded last_used_at off the request path.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    for query in selections.iter().chain([&both, &alone]) {
        let ours = app.gql(key, query, json!({})).await;
        let theirs = loaders.gql(key, query, json!({})).await;
        assert!(ours["errors"].is_null(), "{ours}");
        assert_eq!(without_budget(ours), without_budget(theirs), "{query}");
    }
    async fn statements(server: &TestApp, key: &str, query: &str) -> u64 {
        let before = server.statements.data_statements();
        server.gql(key, query, json!({})).await;
        server.statements.data_statements() - before
    }
    let page = statements(app, key, alone).await;
    assert_eq!(
        statements(app, key, both).await,
        page,
        "the page's one for both"
    );
    assert_eq!(
        statements(&loaders, key, both).await,
        page + 2,
        "a loader batch each"
    );
}
