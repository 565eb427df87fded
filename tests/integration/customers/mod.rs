//! Customer 360 and the query conventions: statement counts, keyset pagination, filters,
//! upsert and idempotency, bad input.

use std::collections::HashSet;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::auth::Role;
use growthgraph::config::ServeArgs;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{
    count, error_code, refusal, user_error_code, without_budget, TestApp, TestTenant,
};

mod paging;
mod the_360;
mod writes;

/// 60 more customers with deliberate ties (equal LTVs, equal names, missing names and
/// activity dates), each with 7 activities and 4 orders.
async fn add_customers(app: &TestApp, tenant: &TestTenant) {
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "INSERT INTO customers (tenant_id, external_id, email, name, segment, churn_risk, ltv, last_activity_at, is_club_member, created_at)
             SELECT '{t}', 'bulk-' || n, 'bulk' || n || '@example.com',
                    CASE WHEN n % 10 = 0 THEN NULL ELSE 'Name ' || (n % 7) END,
                    (ARRAY['vip', 'casual', 'new'])[1 + n % 3], (ARRAY['low', 'medium', 'high'])[1 + n % 3],
                    (n % 5) * 100.50,
                    CASE WHEN n % 4 = 0 THEN NULL ELSE timestamptz '2026-01-01' + (n % 9) * interval '1 day' END,
                    n % 2 = 0, timestamptz '2025-06-01' + (n % 6) * interval '1 hour'
             FROM generate_series(1, 60) n;
             INSERT INTO customer_activities (tenant_id, customer_id, activity_type, created_at)
             SELECT tenant_id, id, (ARRAY['visit', 'email_opened'])[1 + k % 2], now() - k * interval '1 hour'
             FROM customers, generate_series(1, 7) k WHERE tenant_id = '{t}' AND external_id LIKE 'bulk-%';
             INSERT INTO orders (tenant_id, customer_id, order_total, ordered_at)
             SELECT tenant_id, id, 10 * k, now() - k * interval '1 day'
             FROM customers, generate_series(1, 4) k WHERE tenant_id = '{t}' AND external_id LIKE 'bulk-%';",
            t = tenant.id
        ))
        .await
        .unwrap();
}

/// The id of `tenant`'s first customer in the default order.
async fn first_customer(app: &TestApp, tenant: &TestTenant) -> Value {
    app.gql(
        &tenant.admin_key,
        "{ customers(first: 1) { nodes { id } } }",
        json!({}),
    )
    .await["data"]["customers"]["nodes"][0]["id"]
        .clone()
}

#[derive(QueryableByName, Debug, Clone)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    segment: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    churn_risk: Option<String>,
    #[diesel(sql_type = Numeric)]
    ltv: BigDecimal,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_activity_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_club_member: bool,
}

async fn all_rows(app: &TestApp, tenant: Uuid) -> Vec<Row> {
    let mut owner = app.owner().await;
    diesel::sql_query(
        "SELECT id, name, email, segment, churn_risk, ltv, last_activity_at, created_at, is_club_member
         FROM customers WHERE tenant_id = $1",
    )
    .bind::<SqlUuid, _>(tenant)
    .load(&mut owner)
    .await
    .unwrap()
}

/// Walks the whole connection forward, `size` at a time; returns the ids in order.
async fn walk(app: &TestApp, key: &str, size: i64, order_by: Value, filter: Value) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = app
            .gql(
                key,
                "query($first: Int, $after: String, $orderBy: CustomerOrderBy, $filter: CustomerFilter) {
                   customers(first: $first, after: $after, orderBy: $orderBy, filter: $filter) {
                     edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }",
                json!({ "first": size, "after": after, "orderBy": order_by, "filter": filter }),
            )
            .await;
        let connection = &r["data"]["customers"];
        assert!(r["errors"].is_null(), "{r}");
        for edge in connection["edges"].as_array().unwrap() {
            ids.push(edge["node"]["id"].as_str().unwrap().parse().unwrap());
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return ids;
        }
        after = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(ids.len() < 10_000, "pagination does not terminate");
    }
}

type Predicate = Box<dyn Fn(&Row) -> bool>;

