//! Shopify's webhooks: signed with the app's secret, applied once per delivery, mapped onto
//! recordOrder, refundOrder and upsertCustomer.

use super::*;
use growthgraph::domain::crm::hooks::shopify_signature;

/// Posts a Shopify delivery: (status, answer).
async fn deliver(
    app: &TestApp,
    token: &str,
    topic: &str,
    delivery: &str,
    body: &Value,
    secret: &str,
) -> (u16, Value) {
    let raw = body.to_string();
    let response = app
        .client
        .post(format!("{}/hooks/crm/shopify/{token}", app.base))
        .header("content-type", "application/json")
        .header("x-shopify-topic", topic)
        .header("x-shopify-webhook-id", delivery)
        .header("x-shopify-shop-domain", SHOP)
        .header(
            "x-shopify-hmac-sha256",
            shopify_signature(secret, raw.as_bytes()),
        )
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn order(id: u64, email: &str, total: &str) -> Value {
    json!({
        "id": id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "name": format!("#{id}"),
        "email": email,
        "created_at": "2026-11-30T10:15:00-05:00",
        "total_price": total,
        "subtotal_price": total,
        "total_discounts": "0.00",
        "customer": { "id": 501, "email": email, "first_name": "Rosa", "last_name": "Lima",
            "admin_graphql_api_id": "gid://shopify/Customer/501" },
        "line_items": [{ "title": "Pinot Noir 2021", "sku": "PN-21", "quantity": 2, "price": "60.00", "product_id": 9 }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_webhooks_are_verified_applied_once_and_mapped_onto_orders_and_refunds() {
    let app = TestApp::start_with(serve_args()).await;
    let t = app.tenant("Hook Winery").await;
    let other = app.tenant("Other Hook Winery").await;
    let r = configure(&app, &t.admin_key, shopify_input()).await;
    let token = r["data"]["configureCrm"]["hookToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let orders_of = |tenant: &TestTenant| {
        format!("SELECT count(*) AS n FROM orders WHERE tenant_id = '{}' AND crm_order_id IS NOT NULL AND crm_order_id LIKE 'gid://shopify/Order/%'", tenant.id)
    };

    // Refused, nothing written: a tampered body, the wrong secret, an unknown token, no
    // delivery id, a body that is not JSON.
    let body = order(9001, "rosa@hook.example", "120.00");
    let raw = body.to_string();
    let tampered = app
        .client
        .post(format!("{}/hooks/crm/shopify/{token}", app.base))
        .header("x-shopify-topic", "orders/create")
        .header("x-shopify-webhook-id", "d-tampered")
        .header(
            "x-shopify-hmac-sha256",
            shopify_signature(WEBHOOK_SECRET, raw.as_bytes()),
        )
        .body(raw.replace("120.00", "1.00"))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status().as_u16(), 401);
    let (status, _) = deliver(
        &app,
        &token,
        "orders/create",
        "d-0",
        &body,
        "another secret",
    )
    .await;
    assert_eq!(status, 401);
    let unknown = format!("ghk_{}", "0".repeat(48));
    let (status, _) = deliver(
        &app,
        &unknown,
        "orders/create",
        "d-0",
        &body,
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = deliver(
        &app,
        "not-a-token",
        "orders/create",
        "d-0",
        &body,
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = deliver(&app, &token, "orders/create", "", &body, WEBHOOK_SECRET).await;
    assert_eq!(status, 400);
    let garbage = app
        .client
        .post(format!("{}/hooks/crm/shopify/{token}", app.base))
        .header("x-shopify-topic", "orders/create")
        .header("x-shopify-webhook-id", "d-garbage")
        .header(
            "x-shopify-hmac-sha256",
            shopify_signature(WEBHOOK_SECRET, b"{not json"),
        )
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status().as_u16(), 400);
    assert_eq!(count(&app, &orders_of(&t)).await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM crm_webhook_receipts").await,
        0
    );

    // A refund of an order not known yet: 422, so Shopify delivers it again later.
    let refund = json!({ "id": 77, "order_id": 9001, "transactions": [
        { "kind": "refund", "status": "success", "amount": "30.00" },
        { "kind": "refund", "status": "failure", "amount": "99.00" } ] });
    let (status, _) = deliver(
        &app,
        &token,
        "refunds/create",
        "d-refund",
        &refund,
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(status, 422);

    // The line's product is known by its Shopify id: the line is linked to it.
    let pinot = app
        .gql(
            &t.admin_key,
            "mutation { upsertProduct(input: { crmProductId: \"gid://shopify/Product/9\", title: \"Pinot Noir 2021\", price: \"60.00\" }) { product { id } } }",
            json!({}),
        )
        .await["data"]["upsertProduct"]["product"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The order: the customer made or found by email, Shopify's ids kept; once only, even
    // when the delivery comes again or two copies race.
    let deliveries = (0..3).map(|_| {
        deliver(
            &app,
            &token,
            "orders/create",
            "d-order",
            &body,
            WEBHOOK_SECRET,
        )
    });
    let answers = futures_util::future::join_all(deliveries).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let applied = answers
        .iter()
        .filter(|(_, a)| a["result"] == "applied")
        .count();
    assert_eq!(applied, 1, "{answers:?}");
    assert_eq!(count(&app, &orders_of(&t)).await, 1);
    assert_eq!(count(&app, &orders_of(&other)).await, 0);
    let linked = format!(
        "SELECT count(*) AS n FROM orders WHERE tenant_id = '{}' AND line_items->0->>'productId' = '{pinot}'
           AND line_items->0->>'crmProductId' = 'gid://shopify/Product/9'",
        t.id
    );
    assert_eq!(count(&app, &linked).await, 1);
    let read = app
        .gql(
            &t.admin_key,
            "{ customers(first: 1, filter: { search: \"rosa@hook.example\" }) { nodes { name orders(first: 5) { nodes { orderNumber orderTotal status } } } } }",
            json!({}),
        )
        .await;
    let rosa = &read["data"]["customers"]["nodes"][0];
    assert_eq!(rosa["name"], "Rosa Lima", "{read}");
    assert_eq!(
        rosa["orders"]["nodes"],
        json!([{ "orderNumber": "#9001", "orderTotal": "120.00", "status": "paid" }]),
        "{read}"
    );
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM customers WHERE tenant_id = '{}' AND crm_customer_id = 'gid://shopify/Customer/501'", t.id)).await,
        1
    );

    // The refund, delivered again: 30.00 of the successful transaction, once.
    for _ in 0..2 {
        let (status, answer) = deliver(
            &app,
            &token,
            "refunds/create",
            "d-refund",
            &refund,
            WEBHOOK_SECRET,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM order_refunds WHERE tenant_id = '{}' AND amount = 30.00",
                t.id
            )
        )
        .await,
        1
    );
    // Cancelled: the rest is refunded, and the order is refunded in full.
    let (status, answer) = deliver(
        &app,
        &token,
        "orders/cancelled",
        "d-cancel",
        &json!({ "id": 9001 }),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM orders WHERE tenant_id = '{}' AND crm_order_id = 'gid://shopify/Order/9001' AND status = 'refunded'", t.id)).await,
        1
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) AS n FROM order_refunds WHERE tenant_id = '{}'",
                t.id
            )
        )
        .await,
        2
    );

    // A customer update from Shopify; a topic this server does not act on is acknowledged.
    let update = json!({ "id": 501, "email": "rosa@hook.example", "first_name": "Rosa", "last_name": "Lima-Souza", "phone": "+5511987654321" });
    let (status, _) = deliver(
        &app,
        &token,
        "customers/update",
        "d-cust",
        &update,
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM customers WHERE tenant_id = '{}' AND name = 'Rosa Lima-Souza' AND phone = '+5511987654321'", t.id)).await,
        1
    );
    let (status, answer) = deliver(
        &app,
        &token,
        "products/update",
        "d-prod",
        &json!({ "id": 9 }),
        WEBHOOK_SECRET,
    )
    .await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("ignored")));
}
