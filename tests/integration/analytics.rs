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
async fn series_fill_empty_buckets_and_follow_paris_across_daylight_saving() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Series").await;
    // Orders around the spring change (29 March 2026, 02:00 → 03:00 in Paris) and the
    // autumn one (25 October, 03:00 → 02:00); nothing on 30 March.
    app.insert_for(
        &t,
        "WITH c AS (INSERT INTO customers (tenant_id, email) VALUES ($1, 'series@example.com') RETURNING id, tenant_id)
         INSERT INTO orders (tenant_id, customer_id, order_total, status, ordered_at)
         SELECT c.tenant_id, c.id, o.total, o.status, o.at::timestamptz FROM c, (VALUES
            (10, 'paid', '2026-03-27T23:30:00Z'), -- 28 March, 00:30 in Paris
            (20, 'paid', '2026-03-28T22:59:00Z'), -- 28 March, 23:59
            (30, 'fulfilled', '2026-03-28T23:00:00Z'), -- 29 March, 00:00
            (40, 'paid', '2026-03-29T21:59:00Z'), -- 29 March, 23:59 (summer time)
            (50, 'paid', '2026-03-31T08:00:00Z'), -- 31 March
            (60, 'paid', '2026-10-25T00:30:00Z'), -- 02:30 summer time
            (70, 'fulfilled', '2026-10-25T01:30:00Z'), -- 02:30 winter time
            (80, 'paid', '2026-10-25T01:45:00Z')
         ) AS o(total, status, at)",
    )
    .await;
    let series = |interval: &str, from: &str, to: &str, by: &str| {
        let app = &app;
        let key = t.admin_key.clone();
        let query = format!(
            "{{ ordersAggregate {{ series(interval: {interval}, from: \"{from}\", to: \"{to}\", timeZone: \"Europe/Paris\"{by}) {{ start key {{ status }} count sum {{ orderTotal }} max {{ orderTotal }} }} }} }}"
        );
        async move {
            let r = app.gql(&key, &query, json!({})).await;
            assert!(r["errors"].is_null(), "{r}");
            r["data"]["ordersAggregate"]["series"].clone()
        }
    };
    let days = series("DAY", "2026-03-27T23:00:00Z", "2026-03-31T22:00:00Z", "").await;
    let points: Vec<(String, i64, String)> = days
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_string(),
                b["count"].as_i64().unwrap(),
                normal(b["sum"]["orderTotal"].as_str().unwrap()),
            )
        })
        .collect();
    // Paris midnights: 23:00 UTC in winter, 22:00 UTC in summer; 29 March lasts 23 hours.
    assert_eq!(
        points,
        [
            ("2026-03-27T23:00:00+00:00".to_string(), 2, "30".to_string()),
            ("2026-03-28T23:00:00+00:00".to_string(), 2, "70".to_string()),
            ("2026-03-29T22:00:00+00:00".to_string(), 0, "0".to_string()),
            ("2026-03-30T22:00:00+00:00".to_string(), 1, "50".to_string()),
        ]
    );
    assert!(
        days[2]["max"]["orderTotal"].is_null(),
        "no maximum of nothing"
    );
    // The same buckets as PostgreSQL's own calendar in Paris.
    let recounted = recount(
        &app,
        &t,
        "SELECT to_char(date_trunc('day', ordered_at, 'Europe/Paris') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS+00:00') AS k,
                count(*) AS n, sum(order_total)::text AS v
         FROM orders WHERE tenant_id = $1 AND ordered_at < '2026-04-01' GROUP BY 1",
    )
    .await;
    let non_empty: Vec<_> = points.iter().filter(|p| p.1 > 0).cloned().collect();
    assert_eq!(non_empty, recounted);

    // The autumn night in hours: the repeated 02:00 is two buckets; by status, every
    // bucket has a point for each status present, zero when empty.
    let hours = series(
        "HOUR",
        "2026-10-24T23:00:00Z",
        "2026-10-25T03:00:00Z",
        ", by: [STATUS]",
    )
    .await;
    let points: Vec<(String, String, i64)> = hours
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap()[11..16].to_string(),
                b["key"]["status"].as_str().unwrap().to_string(),
                b["count"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, i64)> = [
        ("23:00", 0, 0),
        ("00:00", 1, 0),
        ("01:00", 1, 1),
        ("02:00", 0, 0),
    ]
    .iter()
    .flat_map(|(at, completed, shipped)| {
        [
            (at.to_string(), "fulfilled".to_string(), *shipped),
            (at.to_string(), "paid".to_string(), *completed),
        ]
    })
    .collect();
    assert_eq!(points, expected);

    // Weeks start on Monday (in Paris), months on the first.
    let weeks = series("WEEK", "2026-03-25T00:00:00Z", "2026-04-01T00:00:00Z", "").await;
    let starts: Vec<&str> = weeks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        ["2026-03-22T23:00:00+00:00", "2026-03-29T22:00:00+00:00"]
    );
    let weekly: Vec<i64> = weeks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .collect();
    assert_eq!(weekly, [4, 1]);
    let months = series("MONTH", "2026-03-01T00:00:00Z", "2026-12-01T00:00:00Z", "").await;
    assert_eq!(months.as_array().unwrap().len(), 10, "March to December");
    assert_eq!(months[0]["start"], json!("2026-02-28T23:00:00+00:00"));
    assert_eq!(months[7]["count"], json!(3), "October");
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
    ] {
        assert_eq!(refused(query).await, "BAD_USER_INPUT", "{query}");
    }
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