const UPSERT: &str = "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) {
    created customer { id email name churnRisk } userErrors { field code message } } }";

const RECORD_ORDER: &str = "mutation($input: RecordOrderInput!) { recordOrder(input: $input) {
    order { id orderTotal } customer { ltv lastActivityAt } userErrors { field code message } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_are_isolated_between_tenants() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let b_customer = app
        .gql(
            &b.admin_key,
            "{ customers(first: 1) { nodes { id email } } }",
            json!({}),
        )
        .await["data"]["customers"]["nodes"][0]
        .clone();
    let b_id = b_customer["id"].clone();

    // Reads: B's id and email behave like unknown ones.
    let r = app
        .gql(
            &a.admin_key,
            "query($id: ID) { customer(id: $id) { id } }",
            json!({ "id": b_id }),
        )
        .await;
    assert!(r["data"]["customer"].is_null());
    let r = app
        .gql(
            &a.admin_key,
            "query($e: String) { customer(email: $e) { id } }",
            json!({ "e": b_customer["email"] }),
        )
        .await;
    // Demo data gives both tenants the same emails: A finds its own customer, never B's.
    assert_ne!(r["data"]["customer"]["id"], b_id);
    let ids = walk(&app, &a.admin_key, 100, json!(null), json!(null)).await;
    assert!(!ids.contains(&b_id.as_str().unwrap().parse().unwrap()));
    assert_eq!(
        ids.len() as i64,
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM customers WHERE tenant_id = '{}'",
                a.id
            )
        )
        .await
    );

    // Writes against B's customer: exactly like a random id.
    let foreign = app
        .gql(
            &a.admin_key,
            RECORD_ORDER,
            json!({ "input": { "customerId": b_id, "orderTotal": "5.00" } }),
        )
        .await;
    let random = app
        .gql(
            &a.admin_key,
            RECORD_ORDER,
            json!({ "input": { "customerId": Uuid::new_v4(), "orderTotal": "5.00" } }),
        )
        .await;
    assert_eq!(foreign["data"], random["data"]);
    for mutation in [
        "mutation($id: ID!) { recordCustomerActivity(input: { customerId: $id, type: \"x\" }) { userErrors { code } } }",
        "mutation($id: ID!) { setCommunicationPreferences(input: { customerId: $id, preferences: [{ channel: EMAIL, type: MARKETING, optedIn: false }] }) { userErrors { code } } }",
    ] {
        let foreign = app.gql(&a.admin_key, mutation, json!({ "id": b_id })).await;
        let random = app.gql(&a.admin_key, mutation, json!({ "id": Uuid::new_v4() })).await;
        assert_eq!(foreign["data"], random["data"], "{mutation}");
    }
    // Idempotency keys are per tenant: B's key does not collide with A's.
    let keyed = |email: &str| json!({ "input": { "email": email, "idempotencyKey": "shared" } });
    app.gql(&a.admin_key, UPSERT, keyed("a-only@example.com"))
        .await;
    let r = app
        .gql(&b.admin_key, UPSERT, keyed("b-only@example.com"))
        .await;
    assert_eq!(r["data"]["upsertCustomer"]["created"], true, "{r}");
}

/// Sends `query` with each of `asked` (key, variables) at once while every pool connection is held, releasing
/// them once `joins` requests joined a group another opened; the answers in order.
async fn together(app: &TestApp, query: &str, asked: &[(String, Value)], joins: u64) -> Vec<Value> {
    let mut held = Vec::new();
    while held.len() < app.pool.status().max_size {
        held.push(app.pool.get().await.unwrap());
    }
    let before = app.metric("growthgraph_read_group_joins_total").await;
    let answers = futures_util::future::join_all(
        asked
            .iter()
            .map(|(key, variables)| app.gql(key, query, variables.clone())),
    );
    let release = async {
        let mut joined = 0;
        for _ in 0..1000 {
            joined = app.metric("growthgraph_read_group_joins_total").await - before;
            if joined >= joins {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(joined, joins, "requests that joined a group");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        drop(held);
    };
    let (answers, ()) = tokio::join!(answers, release);
    answers.into_iter().map(without_budget).collect()
}
