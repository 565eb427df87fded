//! Aggregates, groups and time series: every answer checked against a recount in SQL of
//! the tenant's own rows, series across a daylight-saving change, the limits refused
//! with coded errors, one statement per aggregate field.

use bigdecimal::BigDecimal;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use growthgraph::auth::Role;
use serde_json::{json, Value};

use crate::common::{error_code, TestApp, TestTenant};

mod rollups;
mod series;

/// One group as compared: its key, its count and one of its numbers.
type Groups = Vec<(String, i64, String)>;

#[derive(QueryableByName)]
struct Recounted {
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    v: String,
}

/// A decimal's text without trailing zeros (`"12.50"` and `"12.5"` compare equal).
fn normal(text: &str) -> String {
    text.parse::<BigDecimal>()
        .unwrap_or_else(|_| panic!("not a decimal: {text}"))
        .normalized()
        .to_string()
}

/// Rows of `(k, n, v)` that `sql` computes as the owner (no row-level security) with `$1`
/// bound to the tenant, sorted by key.
async fn recount(app: &TestApp, tenant: &TestTenant, sql: &str) -> Groups {
    let rows: Vec<Recounted> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.id)
        .load(&mut app.owner().await)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    let mut groups: Groups = rows.into_iter().map(|r| (r.k, r.n, normal(&r.v))).collect();
    groups.sort();
    groups
}

/// The groups of an answer: the key's fields joined by `|` (null as empty), the count,
/// and the number at `number` (e.g. `["sum", "ltv"]`), sorted by key.
fn groups_of(groups: &Value, key_fields: &[&str], number: &[&str]) -> Groups {
    let mut groups: Groups = groups
        .as_array()
        .unwrap_or_else(|| panic!("no groups: {groups}"))
        .iter()
        .map(|g| {
            let key: Vec<String> = key_fields
                .iter()
                .map(|f| match &g["key"][f] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let mut value = g;
            for step in number {
                value = &value[step];
            }
            let value = value.as_str().map(normal).unwrap_or_default();
            (key.join("|"), g["count"].as_i64().unwrap(), value)
        })
        .collect();
    groups.sort();
    groups
}

/// Two tenants with demo rows and scaled data of different sizes.
async fn two_tenants(app: &TestApp) -> (TestTenant, TestTenant) {
    let a = app.tenant("Analytics A").await;
    let b = app.tenant("Analytics B").await;
    growthgraph::seed::scale::seed_scale(&app.database_url, a.id, 400)
        .await
        .unwrap();
    growthgraph::seed::scale::seed_scale(&app.database_url, b.id, 150)
        .await
        .unwrap();
    // Orders in more than one status, some club shipments.
    for t in [&a, &b] {
        app.insert_for(
            t,
            "UPDATE orders SET status = (ARRAY['paid', 'fulfilled', 'cancelled'])[1 + abs(hashtext(id::text)) % 3],
                               is_club_shipment = (hashtext(id::text) % 4 = 0)
             WHERE tenant_id = $1",
        )
        .await;
    }
    (a, b)
}

async fn scale_campaign(app: &TestApp, tenant: &TestTenant) -> String {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: uuid::Uuid,
    }
    let id: Id = diesel::sql_query(
        "SELECT id FROM campaigns WHERE tenant_id = $1 AND name = 'Scale campaign'",
    )
    .bind::<SqlUuid, _>(tenant.id)
    .get_result(&mut app.owner().await)
    .await
    .unwrap();
    id.id.to_string()
}

const QUERY: &str = r#"query($campaign: ID!) {
  customersAggregate {
    count sum { ltv } avg { ltv } min { ltv } max { ltv } alsoSum: sum { pointsBalance }
    groupBy(by: [SEGMENT, CHURN_RISK], first: 50) { key { segment churnRisk } count sum { ltv } }
  }
  clubMembers: customersAggregate(filter: { isClubMember: true }) { count }
  ordersAggregate(filter: { isClubShipment: false }) {
    count sum { orderTotal } avg { orderTotal } min { orderTotal } max { orderTotal }
    groupBy(by: [STATUS]) { key { status } count sum { orderTotal } }
  }
  leadsAggregate {
    count avg { confidenceScore }
    groupBy(by: [INTENT, URGENCY], first: 50) { key { intent urgency } count avg { confidenceScore } }
  }
  campaign(id: $campaign) {
    recipientsAggregate {
      count sum { opened } avg { opened }
      groupBy(by: [STATUS]) { key { status } count sum { opened } }
    }
  }
  pointTransactionsAggregate {
    count sum { points }
    groupBy(by: [TRANSACTION_TYPE]) { key { transactionType } count sum { points } }
  }
  redemptionsAggregate {
    count sum { pointsSpent }
    groupBy(by: [STATUS]) { key { status } count sum { pointsSpent } }
  }
}"#;

