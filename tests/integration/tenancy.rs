//! Isolation enforced twice: the two-tenant matrix over every root field, row-level
//! security on its own, pooled connections, and authentication on HTTP and WebSocket.

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::{SinkExt, StreamExt};
use growthgraph::auth::{Proof, Role};
use growthgraph::db::tenant::RequestStart;
use growthgraph::db::{self, TenantDb};
use growthgraph::error::AppError;
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::common::{backend_pid, error_code, snapshot_state, TestApp};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .count
}

/// For [`count`]: how many customers `tenant` has (all of them as the owner, who is not
/// subject to row-level security).
fn customers_of(tenant: Uuid) -> String {
    format!("SELECT count(*) AS count FROM customers WHERE tenant_id = '{tenant}'")
}

/// The statement that adds a customer with `email` to `tenant`.
fn add_customer(tenant: Uuid, email: &str) -> String {
    format!("INSERT INTO customers (tenant_id, email) VALUES ('{tenant}', '{email}')")
}

/// A pool of one connection (so a test knows which backend the next checkout gets).
fn one_connection_pool(app: &TestApp, statements: Arc<db::StatementCounter>) -> db::PgPool {
    db::build_pool(&app.database_url, 1, Duration::from_secs(5), statements)
}

/// Root fields the matrix below (with `customers::customers_are_isolated_between_tenants`,
/// `loyalty::loyalty_is_isolated_between_tenants`, `comms::*`, `messages::tenants_and_jobs::templates_messages_and_email_events_stay_within_their_tenant`,
/// `messages::tenants_and_jobs::admins_retry_and_cancel_deliveries_through_their_jobs`, `scheduler::*`, `automations::*`,
/// `leads::prompts_and_feedback_*`, `leads::the_translation_*` and `analytics::*`) exercises; a new root field must be added here (and to
/// the matrix) or this test fails.
const COVERED_QUERY_FIELDS: &[&str] = &[
    "activeCampaigns",
    "apiKeys",
    "appointments",
    "calls",
    "campaign",
    "campaignMetrics",
    "campaignRun",
    "campaigns",
    "channels",
    "clubProgram",
    "communicationTemplates",
    "contacts",
    "customer",
    "customers",
    "customersAggregate",
    "demoSessions",
    "emailEvents",
    "emailSequenceSteps",
    "emailSequences",
    "emailTemplates",
    "enrollment",
    "enrollments",
    "events",
    "feedback",
    "growthInsights",
    "intentTranslations",
    "jobs",
    "lead",
    "leads",
    "leadsAggregate",
    "loyaltyRules",
    "message",
    "messages",
    "ordersAggregate",
    "outreachCampaign",
    "outreachCampaigns",
    "outreachEmails",
    "pointTransactionsAggregate",
    "previewTemplate",
    "prompts",
    "prospects",
    "publishedTestimonials",
    "redemption",
    "redemptions",
    "redemptionsAggregate",
    "reward",
    "rewards",
    "testimonials",
    "tickets",
    "translationDictionary",
    "translations",
    "viewer",
    "webhookDeliveries",
    "webhookEndpoints",
    "widgetConfig",
];
const COVERED_MUTATION_FIELDS: &[&str] = &[
    "addLeadNote",
    "adjustPoints",
    "archiveLead",
    "bookAppointment",
    "cancelEmailSequence",
    "cancelEnrollment",
    "cancelJob",
    "cancelRedemption",
    "changeAppointment",
    "cleanupExpiredDemoSessions",
    "completeCampaign",
    "configureChannel",
    "configureWidget",
    "convertLead",
    "createApiKey",
    "createCampaign",
    "createClubStage",
    "createReward",
    "createTestimonial",
    "createWebhookEndpoint",
    "deleteLead",
    "disableWebhookEndpoint",
    "enrollCustomer",
    "expireEnrollments",
    "fulfillRedemption",
    "ingestLead",
    "launchCampaign",
    "moderateTestimonial",
    "openTicket",
    "pauseCampaign",
    "pauseEmailSequence",
    "reactivateLead",
    "recordCall",
    "recordCustomerActivity",
    "recordDeliveryEvent",
    "recordOrder",
    "recordOutreachEvent",
    "recordProspect",
    "redeemReward",
    "refreshGrowthInsights",
    "refundRedemption",
    "renewEnrollment",
    "rescheduleAppointment",
    "resumeCampaign",
    "resumeEmailSequence",
    "retryJob",
    "revertLeadConversion",
    "revokeApiKey",
    "saveClubProgram",
    "saveCommunicationTemplate",
    "saveContact",
    "saveEmailSequenceSteps",
    "saveEmailTemplate",
    "sendMessage",
    "setCommunicationPreferences",
    "setLinkedinConsent",
    "shareTestimonialOnLinkedin",
    "startEmailSequence",
    "tagLead",
    "updateCampaign",
    "updateClubStage",
    "updateLeadAnalysis",
    "updateLeadNote",
    "updateLoyaltyRules",
    "updateProspect",
    "updateReward",
    "updateTenantSettings",
    "updateTicket",
    "upgradeEnrollment",
    "upsertCustomer",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_covers_every_root_field() {
    let schema = growthgraph::graphql::build_schema(None);
    let response = async_graphql::Schema::execute(
        &schema,
        "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }",
    )
    .await;
    let data = response.data.into_json().unwrap();
    let names = |kind: &str| -> Vec<String> {
        let mut names: Vec<String> = data["__schema"][kind]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("queryType"), COVERED_QUERY_FIELDS);
    assert_eq!(names("mutationType"), COVERED_MUTATION_FIELDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_or_changes_another_tenants_rows() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let b_key_id = {
        let r = app
            .gql(&b.admin_key, "{ viewer { apiKey { id } } }", json!({}))
            .await;
        r["data"]["viewer"]["apiKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // viewer
    let r = app
        .gql(&a.admin_key, "{ viewer { tenant { id slug } } }", json!({}))
        .await;
    assert_eq!(r["data"]["viewer"]["tenant"]["id"], a.id.to_string());

    // apiKeys: only A's.
    let r = app
        .gql(
            &a.admin_key,
            "{ apiKeys(first: 100) { nodes { id } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = r["data"]["apiKeys"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert!(!ids.contains(&b_key_id.as_str()));

    // publishedTestimonials: exactly A's published ones.
    let mut owner = app.owner().await;
    let expected = count(
        &mut owner,
        &format!("SELECT count(*) AS count FROM testimonials WHERE tenant_id = '{}' AND status = 'published'", a.id),
    )
    .await;
    assert!(expected > 0);
    let r = app
        .gql(
            &a.admin_key,
            "{ publishedTestimonials(first: 100) { nodes { id } } }",
            json!({}),
        )
        .await;
    let ids: Vec<String> = r["data"]["publishedTestimonials"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len() as i64, expected);
    for id in &ids {
        let owner_tenant = count(
            &mut owner,
            &format!(
                "SELECT count(*) AS count FROM testimonials WHERE id = '{id}' AND tenant_id = '{}'",
                a.id
            ),
        )
        .await;
        assert_eq!(owner_tenant, 1, "testimonial {id} is not tenant A's");
    }

    // revokeApiKey on B's key behaves exactly like a random id, and B's key keeps working.
    let revoke = "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { apiKey { id } userErrors { field code message } } }";
    let foreign = app
        .gql(&a.admin_key, revoke, json!({ "id": b_key_id }))
        .await;
    let random = app
        .gql(&a.admin_key, revoke, json!({ "id": Uuid::new_v4() }))
        .await;
    assert_eq!(foreign["data"], random["data"]);
    assert_eq!(
        foreign["data"]["revokeApiKey"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let r = app
        .gql(&b.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    assert_eq!(r["data"]["viewer"]["tenant"]["id"], b.id.to_string());

    // createApiKey writes into the caller's tenant only.
    app.gql(
        &a.admin_key,
        "mutation { createApiKey(input: { name: \"ci\", role: ANALYST }) { apiKey { id } } }",
        json!({}),
    )
    .await;
    let b_keys = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM api_keys WHERE tenant_id = '{}'",
            b.id
        ),
    )
    .await;
    assert_eq!(b_keys, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_alone_hides_other_tenants_rows() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let mut owner = app.owner().await;
    let a_customers = count(&mut owner, &customers_of(a.id)).await;
    assert!(a_customers > 0);

    // A raw query through the server's role, with no tenant filter of its own.
    let db = TenantDb::new(app.pool.clone(), a.id);
    let b_id = b.id;
    let (all_visible, b_visible, foreign_insert) = db
        .run(|conn, _| {
            async move {
                let all = count(conn, "SELECT count(*) AS count FROM customers").await;
                let b_rows = count(conn, &customers_of(b_id)).await;
                conn.batch_execute("SAVEPOINT probe").await?;
                let insert = conn.batch_execute(&add_customer(b_id, "x@y.example")).await;
                conn.batch_execute("ROLLBACK TO SAVEPOINT probe").await?;
                Ok::<_, AppError>((all, b_rows, insert.is_err()))
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    assert_eq!(all_visible, a_customers);
    assert_eq!(b_visible, 0);
    assert!(
        foreign_insert,
        "RLS must refuse writing another tenant's row"
    );

    // No tenant set at all: nothing visible.
    let mut conn = app.pool.get().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM customers").await,
        0
    );
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_never_carries_a_tenant_into_the_next_unit_of_work() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let pool = one_connection_pool(&app, Default::default());
    let seen = TenantDb::new(pool.clone(), a.id)
        .run(|conn, _| {
            async move {
                Ok::<_, AppError>(count(conn, "SELECT count(*) AS count FROM customers").await)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    assert!(seen > 0);

    // Same (only) connection, no tenant: zero rows, no setting left behind.
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM customers").await,
        0
    );
    let setting: Setting =
        diesel::sql_query("SELECT current_setting('app.tenant_id', true) AS value")
            .get_result(&mut conn)
            .await
            .unwrap();
    assert!(
        setting.value.as_deref().unwrap_or("").is_empty(),
        "{:?}",
        setting.value
    );
}

/// A request's handle: its reads share one snapshot on one connection (read-only), a
/// write ends the snapshot and later reads see it, a failed read does not poison the
/// rest, and `finish` gives the connection back without leaving the tenant set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reads_one_snapshot_on_one_connection_and_writes_end_it() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    // One connection in the pool: the request's reads and writes must all share it.
    let pool = one_connection_pool(&app, Default::default());
    let request = TenantDb::for_request(pool.clone(), a.id, RequestStart::Fresh);
    let read = || {
        request.query(|conn, _| {
            async move {
                diesel::sql_query("SELECT count(*) AS count FROM customers")
                    .get_result::<Count>(conn)
                    .await
                    .map(|c| c.count)
            }
            .scope_boxed()
        })
    };
    let before = read().await.unwrap();
    assert!(before > 0);
    assert_eq!(
        pool.status().available,
        0,
        "the request holds its connection"
    );

    // Another session commits a customer: this request's snapshot does not see it.
    app.owner()
        .await
        .batch_execute(&add_customer(a.id, "outside@example.com"))
        .await
        .unwrap();
    let concurrent: Vec<i64> = futures_util::future::join_all((0..8).map(|_| read()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(concurrent, vec![before; 8], "one snapshot for every read");

    // The snapshot is read-only: a write through the read path fails, nothing is written,
    // and the next read still works.
    let tenant = a.id;
    let refused = request
        .query(|conn, _| {
            async move {
                diesel::sql_query(add_customer(tenant, "sneaky@example.com"))
                    .execute(conn)
                    .await
            }
            .scope_boxed()
        })
        .await;
    assert!(refused.is_err(), "a read snapshot refuses writes");
    assert_eq!(
        read().await.unwrap(),
        before + 1,
        "a new snapshot after the failure"
    );

    // A write runs as its own transaction on the same connection; later reads see it.
    request
        .run(insert_customer("inside@example.com"))
        .await
        .unwrap();
    assert_eq!(read().await.unwrap(), before + 2);

    request.finish().await;
    assert_eq!(pool.status().available, 1, "finish returns the connection");
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM customers").await,
        0,
        "no tenant left on the returned connection"
    );
    let sneaky = count(
        &mut app.owner().await,
        "SELECT count(*) AS count FROM customers WHERE email = 'sneaky@example.com'",
    )
    .await;
    assert_eq!(sneaky, 0);
}

/// An HTTP request's key lookup is the first statement of its read snapshot (sent with
/// the `BEGIN`, one round trip): the connection comes back inside a read-only
/// repeatable-read transaction scoped to the key's tenant (API and widget keys alike). An
/// unknown key rolls that snapshot back: the connection returns to the pool clean instead
/// of being discarded, however many bad keys arrive. The WebSocket lookup, outside any
/// transaction, leaves no tenant behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_lookup_opens_the_requests_snapshot_for_the_keys_tenant() {
    use growthgraph::auth::{authenticate, authenticate_request, Principal};
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let pool = one_connection_pool(&app, Default::default());
    let mut owner = app.owner().await;
    owner
        .batch_execute(&add_customer(a.id, "only-a@example.com"))
        .await
        .unwrap();
    let (a_customers, b_customers) = (
        count(&mut owner, &customers_of(a.id)).await,
        count(&mut owner, &customers_of(b.id)).await,
    );
    assert_ne!(a_customers, b_customers, "the two tenants are told apart");
    let widget = widget_key(&mut owner, b.id).await;

    for (key, tenant, customers) in [
        (format!("Bearer {}", a.admin_key), a.id, a_customers),
        (format!("Bearer {}", widget), b.id, b_customers),
    ] {
        let caller = authenticate_request(&pool, None, Some(&key)).await.unwrap();
        let Proof::LookedUp(mut conn) = caller.proof else {
            panic!("looked up, nothing to confirm");
        };
        let principal = caller.principal;
        assert_eq!(principal.tenant_id(), tenant);
        let state = snapshot_state(&mut conn).await;
        assert_eq!(state.tenant, Some(tenant.to_string()));
        assert_eq!(state.isolation, "repeatable read");
        assert_eq!(state.read_only, "on");
        assert_eq!(
            state.customers, customers,
            "row-level security sees the key's tenant"
        );
        // The request's handle reads and writes on it, and finishes it.
        let request = TenantDb::for_request(pool.clone(), tenant, RequestStart::LookedUp(*conn));
        request
            .run(insert_customer("after-lookup@example.com"))
            .await
            .unwrap();
        request.finish().await;
        assert_eq!(
            count(&mut owner, &customers_of(tenant)).await,
            customers + 1,
            "the write after the snapshot committed"
        );
    }
    assert!(matches!(
        authenticate_request(&pool, None, Some(&format!("Bearer {}", widget)))
            .await
            .unwrap()
            .principal,
        Principal::Widget { .. }
    ));

    // (The pool checks a connection when it is next checked out.)
    let pid = backend_pid(&mut pool.get().await.unwrap()).await;
    for bad in [
        "Bearer gg_admin_unknown",
        "Bearer wgt_unknown",
        "Bearer nothing",
    ] {
        for _ in 0..3 {
            let refused = authenticate_request(&pool, None, Some(bad)).await;
            assert!(matches!(refused, Err(AppError::Unauthenticated(_))));
        }
    }
    let mut conn = pool.get().await.unwrap();
    assert_eq!(backend_pid(&mut conn).await, pid, "the connection was kept");
    let state = snapshot_state(&mut conn).await;
    assert_eq!(state.read_only, "off", "outside any transaction");
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
    assert_eq!(state.customers, 0);
    drop(conn);

    let principal = authenticate(&pool, Some(&format!("Bearer {}", a.admin_key)))
        .await
        .unwrap();
    assert_eq!(principal.tenant_id(), a.id);
    let mut conn = pool.get().await.unwrap();
    let state = snapshot_state(&mut conn).await;
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
    assert_eq!(state.customers, 0);
}

/// A unit of work that adds a customer with `email` to its tenant.
fn insert_customer(
    email: &'static str,
) -> impl for<'r> FnOnce(
    &'r mut AsyncPgConnection,
    db::Tenant,
) -> scoped_futures::ScopedBoxFuture<'static, 'r, Result<(), AppError>>
       + Send {
    move |conn, tenant| {
        async move {
            conn.batch_execute(&add_customer(tenant.id(), email))
                .await
                .map_err(AppError::from)
        }
        .scope_boxed()
    }
}

/// A read of the snapshot's tenant setting and what row-level security lets it see.
fn read_snapshot(
    conn: &mut AsyncPgConnection,
    _: db::Tenant,
) -> scoped_futures::ScopedBoxFuture<'static, '_, diesel::QueryResult<crate::common::SnapshotState>>
{
    async move {
        diesel::sql_query(crate::common::SNAPSHOT_STATE)
            .get_result(conn)
            .await
    }
    .scope_boxed()
}

/// How many times the request's connection executed its prepared key confirmation
/// ([`db::CONFIRM_KEY`]), read in the request's snapshot.
async fn confirmations(db: &TenantDb) -> i64 {
    let sql = format!(
        "SELECT generic_plans AS count FROM pg_prepared_statements WHERE name = '{}' AND from_sql",
        db::CONFIRM_KEY
    );
    db.query(move |conn, _| async move { Ok::<_, AppError>(count(conn, &sql).await) }.scope_boxed())
        .await
        .unwrap()
}

/// The handle of a request made with a key `known` remembers: not looked up, to be
/// confirmed with its first statement.
async fn known_request(
    pool: &db::PgPool,
    known: &growthgraph::auth::KnownKeys,
    header: &str,
) -> TenantDb {
    let caller = growthgraph::auth::authenticate_request(pool, Some(known), Some(header))
        .await
        .unwrap();
    let Proof::Known(confirmation) = caller.proof else {
        panic!("a known key is confirmed, not looked up");
    };
    TenantDb::for_request(
        pool.clone(),
        caller.principal.tenant_id(),
        RequestStart::Unconfirmed {
            conn: None,
            statement: confirmation,
        },
    )
}

/// A key the server has looked up before is not looked up again: the request starts from
/// what the database said, and the database confirms it with the request's first
/// statement, in the same snapshot, scoped to the key's tenant. A key revoked since is
/// refused there: that statement fails, nothing is written, nothing more runs for the
/// request, and the connection goes back to the pool clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_key_is_confirmed_by_the_requests_first_statement() {
    use growthgraph::auth::{authenticate_request, KnownKeys};
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let statements = Arc::new(db::StatementCounter::default());
    let pool = one_connection_pool(&app, statements.clone());
    let mut owner = app.owner().await;
    owner
        .batch_execute(&add_customer(a.id, "known-a@example.com"))
        .await
        .unwrap();
    let customers_of_a = customers_of(a.id);
    let a_customers = count(&mut owner, &customers_of_a).await;
    let known = KnownKeys::default();
    let header = format!("Bearer {}", a.admin_key);
    // First use: looked up, and remembered.
    first_use(&app, &pool, &known, &a).await;

    // Then confirmed with the first statement: same snapshot, the key's tenant.
    let sent = || {
        statements.data_statements()
            + std::sync::atomic::AtomicU64::load(
                &statements.control,
                std::sync::atomic::Ordering::Relaxed,
            )
    };
    let before = sent();
    let db = known_request(&pool, &known, &header).await;
    assert_eq!(sent(), before, "nothing sent yet");
    assert_eq!(db.tenant().id(), a.id);
    let state = db.query(read_snapshot).await.unwrap();
    assert_eq!(sent(), before + 3, "BEGIN, the confirmation and the read");
    assert_eq!(state.tenant, Some(a.id.to_string()));
    assert_eq!(
        (state.isolation.as_str(), state.read_only.as_str()),
        ("repeatable read", "on")
    );
    assert_eq!(
        state.customers, a_customers,
        "row-level security sees the key's tenant"
    );
    assert!(db.confirmed().await);
    // The confirmation executed the statement its connection prepared on opening, with
    // its one plan (it is not parsed and planned per request).
    assert_eq!(confirmations(&db).await, 1);
    db.run(insert_customer("known-write@example.com"))
        .await
        .unwrap();
    db.finish().await;
    assert_eq!(count(&mut owner, &customers_of_a).await, a_customers + 1);
    let db = known_request(&pool, &known, &header).await;
    assert_eq!(confirmations(&db).await, 2, "one more execution");
    db.finish().await;

    // A write first: the confirmation runs (and must succeed) before it.
    let db = known_request(&pool, &known, &header).await;
    db.run(insert_customer("known-write-first@example.com"))
        .await
        .unwrap();
    assert!(db.confirmed().await);
    db.finish().await;
    assert_eq!(count(&mut owner, &customers_of_a).await, a_customers + 2);

    // The confirmation checks the key's hash, id, tenant and role, not only its hash.
    let key_id: Uuid = {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
        }
        diesel::sql_query("SELECT id FROM api_keys WHERE key_hash = sha256(convert_to($1, 'UTF8'))")
            .bind::<Text, _>(&a.admin_key)
            .get_result::<Id>(&mut owner)
            .await
            .unwrap()
            .id
    };
    let confirm = |key_id: Uuid, tenant: Uuid, role: &str| {
        format!(
            "SET ROLE growthgraph_app; BEGIN; SELECT confirm_api_key(sha256(convert_to('{}', 'UTF8')), '{key_id}', '{tenant}', '{role}'); COMMIT; RESET ROLE",
            a.admin_key
        )
    };
    owner
        .batch_execute(&confirm(key_id, a.id, "admin"))
        .await
        .unwrap();
    for (id, tenant, role) in [
        (key_id, b.id, "admin"),
        (key_id, a.id, "partner"),
        (Uuid::new_v4(), a.id, "admin"),
    ] {
        assert!(owner
            .batch_execute(&confirm(id, tenant, role))
            .await
            .is_err());
        owner.batch_execute("ROLLBACK; RESET ROLE").await.unwrap();
    }

    // Revoked since it was remembered: refused by the first statement, or before a write,
    // or when the handler asks; nothing is written, and nothing runs after.
    owner
        .batch_execute(&format!(
            "UPDATE api_keys SET revoked_at = now() WHERE id = '{key_id}'"
        ))
        .await
        .unwrap();
    for first_work in ["read", "write", "none"] {
        let db = known_request(&pool, &known, &header).await;
        match first_work {
            "read" => assert!(db.query(read_snapshot).await.is_err()),
            "write" => assert!(matches!(
                db.run(insert_customer("revoked-write@example.com")).await,
                Err(AppError::Unauthenticated(_))
            )),
            _ => {}
        }
        assert!(!db.confirmed().await, "{first_work}");
        assert!(
            db.query(read_snapshot).await.is_err(),
            "nothing runs after a refusal"
        );
        assert!(db
            .run(insert_customer("revoked-later@example.com"))
            .await
            .is_err());
        db.finish().await;
    }
    assert_eq!(
        count(&mut owner, &customers_of_a).await,
        a_customers + 2,
        "nothing written"
    );

    // Forgotten (as the handler does on a refusal), the key is looked up and refused.
    known.forget(Some(&header));
    assert!(matches!(
        authenticate_request(&pool, Some(&known), Some(&header)).await,
        Err(AppError::Unauthenticated(_))
    ));
    let mut conn = pool.get().await.unwrap();
    let state = snapshot_state(&mut conn).await;
    assert_eq!(state.read_only, "off", "outside any transaction");
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
    assert_eq!(state.customers, 0);
}

/// `tenant`'s admin key used once with `known`: looked up (and remembered), the key's
/// use recorded (off the request path, on a connection of `pool`), and every connection
/// of `pool` back, so a test counts only its own statements and connections.
async fn first_use(
    app: &TestApp,
    pool: &db::PgPool,
    known: &growthgraph::auth::KnownKeys,
    tenant: &crate::common::TestTenant,
) {
    let header = format!("Bearer {}", tenant.admin_key);
    let first = growthgraph::auth::authenticate_request(pool, Some(known), Some(&header))
        .await
        .unwrap();
    let Proof::LookedUp(conn) = first.proof else {
        panic!("a key's first use is looked up");
    };
    TenantDb::for_request(pool.clone(), tenant.id, RequestStart::LookedUp(*conn))
        .finish()
        .await;
    let used = format!(
        "SELECT count(*) AS count FROM api_keys WHERE tenant_id = '{}' AND last_used_at IS NOT NULL",
        tenant.id
    );
    let mut owner = app.owner().await;
    while count(&mut owner, &used).await == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..500 {
        let status = pool.status();
        if status.size == status.available {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The confirmation statement of `tenant`'s admin key once `known` knows it (after its
/// [`first_use`]).
async fn known_caller(
    app: &TestApp,
    pool: &db::PgPool,
    known: &growthgraph::auth::KnownKeys,
    tenant: &crate::common::TestTenant,
) -> String {
    first_use(app, pool, known, tenant).await;
    let header = format!("Bearer {}", tenant.admin_key);
    match growthgraph::auth::authenticate_request(pool, Some(known), Some(&header))
        .await
        .unwrap()
        .proof
    {
        Proof::Known(statement) => statement,
        Proof::LookedUp(_) => panic!("then known"),
    }
}

/// One caller's read groups hold at most their connection slots at once: a second group
/// waits for the first to finish, though the pool has a connection free; another
/// caller's groups have slots of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_read_groups_hold_at_most_their_connection_slots() {
    use growthgraph::auth::KnownKeys;
    use growthgraph::db::group::ReadGroups;
    let app = TestApp::start().await;
    let (a, b) = (app.tenant("Winery A").await, app.tenant("Winery B").await);
    let pool = db::build_pool(
        &app.database_url,
        3,
        Duration::from_secs(5),
        Default::default(),
    );
    let known = KnownKeys::default();
    let (a_caller, b_caller) = (
        known_caller(&app, &pool, &known, &a).await,
        known_caller(&app, &pool, &known, &b).await,
    );
    let groups = ReadGroups::new(16, 1);
    let first = TenantDb::for_request(
        pool.clone(),
        a.id,
        RequestStart::Grouped {
            groups: &groups,
            statement: a_caller.clone(),
        },
    );
    first.query(read_snapshot).await.unwrap();
    let second = TenantDb::for_request(
        pool.clone(),
        a.id,
        RequestStart::Grouped {
            groups: &groups,
            statement: a_caller.clone(),
        },
    );
    assert_eq!(groups.joins(), 0, "the first group's snapshot began");
    let waiting = tokio::spawn({
        let second = second.clone();
        async move { second.query(read_snapshot).await.map(|s| s.customers) }
    });
    let other = TenantDb::for_request(
        pool.clone(),
        b.id,
        RequestStart::Grouped {
            groups: &groups,
            statement: b_caller,
        },
    );
    let state = other.query(read_snapshot).await.unwrap();
    assert_eq!(
        state.tenant,
        Some(b.id.to_string()),
        "b's slots are its own"
    );
    other.finish().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a's second group waits for a's slot"
    );
    first.finish().await;
    let customers = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the slot is free once the first group finished")
        .unwrap()
        .unwrap();
    assert_eq!(
        customers,
        count(&mut app.owner().await, &customers_of(a.id)).await
    );
    second.finish().await;
    let status = pool.status();
    assert_eq!(status.size - status.available, 0, "every connection back");
}

/// A read group (`db::group`): handles of one known caller opened before the group's
/// snapshot began share that snapshot and its one connection; a handle opened after it
/// began starts another group, whose snapshot sees what was committed since; nothing in a
/// group writes; the connection goes back to the pool with the last member. A key revoked
/// since is refused for every member, and the connection goes back clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_group_shares_one_snapshot_and_takes_no_member_after_it_began() {
    use growthgraph::auth::KnownKeys;
    use growthgraph::db::group::ReadGroups;
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let pool = db::build_pool(
        &app.database_url,
        2,
        Duration::from_secs(5),
        Default::default(),
    );
    let known = KnownKeys::default();
    let caller = known_caller(&app, &pool, &known, &a).await;
    let groups = ReadGroups::new(16, 2);
    let member = || {
        TenantDb::for_request(
            pool.clone(),
            a.id,
            RequestStart::Grouped {
                groups: &groups,
                statement: caller.clone(),
            },
        )
    };
    let in_use = || {
        let status = pool.status();
        status.size - status.available
    };

    let (one, two) = (member(), member());
    assert_eq!(groups.joins(), 1, "the second joined the first's group");
    let mut owner = app.owner().await;
    let before = count(&mut owner, &customers_of(a.id)).await;
    let state = one.query(read_snapshot).await.unwrap();
    assert_eq!(state.tenant, Some(a.id.to_string()));
    assert_eq!(
        (state.isolation.as_str(), state.read_only.as_str()),
        ("repeatable read", "on")
    );
    assert_eq!(state.customers, before);
    owner
        .batch_execute(&add_customer(a.id, "after-the-snapshot@example.com"))
        .await
        .unwrap();
    assert_eq!(
        two.query(read_snapshot).await.unwrap().customers,
        before,
        "the second member reads the group's snapshot"
    );
    assert_eq!(in_use(), 1, "one connection for the group");

    let three = member();
    assert_eq!(
        groups.joins(),
        1,
        "no member once the snapshot may have begun"
    );
    assert_eq!(
        three.query(read_snapshot).await.unwrap().customers,
        before + 1,
        "a later group sees what was committed since"
    );
    assert!(matches!(
        two.run(insert_customer("grouped-write@example.com")).await,
        Err(AppError::Internal { .. })
    ));
    assert!(one.confirmed().await && two.confirmed().await && three.confirmed().await);
    one.finish().await;
    assert_eq!(
        in_use(),
        2,
        "the group's connection is held for its last member"
    );
    two.finish().await;
    assert_eq!(in_use(), 1);
    three.finish().await;
    assert_eq!(in_use(), 0);
    assert_eq!(
        count(&mut owner, &customers_of(a.id)).await,
        before + 1,
        "nothing written by the group"
    );

    // Revoked since: every member is refused, nothing runs, the connection comes back
    // clean.
    owner
        .batch_execute(&format!(
            "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = '{}'",
            a.id
        ))
        .await
        .unwrap();
    let (one, two) = (member(), member());
    assert_eq!(groups.joins(), 2);
    assert!(one.query(read_snapshot).await.is_err());
    assert!(two.query(read_snapshot).await.is_err());
    assert!(!one.confirmed().await && !two.confirmed().await);
    one.finish().await;
    two.finish().await;
    assert_eq!(in_use(), 0);
    let mut conn = pool.get().await.unwrap();
    let state = snapshot_state(&mut conn).await;
    assert_eq!(state.read_only, "off", "outside any transaction");
    assert!(state.tenant.as_deref().unwrap_or("").is_empty());
}

/// Over HTTP, a key revoked after the server came to know it gets 401 on its next request,
/// whatever that request is: a read, a write (nothing written), an operation that reads
/// nothing, a malformed body, a GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_key_revoked_since_gets_401_whatever_the_request() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let mut owner = app.owner().await;
    let customers = "SELECT count(*) AS count FROM customers";
    let before = count(&mut owner, customers).await;
    let write = json!({
        "query": "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) { customer { id } userErrors { code } } }",
        "variables": { "input": { "email": "after-revocation@example.com" } },
    });
    for case in ["read", "write", "nothing", "malformed", "get"] {
        let key = app.key(&a, Role::Partner).await;
        let (status, body) = app
            .post(
                Some(&key),
                json!({ "query": "{ viewer { tenant { id } } }" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        owner
            .batch_execute(&format!(
                "UPDATE api_keys SET revoked_at = now() WHERE key_hash = sha256(convert_to('{key}', 'UTF8'))"
            ))
            .await
            .unwrap();
        let (status, body) = match case {
            "read" => {
                app.post(
                    Some(&key),
                    json!({ "query": "{ viewer { tenant { id } } }" }),
                )
                .await
            }
            "write" => app.post(Some(&key), write.clone()).await,
            "nothing" => {
                app.post(Some(&key), json!({ "query": "{ __typename }" }))
                    .await
            }
            "malformed" => app.post(Some(&key), json!({ "not": "graphql" })).await,
            _ => {
                let response = app
                    .client
                    .get(format!("{}/graphql?query=%7B__typename%7D", app.base))
                    .header("Authorization", format!("Bearer {key}"))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json().await.unwrap())
            }
        };
        assert_eq!(
            (status, error_code(&body)),
            (401, Some("UNAUTHENTICATED")),
            "{case}: {body}"
        );
        assert!(body.get("data").is_none(), "{case}: {body}");
    }
    assert_eq!(
        count(&mut owner, customers).await,
        before,
        "nothing written"
    );
    // A known key that is not revoked keeps working, and writes.
    let key = app.key(&a, Role::Partner).await;
    for _ in 0..2 {
        let (status, body) = app.post(Some(&key), write.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["data"]["upsertCustomer"]["customer"]["id"].is_string(),
            "{body}"
        );
    }
    assert_eq!(count(&mut owner, customers).await, before + 1);
}

/// A committed write wakes the commit signal (the event sequencer), in both modes; a read
/// and a failed write do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_writes_and_only_they_wake_the_commit_signal() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let tenant = a.id;
    let woken = |signal: &std::sync::Arc<tokio::sync::Notify>| {
        let signal = signal.clone();
        async move {
            tokio::time::timeout(Duration::from_millis(200), signal.notified())
                .await
                .is_ok()
        }
    };
    for per_request in [false, true] {
        let signal = std::sync::Arc::new(tokio::sync::Notify::new());
        let db = if per_request {
            TenantDb::for_request(app.pool.clone(), tenant, RequestStart::Fresh)
        } else {
            TenantDb::new(app.pool.clone(), tenant)
        }
        .signalling_commits(signal.clone());

        let read = db
            .query(|conn, _| {
                async move {
                    diesel::sql_query("SELECT count(*) AS count FROM customers")
                        .get_result::<Count>(conn)
                        .await
                }
                .scope_boxed()
            })
            .await;
        assert!(read.is_ok());
        assert!(!woken(&signal).await, "a read is not a commit");

        let failed = db
            .run(|conn, _| {
                async move {
                    conn.batch_execute("INSERT INTO customers (tenant_id) VALUES (NULL)")
                        .await
                        .map_err(AppError::from)
                }
                .scope_boxed()
            })
            .await;
        assert!(failed.is_err());
        assert!(!woken(&signal).await, "a rolled-back write is not a commit");

        db.run(|conn, _| {
            async move {
                conn.batch_execute(&add_customer(
                    tenant,
                    &format!("signal{per_request}@example.com"),
                ))
                .await
                .map_err(AppError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
        assert!(woken(&signal).await, "a committed write wakes the signal");
        db.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refuses_missing_malformed_unknown_and_revoked_keys() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let analyst = app.key(&a, Role::Analyst).await;
    let query = json!({ "query": "{ viewer { tenant { id } } }" });

    let unknown = format!("gg_admin_{}", "ab".repeat(24));
    for key in [
        None,
        Some(""),
        Some("not-a-key"),
        Some("gg_admin_"),
        Some(unknown.as_str()),
    ] {
        let (status, body) = app.post(key, query.clone()).await;
        assert_eq!(status, 401, "key {key:?}");
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
        assert!(body.get("data").is_none(), "no data for {key:?}");
    }
    let response = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("Authorization", format!("Token {}", a.admin_key))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Revocation takes effect on the very next request.
    assert_eq!(app.post(Some(&analyst), query.clone()).await.0, 200);
    let id = app
        .gql(&analyst, "{ viewer { apiKey { id } } }", json!({}))
        .await["data"]["viewer"]["apiKey"]["id"]
        .clone();
    let r = app
        .gql(&a.admin_key, "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { apiKey { revokedAt } userErrors { code } } }", json!({ "id": id }))
        .await;
    assert!(
        r["data"]["revokeApiKey"]["apiKey"]["revokedAt"].is_string(),
        "{r}"
    );
    let (status, body) = app.post(Some(&analyst), query.clone()).await;
    assert_eq!((status, error_code(&body)), (401, Some("UNAUTHENTICATED")));

    // Revoking it again is a refused transition, not an error.
    let r = app
        .gql(
            &a.admin_key,
            "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        r["data"]["revokeApiKey"]["userErrors"][0]["code"],
        "INVALID_TRANSITION"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced_by_the_guard() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let analyst = app.key(&a, Role::Analyst).await;
    let partner = app.key(&a, Role::Partner).await;
    assert!(analyst.starts_with("gg_analyst_") && partner.starts_with("gg_partner_"));
    let mut owner = app.owner().await;
    let keys_before = count(&mut owner, "SELECT count(*) AS count FROM api_keys").await;

    let create = "mutation { createApiKey(input: { name: \"x\", role: ADMIN }) { secret } }";
    for key in [&analyst, &partner] {
        let r = app.gql(key, create, json!({})).await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
        assert!(r["data"].is_null(), "{r}");
        let r = app
            .gql(key, "{ apiKeys { nodes { id } } }", json!({}))
            .await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
        let r = app
            .gql(key, "{ viewer { apiKey { role } } }", json!({}))
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }
    assert_eq!(
        count(&mut owner, "SELECT count(*) AS count FROM api_keys").await,
        keys_before,
        "nothing written"
    );
    let r = app.gql(&a.admin_key, create, json!({})).await;
    assert!(r["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .starts_with("gg_admin_"));
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    api_key: String,
}

/// The tenant's testimonial widget key (read as the owner).
async fn widget_key(owner: &mut AsyncPgConnection, tenant: Uuid) -> String {
    let key: Key = diesel::sql_query(format!(
        "SELECT api_key FROM widget_configs WHERE tenant_id = '{tenant}'"
    ))
    .get_result(owner)
    .await
    .unwrap();
    key.api_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_keys_read_published_testimonials_and_nothing_else() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    app.tenant("Winery B").await;
    let mut owner = app.owner().await;
    let widget = widget_key(&mut owner, a.id).await;
    assert!(widget.starts_with("wgt_") && widget.len() == 52);
    let published = count(
        &mut owner,
        &format!("SELECT count(*) AS count FROM testimonials WHERE tenant_id = '{}' AND status = 'published'", a.id),
    )
    .await;
    let total = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM testimonials WHERE tenant_id = '{}'",
            a.id
        ),
    )
    .await;
    assert!(total > published && published > 0);

    let r = app
        .gql(
            &widget,
            "{ publishedTestimonials { nodes { id content rating } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["publishedTestimonials"]["nodes"]
            .as_array()
            .unwrap()
            .len() as i64,
        published
    );
    for forbidden in [
        "{ apiKeys { nodes { id } } }",
        "mutation { createApiKey(input: { name: \"x\", role: ADMIN }) { secret } }",
    ] {
        let r = app.gql(&widget, forbidden, json!({})).await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{forbidden}: {r}");
    }
}

async fn ws_connect(
    app: &TestApp,
    protocol: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = app.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The close code the server ends the socket with (None if it never closes).
async fn close_code<S>(socket: &mut S) -> Option<u16>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .ok()?
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_requires_a_valid_key_in_connection_init() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;

    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        // Valid key: acknowledged.
        let mut socket = ws_connect(&app, protocol).await;
        let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", a.admin_key) } });
        socket
            .send(Message::Text(init.to_string().into()))
            .await
            .unwrap();
        let ack = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let ack: Value = serde_json::from_str(ack.to_text().unwrap()).unwrap();
        assert_eq!(ack["type"], "connection_ack", "{protocol}");

        // Unknown, missing or malformed keys: closed as unauthorized.
        for payload in [
            json!({ "authorization": "Bearer gg_admin_0000" }),
            json!({}),
            json!({ "authorization": a.admin_key }),
        ] {
            let mut socket = ws_connect(&app, protocol).await;
            let init = json!({ "type": "connection_init", "payload": payload });
            socket
                .send(Message::Text(init.to_string().into()))
                .await
                .unwrap();
            assert_eq!(
                close_code(&mut socket).await,
                Some(4401),
                "{protocol} {payload}"
            );
        }
    }

    // No connection_init at all: closed after the init timeout.
    let mut socket = ws_connect(&app, "graphql-transport-ws").await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, Some(4408));
    assert!(started.elapsed() >= Duration::from_secs(4));
}

fn cli(database_url: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_growthgraph"))
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env("GROWTHGRAPH_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

fn printed_key(output: &str) -> String {
    output
        .split_whitespace()
        .find(|w| w.starts_with("gg_"))
        .unwrap_or_else(|| panic!("no key in {output}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_key_commands_print_working_keys_once() {
    let app = TestApp::start().await;
    let (ok, out) = cli(
        &app.database_url,
        &[
            "tenant",
            "create",
            "--name",
            "Cave Coopérative",
            "--slug",
            "cave-coop",
        ],
    );
    assert!(ok, "{out}");
    let admin = printed_key(&out);
    assert!(admin.starts_with("gg_admin_"));
    let r = app
        .gql(
            &admin,
            "{ viewer { tenant { slug name } apiKey { role } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["viewer"]["tenant"]["slug"], "cave-coop");
    assert_eq!(r["data"]["viewer"]["apiKey"]["role"], "ADMIN");

    let (ok, out) = cli(
        &app.database_url,
        &[
            "key",
            "create",
            "--tenant",
            "cave-coop",
            "--role",
            "partner",
            "--name",
            "shop",
        ],
    );
    assert!(ok, "{out}");
    let partner = printed_key(&out);
    assert!(partner.starts_with("gg_partner_"));
    let r = app
        .gql(&partner, "{ viewer { apiKey { role name } } }", json!({}))
        .await;
    assert_eq!(
        r["data"]["viewer"]["apiKey"],
        json!({ "role": "PARTNER", "name": "shop" })
    );

    // Refusals: a taken slug, an unknown tenant, an unknown role.
    let (ok, out) = cli(
        &app.database_url,
        &["tenant", "create", "--name", "Again", "--slug", "cave-coop"],
    );
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, _) = cli(
        &app.database_url,
        &["key", "create", "--tenant", "nope", "--role", "admin"],
    );
    assert!(!ok);
    let (ok, _) = cli(
        &app.database_url,
        &["key", "create", "--tenant", "cave-coop", "--role", "root"],
    );
    assert!(!ok);
    // Only hashes are stored.
    let mut owner = app.owner().await;
    let stored: i64 = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM api_keys WHERE key_prefix = '{}'",
            &partner[..partner.len() - 40]
        ),
    )
    .await;
    assert_eq!(stored, 1);
    let clear: i64 = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM api_keys WHERE encode(key_hash, 'escape') LIKE '%{}%'",
            &partner[20..]
        ),
    )
    .await;
    assert_eq!(clear, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_the_tenants_queue_for_every_key_and_only_admins_act_on_them() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Jobs A").await;
    let b = app.bare_tenant("Jobs B").await;
    // Pending ones run tomorrow, so the worker leaves them alone during the test.
    for tenant in [&a, &b] {
        app.insert_for(
            tenant,
            "INSERT INTO queue_jobs (tenant_id, job_type, status, run_at, created_at) \
             SELECT $1, 'crm_sync', (ARRAY['pending', 'failed', 'completed', 'pending'])[g], \
                    now() + interval '1 day', now() - interval '1 hour' \
             FROM generate_series(1, 4) g",
        )
        .await;
    }
    let want = app.ids_by_sql("queue_jobs", &a, None).await;
    assert_eq!(want.len(), 4);
    assert_eq!(app.page_ids(&a.admin_key, "jobs", "").await, want);
    assert_eq!(
        app.page_ids(&a.admin_key, "jobs", ", status: PENDING")
            .await,
        app.ids_by_sql("queue_jobs", &a, Some(("status", "pending")))
            .await
    );
    let theirs = app.page_ids(&b.admin_key, "jobs", "").await;
    assert!(theirs.len() == 4 && theirs.iter().all(|id| !want.contains(id)));
    // Every key reads the queue (what a job says holds no secret); only admins act on it.
    for role in [Role::Analyst, Role::Partner] {
        let key = app.key(&a, role).await;
        assert_eq!(app.page_ids(&key, "jobs", "").await, want, "{role:?}");
        let retry = format!(
            "mutation {{ retryJob(input: {{ id: \"{}\" }}) {{ userErrors {{ code }} }} }}",
            want[0]
        );
        let r = app.gql(&key, &retry, json!({})).await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{role:?}: {r}"
        );
    }
}

/// Admins set their tenant's email preferences (merged: what is left out stays) and last
/// activity; every key reads them; another tenant's stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_set_their_tenants_email_preferences_and_last_activity() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Prefs A").await;
    let b = app.bare_tenant("Prefs B").await;
    const READ: &str = "{ viewer { tenant { emailPreferences { marketing sequences weeklyDigest } lastActiveAt } } }";
    const UPDATE: &str = "mutation($i: UpdateTenantSettingsInput!) { updateTenantSettings(input: $i) { tenant { emailPreferences { marketing sequences weeklyDigest } lastActiveAt } userErrors { code } } }";
    let r = app.gql(&a.admin_key, READ, json!({})).await;
    assert_eq!(
        r["data"]["viewer"]["tenant"],
        json!({ "emailPreferences": { "marketing": true, "sequences": true, "weeklyDigest": true }, "lastActiveAt": null })
    );
    let analyst = app.key(&a, Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            UPDATE,
            json!({ "i": { "emailPreferences": { "marketing": false } } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = app
        .gql(
            &a.admin_key,
            UPDATE,
            json!({ "i": { "emailPreferences": { "marketing": false } } }),
        )
        .await;
    assert_eq!(
        r["data"]["updateTenantSettings"]["tenant"]["emailPreferences"],
        json!({ "marketing": false, "sequences": true, "weeklyDigest": true }),
        "{r}"
    );
    let r = app.gql(&a.admin_key, UPDATE, json!({ "i": { "emailPreferences": { "weeklyDigest": false }, "lastActiveAt": "2026-12-01T10:00:00Z" } })).await;
    let tenant = &r["data"]["updateTenantSettings"]["tenant"];
    assert_eq!(
        tenant["emailPreferences"],
        json!({ "marketing": false, "sequences": true, "weeklyDigest": false })
    );
    assert_eq!(tenant["lastActiveAt"], "2026-12-01T10:00:00+00:00");
    let r = app.gql(&analyst, READ, json!({})).await;
    assert_eq!(
        r["data"]["viewer"]["tenant"]["emailPreferences"]["weeklyDigest"], false,
        "{r}"
    );
    let r = app.gql(&b.admin_key, READ, json!({})).await;
    assert_eq!(
        r["data"]["viewer"]["tenant"]["emailPreferences"]["marketing"], true,
        "another tenant's"
    );
    // Each change is an event of the tenant's.
    let events = app
        .rows_and_events("api_keys", a.id, "tenant.settings_changed")
        .await
        .1;
    assert_eq!(events, 2);
    let theirs = app
        .rows_and_events("api_keys", b.id, "tenant.settings_changed")
        .await
        .1;
    assert_eq!(theirs, 0);
}