/// Folds the tenant's rollup deltas, as the scheduler does.
async fn compact(app: &TestApp, tenant: &TestTenant) -> i64 {
    use scoped_futures::ScopedFutureExt;
    let mut owner = app.owner().await;
    growthgraph::db::tenant::in_tenant_transaction(&mut owner, tenant.id, |conn, _| {
        async move {
            growthgraph::scheduler::compact_rollups(conn)
                .await
                .map_err(growthgraph::error::AppError::from)
        }
        .scope_boxed()
    })
    .await
    .unwrap()
}

/// The answer of `query` without the fields only the rows path computes (`min`), so
/// that a query read from a rollup and the same query with `min` (read from the rows)
/// compare.
fn without_minimums(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            map.remove("min");
            for v in map.values_mut() {
                *v = without_minimums(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = without_minimums(v.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_answer_as_the_rows_do_across_concurrent_writes_cut_ranges_and_compaction() {
    let app = TestApp::start().await;
    let t = app.tenant("Rollups").await;
    growthgraph::seed::scale::seed_scale(&app.database_url, t.id, 120)
        .await
        .unwrap();
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = SqlUuid)]
        id: uuid::Uuid,
    }
    let customers: Vec<uuid::Uuid> =
        diesel::sql_query("SELECT id FROM customers WHERE tenant_id = $1 ORDER BY id LIMIT 30")
            .bind::<SqlUuid, _>(t.id)
            .load::<Id>(&mut app.owner().await)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();

    // Orders at odd seconds over three days, segment changes and club shipments, all at
    // once, while the scheduler's compaction runs.
    let now = chrono::Utc::now();
    let writes = (0..60).map(|i| {
        let app = &app;
        let key = t.admin_key.clone();
        let customer = customers[i % customers.len()];
        async move {
            let at = now - chrono::Duration::seconds(3 * 86_400 * (i as i64) / 60 + 7 * i as i64);
            let r = app
                .gql(
                    &key,
                    "mutation($input: RecordOrderInput!) { recordOrder(input: $input) { userErrors { code } } }",
                    json!({ "input": { "customerId": customer, "orderTotal": format!("{}.{:02}", 10 + i, i), "subtotal": "9.99",
                                       "isClubShipment": i % 3 == 0, "orderedAt": at } }),
                )
                .await;
            assert_eq!(r["data"]["recordOrder"]["userErrors"], json!([]), "{r}");
            if i % 4 == 0 {
                let r = app
                    .gql(
                        &key,
                        "mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) { userErrors { code } } }",
                        json!({ "input": { "externalId": format!("scale-{}", i + 1), "segment": format!("moved-{}", i % 3) } }),
                    )
                    .await;
                assert_eq!(r["data"]["upsertCustomer"]["userErrors"], json!([]), "{r}");
            }
        }
    });
    let compactions = async {
        let mut folded = 0;
        for _ in 0..5 {
            folded += compact(&app, &t).await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        folded
    };
    let (_, folded) = tokio::join!(futures_util::future::join_all(writes), compactions);
    assert!(folded > 0, "the compactions folded deltas");

    let campaign = scale_campaign(&app, &t).await;
    let from = (now - chrono::Duration::hours(50) + chrono::Duration::seconds(17)).to_rfc3339();
    let to = (now - chrono::Duration::hours(3) - chrono::Duration::seconds(5)).to_rfc3339();
    let rollup_query = r#"query($from: DateTime!, $to: DateTime!, $campaign: ID!) {
      customersAggregate { count sum { ltv } avg { ltv } groupBy(by: [SEGMENT, IS_CLUB_MEMBER], first: 100) { key { segment isClubMember } count sum { ltv } avg { ltv } } }
      ordersAggregate(filter: { orderedFrom: $from, orderedTo: $to }) {
        count sum { orderTotal subtotal } avg { orderTotal }
        groupBy(by: [STATUS, IS_CLUB_SHIPMENT], orderBy: { by: SUM, field: ORDER_TOTAL }) { key { status isClubShipment } count sum { orderTotal } avg { orderTotal } }
        series(interval: HOUR, from: $from, to: $to, timeZone: "Asia/Kolkata", by: [IS_CLUB_SHIPMENT]) { start key { isClubShipment } count sum { orderTotal } avg { orderTotal } }
      }
      campaign(id: $campaign) { recipientsAggregate { count avg { opened delivered } groupBy(by: [STATUS]) { key { status } count sum { opened } } } }
    }"#;
    // The same, with minimums: read from the rows.
    let rows_query = rollup_query
        .replace(
            "sum { ltv } avg { ltv }",
            "sum { ltv } avg { ltv } min { ltv }",
        )
        .replace(
            "avg { orderTotal }",
            "avg { orderTotal } min { orderTotal }",
        )
        .replace(
            "avg { opened delivered }",
            "avg { opened delivered } min { opened }",
        )
        .replace("sum { opened } }", "sum { opened } min { opened } }");
    assert_ne!(rows_query, rollup_query);
    let variables = json!({ "from": from, "to": to, "campaign": campaign });
    let answer = |query: String| {
        let app = &app;
        let key = t.admin_key.clone();
        let variables = variables.clone();
        async move {
            let r = app.gql(&key, &query, variables).await;
            assert!(r["errors"].is_null(), "{r}");
            r["data"].clone()
        }
    };
    let from_rollups = answer(rollup_query.to_string()).await;
    let from_rows = without_minimums(answer(rows_query.clone()).await);
    assert_eq!(from_rollups, from_rows);
    let points = from_rollups["ordersAggregate"]["series"]
        .as_array()
        .unwrap();
    assert!(points.len() >= 2 * 47, "hourly points by club shipment");
    assert!(
        points
            .iter()
            .all(|p| p["start"].as_str().unwrap().ends_with(":30:00+00:00")),
        "Kolkata's hours start on the half hour"
    );
    let orders = recount(
        &app,
        &t,
        &format!(
            "SELECT '' AS k, count(*) AS n, sum(order_total)::text AS v FROM orders
             WHERE tenant_id = $1 AND ordered_at >= '{from}' AND ordered_at < '{to}'"
        ),
    )
    .await;
    assert_eq!(
        from_rollups["ordersAggregate"]["count"].as_i64().unwrap(),
        orders[0].1
    );
    assert!(orders[0].1 > 10, "{orders:?}");
    assert_eq!(
        normal(
            from_rollups["ordersAggregate"]["sum"]["orderTotal"]
                .as_str()
                .unwrap()
        ),
        orders[0].2
    );

    // The rollup is what they read: a delta only the rollup holds shows (and then goes).
    app.insert_for(
        &t,
        "INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv) VALUES ($1, 'ghost', NULL, false, 5, 1)",
    )
    .await;
    let with_ghost = answer("{ customersAggregate { count } }".to_string()).await;
    assert_eq!(
        with_ghost["customersAggregate"]["count"].as_i64().unwrap(),
        from_rollups["customersAggregate"]["count"]
            .as_i64()
            .unwrap()
            + 5
    );
    app.insert_for(
        &t,
        "DELETE FROM customer_rollups WHERE tenant_id = $1 AND segment = 'ghost'",
    )
    .await;
    app.insert_for(
        &t,
        "INSERT INTO order_rollups (tenant_id, bucket, status, is_club_shipment, n, order_total, subtotal, discount_total)
         VALUES ($1, quarter_hour(now() - interval '10 hours'), 'paid', false, 7, 0, 0, 0)",
    )
    .await;
    let count = "query($from: DateTime!, $to: DateTime!, $campaign: ID!) { ordersAggregate(filter: { orderedFrom: $from, orderedTo: $to }) { count } campaign(id: $campaign) { id } }";
    let with_ghost = answer(count.to_string()).await;
    assert_eq!(
        with_ghost["ordersAggregate"]["count"].as_i64().unwrap(),
        orders[0].1 + 7
    );
    app.insert_for(
        &t,
        "DELETE FROM order_rollups WHERE tenant_id = $1 AND n = 7 AND order_total = 0",
    )
    .await;

    // Folded once more: nothing new is left, and the answers stay.
    compact(&app, &t).await;
    assert_eq!(compact(&app, &t).await, 0);
    let fresh = recount(
        &app,
        &t,
        "SELECT '' AS k, (SELECT count(*) FROM customer_rollups WHERE tenant_id = $1 AND NOT compacted)
                + (SELECT count(*) FROM order_rollups WHERE tenant_id = $1 AND NOT compacted)
                + (SELECT count(*) FROM recipient_rollups WHERE tenant_id = $1 AND NOT compacted) AS n, '0' AS v",
    )
    .await;
    assert_eq!(fresh[0].1, 0);
    assert_eq!(answer(rollup_query.to_string()).await, from_rollups);
}
