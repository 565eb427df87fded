//! Refunds: an order's points come back off the balance in proportion, never below zero
//! (the rest kept as the refund's shortfall); refunds of one order never exceed it, even
//! racing; refused refunds write nothing.

use super::*;

const REFUND: &str = "mutation($o: ID!, $a: Decimal, $k: String) { refundOrder(input: { orderId: $o, amount: $a, idempotencyKey: $k }) {
    refund { id amount pointsReversed pointsShortfall } order { status } userErrors { field code } } }";

/// A member of `t` (points from day one) who has ordered `total`: the customer, the order
/// and the points it earned.
async fn member_with_order(
    app: &TestApp,
    t: &TestTenant,
    email: &str,
    total: &str,
) -> (String, String, i64) {
    exec(
        app,
        "UPDATE loyalty_point_rules SET min_membership_days = 0",
    )
    .await;
    let stages = stages(app, t).await;
    let customer = new_customer(app, t, email).await;
    let r = app
        .gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": customer, "s": stage(&stages, "Bronze") }),
        )
        .await;
    assert_eq!(r["data"]["enrollCustomer"]["userErrors"], json!([]), "{r}");
    let before = balance(app, t, &customer).await;
    let order = order(app, t, &customer, total).await;
    let earned = balance(app, t, &customer).await - before;
    assert!(earned > 0, "the order earned points");
    (customer, order, earned)
}

