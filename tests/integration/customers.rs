//! Customer 360 and the query conventions: statement counts, keyset pagination, filters,
//! upsert and idempotency, bad input.

use std::collections::HashSet;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::auth::Role;
use growthgraph::config::ServeArgs;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{error_code, refusal, without_budget, TestApp, TestTenant};

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

const PAGE_QUERY: &str = "query($first: Int!) { customers(first: $first, orderBy: { field: CREATED_AT, direction: DESC }) { nodes { id pointsBalance
    currentEnrollment { status stage { name discountPercentage } }
    activities(first: 5) { nodes { id type } } orders(first: 3) { nodes { id orderTotal } } } } }";

async fn statements_for(app: &TestApp, key: &str, first: i64) -> (u64, Value) {
    let before = app.statements.data_statements();
    let response = app.gql(key, PAGE_QUERY, json!({ "first": first })).await;
    (app.statements.data_statements() - before, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_runs_the_same_few_statements_whatever_its_size() {
    // A debug build on a busy 2-core machine can take longer than the default 1 ms to
    // resolve 50 nodes; a wider window keeps one batch per relation deterministic here.
    let app = TestApp::start_with(ServeArgs {
        batch_window_us: 50_000,
        ..ServeArgs::default()
    })
    .await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    // Warm-up: the key's first use also records last_used_at (off the request path).
    app.gql(&a.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let (small, small_response) = statements_for(&app, &a.admin_key, 5).await;
    let (large, large_response) = statements_for(&app, &a.admin_key, 50).await;
    assert!(small_response["errors"].is_null(), "{small_response}");
    let nodes = large_response["data"]["customers"]["nodes"]
        .as_array()
        .unwrap();
    assert_eq!(nodes.len(), 50);
    assert!(nodes
        .iter()
        .any(|n| n["activities"]["nodes"].as_array().unwrap().len() == 5));
    assert!(nodes
        .iter()
        .all(|n| n["orders"]["nodes"].as_array().unwrap().len() <= 3));
    assert!(nodes
        .iter()
        .any(|n| n["currentEnrollment"]["stage"]["name"].is_string()));
    assert_eq!(small, large, "statement count grew with page size");
    assert!(large <= 6, "{large} statements for one page");
}

/// Every list and lookup of a read-only request joins its one snapshot: one `BEGIN` (with
/// the tenant) and one `COMMIT`, however many root fields and loaders it has. A read that
/// went through the write path would end the snapshot and open its own transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_request_runs_in_one_transaction() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    // Warm-up: the key's first use also records last_used_at (off the request path).
    app.gql(&a.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let control = || {
        std::sync::atomic::AtomicU64::load(
            &app.statements.control,
            std::sync::atomic::Ordering::Relaxed,
        )
    };
    let before = control();
    let response = app
        .gql(
            &a.admin_key,
            "{ viewer { tenant { slug } apiKey { name } } apiKeys { nodes { id } }
               customers(first: 5) { nodes { id orders(first: 1) { nodes { id } } } }
               enrollments(first: 5) { nodes { id } } rewards(first: 5) { nodes { id } }
               redemptions(first: 5) { nodes { id } } leads(first: 5) { nodes { id } }
               campaigns(first: 5) { nodes { id } } publishedTestimonials(first: 5) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    assert!(!response["data"]["customers"]["nodes"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(control() - before, 2, "one BEGIN and one COMMIT");
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

/// Walks the whole connection backward from the end, `size` at a time; returns the ids
/// in forward order.
async fn walk_back(app: &TestApp, key: &str, size: i64, order_by: Value) -> Vec<Uuid> {
    let mut pages: Vec<Vec<Uuid>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let r = app
            .gql(
                key,
                "query($last: Int, $before: String, $orderBy: CustomerOrderBy) {
                   customers(last: $last, before: $before, orderBy: $orderBy) {
                     nodes { id } pageInfo { hasPreviousPage startCursor } } }",
                json!({ "last": size, "before": before, "orderBy": order_by }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
        let connection = &r["data"]["customers"];
        pages.push(
            connection["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().parse().unwrap())
                .collect(),
        );
        if !connection["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = connection["pageInfo"]["startCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(pages.len() < 10_000, "pagination does not terminate");
    }
    pages.into_iter().rev().flatten().collect()
}

fn expected_order(mut rows: Vec<Row>, field: &str, descending: bool) -> Vec<Uuid> {
    use std::cmp::Ordering;
    // NULL keys last in both directions; ties broken by id in the same direction.
    fn cmp_opt<T: Ord>(a: &Option<T>, b: &Option<T>, descending: bool) -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                if descending {
                    y.cmp(x)
                } else {
                    x.cmp(y)
                }
            }
        }
    }
    rows.sort_by(|a, b| {
        let key = match field {
            "LTV" => cmp_opt(&Some(a.ltv.clone()), &Some(b.ltv.clone()), descending),
            "LAST_ACTIVITY" => cmp_opt(&a.last_activity_at, &b.last_activity_at, descending),
            "CREATED_AT" => cmp_opt(&Some(a.created_at), &Some(b.created_at), descending),
            "NAME" => cmp_opt(&a.name, &b.name, descending),
            _ => unreachable!(),
        };
        let tie = if descending {
            b.id.cmp(&a.id)
        } else {
            a.id.cmp(&b.id)
        };
        key.then(tie)
    });
    rows.into_iter().map(|r| r.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_forward_and_backward_visits_every_row_once_in_order_under_each_ordering() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    let rows = all_rows(&app, a.id).await;
    for field in ["LTV", "LAST_ACTIVITY", "CREATED_AT", "NAME"] {
        for (direction, descending) in [("ASC", false), ("DESC", true)] {
            let ids = walk(
                &app,
                &a.admin_key,
                7,
                json!({ "field": field, "direction": direction }),
                json!(null),
            )
            .await;
            let unique: HashSet<_> = ids.iter().collect();
            assert_eq!(
                unique.len(),
                ids.len(),
                "{field} {direction}: a row came twice"
            );
            assert_eq!(
                ids,
                expected_order(rows.clone(), field, descending),
                "{field} {direction}"
            );
            let back = walk_back(
                &app,
                &a.admin_key,
                7,
                json!({ "field": field, "direction": direction }),
            )
            .await;
            assert_eq!(
                back,
                expected_order(rows.clone(), field, descending),
                "{field} {direction} backward"
            );
        }
    }
}

#[derive(QueryableByName)]
struct ActivityKey {
    #[diesel(sql_type = SqlUuid)]
    customer_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// A list's nested connections load in one statement per relation for all its parents:
/// each parent still gets its own newest children, ties broken by id, and the same
/// cursor applied to every parent starts each one's page after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lists_nested_pages_hold_each_parents_newest_children_after_any_cursor() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    let mut owner = app.owner().await;
    // Three more activities per bulk customer at one instant: ties on the sort key.
    owner
        .batch_execute(&format!(
            "INSERT INTO customer_activities (tenant_id, customer_id, activity_type, created_at)
             SELECT tenant_id, id, 'visit', timestamptz '2026-01-01 12:00'
             FROM customers, generate_series(1, 3) WHERE tenant_id = '{}' AND external_id LIKE 'bulk-%'",
            a.id
        ))
        .await
        .unwrap();
    let all: Vec<ActivityKey> = diesel::sql_query(
        "SELECT customer_id, id, created_at FROM customer_activities WHERE tenant_id = $1",
    )
    .bind::<SqlUuid, _>(a.id)
    .load(&mut owner)
    .await
    .unwrap();
    // Newest first, ties by id, computed here.
    let expected = |customer: Uuid, after: Option<(DateTime<Utc>, Uuid)>, n: usize| {
        let mut rows: Vec<_> = all
            .iter()
            .filter(|r| r.customer_id == customer)
            .map(|r| (r.created_at, r.id))
            .filter(|key| after.is_none_or(|after| *key < after))
            .collect();
        rows.sort_by(|x, y| y.cmp(x));
        rows.into_iter()
            .take(n)
            .map(|(_, id)| id)
            .collect::<Vec<_>>()
    };
    let key_of = |id: Uuid| {
        let row = all.iter().find(|r| r.id == id).unwrap();
        (row.created_at, row.id)
    };

    // A cursor on the first tied activity of one customer, and one on a recent activity.
    let first: Value = first_customer(&app, &a).await;
    let r = app
        .gql(
            &a.admin_key,
            "query($id: ID) { customer(id: $id) { activities(first: 10) { edges { cursor node { id } } } } }",
            json!({ "id": first }),
        )
        .await;
    let edges = r["data"]["customer"]["activities"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    assert_eq!(edges.len(), 10, "{r}");
    let cursor_at = |i: usize| {
        let id: Uuid = edges[i]["node"]["id"].as_str().unwrap().parse().unwrap();
        (edges[i]["cursor"].clone(), Some(key_of(id)))
    };

    let mut checked_ties = 0;
    for (cursor, after) in [
        (json!(null), None),
        cursor_at(2),
        cursor_at(7),
        cursor_at(8),
    ] {
        let r = app
            .gql(
                &a.admin_key,
                "query($after: String) { customers(first: 40, orderBy: { field: CREATED_AT, direction: DESC }) {
                   nodes { id activities(first: 4, after: $after) { nodes { id } pageInfo { hasNextPage } } } } }",
                json!({ "after": cursor }),
            )
            .await;
        let nodes = r["data"]["customers"]["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"));
        assert_eq!(nodes.len(), 40, "{r}");
        for node in nodes {
            let customer: Uuid = node["id"].as_str().unwrap().parse().unwrap();
            let page: Vec<Uuid> = node["activities"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().parse().unwrap())
                .collect();
            let wanted = expected(customer, after, 5);
            assert_eq!(
                page,
                wanted[..wanted.len().min(4)],
                "customer {customer} after {after:?}"
            );
            assert_eq!(
                node["activities"]["pageInfo"]["hasNextPage"],
                wanted.len() > 4,
                "customer {customer} after {after:?}"
            );
            let tied = |id: &Uuid| key_of(*id).0 == key_of(page[0]).0;
            if page.len() > 1 && page[1..].iter().all(tied) {
                checked_ties += 1;
            }
        }
    }
    assert!(checked_ties > 0, "no page held tied children");
}

type Predicate = Box<dyn Fn(&Row) -> bool>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_filter_matches_an_independent_expectation() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    add_customers(&app, &a).await;
    let rows = all_rows(&app, a.id).await;
    let from: DateTime<Utc> = "2026-01-03T00:00:00Z".parse().unwrap();
    let to: DateTime<Utc> = "2026-01-07T00:00:00Z".parse().unwrap();
    let ltv_min: BigDecimal = "100.50".parse().unwrap();
    let ltv_max: BigDecimal = "301.50".parse().unwrap();
    let cases: Vec<(Value, Predicate)> = vec![
        (
            json!({ "segment": "vip" }),
            Box::new(|r: &Row| r.segment.as_deref() == Some("vip")),
        ),
        (
            json!({ "churnRisk": "HIGH" }),
            Box::new(|r: &Row| r.churn_risk.as_deref() == Some("high")),
        ),
        (
            json!({ "isClubMember": true }),
            Box::new(|r: &Row| r.is_club_member),
        ),
        (
            json!({ "isClubMember": false }),
            Box::new(|r: &Row| !r.is_club_member),
        ),
        (
            json!({ "ltvMin": "100.50", "ltvMax": "301.50" }),
            Box::new(move |r: &Row| r.ltv >= ltv_min && r.ltv <= ltv_max),
        ),
        (
            json!({ "lastActivityFrom": from, "lastActivityTo": to }),
            Box::new(move |r: &Row| r.last_activity_at.is_some_and(|t| t >= from && t < to)),
        ),
        (
            json!({ "search": "NAME 3" }),
            Box::new(|r: &Row| {
                r.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains("name 3"))
                    || r.email.as_deref().is_some_and(|e| e.contains("name 3"))
            }),
        ),
        (
            json!({ "search": "BULK1" }),
            Box::new(|r: &Row| r.email.as_deref().is_some_and(|e| e.contains("bulk1"))),
        ),
        (
            json!({ "search": "%" }),
            Box::new(|r: &Row| r.email.as_deref().is_some_and(|e| e.contains('%'))),
        ),
        (
            json!({ "segment": "casual", "isClubMember": true }),
            Box::new(|r: &Row| r.segment.as_deref() == Some("casual") && r.is_club_member),
        ),
    ];
    for (filter, predicate) in cases {
        let mut got = walk(&app, &a.admin_key, 100, json!(null), filter.clone()).await;
        let mut expected: Vec<Uuid> = rows.iter().filter(|r| predicate(r)).map(|r| r.id).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "filter {filter}");
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut owner = app.owner().await;
    diesel::sql_query(sql)
        .get_result::<Count>(&mut owner)
        .await
        .unwrap()
        .n
}

const UPSERT: &str = "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) {
    created customer { id email name churnRisk } userErrors { field code message } } }";
const RECORD_ORDER: &str = "mutation($input: RecordOrderInput!) { recordOrder(input: $input) {
    order { id orderTotal } customer { ltv lastActivityAt } userErrors { field code message } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_matches_by_external_id_then_email_and_idempotency_keys_hold_under_races() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let partner = app.key(&a, Role::Partner).await;

    let r = app.gql(&partner, UPSERT, json!({ "input": { "email": "New.Person@Example.com", "name": "New", "churnRisk": "LOW" } })).await;
    assert_eq!(r["data"]["upsertCustomer"]["created"], true, "{r}");
    let id = r["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Same email, other case, with an external id: the same customer, updated.
    let r = app
        .gql(&partner, UPSERT, json!({ "input": { "email": "new.person@example.com", "externalId": "ext-9", "name": "Renamed" } }))
        .await;
    assert_eq!(r["data"]["upsertCustomer"]["created"], false);
    assert_eq!(r["data"]["upsertCustomer"]["customer"]["id"], id.as_str());
    assert_eq!(r["data"]["upsertCustomer"]["customer"]["name"], "Renamed");
    // By external id alone.
    let r = app
        .gql(
            &partner,
            UPSERT,
            json!({ "input": { "externalId": "ext-9", "churnRisk": "HIGH" } }),
        )
        .await;
    assert_eq!(r["data"]["upsertCustomer"]["customer"]["id"], id.as_str());
    assert_eq!(r["data"]["upsertCustomer"]["customer"]["churnRisk"], "HIGH");

    // Concurrent upserts of one new identity create exactly one customer.
    let races = (0..8).map(|_| {
        app.gql(
            &partner,
            UPSERT,
            json!({ "input": { "email": "race@example.com" } }),
        )
    });
    let results = futures_util::future::join_all(races).await;
    let ids: HashSet<_> = results
        .iter()
        .map(|r| {
            r["data"]["upsertCustomer"]["customer"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM customers WHERE lower(email) = 'race@example.com'"
        )
        .await,
        1
    );

    // recordOrder with one idempotency key, sent concurrently: one order, one LTV change,
    // identical responses.
    let ltv_before = app
        .gql(
            &partner,
            "query($id: ID) { customer(id: $id) { ltv } }",
            json!({ "id": id }),
        )
        .await["data"]["customer"]["ltv"]
        .clone();
    assert_eq!(ltv_before, "0.00");
    let input = json!({ "input": { "customerId": id, "orderTotal": "42.50", "idempotencyKey": "order-1" } });
    let results = futures_util::future::join_all(
        (0..8).map(|_| app.gql(&partner, RECORD_ORDER, input.clone())),
    )
    .await;
    let order_ids: HashSet<_> = results
        .iter()
        .map(|r| r["data"]["recordOrder"]["order"]["id"].clone().to_string())
        .collect();
    assert_eq!(order_ids.len(), 1, "{results:?}");
    assert!(results
        .iter()
        .all(|r| r["data"]["recordOrder"]["order"] == results[0]["data"]["recordOrder"]["order"]));
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM orders WHERE customer_id = '{id}'")
        )
        .await,
        1
    );
    let r = app.gql(&partner, "query($id: ID) { customer(id: $id) { ltv lastActivityAt orders { nodes { orderTotal } } } }", json!({ "id": id })).await;
    assert_eq!(r["data"]["customer"]["ltv"], "42.50");
    assert!(r["data"]["customer"]["lastActivityAt"].is_string());

    // Same key, different input: refused, nothing written.
    let r = app
        .gql(&partner, RECORD_ORDER, json!({ "input": { "customerId": id, "orderTotal": "99.00", "idempotencyKey": "order-1" } }))
        .await;
    assert_eq!(
        r["data"]["recordOrder"]["userErrors"][0]["code"], "IDEMPOTENCY_KEY_REUSED",
        "{r}"
    );
    assert_eq!(
        r["data"]["recordOrder"]["userErrors"][0]["field"],
        json!(["input", "idempotencyKey"])
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM orders WHERE customer_id = '{id}'")
        )
        .await,
        1
    );

    // upsertCustomer's key: a replay returns the first result.
    let keyed = json!({ "input": { "email": "keyed@example.com", "idempotencyKey": "up-1" } });
    let first = app.gql(&partner, UPSERT, keyed.clone()).await;
    let second = app.gql(&partner, UPSERT, keyed).await;
    assert_eq!(first["data"], second["data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_preferences_and_the_360_fields() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let r = app
        .gql(
            &a.admin_key,
            "{ customers(first: 1, filter: { isClubMember: true }) { nodes { id } } }",
            json!({}),
        )
        .await;
    let id = r["data"]["customers"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = app
        .gql(
            &a.admin_key,
            "mutation($id: ID!) { recordCustomerActivity(input: { customerId: $id, type: \"cellar_tour\", description: \"Tour\", data: { guests: 2 } }) { activity { type data } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        r["data"]["recordCustomerActivity"]["activity"]["type"], "cellar_tour",
        "{r}"
    );
    let r = app
        .gql(
            &a.admin_key,
            "query($id: ID) { customer(id: $id) { activities(first: 10, types: [\"cellar_tour\"]) { nodes { type data } }
               pointsBalance pointsLifetime cumulativeMembershipDays isClubMember enrollments { status }
               currentEnrollment { stage { name } } pointTransactions(first: 2) { nodes { balanceAfter } }
               communications(first: 2) { nodes { channel status } } campaignHistory { nodes { status campaign { name } } }
               communicationPreferences { channel type optedIn } leads { id } } }",
            json!({ "id": id }),
        )
        .await;
    let c = &r["data"]["customer"];
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(c["activities"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(c["activities"]["nodes"][0]["data"]["guests"], 2);
    assert!(c["cumulativeMembershipDays"].as_i64().unwrap() > 0);
    assert_eq!(
        c["pointTransactions"]["nodes"][0]["balanceAfter"],
        c["pointsBalance"]
    );
    assert!(c["campaignHistory"]["nodes"][0]["campaign"]["name"].is_string());

    let set = "mutation($id: ID!, $in: Boolean!) { setCommunicationPreferences(input: { customerId: $id,
        preferences: [{ channel: SMS, type: MARKETING, optedIn: $in, reason: \"too many\" }] }) {
        preferences { channel type optedIn unsubscribedAt unsubscribeReason } userErrors { code } } }";
    let r = app
        .gql(&a.admin_key, set, json!({ "id": id, "in": false }))
        .await;
    let sms: Vec<&Value> = r["data"]["setCommunicationPreferences"]["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["channel"] == "SMS" && p["type"] == "MARKETING")
        .collect();
    assert_eq!(sms[0]["optedIn"], false, "{r}");
    assert!(sms[0]["unsubscribedAt"].is_string());
    assert_eq!(sms[0]["unsubscribeReason"], "too many");
    let r = app
        .gql(&a.admin_key, set, json!({ "id": id, "in": true }))
        .await;
    let sms: Vec<&Value> = r["data"]["setCommunicationPreferences"]["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["channel"] == "SMS" && p["type"] == "MARKETING")
        .collect();
    assert_eq!(sms[0]["optedIn"], true);
    assert!(sms[0]["unsubscribedAt"].is_null());

    // By email, case-insensitively.
    let email = app
        .gql(
            &a.admin_key,
            "query($id: ID) { customer(id: $id) { email } }",
            json!({ "id": id }),
        )
        .await["data"]["customer"]["email"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let r = app
        .gql(
            &a.admin_key,
            "query($e: String) { customer(email: $e) { id } }",
            json!({ "e": email }),
        )
        .await;
    assert_eq!(r["data"]["customer"]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_coded_errors_with_the_field_path_and_writes_nothing() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let customers_before = count(&app, "SELECT count(*) AS n FROM customers").await;
    let orders_before = count(&app, "SELECT count(*) AS n FROM orders").await;

    let r = app
        .gql(
            &a.admin_key,
            UPSERT,
            json!({ "input": { "email": "not-an-email" } }),
        )
        .await;
    assert_eq!(
        r["data"]["upsertCustomer"]["userErrors"][0]["code"],
        "INVALID"
    );
    assert_eq!(
        r["data"]["upsertCustomer"]["userErrors"][0]["field"],
        json!(["input", "email"])
    );
    let r = app
        .gql(
            &a.admin_key,
            UPSERT,
            json!({ "input": { "email": "x@y.example", "churnRisk": "EXTREME" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &a.admin_key,
            UPSERT,
            json!({ "input": { "email": "a\u{0}b@y.example" } }),
        )
        .await;
    assert_eq!(
        refusal(&r, "upsertCustomer"),
        (&json!(["input", "email"]), &json!("BAD_USER_INPUT")),
        "{r}"
    );
    let r = app
        .gql(
            &a.admin_key,
            UPSERT,
            json!({ "input": { "email": "x@y.example", "name": "n".repeat(5000) } }),
        )
        .await;
    assert_eq!(
        r["data"]["upsertCustomer"]["userErrors"][0]["field"],
        json!(["input", "name"])
    );

    let r = app
        .gql(
            &a.admin_key,
            "{ customers(first: 101) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));
    assert_eq!(r["errors"][0]["extensions"]["field"], json!(["first"]));
    let r = app
        .gql(
            &a.admin_key,
            "{ customers(after: \"bm9wZQ\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));
    let r = app
        .gql(&a.admin_key, "{ customer(id: \"123\") { id } }", json!({}))
        .await;
    assert_eq!(r["errors"][0]["extensions"]["field"], json!(["id"]));
    let r = app
        .gql(&a.admin_key, "{ customer { id } }", json!({}))
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));

    let customer = first_customer(&app, &a).await;
    // Invalid nested arguments under the one-statement 360: the statement leaves those
    // pages to their resolvers, which refuse them with the argument's path.
    let types: Vec<String> = (0..51).map(|n| format!("type_{n}")).collect();
    let r = app
        .gql(
            &a.admin_key,
            "query($id: ID, $types: [String!]) { customer(id: $id) { id
               activities(types: $types) { nodes { id } } orders(first: 101) { nodes { id } } } }",
            json!({ "id": customer, "types": types }),
        )
        .await;
    let fields: Vec<&Value> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["extensions"]["field"])
        .collect();
    assert!(fields.contains(&&json!(["types"])), "{r}");
    assert!(fields.contains(&&json!(["first"])), "{r}");
    assert!(r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["extensions"]["code"] == "BAD_USER_INPUT"));
    for (total, field) in [("-1.00", "orderTotal"), ("1.001", "orderTotal")] {
        let r = app
            .gql(
                &a.admin_key,
                RECORD_ORDER,
                json!({ "input": { "customerId": customer, "orderTotal": total } }),
            )
            .await;
        assert_eq!(
            r["data"]["recordOrder"]["userErrors"][0]["field"],
            json!(["input", field]),
            "{total}: {r}"
        );
    }
    let r = app
        .gql(
            &a.admin_key,
            RECORD_ORDER,
            json!({ "input": { "customerId": customer, "orderTotal": "1e400" } }),
        )
        .await;
    assert!(
        error_code(&r) == Some("BAD_USER_INPUT")
            || r["data"]["recordOrder"]["userErrors"][0]["code"] == "INVALID",
        "{r}"
    );
    let r = app
        .gql(
            &a.admin_key,
            RECORD_ORDER,
            json!({ "input": { "customerId": Uuid::new_v4(), "orderTotal": "5.00" } }),
        )
        .await;
    assert_eq!(
        r["data"]["recordOrder"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let r = app
        .gql(&a.admin_key, "mutation($id: ID!) { recordCustomerActivity(input: { customerId: $id, type: \"Bad Type\" }) { userErrors { field code } } }", json!({ "id": customer }))
        .await;
    assert_eq!(
        r["data"]["recordCustomerActivity"]["userErrors"][0]["field"],
        json!(["input", "type"])
    );

    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM customers").await,
        customers_before
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM orders").await,
        orders_before
    );
}

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

/// The full 360 selection, with an alias asking for a second page of one relation (read
/// by its loader, not by the one statement) and stages under every enrollment.
const FULL_360: &str = "id externalId email name phone segment churnRisk ltv totalDeposit totalWithdraw
    lastActivityAt metadata createdAt updatedAt pointsBalance pointsLifetime cumulativeMembershipDays isClubMember
    currentEnrollment { id status enrolledAt expiresAt stage { name discountPercentage } }
    enrollments { id status enrolledAt stage { name } }
    activities(first: 10, types: [\"purchase\", \"visit\", \"email_opened\", \"visit\"]) { nodes { id type description data occurredAt } pageInfo { hasNextPage } }
    recent: activities(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
    orders(first: 5) { nodes { id orderTotal subtotal lineItems orderedAt } pageInfo { hasNextPage } }
    pointTransactions(first: 5) { nodes { id sequence points balanceAfter transactionType createdAt } }
    redemptions(first: 5) { nodes { id status pointsSpent } }
    communicationPreferences { channel type optedIn unsubscribedAt }
    communications(first: 5) { nodes { id channel status } }
    campaignHistory(first: 5) { nodes { id status sentAt campaign { id name status } } }
    leads { id name }";

/// `customer(id:)` and `customer(email:)` read the whole 360 in one statement; the answer is
/// the one the loaders give for the same selection under `customers` (which reads each
/// relation through its loader), for every customer of the demo data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_360_is_one_statement_and_answers_as_the_loaders_do() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    app.tenant("Winery B").await;
    // Beyond the demo rows: club history (an earlier, upgraded enrollment at another
    // stage) and converted leads, one of them deleted, for the newest club member (the
    // list below is newest first, and the demo has more customers than one page).
    app.owner()
        .await
        .batch_execute(&format!(
            "WITH member AS (SELECT e.customer_id, e.program_id, e.stage_id, e.enrolled_at
                             FROM club_enrollments e JOIN customers c ON c.id = e.customer_id
                             WHERE e.tenant_id = '{t}' ORDER BY c.created_at DESC LIMIT 1)
             INSERT INTO club_enrollments (tenant_id, customer_id, program_id, stage_id, status, enrolled_at, expires_at, ended_at, sync_status)
             SELECT '{t}', m.customer_id, m.program_id, s.id, 'upgraded', m.enrolled_at - interval '200 days',
                    m.enrolled_at - interval '20 days', m.enrolled_at - interval '20 days', 'synced'
             FROM member m JOIN club_stages s ON s.program_id = m.program_id AND s.id <> m.stage_id LIMIT 1;
             UPDATE lead_memory SET customer_id = (SELECT e.customer_id FROM club_enrollments e
                                                   JOIN customers c ON c.id = e.customer_id
                                                   WHERE e.tenant_id = '{t}' ORDER BY c.created_at DESC LIMIT 1),
                                    deleted = (name = (SELECT min(name) FROM lead_memory WHERE tenant_id = '{t}'))
             WHERE id IN (SELECT id FROM lead_memory WHERE tenant_id = '{t}' ORDER BY name LIMIT 3);",
            t = a.id
        ))
        .await
        .unwrap();
    // Warm-up: the key's first use also records last_used_at (off the request path).
    app.gql(&a.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let list = app
        .gql(
            &a.admin_key,
            &format!(
                "{{ customers(first: 20, orderBy: {{ field: CREATED_AT, direction: DESC }}) \
                 {{ nodes {{ {FULL_360} }} }} }}"
            ),
            json!({}),
        )
        .await;
    assert!(list["errors"].is_null(), "{list}");
    let nodes = list["data"]["customers"]["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 3, "{list}");
    // The comparison covers every part: some customer has rows in each.
    for part in [
        "enrollments",
        "leads",
        "communicationPreferences",
        "activities.nodes",
        "recent.edges",
        "orders.nodes",
        "pointTransactions.nodes",
        "redemptions.nodes",
        "communications.nodes",
        "campaignHistory.nodes",
    ] {
        let has_rows = nodes.iter().any(|n| {
            part.split('.')
                .fold(n, |v, key| &v[key])
                .as_array()
                .is_some_and(|rows| !rows.is_empty())
        });
        assert!(has_rows, "no demo customer has {part}");
    }
    assert!(nodes
        .iter()
        .any(|n| n["currentEnrollment"]["stage"]["name"].is_string()));
    assert!(nodes
        .iter()
        .any(|n| n["enrollments"].as_array().unwrap().len() == 2));
    assert!(nodes
        .iter()
        .any(|n| n["leads"].as_array().unwrap().len() == 2));

    for node in nodes {
        let before = app.statements.data_statements();
        let by_id = app
            .gql(
                &a.admin_key,
                &format!("query($id: ID) {{ customer(id: $id) {{ {FULL_360} }} }}"),
                json!({ "id": node["id"] }),
            )
            .await;
        let statements = app.statements.data_statements() - before;
        assert!(by_id["errors"].is_null(), "{by_id}");
        assert_eq!(&by_id["data"]["customer"], node);
        // The API key's lookup, the 360, and the aliased page, which its loader reads.
        assert_eq!(statements, 3, "statements for one customer 360");

        let Some(email) = node["email"].as_str() else {
            continue;
        };
        let by_email = app
            .gql(
                &a.admin_key,
                &format!("query($e: String) {{ customer(email: $e) {{ {FULL_360} }} }}"),
                json!({ "e": email.to_uppercase() }),
            )
            .await;
        assert_eq!(&by_email["data"]["customer"], node, "{by_email}");
    }

    // Without the alias, the whole 360 is one statement (after the API key's lookup).
    let single = FULL_360.replace(
        "recent: activities(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }",
        "",
    );
    let before = app.statements.data_statements();
    let r = app
        .gql(
            &a.admin_key,
            &format!("query($id: ID) {{ customer(id: $id) {{ {single} }} }}"),
            json!({ "id": nodes[0]["id"] }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(app.statements.data_statements() - before, 2);
}

/// Queries of one key that arrive while the pool is busy form a read group: their 360s
/// are one statement (with one key confirmation), and each answers as it does alone, a
/// customer asked for twice included. Another tenant's queries, arriving with them, form
/// their own group and see only their own customers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_360s_of_queries_that_arrive_together_are_one_statement() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let single = FULL_360.replace(
        "recent: activities(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }",
        "",
    );
    let query = format!("query($id: ID) {{ customer(id: $id) {{ {single} }} }}");
    let ids = |tenant: &TestTenant| {
        let app = &app;
        let key = tenant.admin_key.clone();
        async move {
            let r = app
                .gql(&key, "{ customers(first: 6) { nodes { id } } }", json!({}))
                .await;
            let nodes = r["data"]["customers"]["nodes"].as_array().unwrap().clone();
            nodes
                .into_iter()
                .map(|n| n["id"].clone())
                .collect::<Vec<_>>()
        }
    };
    let (a_ids, b_ids) = (ids(&a).await, ids(&b).await);
    assert_eq!((a_ids.len(), b_ids.len()), (6, 6));
    // (The keys' first uses recorded last_used_at off the request path: let that finish.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Each alone first (the keys' first uses are behind them): two statements each, the
    // key's confirmation and the 360.
    let mut alone = Vec::new();
    for (key, id) in a_ids
        .iter()
        .map(|id| (&a.admin_key, id))
        .chain([(&b.admin_key, &a_ids[0])])
    {
        let before = app.statements.data_statements();
        let r = app.gql(key, &query, json!({ "id": id })).await;
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(app.statements.data_statements() - before, 2);
        alone.push(without_budget(r));
    }
    assert!(alone[..6]
        .iter()
        .all(|r| r["data"]["customer"]["id"].is_string()));
    assert!(
        alone[6]["data"]["customer"].is_null(),
        "another tenant's customer"
    );

    // Together: a's six customers (the first twice) and b's first, asked for with a's key
    // and with b's; b also asks for a's first customer.
    let mut held = Vec::new();
    while held.len() < app.pool.status().max_size {
        held.push(app.pool.get().await.unwrap());
    }
    let joins = app.metric("growthgraph_read_group_joins_total").await;
    let before = app.statements.data_statements();
    let mut asked: Vec<(&str, Value)> = a_ids
        .iter()
        .map(|id| (a.admin_key.as_str(), id.clone()))
        .collect();
    asked.push((&a.admin_key, a_ids[0].clone()));
    asked.push((&a.admin_key, b_ids[0].clone()));
    asked.push((&b.admin_key, b_ids[0].clone()));
    asked.push((&b.admin_key, a_ids[0].clone()));
    let answers = futures_util::future::join_all(
        asked
            .iter()
            .map(|(key, id)| app.gql(key, &query, json!({ "id": id }))),
    );
    let release = async {
        // Every request joins its caller's group (a: 8 requests, b: 2) before the pool
        // frees.
        let mut joined = 0;
        for _ in 0..1000 {
            joined = app.metric("growthgraph_read_group_joins_total").await - joins;
            if joined >= 8 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(joined, 8, "requests that joined a group");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(app.statements.data_statements(), before, "the pool is held");
        drop(held);
    };
    let (answers, ()) = tokio::join!(answers, release);
    let answers: Vec<Value> = answers.into_iter().map(without_budget).collect();
    assert_eq!(
        app.statements.data_statements() - before,
        4,
        "per group: the key's confirmation and one 360 for all its members"
    );
    for (answer, expected) in answers[..6].iter().zip(&alone) {
        assert_eq!(answer, expected);
    }
    assert_eq!(answers[6], alone[0], "the customer asked for twice");
    assert!(
        answers[7]["data"]["customer"].is_null(),
        "b's customer for a's key: {}",
        answers[7]
    );
    assert_eq!(answers[8]["data"]["customer"]["id"], b_ids[0]);
    assert_eq!(answers[9], alone[6], "a's customer for b's key");
}

/// A customer read in one statement and written in the same (batched) request: the
/// operations of a batch run concurrently, and the write's payload must read the
/// customer's relations again, never rows the read filed before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_the_360_read_is_seen_by_the_same_request() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let id = first_customer(&app, &a).await;
    let read =
        "query($id: ID) { customer(id: $id) { ltv orders(first: 5) { nodes { id orderTotal } } } }";
    let write = "mutation($id: ID!) { recordOrder(input: { customerId: $id, orderTotal: \"1.25\" }) {
        order { id } customer { ltv orders(first: 5) { nodes { id orderTotal } } } userErrors { code } } }";
    for _ in 0..5 {
        let (status, r) = app
            .post(
                Some(&a.admin_key),
                json!([
                    { "query": read, "variables": { "id": id } },
                    { "query": write, "variables": { "id": id } },
                ]),
            )
            .await;
        assert_eq!(status, 200, "{r}");
        let after = &r[1]["data"]["recordOrder"];
        assert!(after["order"]["id"].is_string(), "{r}");
        assert_eq!(
            after["customer"]["orders"]["nodes"][0]["id"], after["order"]["id"],
            "{r}"
        );
        let now = app.gql(&a.admin_key, read, json!({ "id": id })).await;
        assert_eq!(now["data"]["customer"], after["customer"]);
    }
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Attribute {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
}

/// The attributes of a table or composite type, in order (`columns` picks and orders a
/// table's; a type's are all of them), each with its base type (no precision).
async fn attributes(app: &TestApp, relation: &str, columns: Option<&[String]>) -> Vec<Attribute> {
    let mut owner = app.owner().await;
    let sql = "SELECT a.attname::text AS name, format_type(a.atttypid, NULL) AS type_name
               FROM pg_attribute a
               WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 AND ($2::text[] IS NULL OR a.attname = ANY($2))
               ORDER BY coalesce(array_position($2, a.attname::text), a.attnum)";
    diesel::sql_query(sql)
        .bind::<Text, _>(relation)
        .bind::<Nullable<diesel::sql_types::Array<Text>>, _>(columns.map(<[String]>::to_vec))
        .load(&mut owner)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nested_row_type_lists_its_models_columns_with_the_tables_types() {
    let app = TestApp::start().await;
    let row_types = growthgraph::domain::customers::prefetch::nested_row_types().unwrap();
    assert_eq!(row_types.len(), 11, "every part of the 360 has a row type");
    for (table, row_type, columns) in row_types {
        let of_table = attributes(&app, table, Some(&columns)).await;
        let of_type = attributes(&app, row_type, None).await;
        assert_eq!(
            of_table.iter().map(|a| &a.name).collect::<Vec<_>>(),
            columns.iter().collect::<Vec<_>>(),
            "{table} has every column the model selects"
        );
        assert_eq!(
            of_type, of_table,
            "{row_type} lists {table}'s selected columns"
        );
    }
}

/// Every root list that takes `last`/`before`, walked backward one row at a time from its
/// end, visits the rows the forward walk visits, in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_root_list_pages_backward_through_the_rows_it_pages_forward() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let r = app
        .gql(
            &a.admin_key,
            "{ __schema { queryType { fields { name args { name } } } } }",
            json!({}),
        )
        .await;
    let backward_lists: Vec<String> = r["data"]["__schema"]["queryType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let args: Vec<&str> = f["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap())
                .collect();
            args.contains(&"last") && args.contains(&"before")
        })
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(backward_lists.len() >= 20, "{backward_lists:?}");
    let mut crossing_pages = 0;
    for field in &backward_lists {
        let forward = app.page_cursors(&a.admin_key, field, "", false).await;
        let backward = app.page_cursors(&a.admin_key, field, "", true).await;
        assert_eq!(backward, forward, "{field}");
        if forward.len() > 1 {
            crossing_pages += 1;
        }
        // One direction at a time; `last` is held to the same bounds as `first`.
        for (args, path) in [
            ("first: 2, last: 2", "last"),
            ("last: 101", "last"),
            ("last: 2, before: \"not a cursor\"", "before"),
        ] {
            let query = format!("{{ {field}({args}) {{ edges {{ cursor }} }} }}");
            let r = app.gql(&a.admin_key, &query, json!({})).await;
            assert_eq!(
                error_code(&r),
                Some("BAD_USER_INPUT"),
                "{field}({args}): {r}"
            );
            assert_eq!(
                r["errors"][0]["extensions"]["field"],
                json!([path]),
                "{field}({args}): {r}"
            );
        }
    }
    assert!(
        crossing_pages >= 10,
        "{crossing_pages} lists with more than one page"
    );
}
