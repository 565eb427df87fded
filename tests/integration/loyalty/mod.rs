//! Clubs, points and redemptions: the lifecycle scenarios of seed 004, the ledger and
//! stock invariants under concurrent requests, every redemption transition, the CRM sync
//! job with retries, bad input and tenant isolation.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Months, Utc};
use diesel::sql_types::Bool;
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::auth::Role;
use growthgraph::db::TenantDb;
use growthgraph::domain::loyalty::ops::CrmSync;
use growthgraph::jobs::{self, CrmError, CrmProvider};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{count, error_code, user_error_code, TestApp, TestTenant};

mod crm_sync;
mod membership;
mod redemptions;
mod refunds;

async fn exec(app: &TestApp, sql: &str) {
    app.owner().await.batch_execute(sql).await.unwrap();
}

/// balance = sum(ledger) = last running balance ≥ 0 for every customer, stock ≥ 0.
pub(crate) async fn assert_invariants(app: &TestApp) {
    #[derive(QueryableByName)]
    struct Ok {
        #[diesel(sql_type = Bool)]
        ok: bool,
    }
    let mut owner = app.owner().await;
    let ledger: Ok = diesel::sql_query(
        "SELECT bool_and(c.points_balance = coalesce(l.total, 0) AND c.points_balance = coalesce(l.last, 0)
                         AND c.points_balance >= 0) AS ok
         FROM customers c
         LEFT JOIN LATERAL (SELECT sum(points) AS total,
                                   (SELECT balance_after FROM point_transactions p2 WHERE p2.customer_id = c.id
                                    ORDER BY sequence DESC LIMIT 1) AS last
                            FROM point_transactions p WHERE p.customer_id = c.id) l ON true",
    )
    .get_result(&mut owner)
    .await
    .unwrap();
    assert!(ledger.ok, "points ledger invariant broken");
    let stock: Ok = diesel::sql_query(
        "SELECT coalesce(bool_and(inventory >= 0), true) AS ok FROM loyalty_rewards",
    )
    .get_result(&mut owner)
    .await
    .unwrap();
    assert!(stock.ok, "negative stock");
}

pub(crate) async fn new_customer(app: &TestApp, t: &TestTenant, email: &str) -> String {
    let r = app
        .gql(
            &t.admin_key,
            "mutation($e: String!) { upsertCustomer(input: { email: $e, name: \"Test\" }) { customer { id } } }",
            json!({ "e": email }),
        )
        .await;
    r["data"]["upsertCustomer"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn stages(app: &TestApp, t: &TestTenant) -> Vec<(String, String)> {
    let r = app
        .gql(
            &t.admin_key,
            "{ clubProgram { name stages { id name stageOrder } } }",
            json!({}),
        )
        .await;
    r["data"]["clubProgram"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) fn stage(stages: &[(String, String)], name: &str) -> String {
    stages.iter().find(|(n, _)| n == name).unwrap().1.clone()
}

pub(crate) const ENROLL: &str = "mutation($c: ID!, $s: ID!, $o: ID, $k: String) { enrollCustomer(input: { customerId: $c, stageId: $s, qualifyingOrderId: $o, idempotencyKey: $k }) {
    enrollment { id status enrolledAt expiresAt stage { name } } userErrors { field code message } } }";

const UPGRADE: &str = "mutation($e: ID!, $s: ID!, $o: ID) { upgradeEnrollment(input: { enrollmentId: $e, stageId: $s, qualifyingOrderId: $o }) {
    enrollment { id status enrolledAt expiresAt stage { name } } userErrors { field code message } } }";

const RENEW: &str = "mutation($e: ID!, $o: ID!) { renewEnrollment(input: { enrollmentId: $e, qualifyingOrderId: $o }) {
    enrollment { id expiresAt qualifyingOrderId } userErrors { field code message } } }";

const ORDER: &str = "mutation($c: ID!, $t: Decimal!) { recordOrder(input: { customerId: $c, orderTotal: $t }) { order { id } userErrors { code } } }";

pub(crate) const REDEEM: &str = "mutation($c: ID!, $r: ID!, $q: Int!, $k: String) { redeemReward(input: { customerId: $c, rewardId: $r, quantity: $q, idempotencyKey: $k }) {
    redemption { id status quantity pointsSpent } userErrors { field code message } } }";

const ADJUST: &str = "mutation($c: ID!, $p: Int!, $r: String!) { adjustPoints(input: { customerId: $c, points: $p, reason: $r }) {
    pointTransaction { points balanceAfter } userErrors { field code } } }";

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

async fn order(app: &TestApp, t: &TestTenant, customer: &str, total: &str) -> String {
    let r = app
        .gql(&t.admin_key, ORDER, json!({ "c": customer, "t": total }))
        .await;
    r["data"]["recordOrder"]["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn balance(app: &TestApp, t: &TestTenant, customer: &str) -> i64 {
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID) { customer(id: $id) { pointsBalance } }",
            json!({ "id": customer }),
        )
        .await;
    r["data"]["customer"]["pointsBalance"].as_i64().unwrap()
}

