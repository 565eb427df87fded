//! Upserts and orders: matching by external id then email, idempotency under races, coded refusals that write nothing.

use super::*;

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
        user_error_code(&r, "recordOrder"),
        "IDEMPOTENCY_KEY_REUSED",
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
    assert_eq!(user_error_code(&r, "upsertCustomer"), "INVALID");
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
        error_code(&r) == Some("BAD_USER_INPUT") || user_error_code(&r, "recordOrder") == "INVALID",
        "{r}"
    );
    let r = app
        .gql(
            &a.admin_key,
            RECORD_ORDER,
            json!({ "input": { "customerId": Uuid::new_v4(), "orderTotal": "5.00" } }),
        )
        .await;
    assert_eq!(user_error_code(&r, "recordOrder"), "NOT_FOUND");
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
