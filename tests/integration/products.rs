//! The catalogue: products and discounts, each tenant's own, newest first, paged either
//! way without gaps or repeats, filtered as an independent count says.

use serde_json::json;

use crate::common::{count, error_code, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_and_discounts_list_only_the_tenants_rows_and_filter_as_counted() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    // More products for A, created together (ties ordered by id), and discounts.
    app.insert_for(
        &a,
        "INSERT INTO products (tenant_id, title, wine_type, vintage, varietal, price, inventory, is_active, created_at)
         SELECT $1, 'Wine ' || n, (ARRAY['red', 'white', 'rose'])[1 + n % 3], 2015 + n % 4,
                (ARRAY['Pinot Noir', 'Chardonnay'])[1 + n % 2], 10 + n, n, n % 5 <> 0, now() - interval '1 day'
         FROM generate_series(1, 9) n",
    )
    .await;
    app.insert_for(
        &a,
        "INSERT INTO discounts (tenant_id, code, discount_type, value, is_active)
         SELECT $1, 'CODE' || n, (ARRAY['percentage', 'fixed_amount'])[1 + n % 2], n, n % 2 = 0
         FROM generate_series(1, 5) n",
    )
    .await;
    assert!(
        app.assert_lists_own_rows("products", "products", &a, &b)
            .await
            > 9
    );
    assert!(
        app.assert_lists_own_rows("discounts", "discounts", &a, &b)
            .await
            >= 5
    );
    assert_eq!(
        app.page_ids_backward(&a.admin_key, "products", "").await,
        app.page_ids(&a.admin_key, "products", "").await
    );

    let listed = |filter: &'static str| {
        let app = &app;
        let key = a.admin_key.clone();
        async move {
            let r = app
                .gql(&key, &format!("{{ products(first: 100, filter: {filter}) {{ nodes {{ id wineType vintage varietal price isActive }} }} }}"), json!({}))
                .await;
            r["data"]["products"]["nodes"].as_array().unwrap().len() as i64
        }
    };
    let counted = |sql: &'static str| {
        let app = &app;
        let t = a.id;
        async move { count(app, &sql.replace("$1", &format!("'{t}'"))).await }
    };
    assert_eq!(
        listed("{ wineType: RED }").await,
        counted("SELECT count(*) AS n FROM products WHERE tenant_id = $1 AND wine_type = 'red'")
            .await
    );
    assert_eq!(
        listed("{ varietal: \"Pinot Noir\", active: true }").await,
        counted("SELECT count(*) AS n FROM products WHERE tenant_id = $1 AND varietal = 'Pinot Noir' AND is_active").await
    );
    assert_eq!(
        listed("{ vintage: 2016 }").await,
        counted("SELECT count(*) AS n FROM products WHERE tenant_id = $1 AND vintage = 2016").await
    );
    let r = app
        .gql(&a.admin_key, "{ discounts(first: 100, filter: { active: false }) { nodes { code discountType value isActive } } }", json!({}))
        .await;
    let inactive = r["data"]["discounts"]["nodes"].as_array().unwrap();
    assert_eq!(
        inactive.len() as i64,
        counted("SELECT count(*) AS n FROM discounts WHERE tenant_id = $1 AND NOT is_active").await
    );
    assert!(inactive.iter().all(|d| d["isActive"] == json!(false)));

    // Bad input is refused with its field.
    let long = "x".repeat(201);
    let r = app
        .gql(
            &a.admin_key,
            "query($v: String) { products(filter: { varietal: $v }) { nodes { id } } }",
            json!({ "v": long }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &a.admin_key,
            "{ products(first: 101) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
}

const UPSERT_PRODUCT: &str = "mutation($i: UpsertProductInput!) { upsertProduct(input: $i) {
    product { id crmProductId sku title wineType vintage price inventory isActive } userErrors { field code } } }";
