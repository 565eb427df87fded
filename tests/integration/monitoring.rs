//! What the server measures about itself: per operation name and minute into
//! `performance_metrics`, and the calls of partner and widget keys into
//! `integration_logs` (key prefix only, secrets and emails redacted, address hashed),
//! written by the scheduler, read by admins and analysts, purged after 30 days.

use chrono::{Duration, Utc};
use growthgraph::auth::Role;
use growthgraph::db::TenantDb;
use growthgraph::scheduler;
use serde_json::{json, Value};

use crate::common::{count, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_measures_its_operations_and_logs_partner_and_widget_calls_redacted() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Measured").await;
    let other = app.bare_tenant("Unmeasured").await;
    let partner = app.key(&t, Role::Partner).await;
    let analyst = app.key(&t, Role::Analyst).await;
    let call = |key: &str, body: Value| {
        app.client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(key)
            .header("user-agent", "shop-sync/1.0")
            .json(&body)
            .send()
    };
    // A partner's three calls (one refused), an admin's two (measured, not logged).
    let upsert = json!({ "query": "mutation PartnerSync($i: UpsertCustomerInput!) { upsertCustomer(input: $i) { customer { email } } }",
        "variables": { "i": { "email": "ann@example.com", "name": "Ann", "metadata": { "apiToken": "tok-123" } } } });
    for body in [
        upsert.clone(),
        upsert,
        json!({ "query": "query PartnerSync { customer(id: \"nope\") { id } }" }),
    ] {
        let r = call(&partner, body).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        call(
            &t.admin_key,
            json!({ "query": "query AdminView { viewer { tenant { name } } }" }),
        )
        .await
        .unwrap();
    }
    // A widget key's call is logged too.
    let r = app
        .gql(
            &t.admin_key,
            "mutation { configureWidget(input: {}) { widgetConfig { apiKey } } }",
            json!({}),
        )
        .await;
    let widget = r["data"]["configureWidget"]["widgetConfig"]["apiKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    call(
        &widget,
        json!({ "query": "{ publishedTestimonials(first: 1) { nodes { id } } }" }),
    )
    .await
    .unwrap();

    // Calls are written by the next tick; a minute's measurements once it has ended.
    let metrics = format!(
        "SELECT count(*) AS n FROM performance_metrics WHERE tenant_id = '{}'",
        t.id
    );
    let logs = format!(
        "SELECT count(*) AS n FROM integration_logs WHERE tenant_id = '{}'",
        t.id
    );
    let db = TenantDb::new(app.pool.clone(), t.id);
    let tick = |at| scheduler::tick(&db, at);
    let ran = tick(Utc::now() - Duration::minutes(5)).await.unwrap();
    let written = ran
        .iter()
        .find(|(task, _)| *task == "self_measurement")
        .map(|(_, r)| r.clone());
    assert_eq!(
        written,
        Some(json!({ "minutes": 0, "calls": 4 })),
        "{ran:?}"
    );
    assert_eq!(
        (count(&app, &metrics).await, count(&app, &logs).await),
        (0, 4)
    );
    let ran = tick(Utc::now() + Duration::minutes(2)).await.unwrap();
    let written = ran
        .iter()
        .find(|(task, _)| *task == "self_measurement")
        .map(|(_, r)| r.clone());
    // PartnerSync, AdminView and the widget's anonymous query (a minute boundary may
    // split them in two).
    let minutes = written
        .as_ref()
        .map_or(0, |w| w["minutes"].as_i64().unwrap());
    assert!((3..=6).contains(&minutes), "{ran:?}");
    assert_eq!(count(&app, &logs).await, 4);

    let r = app
        .gql(&analyst, "{ performanceMetrics(operationName: \"PartnerSync\") { nodes { eventType metricName metricUnit errorCount successRate metadata } } }", json!({}))
        .await;
    let rows = r["data"]["performanceMetrics"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    let calls: i64 = rows
        .iter()
        .map(|m| m["metadata"]["count"].as_i64().unwrap())
        .sum();
    let errors: i64 = rows.iter().map(|m| m["errorCount"].as_i64().unwrap()).sum();
    assert_eq!((calls, errors), (3, 1), "{r}");
    assert_eq!(
        (
            &rows[0]["eventType"],
            &rows[0]["metricName"],
            &rows[0]["metricUnit"]
        ),
        (
            &json!("api_response"),
            &json!("response_time"),
            &json!("ms")
        )
    );
    assert!(
        rows[0]["metadata"]["p95Ms"].as_f64().unwrap()
            >= rows[0]["metadata"]["p50Ms"].as_f64().unwrap()
    );

    let r = app
        .gql(&t.admin_key, "{ integrationLogs(first: 10) { nodes { apiKeyPrefix endpoint method requestBody responseStatus responseBody ipHash userAgent } } }", json!({}))
        .await;
    let rows = r["data"]["integrationLogs"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone();
    assert_eq!(rows.len(), 4);
    let text = r.to_string();
    for secret in [
        "ann@example.com",
        "tok-123",
        &partner,
        &widget,
        &partner[partner.len() - 40..],
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let partner_rows: Vec<&Value> = rows
        .iter()
        .filter(|l| l["apiKeyPrefix"] == json!(&partner[..partner.len() - 40]))
        .collect();
    assert_eq!(partner_rows.len(), 3, "{r}");
    let sync = partner_rows
        .iter()
        .find(|l| l["requestBody"]["variables"]["i"].is_object())
        .unwrap();
    assert_eq!(sync["requestBody"]["variables"]["i"]["email"], "[email]");
    assert_eq!(
        sync["requestBody"]["variables"]["i"]["metadata"]["apiToken"],
        "[redacted]"
    );
    assert_eq!(
        sync["responseBody"]["data"]["upsertCustomer"]["customer"]["email"],
        "[email]"
    );
    assert_eq!(
        (&sync["endpoint"], &sync["method"], &sync["responseStatus"]),
        (&json!("/graphql"), &json!("POST"), &json!(200))
    );
    assert_eq!(sync["ipHash"], growthgraph::auth::sha256_hex("127.0.0.1"));
    assert_eq!(sync["userAgent"], "shop-sync/1.0");
    assert!(
        rows.iter()
            .any(|l| l["apiKeyPrefix"] == json!(&widget[..widget.len() - 40])),
        "{r}"
    );

    // Partners do not read them; another tenant has none.
    let r = app
        .gql(&partner, "{ integrationLogs { nodes { id } } }", json!({}))
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
    let r = app
        .gql(
            &other.admin_key,
            "{ integrationLogs { nodes { id } } performanceMetrics { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"],
        json!({ "integrationLogs": { "nodes": [] }, "performanceMetrics": { "nodes": [] } }),
        "{r}"
    );

    // Kept 30 days (the partner's refused read above is a fifth call).
    let ran = tick(Utc::now() + Duration::days(31)).await.unwrap();
    let retention = ran
        .iter()
        .find(|(task, _)| *task == "retention")
        .map(|(_, r)| r.clone())
        .unwrap();
    assert_eq!(retention["integrationLogs"], 5, "{retention}");
    assert!(
        retention["performanceMetrics"].as_i64().unwrap() >= 2,
        "{retention}"
    );
    assert_eq!(count(&app, &logs).await, 0);
}