/// Checks every aggregate of [`QUERY`] for `tenant` (read with `key`) against a recount.
async fn assert_recounted(app: &TestApp, tenant: &TestTenant, key: &str) {
    let campaign = scale_campaign(app, tenant).await;
    let r = app.gql(key, QUERY, json!({ "campaign": campaign })).await;
    assert!(r["errors"].is_null(), "{r}");
    let d = &r["data"];

    // Totals: count, and every function in one row.
    let totals = recount(
        app,
        tenant,
        "SELECT '' AS k, count(*) AS n, '0' AS v FROM customers WHERE tenant_id = $1",
    )
    .await;
    let c = &d["customersAggregate"];
    let mine: Vec<String> = [
        &c["sum"]["ltv"],
        &c["avg"]["ltv"],
        &c["min"]["ltv"],
        &c["max"]["ltv"],
        &c["alsoSum"]["pointsBalance"],
    ]
    .iter()
    .map(|v| normal(v.as_str().unwrap()))
    .collect();
    let theirs: Vec<String> = {
        let v: Vec<Recounted> = diesel::sql_query(
            "SELECT '' AS k, count(*) AS n, concat_ws(' ', sum(ltv), avg(ltv), min(ltv), max(ltv), sum(points_balance)) AS v
             FROM customers WHERE tenant_id = $1",
        )
        .bind::<SqlUuid, _>(tenant.id)
        .load(&mut app.owner().await)
        .await
        .unwrap();
        v[0].v.split(' ').map(normal).collect()
    };
    assert_eq!(c["count"].as_i64().unwrap(), totals[0].1);
    assert_eq!(mine, theirs);
    assert_eq!(
        groups_of(&c["groupBy"], &["segment", "churnRisk"], &["sum", "ltv"]),
        recount(
            app,
            tenant,
            "SELECT concat_ws('|', coalesce(segment, ''), coalesce(upper(churn_risk), '')) AS k, count(*) AS n, sum(ltv)::text AS v
             FROM customers WHERE tenant_id = $1 GROUP BY segment, churn_risk",
        )
        .await
    );
    let counts: Vec<i64> = c["groupBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_i64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {counts:?}"
    );
    assert_eq!(
        d["clubMembers"]["count"].as_i64().unwrap(),
        recount(app, tenant, "SELECT '' AS k, count(*) AS n, '0' AS v FROM customers WHERE tenant_id = $1 AND is_club_member").await[0].1
    );

    let o = &d["ordersAggregate"];
    let order_totals = recount(
        app,
        tenant,
        "SELECT concat_ws(' ', avg(order_total), min(order_total), max(order_total)) AS k, count(*) AS n, sum(order_total)::text AS v
         FROM orders WHERE tenant_id = $1 AND NOT is_club_shipment",
    )
    .await;
    assert_eq!(o["count"].as_i64().unwrap(), order_totals[0].1);
    assert_eq!(
        normal(o["sum"]["orderTotal"].as_str().unwrap()),
        order_totals[0].2
    );
    let functions: Vec<String> = order_totals[0].0.split(' ').map(normal).collect();
    assert_eq!(
        functions,
        [&o["avg"], &o["min"], &o["max"]]
            .iter()
            .map(|v| normal(v["orderTotal"].as_str().unwrap()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        groups_of(&o["groupBy"], &["status"], &["sum", "orderTotal"]),
        recount(
            app,
            tenant,
            "SELECT status AS k, count(*) AS n, sum(order_total)::text AS v
             FROM orders WHERE tenant_id = $1 AND NOT is_club_shipment GROUP BY status",
        )
        .await
    );

    // Leads: archived and deleted ones are left out, as in the list.
    let l = &d["leadsAggregate"];
    assert_eq!(
        groups_of(&l["groupBy"], &["intent", "urgency"], &["avg", "confidenceScore"]),
        recount(
            app,
            tenant,
            "SELECT concat_ws('|', coalesce(intent, ''), coalesce(upper(urgency), '')) AS k, count(*) AS n,
                    coalesce(avg(confidence_score)::text, '0') AS v
             FROM lead_memory WHERE tenant_id = $1 AND NOT archived AND NOT deleted GROUP BY intent, urgency",
        )
        .await
        .into_iter()
        .map(|(k, n, v)| (k, n, if v == "0" { String::new() } else { v }))
        .collect::<Groups>()
    );
    assert_eq!(
        l["count"].as_i64().unwrap(),
        recount(app, tenant, "SELECT '' AS k, count(*) AS n, '0' AS v FROM lead_memory WHERE tenant_id = $1 AND NOT archived AND NOT deleted").await[0].1
    );

    let rc = &d["campaign"]["recipientsAggregate"];
    assert_eq!(
        groups_of(&rc["groupBy"], &["status"], &["sum", "opened"]),
        recount(
            app,
            tenant,
            "SELECT upper(r.status) AS k, count(*) AS n, count(opened_at)::text AS v
             FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id
             WHERE r.tenant_id = $1 AND c.name = 'Scale campaign' GROUP BY r.status",
        )
        .await
    );
    let opened = recount(
        app,
        tenant,
        "SELECT (count(opened_at)::numeric / count(*))::text AS k, count(*) AS n, count(opened_at)::text AS v
         FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id
         WHERE r.tenant_id = $1 AND c.name = 'Scale campaign'",
    )
    .await;
    assert_eq!(rc["count"].as_i64().unwrap(), opened[0].1);
    assert_eq!(normal(rc["sum"]["opened"].as_str().unwrap()), opened[0].2);
    assert_eq!(
        normal(rc["avg"]["opened"].as_str().unwrap()),
        normal(&opened[0].0),
        "the open rate"
    );

    let p = &d["pointTransactionsAggregate"];
    assert_eq!(
        groups_of(&p["groupBy"], &["transactionType"], &["sum", "points"]),
        recount(
            app,
            tenant,
            "SELECT upper(transaction_type) AS k, count(*) AS n, sum(points)::text AS v
             FROM point_transactions WHERE tenant_id = $1 GROUP BY transaction_type",
        )
        .await
    );
    let rd = &d["redemptionsAggregate"];
    let redemptions = recount(
        app,
        tenant,
        "SELECT upper(status) AS k, count(*) AS n, sum(points_spent)::text AS v
         FROM reward_redemptions WHERE tenant_id = $1 GROUP BY status",
    )
    .await;
    assert!(!redemptions.is_empty());
    assert_eq!(
        groups_of(&rd["groupBy"], &["status"], &["sum", "pointsSpent"]),
        redemptions
    );
    assert_eq!(
        rd["count"].as_i64().unwrap(),
        redemptions.iter().map(|g| g.1).sum::<i64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_and_groups_equal_a_recount_of_each_tenants_own_rows() {
    let app = TestApp::start().await;
    let (a, b) = two_tenants(&app).await;
    // An analyst of each tenant reads every aggregate; each sees its own rows only.
    let analyst_a = app.key(&a, Role::Analyst).await;
    let analyst_b = app.key(&b, Role::Analyst).await;
    assert_recounted(&app, &a, &analyst_a).await;
    assert_recounted(&app, &b, &analyst_b).await;
    let count = |key: String| {
        let app = &app;
        async move {
            app.gql(&key, "{ customersAggregate { count } }", json!({}))
                .await["data"]["customersAggregate"]["count"]
                .as_i64()
                .unwrap()
        }
    };
    assert_ne!(count(analyst_a).await, count(analyst_b).await);

    // Ordered by an aggregate, the top groups come first and `first` cuts.
    let r = app
        .gql(
            &a.admin_key,
            "{ ordersAggregate { groupBy(by: [CUSTOMER_ID], first: 3, orderBy: { by: SUM, field: ORDER_TOTAL }) { key { customerId status } sum { orderTotal } } } }",
            json!({}),
        )
        .await;
    let top = r["data"]["ordersAggregate"]["groupBy"].as_array().unwrap();
    assert_eq!(top.len(), 3, "{r}");
    assert!(
        top[0]["key"]["status"].is_null(),
        "fields not grouped by are null"
    );
    let best = recount(
        &app,
        &a,
        "SELECT customer_id::text AS k, count(*) AS n, sum(order_total)::text AS v FROM orders WHERE tenant_id = $1
         GROUP BY customer_id ORDER BY sum(order_total) DESC, customer_id LIMIT 1",
    )
    .await;
    assert_eq!(top[0]["key"]["customerId"], json!(best[0].0));
    assert_eq!(
        normal(top[0]["sum"]["orderTotal"].as_str().unwrap()),
        best[0].2
    );
    let by_key = app
        .gql(
            &a.admin_key,
            "{ customersAggregate { groupBy(by: [CHURN_RISK], orderBy: { by: KEY }) { key { churnRisk } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        by_key["data"]["customersAggregate"]["groupBy"],
        json!([{ "key": { "churnRisk": "HIGH" } }, { "key": { "churnRisk": "LOW" } }, { "key": { "churnRisk": "MEDIUM" } }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_limits_are_refused_with_coded_errors_and_each_field_is_one_statement() {
    let app = TestApp::start().await;
    let t = app.tenant("Limits").await;
    growthgraph::seed::scale::seed_scale(&app.database_url, t.id, 200)
        .await
        .unwrap();
    let refused = |query: &'static str| {
        let app = &app;
        let key = t.admin_key.clone();
        async move {
            let r = app.gql(&key, query, json!({})).await;
            assert!(r["data"].is_null() || r["errors"].is_array(), "{r}");
            error_code(&r)
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no code: {r}"))
        }
    };
    for query in [
        "{ customersAggregate { groupBy(by: [SEGMENT], first: 1001) { count } } }",
        "{ customersAggregate { groupBy(by: [SEGMENT], first: -1) { count } } }",
        "{ customersAggregate { groupBy(by: []) { count } } }",
        "{ customersAggregate { groupBy(by: [SEGMENT], orderBy: { by: SUM }) { count } } }",
        "{ ordersAggregate { series(interval: HOUR, from: \"2026-01-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\") { count } } }",
        "{ ordersAggregate { series(interval: DAY, from: \"2026-03-01T00:00:00Z\", to: \"2026-03-01T00:00:00Z\") { count } } }",
        "{ ordersAggregate { series(interval: DAY, from: \"2026-03-01T00:00:00Z\", to: \"2026-03-02T00:00:00Z\", timeZone: \"Mars/Olympus\") { count } } }",
        "{ ordersAggregate { series(interval: DAY, from: \"2026-03-01T00:00:00Z\", to: \"2026-03-02T00:00:00Z\", timeZone: \"'; DROP TABLE orders; --\") { count } } }",
        "{ ordersAggregate { series(interval: MONTH, from: \"0900-01-01T00:00:00Z\", to: \"0901-01-01T00:00:00Z\") { count } } }",
    ] {
        assert_eq!(refused(query).await, "BAD_USER_INPUT", "{query}");
    }
    // Ranges at the ends of the calendar read the rollup and the rows around them.
    let r = app
        .gql(
            &t.admin_key,
            "{ ordersAggregate(filter: { orderedFrom: \"0001-01-01T00:00:07Z\", orderedTo: \"9999-12-31T23:59:59Z\" }) { count sum { orderTotal } } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    assert!(r["data"]["ordersAggregate"]["count"].as_i64().unwrap() > 0);
    // More points than a chart can hold: every hour of 40 days by customer.
    let from = (chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339();
    let to = chrono::Utc::now().to_rfc3339();
    let r = app
        .gql(
            &t.admin_key,
            "query($from: DateTime!, $to: DateTime!) { ordersAggregate { series(interval: HOUR, from: $from, to: $to, by: [CUSTOMER_ID]) { count } } }",
            json!({ "from": from, "to": to }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    // Twenty aggregates are more than one request may read.
    let many: String = (0..20)
        .map(|i| format!("a{i}: customersAggregate {{ count }} "))
        .collect();
    let r = app
        .gql(&t.admin_key, &format!("{{ {many} }}"), json!({}))
        .await;
    assert_eq!(error_code(&r), Some("QUERY_TOO_COMPLEX"), "{r}");

    // One statement for the totals, whatever functions and aliases they ask for; one
    // more per groupBy and per series.
    let statements = |query: &'static str| {
        let app = &app;
        let key = t.admin_key.clone();
        async move {
            app.gql(&key, "{ viewer { tenant { id } } }", json!({}))
                .await;
            let before = app.statements.data_statements();
            let r = app.gql(&key, query, json!({})).await;
            assert!(r["errors"].is_null(), "{r}");
            app.statements.data_statements() - before
        }
    };
    let request = statements("{ viewer { tenant { id } } }").await;
    assert_eq!(
        statements("{ viewer { tenant { id } } customersAggregate { count sum { ltv } avg { ltv } m: max { ltv pointsBalance } min { ltv } } }").await,
        request + 1
    );
    assert_eq!(
        statements("{ viewer { tenant { id } } customersAggregate { count groupBy(by: [SEGMENT]) { count } series(interval: MONTH, from: \"2024-01-01T00:00:00Z\", to: \"2027-01-01T00:00:00Z\") { count sum { ltv } } } }").await,
        request + 3
    );
}