const UPSERT_DISCOUNT: &str = "mutation($i: UpsertDiscountInput!) { upsertDiscount(input: $i) {
    discount { id code discountType value isActive } userErrors { field code } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_and_discounts_are_upserted_by_their_keys_once_even_racing() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Catalogue").await;
    let products = format!(
        "SELECT count(*) AS n FROM products WHERE tenant_id = '{}'",
        t.id
    );
    let discounts = format!(
        "SELECT count(*) AS n FROM discounts WHERE tenant_id = '{}'",
        t.id
    );

    let first = app
        .gql(&t.admin_key, UPSERT_PRODUCT, json!({ "i": { "crmProductId": "C7-1", "sku": "SY-21", "title": "Syrah 2021", "wineType": "RED", "vintage": 2021, "price": "32.00", "inventory": 12 } }))
        .await;
    assert_eq!(
        first["data"]["upsertProduct"]["userErrors"],
        json!([]),
        "{first}"
    );
    // The same CRM id: the same product, changed.
    let again = app
        .gql(&t.admin_key, UPSERT_PRODUCT, json!({ "i": { "crmProductId": "C7-1", "sku": "SY-21", "title": "Syrah 2021 (magnum)", "price": "64.00", "inventory": 0, "isActive": false } }))
        .await;
    let product = &again["data"]["upsertProduct"]["product"];
    assert_eq!(
        product["id"],
        first["data"]["upsertProduct"]["product"]["id"]
    );
    assert_eq!(
        (
            product["title"].as_str(),
            product["price"].as_str(),
            product["inventory"].as_i64(),
            product["isActive"].as_bool()
        ),
        (
            Some("Syrah 2021 (magnum)"),
            Some("64.00"),
            Some(0),
            Some(false)
        )
    );
    // By SKU alone.
    let by_sku = app
        .gql(
            &t.admin_key,
            UPSERT_PRODUCT,
            json!({ "i": { "sku": "SY-21", "title": "Syrah", "price": "30" } }),
        )
        .await;
    assert_eq!(
        by_sku["data"]["upsertProduct"]["product"]["id"],
        product["id"]
    );
    assert_eq!(count(&app, &products).await, 1);

    // Refused: nothing written.
    for (input, field, code) in [
        (
            json!({ "title": "No key", "price": "1" }),
            "crmProductId",
            "INVALID",
        ),
        (
            json!({ "sku": "X", "title": "", "price": "1" }),
            "title",
            "INVALID",
        ),
        (
            json!({ "sku": "X", "title": "T", "price": "-1" }),
            "price",
            "INVALID",
        ),
        (
            json!({ "sku": "X", "title": "T", "price": "1.001" }),
            "price",
            "INVALID",
        ),
        (
            json!({ "sku": "X", "title": "T", "price": "1", "vintage": 1200 }),
            "vintage",
            "INVALID",
        ),
        (
            json!({ "sku": "X", "title": "T", "price": "1", "inventory": -1 }),
            "inventory",
            "INVALID",
        ),
        (
            json!({ "crmProductId": "C7-2", "sku": "SY-21", "title": "T", "price": "1" }),
            "sku",
            "CONFLICT",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, UPSERT_PRODUCT, json!({ "i": input }))
            .await;
        assert_eq!(
            r["data"]["upsertProduct"]["userErrors"],
            json!([{ "field": ["input", field], "code": code }]),
            "{input}"
        );
    }
    assert_eq!(count(&app, &products).await, 1);
    let analyst = app.key(&t, growthgraph::auth::Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            UPSERT_PRODUCT,
            json!({ "i": { "sku": "Y", "title": "T", "price": "1" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");

    // Racing upserts of one new product, and of one new discount, make one row each.
    let racing = (0..8).map(|i| {
        app.gql(
            &t.admin_key,
            UPSERT_PRODUCT,
            json!({ "i": { "crmProductId": "C7-9", "title": format!("Race {i}"), "price": "10" } }),
        )
    });
    for r in futures_util::future::join_all(racing).await {
        assert_eq!(r["data"]["upsertProduct"]["userErrors"], json!([]), "{r}");
    }
    assert_eq!(count(&app, &products).await, 2);
    let racing = (0..8).map(|i| {
        app.gql(&t.admin_key, UPSERT_DISCOUNT, json!({ "i": { "code": "CLUB-GOLD", "discountType": "PERCENTAGE", "value": format!("{}", 10 + i) } }))
    });
    for r in futures_util::future::join_all(racing).await {
        assert_eq!(r["data"]["upsertDiscount"]["userErrors"], json!([]), "{r}");
    }
    assert_eq!(count(&app, &discounts).await, 1);
    for (input, field) in [
        (
            json!({ "code": "BAD CODE", "discountType": "PERCENTAGE", "value": "5" }),
            "code",
        ),
        (
            json!({ "code": "OVER", "discountType": "PERCENTAGE", "value": "100.01" }),
            "value",
        ),
        (
            json!({ "code": "LATE", "discountType": "FIXED_AMOUNT", "value": "5", "startsAt": "2026-02-01T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z" }),
            "endsAt",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, UPSERT_DISCOUNT, json!({ "i": input }))
            .await;
        assert_eq!(
            r["data"]["upsertDiscount"]["userErrors"],
            json!([{ "field": ["input", field], "code": "INVALID" }]),
            "{input}"
        );
    }
    assert_eq!(count(&app, &discounts).await, 1);
    let fixed = app
        .gql(
            &t.admin_key,
            UPSERT_DISCOUNT,
            json!({ "i": { "code": "CLUB-GOLD", "discountType": "FIXED_AMOUNT", "value": "150" } }),
        )
        .await;
    assert_eq!(
        fixed["data"]["upsertDiscount"]["discount"]["discountType"], "FIXED_AMOUNT",
        "{fixed}"
    );
}

const RECORD: &str = "mutation($c: ID!, $l: JSON) { recordOrder(input: { customerId: $c, orderTotal: \"90.00\", lineItems: $l }) {
    order { id lines { title sku quantity crmProductId product { title } } } userErrors { field code } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_lines_name_their_products_by_id_crm_id_or_sku_and_a_foreign_product_is_refused() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Lines Winery").await;
    let other = app.bare_tenant("Other Lines Winery").await;
    let product = |tenant: &crate::common::TestTenant, input: serde_json::Value| {
        let key = tenant.admin_key.clone();
        let app = &app;
        async move {
            let r = app.gql(&key, UPSERT_PRODUCT, json!({ "i": input })).await;
            r["data"]["upsertProduct"]["product"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let syrah = product(&t, json!({ "crmProductId": "gid://shopify/Product/7", "sku": "SY-21", "title": "Syrah 2021", "price": "30.00" })).await;
    product(
        &t,
        json!({ "sku": "PN-22", "title": "Pinot Noir 2022", "price": "30.00" }),
    )
    .await;
    let foreign = product(
        &other,
        json!({ "sku": "XX-1", "title": "Not yours", "price": "1.00" }),
    )
    .await;
    let customer = app
        .gql(&t.admin_key, "mutation { upsertCustomer(input: { email: \"lines@example.com\" }) { customer { id } } }", json!({}))
        .await["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let orders = format!(
        "SELECT count(*) AS n FROM orders WHERE tenant_id = '{}'",
        t.id
    );

    // Refused, nothing written: another tenant's product, a bad id, a bad quantity, a
    // line that is not an object.
    for (lines, field) in [
        (
            json!([{ "productId": foreign }]),
            json!(["input", "lineItems", "0", "productId"]),
        ),
        (
            json!([{ "title": "ok" }, { "productId": "not-an-id" }]),
            json!(["input", "lineItems", "1", "productId"]),
        ),
        (
            json!([{ "sku": "PN-22", "quantity": 0 }]),
            json!(["input", "lineItems", "0", "quantity"]),
        ),
        (json!(["Syrah"]), json!(["input", "lineItems", "0", ""])),
    ] {
        let r = app
            .gql(&t.admin_key, RECORD, json!({ "c": customer, "l": lines }))
            .await;
        let errors = &r["data"]["recordOrder"]["userErrors"];
        assert_eq!(
            (errors[0]["code"].as_str(), &errors[0]["field"]),
            (Some("INVALID"), &field),
            "{lines} → {r}"
        );
    }
    assert_eq!(count(&app, &orders).await, 0);

    // Linked by id, by CRM id, by SKU; a product not known yet stays a plain line.
    let lines = json!([
        { "productId": syrah, "quantity": 1 },
        { "crmProductId": "gid://shopify/Product/7", "title": "Syrah (Shopify)", "quantity": 2 },
        { "sku": "PN-22", "quantity": 3 },
        { "sku": "UNKNOWN-1", "title": "Rosé 2024" },
    ]);
    let r = app
        .gql(&t.admin_key, RECORD, json!({ "c": customer, "l": lines }))
        .await;
    assert_eq!(r["data"]["recordOrder"]["userErrors"], json!([]), "{r}");
    let read: Vec<_> = r["data"]["recordOrder"]["order"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["quantity"].as_i64(),
                l["product"]["title"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        read,
        vec![
            (Some(1), Some("Syrah 2021".to_owned())),
            (Some(2), Some("Syrah 2021".to_owned())),
            (Some(3), Some("Pinot Noir 2022".to_owned())),
            (None, None),
        ]
    );
    assert_eq!(count(&app, &orders).await, 1);
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM orders WHERE tenant_id = '{}' AND line_items->1->>'productId' = '{syrah}'", t.id)).await,
        1,
        "the link is stored with the line"
    );
}
