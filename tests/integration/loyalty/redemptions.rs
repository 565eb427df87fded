//! Redemptions: never oversold or overdrawn under races, a key applied once, and every status transition pair.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_never_oversell_never_overdraw_and_apply_a_key_once() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;

    // N = 10 distinct customers race for k = 3 units.
    let prize = reward(&app, &t, 100, Some(3)).await;
    let mut customers = Vec::new();
    for i in 0..10 {
        customers.push(funded_customer(&app, &t, &format!("racer{i}@example.com"), 1000).await);
    }
    let results = futures_util::future::join_all(
        customers
            .iter()
            .map(|c| app.gql(&t.admin_key, REDEEM, json!({ "c": c, "r": prize, "q": 1 }))),
    )
    .await;
    let outcome = codes(&results, "redeemReward");
    assert_eq!(
        outcome.iter().filter(|c| *c == "OK").count(),
        3,
        "{outcome:?}"
    );
    assert_eq!(
        outcome.iter().filter(|c| *c == "OUT_OF_STOCK").count(),
        7,
        "{outcome:?}"
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { reward(id: $id) { inventory available } }",
            json!({ "id": prize }),
        )
        .await;
    assert_eq!(r["data"]["reward"]["inventory"], 0);
    assert_eq!(r["data"]["reward"]["available"], false);
    assert_invariants(&app).await;

    // One customer with 500 points, 10 concurrent redemptions of 150: exactly 3 succeed.
    let unlimited = reward(&app, &t, 150, None).await;
    let rich = funded_customer(&app, &t, "single@example.com", 500).await;
    let results = futures_util::future::join_all((0..10).map(|_| {
        app.gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": rich, "r": unlimited, "q": 1 }),
        )
    }))
    .await;
    let outcome = codes(&results, "redeemReward");
    assert_eq!(
        outcome.iter().filter(|c| *c == "OK").count(),
        3,
        "{outcome:?}"
    );
    assert_eq!(
        outcome
            .iter()
            .filter(|c| *c == "INSUFFICIENT_POINTS")
            .count(),
        7,
        "{outcome:?}"
    );
    assert_eq!(balance(&app, &t, &rich).await, 50);
    assert_invariants(&app).await;

    // The same idempotency key sent 8 times at once: one effect, identical responses.
    let keyed = funded_customer(&app, &t, "keyed@example.com", 1000).await;
    let input = json!({ "c": keyed, "r": unlimited, "q": 2, "k": "redeem-once" });
    let results = futures_util::future::join_all(
        (0..8).map(|_| app.gql(&t.admin_key, REDEEM, input.clone())),
    )
    .await;
    assert!(
        results.iter().all(|r| r["data"] == results[0]["data"]),
        "{results:?}"
    );
    assert!(results[0]["data"]["redeemReward"]["redemption"]["id"].is_string());
    assert_eq!(balance(&app, &t, &keyed).await, 700);
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM reward_redemptions WHERE customer_id = '{keyed}'")
        )
        .await,
        1
    );
    let r = app
        .gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": keyed, "r": unlimited, "q": 1, "k": "redeem-once" }),
        )
        .await;
    assert_eq!(
        user_error_code(&r, "redeemReward"),
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redemption_transition_pair() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let prize = reward(&app, &t, 100, Some(10)).await;
    let customer = funded_customer(&app, &t, "transitions@example.com", 1000).await;
    let transition = |action: &'static str, id: String| {
        let query = format!("mutation($id: ID!) {{ {action}Redemption(input: {{ redemptionId: $id }}) {{ redemption {{ status }} userErrors {{ code }} }} }}");
        let app = &app;
        let key = t.admin_key.clone();
        async move {
            let r = app.gql(&key, &query, json!({ "id": id })).await;
            let payload = &r["data"][format!("{action}Redemption")];
            match payload["userErrors"][0]["code"].as_str() {
                Some(code) => code.to_owned(),
                None => payload["redemption"]["status"].as_str().unwrap().to_owned(),
            }
        }
    };
    let redeem = || async {
        let r = app
            .gql(
                &t.admin_key,
                REDEEM,
                json!({ "c": customer, "r": prize, "q": 2 }),
            )
            .await;
        r["data"]["redeemReward"]["redemption"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let stock = || async {
        app.gql(
            &t.admin_key,
            "query($id: ID!) { reward(id: $id) { inventory } }",
            json!({ "id": prize }),
        )
        .await["data"]["reward"]["inventory"]
            .as_i64()
            .unwrap()
    };

    // pending: refund refused; fulfil allowed.
    let a = redeem().await;
    assert_eq!(balance(&app, &t, &customer).await, 800);
    assert_eq!(transition("refund", a.clone()).await, "INVALID_TRANSITION");
    assert_eq!(transition("fulfill", a.clone()).await, "FULFILLED");
    // fulfilled: fulfil and cancel refused; refund restores points once.
    assert_eq!(transition("fulfill", a.clone()).await, "INVALID_TRANSITION");
    assert_eq!(transition("cancel", a.clone()).await, "INVALID_TRANSITION");
    assert_eq!(stock().await, 8);
    assert_eq!(transition("refund", a.clone()).await, "REFUNDED");
    assert_eq!(balance(&app, &t, &customer).await, 1000);
    assert_eq!(stock().await, 8, "a refund returns points, not stock");
    // Each transition stamps its own time and keeps the earlier ones.
    let r = app
        .gql(
            &t.admin_key,
            "query($c: ID!) { customer(id: $c) { redemptions(first: 10) { nodes { id fulfilledAt cancelledAt refundedAt } } } }",
            json!({ "c": customer }),
        )
        .await;
    let nodes = r["data"]["customer"]["redemptions"]["nodes"]
        .as_array()
        .unwrap();
    let stamped = nodes.iter().find(|n| n["id"] == a.as_str()).unwrap();
    assert!(stamped["fulfilledAt"].is_string(), "{stamped}");
    assert!(stamped["refundedAt"].is_string(), "{stamped}");
    assert!(stamped["cancelledAt"].is_null(), "{stamped}");
    assert!(stamped["fulfilledAt"].as_str() <= stamped["refundedAt"].as_str());
    // refunded: everything refused; refunding twice restores points once.
    for action in ["fulfill", "cancel", "refund"] {
        assert_eq!(
            transition(action, a.clone()).await,
            "INVALID_TRANSITION",
            "refunded → {action}"
        );
    }
    assert_eq!(balance(&app, &t, &customer).await, 1000);

    // pending → cancelled restores points and stock; then everything is refused.
    let b = redeem().await;
    assert_eq!(
        (balance(&app, &t, &customer).await, stock().await),
        (800, 6)
    );
    assert_eq!(transition("cancel", b.clone()).await, "CANCELLED");
    assert_eq!(
        (balance(&app, &t, &customer).await, stock().await),
        (1000, 8)
    );
    for action in ["fulfill", "cancel", "refund"] {
        assert_eq!(
            transition(action, b.clone()).await,
            "INVALID_TRANSITION",
            "cancelled → {action}"
        );
    }
    assert_eq!(
        transition("cancel", Uuid::new_v4().to_string()).await,
        "NOT_FOUND"
    );

    // Concurrent refunds of one redemption: points restored exactly once.
    let c = redeem().await;
    assert_eq!(transition("fulfill", c.clone()).await, "FULFILLED");
    let results =
        futures_util::future::join_all((0..6).map(|_| transition("refund", c.clone()))).await;
    assert_eq!(
        results.iter().filter(|r| *r == "REFUNDED").count(),
        1,
        "{results:?}"
    );
    assert_eq!(balance(&app, &t, &customer).await, 1000);
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redemption_takes_stock_only_when_counted_and_writes_its_events_at_once() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let unlimited = reward(&app, &t, 10, None).await;
    let counted = reward(&app, &t, 10, Some(5)).await;
    let customer = funded_customer(&app, &t, "measured@example.com", 1000).await;
    // One redemption first, so that the measured ones each follow one.
    let warm = json!({ "c": customer, "r": unlimited, "q": 1 });
    app.gql(&t.admin_key, REDEEM, warm).await;

    let mut statements = Vec::new();
    for prize in [&unlimited, &counted] {
        let request = app.gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": customer, "r": prize, "q": 2 }),
        );
        let (r, cost) = crate::common::statements_of(&app, request).await;
        assert_eq!(r["data"]["redeemReward"]["userErrors"], json!([]), "{r}");
        statements.push(cost);
    }
    // Data statements: the key, the reward, the customer's lock, the redemption, the
    // balance, the entry (its sequence read in it), both events at once; the payload is
    // the redemption written, not read back.
    assert_eq!(statements[0], 7, "{statements:?}");
    assert_eq!(
        statements[1],
        statements[0] + 1,
        "counted stock: one UPDATE more"
    );

    // The payload is the redemption as a read of it answers.
    const FIELDS: &str = "id customerId rewardId quantity pointsSpent status fulfilledAt cancelledAt refundedAt createdAt reward { id inventory }";
    let latest = || async {
        let query = format!("query($c: ID!) {{ redemptions(first: 1, filter: {{ customerId: $c }}) {{ nodes {{ {FIELDS} }} }} }}");
        let r = app
            .gql(&t.admin_key, &query, json!({ "c": customer }))
            .await;
        r["data"]["redemptions"]["nodes"][0].clone()
    };
    let written = app
        .gql(
            &t.admin_key,
            &format!("mutation($c: ID!, $r: ID!) {{ redeemReward(input: {{ customerId: $c, rewardId: $r, quantity: 1 }}) {{ redemption {{ {FIELDS} }} }} }}"),
            json!({ "c": customer, "r": counted }),
        )
        .await;
    let written = &written["data"]["redeemReward"]["redemption"];
    assert_eq!(written, &latest().await);
    assert_eq!(written["reward"]["inventory"], 2, "{written}");
    // So is a transition's.
    let fulfilled = app
        .gql(
            &t.admin_key,
            &format!("mutation($id: ID!) {{ fulfillRedemption(input: {{ redemptionId: $id }}) {{ redemption {{ {FIELDS} }} }} }}"),
            json!({ "id": written["id"] }),
        )
        .await;
    let fulfilled = &fulfilled["data"]["fulfillRedemption"]["redemption"];
    assert_eq!(fulfilled["status"], "FULFILLED", "{fulfilled}");
    assert_eq!(fulfilled, &latest().await);

    assert_eq!(balance(&app, &t, &customer).await, 1000 - 10 - 20 - 20 - 10);
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { reward(id: $id) { inventory } }",
            json!({ "id": counted }),
        )
        .await;
    assert_eq!(r["data"]["reward"]["inventory"], 2, "{r}");
    // Each redemption's entries continue the customer's ledger, and each wrote its
    // points.changed then its redemption.changed.
    let sequences = format!(
        "SELECT count(*) AS n FROM point_transactions WHERE customer_id = '{customer}' \
         AND sequence BETWEEN 1 AND 5"
    );
    assert_eq!(count(&app, &sequences).await, 5);
    let ordered = format!(
        "SELECT count(*) AS n FROM domain_events p JOIN domain_events r \
         ON r.tenant_id = p.tenant_id AND r.event_type = 'redemption.changed' \
         AND r.payload->>'customerId' = '{customer}' \
         AND p.event_type = 'points.changed' AND p.subject_id = '{customer}' \
         AND p.id < r.id AND NOT EXISTS (SELECT 1 FROM domain_events x \
           WHERE x.tenant_id = p.tenant_id AND x.id > p.id AND x.id < r.id)"
    );
    assert_eq!(
        count(&app, &ordered).await,
        4,
        "each redemption's two events, in order"
    );
    assert_invariants(&app).await;
}
