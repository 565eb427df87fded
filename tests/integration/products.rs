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
