//! Regressions hostile input found: widget keys' view of their tenant, overflowing money
//! and points, the idempotency rule for refusals, webhook URLs into the server's own
//! network.

use super::*;
use crate::loyalty::new_customer;

async fn configure_widget(app: &TestApp, t: &TestTenant) -> String {
    let r = app
        .gql(&t.admin_key, "mutation { configureWidget(input: {}) { widgetConfig { apiKey } userErrors { code } } }", json!({}))
        .await;
    r["data"]["configureWidget"]["widgetConfig"]["apiKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_key_does_not_see_its_tenant() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Widget owner").await;
    let widget = configure_widget(&app, &t).await;
    let (status, r) = app
        .post(
            Some(&widget),
            json!({ "query": "{ viewer { tenant { id slug name } } }" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let text = r.to_string();
    assert!(
        !text.contains(&t.slug) && !text.contains(&t.id.to_string()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_and_points_never_overflow_what_the_api_and_the_columns_hold() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Overflow").await;
    let c = new_customer(&app, &t, "rich@example.com").await;
    let mut owner = app.owner().await;
    owner
        .batch_execute(&format!(
            "UPDATE customers SET ltv = 9999999990.00 WHERE id = '{c}';
             INSERT INTO point_transactions (tenant_id, customer_id, sequence, transaction_type, points, balance_after)
               VALUES ('{t}', '{c}', 1, 'adjusted', 2147483600, 2147483600);
             UPDATE customers SET points_balance = 2147483600, points_lifetime = 2147483600 WHERE id = '{c}';",
            t = t.id
        ))
        .await
        .unwrap();
    // An order whose total would take the lifetime value past numeric(12,2).
    let order = "mutation($c: ID!, $t: Decimal!) { recordOrder(input: { customerId: $c, orderTotal: $t }) { order { id } userErrors { field code } } }";
    let r = app
        .gql(&t.admin_key, order, json!({ "c": c, "t": "10.00" }))
        .await;
    assert_eq!(
        r["data"]["recordOrder"]["userErrors"],
        json!([{ "field": ["input", "orderTotal"], "code": "INVALID" }]),
        "{r}"
    );
    let r = app
        .gql(&t.admin_key, order, json!({ "c": c, "t": "9.99" }))
        .await;
    assert!(r["data"]["recordOrder"]["order"]["id"].is_string(), "{r}");
    // Points past 32 bits.
    let adjust = "mutation($c: ID!, $p: Int!) { adjustPoints(input: { customerId: $c, points: $p, reason: \"bonus\" }) { pointTransaction { balanceAfter } userErrors { field code } } }";
    let r = app
        .gql(&t.admin_key, adjust, json!({ "c": c, "p": 100 }))
        .await;
    assert_eq!(user_error_code(&r, "adjustPoints"), "INVALID", "{r}");
    let r = app
        .gql(&t.admin_key, adjust, json!({ "c": c, "p": 47 }))
        .await;
    assert_eq!(
        r["data"]["adjustPoints"]["pointTransaction"]["balanceAfter"], 2_147_483_647,
        "{r}"
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID) { customer(id: $id) { pointsBalance pointsLifetime ltv } }",
            json!({ "id": c }),
        )
        .await;
    assert_eq!(
        r["data"]["customer"],
        json!({ "pointsBalance": 2_147_483_647, "pointsLifetime": 2_147_483_647, "ltv": "9999999999.99" }),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_keys_first_answer_stands_even_when_it_was_a_refusal() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Idempotent refusals").await;
    let c = new_customer(&app, &t, "poor@example.com").await;
    let r = app
        .gql(&t.admin_key, "mutation { createReward(input: { name: \"Prize\", rewardType: MERCHANDISE, pointsCost: 50, unlimitedInventory: true }) { reward { id } } }", json!({}))
        .await;
    let reward = r["data"]["createReward"]["reward"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redeem = "mutation($c: ID!, $r: ID!, $k: String) { redeemReward(input: { customerId: $c, rewardId: $r, quantity: 1, idempotencyKey: $k }) { redemption { id } userErrors { code } } }";
    let vars = json!({ "c": c, "r": reward, "k": "retry-me" });
    let first = app.gql(&t.admin_key, redeem, vars.clone()).await;
    assert_eq!(
        user_error_code(&first, "redeemReward"),
        "INSUFFICIENT_POINTS",
        "{first}"
    );
    // The customer can now afford it, but the key's first answer stands, also when
    // retries race.
    let adjust = "mutation($c: ID!) { adjustPoints(input: { customerId: $c, points: 500, reason: \"funds\" }) { userErrors { code } } }";
    app.gql(&t.admin_key, adjust, json!({ "c": c })).await;
    let retries =
        futures_util::future::join_all((0..4).map(|_| app.gql(&t.admin_key, redeem, vars.clone())))
            .await;
    for retry in &retries {
        assert_eq!(
            retry["data"]["redeemReward"], first["data"]["redeemReward"],
            "{retry}"
        );
    }
    // A new key redeems; the refused one wrote nothing but its answer.
    let fresh = app
        .gql(
            &t.admin_key,
            redeem,
            json!({ "c": c, "r": reward, "k": "new" }),
        )
        .await;
    assert!(
        fresh["data"]["redeemReward"]["redemption"]["id"].is_string(),
        "{fresh}"
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID) { customer(id: $id) { pointsBalance redemptions { nodes { id } } } }",
            json!({ "id": c }),
        )
        .await;
    assert_eq!(r["data"]["customer"]["pointsBalance"], 450, "{r}");
    assert_eq!(
        r["data"]["customer"]["redemptions"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The same key with another input is still a reuse.
    let other = app
        .gql(
            &t.admin_key,
            redeem,
            json!({ "c": c, "r": reward, "k": "retry-me", "q": 2 }),
        )
        .await;
    assert_eq!(other["data"]["redeemReward"], first["data"]["redeemReward"]);
    let changed = "mutation($c: ID!, $r: ID!) { redeemReward(input: { customerId: $c, rewardId: $r, quantity: 2, idempotencyKey: \"retry-me\" }) { userErrors { code } } }";
    let r = app
        .gql(&t.admin_key, changed, json!({ "c": c, "r": reward }))
        .await;
    assert_eq!(
        user_error_code(&r, "redeemReward"),
        "IDEMPOTENCY_KEY_REUSED",
        "{r}"
    );
}

const CREATE_ENDPOINT: &str = "mutation($u: String!) { createWebhookEndpoint(input: { url: $u, eventTypes: [\"lead.created\"] }) { webhookEndpoint { id } userErrors { field code message } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_never_reach_the_servers_own_network() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("SSRF").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:5432/",
        "https://10.0.0.1/hook",
        "https://0.0.0.0/hook",
    ] {
        let r = app
            .gql(&t.admin_key, CREATE_ENDPOINT, json!({ "u": url }))
            .await;
        let errors = &r["data"]["createWebhookEndpoint"]["userErrors"];
        assert_eq!(errors[0]["code"], "INVALID", "{url}: {r}");
        assert_eq!(errors[0]["field"], json!(["input", "url"]), "{url}");
    }
    let r = app
        .gql(&t.admin_key, "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(
        r["data"]["webhookEndpoints"],
        json!([]),
        "nothing was registered"
    );

    // An endpoint registered while the development flag allowed it (a host name that
    // resolves to loopback) is still refused at delivery by a server without the flag.
    let dev = TestApp::start_with(ServeArgs {
        allow_insecure_webhooks: true,
        ..ServeArgs::default()
    })
    .await;
    let t = dev.bare_tenant("Rebinding").await;
    // The receiver, named by a host name that resolves to loopback.
    let (url, receiver) = crate::webhooks::receiver().await;
    let url = url.replace("127.0.0.1", "localhost");
    let received = || receiver.lock().unwrap().received.len();
    let r = dev
        .gql(&t.admin_key, CREATE_ENDPOINT, json!({ "u": url }))
        .await;
    assert!(
        r["data"]["createWebhookEndpoint"]["webhookEndpoint"]["id"].is_string(),
        "{r}"
    );
    dev.gql(
        &t.admin_key,
        "mutation { ingestLead(input: { name: \"L\", email: \"l@example.com\" }) { lead { id } } }",
        json!({}),
    )
    .await;
    let db = growthgraph::db::TenantDb::new(dev.pool.clone(), t.id);
    let strict = growthgraph::domain::webhooks::target::delivery_client(false);
    growthgraph::jobs::run_due_webhook_jobs(&db, &strict, false, 10)
        .await
        .unwrap();
    assert_eq!(received(), 0, "nothing reached loopback");
    let r = dev
        .gql(
            &t.admin_key,
            "{ webhookDeliveries(first: 5) { nodes { status attempts error } } }",
            json!({}),
        )
        .await;
    let delivery = &r["data"]["webhookDeliveries"]["nodes"][0];
    assert!(delivery["attempts"].as_i64().unwrap() >= 1, "{r}");
    assert!(
        delivery["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not public"),
        "{r}"
    );
    // The same delivery with the flag goes out.
    let lenient = growthgraph::domain::webhooks::target::delivery_client(true);
    let mut owner = dev.owner().await;
    owner
        .batch_execute("UPDATE queue_jobs SET run_at = now()")
        .await
        .unwrap();
    growthgraph::jobs::run_due_webhook_jobs(&db, &lenient, true, 10)
        .await
        .unwrap();
    assert_eq!(received(), 1);
}