async fn refund(
    app: &TestApp,
    t: &TestTenant,
    order: &str,
    amount: Option<&str>,
    key: Option<&str>,
) -> Value {
    let r = app
        .gql(
            &t.admin_key,
            REFUND,
            json!({ "o": order, "a": amount, "k": key }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["refundOrder"].clone()
}

async fn ltv(app: &TestApp, t: &TestTenant, customer: &str) -> String {
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID) { customer(id: $id) { ltv } }",
            json!({ "id": customer }),
        )
        .await;
    r["data"]["customer"]["ltv"]
        .as_str()
        .unwrap()
        .parse::<bigdecimal::BigDecimal>()
        .unwrap()
        .normalized()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_takes_back_the_orders_share_of_points_and_a_full_one_all_of_them() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let (customer, order, earned) =
        member_with_order(&app, &t, "refund@example.com", "200.00").await;
    let start = balance(&app, &t, &customer).await;
    let ltv_before: bigdecimal::BigDecimal = ltv(&app, &t, &customer).await.parse().unwrap();

    // A quarter of the order: a quarter of its points (rounded down).
    let quarter = refund(&app, &t, &order, Some("50.00"), Some("r-1")).await;
    assert_eq!(quarter["userErrors"], json!([]));
    assert_eq!(quarter["refund"]["pointsReversed"], json!(earned / 4));
    assert_eq!(quarter["refund"]["pointsShortfall"], json!(0));
    assert_eq!(quarter["order"]["status"], "paid");
    assert_eq!(balance(&app, &t, &customer).await, start - earned / 4);
    // The same key and input: the first answer again, nothing more taken.
    let again = refund(&app, &t, &order, Some("50.00"), Some("r-1")).await;
    assert_eq!(again["refund"]["id"], quarter["refund"]["id"]);
    assert_eq!(balance(&app, &t, &customer).await, start - earned / 4);

    // The rest (no amount): every point the order earned is back off the balance.
    let rest = refund(&app, &t, &order, None, None).await;
    assert_eq!(rest["refund"]["amount"], "150.00");
    assert_eq!(rest["order"]["status"], "refunded");
    assert_eq!(balance(&app, &t, &customer).await, start - earned);
    assert_eq!(
        ltv(&app, &t, &customer).await,
        (ltv_before - bigdecimal::BigDecimal::from(200))
            .normalized()
            .to_string()
    );
    let ledger = count(
        &app,
        &format!("SELECT -sum(points)::bigint AS n FROM point_transactions WHERE order_id = '{order}' AND transaction_type = 'refunded'"),
    )
    .await;
    assert_eq!(ledger, earned, "refunded ledger entries of the order");
    assert_invariants(&app).await;

    // Nothing is left to refund.
    let more = refund(&app, &t, &order, Some("1.00"), None).await;
    assert_eq!(
        more["userErrors"],
        json!([{ "field": ["input", "orderId"], "code": "INVALID_TRANSITION" }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_spent_since_are_a_shortfall_never_a_negative_balance() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let (customer, order, earned) =
        member_with_order(&app, &t, "spent@example.com", "120.00").await;
    // Spend all but 3 points.
    let held = balance(&app, &t, &customer).await;
    let r = app
        .gql(
            &t.admin_key,
            ADJUST,
            json!({ "c": customer, "p": -(held - 3), "r": "spent elsewhere" }),
        )
        .await;
    assert_eq!(r["data"]["adjustPoints"]["userErrors"], json!([]), "{r}");
    let full = refund(&app, &t, &order, None, None).await;
    assert_eq!(full["refund"]["pointsReversed"], json!(3));
    assert_eq!(full["refund"]["pointsShortfall"], json!(earned - 3));
    assert_eq!(balance(&app, &t, &customer).await, 0);
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_refunds_write_nothing_and_racing_ones_never_exceed_the_order() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let (customer, order, _) = member_with_order(&app, &t, "race@example.com", "100.00").await;
    let held = balance(&app, &t, &customer).await;
    let refunds = "SELECT count(*) AS n FROM order_refunds";
    for (amount, field, code) in [
        (Some("100.01"), "amount", "INVALID"),
        (Some("0"), "amount", "INVALID"),
        (Some("-5"), "amount", "INVALID"),
        (Some("1.005"), "amount", "INVALID"),
    ] {
        let r = refund(&app, &t, &order, amount, None).await;
        assert_eq!(
            r["userErrors"],
            json!([{ "field": ["input", field], "code": code }]),
            "{amount:?}"
        );
    }
    let unknown = refund(&app, &t, &Uuid::new_v4().to_string(), None, None).await;
    assert_eq!(
        unknown["userErrors"],
        json!([{ "field": ["input", "orderId"], "code": "NOT_FOUND" }])
    );
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app.gql(&analyst, REFUND, json!({ "o": order })).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(count(&app, refunds).await, 0);
    assert_eq!(balance(&app, &t, &customer).await, held);

    // Five racing refunds of 30 each: three fit in the order's 100, two are refused.
    let racing = (0..5).map(|_| refund(&app, &t, &order, Some("30.00"), None));
    let answers = futures_util::future::join_all(racing).await;
    let refused = answers
        .iter()
        .filter(|a| a["userErrors"] != json!([]))
        .count();
    assert_eq!(refused, 2, "{answers:?}");
    assert_eq!(count(&app, refunds).await, 3);
    let total = count(
        &app,
        &format!(
            "SELECT (sum(amount) * 100)::bigint AS n FROM order_refunds WHERE order_id = '{order}'"
        ),
    )
    .await;
    assert_eq!(total, 9000);
    assert_invariants(&app).await;
}

/// Refunds count against an order's qualifying amount: what is left of it must reach the
/// stage's minimum, and an order refunded in full qualifies for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refunded_order_qualifies_only_by_what_is_left_of_it() {
    let app = TestApp::start().await;
    let t = app.tenant("Qualify Winery").await;
    let stages = stages(&app, &t).await;
    let customer = new_customer(&app, &t, "qualify@example.com").await;
    let silver = stage(&stages, "Silver");
    let enroll = |order: String| {
        let (app, t, customer, silver) = (&app, &t, customer.clone(), silver.clone());
        async move {
            app.gql(
                &t.admin_key,
                ENROLL,
                json!({ "c": customer, "s": silver, "o": order }),
            )
            .await["data"]["enrollCustomer"]
                .clone()
        }
    };
    // Silver needs 150.00. An order of 200.00 refunded by 100.00 leaves 100.00: refused,
    // nothing written.
    let partly = order(&app, &t, &customer, "200.00").await;
    assert!(refund(&app, &t, &partly, Some("100.00"), None).await["userErrors"] == json!([]));
    let r = enroll(partly.clone()).await;
    assert_eq!(r["userErrors"][0]["code"], "NOT_ELIGIBLE", "{r}");
    // Refunded in full: refused too.
    let whole = order(&app, &t, &customer, "400.00").await;
    refund(&app, &t, &whole, None, None).await;
    let r = enroll(whole).await;
    assert_eq!(r["userErrors"][0]["code"], "NOT_ELIGIBLE", "{r}");
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM club_enrollments e JOIN customers c ON c.id = e.customer_id WHERE c.email = 'qualify@example.com' AND e.tenant_id = '{}'", t.id)).await,
        0
    );
    // An order whose refunds leave at least the minimum qualifies.
    let enough = order(&app, &t, &customer, "300.00").await;
    refund(&app, &t, &enough, Some("100.00"), None).await;
    let r = enroll(enough).await;
    assert_eq!(r["userErrors"], json!([]), "{r}");
    assert_eq!(r["enrollment"]["stage"]["name"], "Silver");
}
