//! Rollups answer as the rows do: under concurrent writes and compactions, with ranges cutting through quarter hours, and only deltas a compaction has not folded left over.

use super::*;

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