pub(crate) async fn reward(
    app: &TestApp,
    t: &TestTenant,
    cost: i64,
    inventory: Option<i64>,
) -> String {
    let r = app
        .gql(
            &t.admin_key,
            "mutation($c: Int!, $i: Int, $u: Boolean) { createReward(input: { name: \"Race prize\", rewardType: MERCHANDISE, pointsCost: $c, inventory: $i, unlimitedInventory: $u }) { reward { id } userErrors { code } } }",
            json!({ "c": cost, "i": inventory, "u": inventory.is_none() }),
        )
        .await;
    r["data"]["createReward"]["reward"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn funded_customer(
    app: &TestApp,
    t: &TestTenant,
    email: &str,
    points: i64,
) -> String {
    let customer = new_customer(app, t, email).await;
    app.gql(
        &t.admin_key,
        ADJUST,
        json!({ "c": customer, "p": points, "r": "test funds" }),
    )
    .await;
    customer
}

fn codes(results: &[Value], field: &str) -> Vec<String> {
    results
        .iter()
        .map(
            |r| match r["data"][field]["userErrors"][0]["code"].as_str() {
                Some(code) => code.to_owned(),
                None => "OK".to_owned(),
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_loyalty_input_is_refused_and_writes_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let prize = reward(&app, &t, 100, Some(5)).await;
    let customer = funded_customer(&app, &t, "bad@example.com", 1000).await;
    let redemptions_before = count(&app, "SELECT count(*) AS n FROM reward_redemptions").await;
    for quantity in [0, -1] {
        let r = app
            .gql(
                &t.admin_key,
                REDEEM,
                json!({ "c": customer, "r": prize, "q": quantity }),
            )
            .await;
        assert_eq!(
            r["data"]["redeemReward"]["userErrors"][0]["field"],
            json!(["input", "quantity"]),
            "{r}"
        );
    }
    let r = app
        .gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": customer, "r": Uuid::new_v4(), "q": 1 }),
        )
        .await;
    assert_eq!(user_error_code(&r, "redeemReward"), "NOT_FOUND");
    let r = app
        .gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": Uuid::new_v4(), "r": prize, "q": 1 }),
        )
        .await;
    assert_eq!(user_error_code(&r, "redeemReward"), "NOT_FOUND");
    // Outside its availability window, or switched off.
    exec(&app, &format!("UPDATE loyalty_rewards SET available_from = now() - interval '10 days', available_until = now() - interval '1 day' WHERE id = '{prize}'")).await;
    let r = app
        .gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": customer, "r": prize, "q": 1 }),
        )
        .await;
    assert_eq!(user_error_code(&r, "redeemReward"), "REWARD_UNAVAILABLE");
    let r = app
        .gql(
            &t.admin_key,
            "{ rewards(filter: { available: true }) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(!r.to_string().contains(&prize));
    exec(&app, &format!("UPDATE loyalty_rewards SET available_until = NULL, is_active = false WHERE id = '{prize}'")).await;
    let r = app
        .gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": customer, "r": prize, "q": 1 }),
        )
        .await;
    assert_eq!(user_error_code(&r, "redeemReward"), "REWARD_UNAVAILABLE");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM reward_redemptions").await,
        redemptions_before
    );
    assert_eq!(balance(&app, &t, &customer).await, 1000);

    // Stage validation.
    let stage = "mutation($p: Decimal, $m: Int, $o: Int) { createClubStage(input: { name: \"Platinum\", stageOrder: $o, discountPercentage: $p, durationMonths: $m }) { stage { id } userErrors { field code } } }";
    let r = app
        .gql(&t.admin_key, stage, json!({ "p": "150", "m": 12, "o": 9 }))
        .await;
    assert_eq!(
        r["data"]["createClubStage"]["userErrors"][0]["field"],
        json!(["input", "discountPercentage"])
    );
    let r = app
        .gql(&t.admin_key, stage, json!({ "p": "25", "m": 0, "o": 9 }))
        .await;
    assert_eq!(
        r["data"]["createClubStage"]["userErrors"][0]["field"],
        json!(["input", "durationMonths"])
    );
    let r = app
        .gql(&t.admin_key, stage, json!({ "p": "25", "m": 12, "o": 1 }))
        .await;
    assert_eq!(user_error_code(&r, "createClubStage"), "CONFLICT", "{r}");
    let r = app
        .gql(&t.admin_key, stage, json!({ "p": "25", "m": 12, "o": 4 }))
        .await;
    assert!(
        r["data"]["createClubStage"]["stage"]["id"].is_string(),
        "{r}"
    );
    let r = app.gql(&t.admin_key, "mutation { createReward(input: { name: \"x\", rewardType: EVENT, pointsCost: 0 }) { userErrors { field } } }", json!({})).await;
    assert_eq!(
        r["data"]["createReward"]["userErrors"][0]["field"],
        json!(["input", "pointsCost"])
    );
    let r = app.gql(&t.admin_key, "mutation { updateLoyaltyRules(input: { bonusPercentage: \"101\" }) { userErrors { field } } }", json!({})).await;
    assert_eq!(
        r["data"]["updateLoyaltyRules"]["userErrors"][0]["field"],
        json!(["input", "bonusPercentage"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loyalty_is_isolated_between_tenants() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let b_reward = reward(&app, &b, 10, Some(5)).await;
    let b_customer = funded_customer(&app, &b, "b@example.com", 100).await;
    let b_stages = stages(&app, &b).await;
    let r = app
        .gql(
            &b.admin_key,
            ENROLL,
            json!({ "c": b_customer, "s": stage(&b_stages, "Bronze") }),
        )
        .await;
    let b_enrollment = r["data"]["enrollCustomer"]["enrollment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .gql(
            &b.admin_key,
            REDEEM,
            json!({ "c": b_customer, "r": b_reward, "q": 1 }),
        )
        .await;
    let b_redemption = r["data"]["redeemReward"]["redemption"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_customer = funded_customer(&app, &a, "a@example.com", 100).await;
    let a_stages = stages(&app, &a).await;

    // Reads by id: B's ids behave like random ones.
    for (query, id) in [
        ("query($id: ID!) { reward(id: $id) { id } }", &b_reward),
        (
            "query($id: ID!) { enrollment(id: $id) { id } }",
            &b_enrollment,
        ),
        (
            "query($id: ID!) { redemption(id: $id) { id } }",
            &b_redemption,
        ),
    ] {
        let foreign = app.gql(&a.admin_key, query, json!({ "id": id })).await;
        let random = app
            .gql(&a.admin_key, query, json!({ "id": Uuid::new_v4() }))
            .await;
        assert_eq!(foreign, random, "{query}");
    }
    // Lists: only A's rows.
    let listed = app.gql(&a.admin_key, "{ rewards(first: 100) { nodes { id } } enrollments(first: 100) { nodes { id customerId } } redemptions(first: 100) { nodes { id } } clubProgram { stages { id } } }", json!({})).await;
    let text = listed.to_string();
    for id in [&b_reward, &b_enrollment, &b_redemption, &b_customer] {
        assert!(!text.contains(id.as_str()), "{id} leaked");
    }
    for (_, stage_id) in &b_stages {
        assert!(!text.contains(stage_id.as_str()));
    }
    // Writes with B's ids: exactly like random ids, and nothing changes in B.
    let cases = [
        (REDEEM, json!({ "c": a_customer, "r": b_reward, "q": 1 }), json!({ "c": a_customer, "r": Uuid::new_v4(), "q": 1 })),
        (REDEEM, json!({ "c": b_customer, "r": b_reward, "q": 1 }), json!({ "c": Uuid::new_v4(), "r": b_reward, "q": 1 })),
        (ENROLL, json!({ "c": a_customer, "s": stage(&b_stages, "Bronze") }), json!({ "c": a_customer, "s": Uuid::new_v4() })),
        (ADJUST, json!({ "c": b_customer, "p": 5, "r": "x" }), json!({ "c": Uuid::new_v4(), "p": 5, "r": "x" })),
        (
            "mutation($id: ID!) { cancelRedemption(input: { redemptionId: $id }) { userErrors { code } } }",
            json!({ "id": b_redemption }),
            json!({ "id": Uuid::new_v4() }),
        ),
        (
            "mutation($id: ID!) { cancelEnrollment(input: { enrollmentId: $id }) { userErrors { code } } }",
            json!({ "id": b_enrollment }),
            json!({ "id": Uuid::new_v4() }),
        ),
        (
            "mutation($id: ID!) { updateReward(input: { id: $id, name: \"stolen\" }) { userErrors { code } } }",
            json!({ "id": b_reward }),
            json!({ "id": Uuid::new_v4() }),
        ),
    ];
    for (mutation, foreign, random) in cases {
        let f = app.gql(&a.admin_key, mutation, foreign).await;
        let r = app.gql(&a.admin_key, mutation, random).await;
        assert_eq!(f["data"], r["data"], "{mutation}");
        assert!(f.to_string().contains("NOT_FOUND"), "{f}");
    }
    let r = app
        .gql(
            &b.admin_key,
            "query($id: ID!) { redemption(id: $id) { status } reward(id: $id) { name } }",
            json!({ "id": b_redemption }),
        )
        .await;
    assert_eq!(r["data"]["redemption"]["status"], "PENDING");
    let _ = a_stages;
    assert_invariants(&app).await;
}
