//! Clubs, points and redemptions: the lifecycle scenarios of seed 004, the ledger and
//! stock invariants under concurrent requests, every redemption transition, the CRM sync
//! job with retries, bad input and tenant isolation.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Months, Utc};
use diesel::sql_types::{BigInt, Bool};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::db::TenantDb;
use growthgraph::domain::loyalty::ops::CrmSync;
use growthgraph::jobs::{self, CrmProvider, RecordingCrm};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{TestApp, TestTenant};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut owner = app.owner().await;
    diesel::sql_query(sql)
        .get_result::<Count>(&mut owner)
        .await
        .unwrap()
        .n
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_upgrade_renew_and_expire_follow_seed_004() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let stages = stages(&app, &t).await;
    let customer = new_customer(&app, &t, "lifecycle@example.com").await;

    let r = app
        .gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": customer, "s": stage(&stages, "Bronze") }),
        )
        .await;
    let bronze = &r["data"]["enrollCustomer"]["enrollment"];
    assert_eq!(bronze["status"], "ACTIVE", "{r}");
    let enrolled_at = time(&bronze["enrolledAt"]);
    assert_eq!(
        time(&bronze["expiresAt"]),
        enrolled_at.checked_add_months(Months::new(3)).unwrap()
    );
    let bronze_id = bronze["id"].as_str().unwrap().to_owned();
    let r = app
        .gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": customer, "s": stage(&stages, "Silver") }),
        )
        .await;
    assert_eq!(
        r["data"]["enrollCustomer"]["userErrors"][0]["code"],
        "ALREADY_ENROLLED"
    );

    // Gold needs a qualifying order of at least 300.
    let r = app
        .gql(
            &t.admin_key,
            UPGRADE,
            json!({ "e": bronze_id, "s": stage(&stages, "Gold") }),
        )
        .await;
    assert_eq!(
        r["data"]["upgradeEnrollment"]["userErrors"][0]["code"],
        "NOT_ELIGIBLE"
    );
    let small = order(&app, &t, &customer, "120.00").await;
    let r = app
        .gql(
            &t.admin_key,
            UPGRADE,
            json!({ "e": bronze_id, "s": stage(&stages, "Gold"), "o": small }),
        )
        .await;
    assert_eq!(
        r["data"]["upgradeEnrollment"]["userErrors"][0]["code"],
        "NOT_ELIGIBLE"
    );
    let big = order(&app, &t, &customer, "350.00").await;
    let r = app
        .gql(
            &t.admin_key,
            UPGRADE,
            json!({ "e": bronze_id, "s": stage(&stages, "Gold"), "o": big }),
        )
        .await;
    let gold = &r["data"]["upgradeEnrollment"]["enrollment"];
    assert_eq!(gold["stage"]["name"], "Gold", "{r}");
    assert_eq!(
        time(&gold["enrolledAt"]),
        enrolled_at,
        "an upgrade keeps the enrollment date"
    );
    assert_eq!(
        time(&gold["expiresAt"]),
        enrolled_at.checked_add_months(Months::new(12)).unwrap()
    );
    let gold_id = gold["id"].as_str().unwrap().to_owned();
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { enrollment(id: $id) { status endedAt } }",
            json!({ "id": bronze_id }),
        )
        .await;
    assert_eq!(r["data"]["enrollment"]["status"], "UPGRADED");
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM club_extensions WHERE enrollment_id = '{gold_id}' AND extension_type = 'upgrade' AND qualifying_order_id = '{big}'")).await, 1);
    // Going down is not an upgrade.
    let r = app
        .gql(
            &t.admin_key,
            UPGRADE,
            json!({ "e": gold_id, "s": stage(&stages, "Silver"), "o": big }),
        )
        .await;
    assert_eq!(
        r["data"]["upgradeEnrollment"]["userErrors"][0]["code"],
        "INVALID_TRANSITION"
    );

    // Renewal extends from the current expiry, linked to its qualifying order (once).
    let renewal_order = order(&app, &t, &customer, "310.00").await;
    let r = app
        .gql(
            &t.admin_key,
            RENEW,
            json!({ "e": gold_id, "o": renewal_order }),
        )
        .await;
    let renewed = &r["data"]["renewEnrollment"]["enrollment"];
    assert_eq!(
        time(&renewed["expiresAt"]),
        enrolled_at.checked_add_months(Months::new(24)).unwrap(),
        "{r}"
    );
    assert_eq!(renewed["qualifyingOrderId"], renewal_order.as_str());
    let r = app
        .gql(
            &t.admin_key,
            RENEW,
            json!({ "e": gold_id, "o": renewal_order }),
        )
        .await;
    assert_eq!(
        r["data"]["renewEnrollment"]["userErrors"][0]["code"],
        "NOT_ELIGIBLE"
    );

    // Expiry (scheduled job and mutation) ends the membership and stops earning.
    exec(&app, &format!("UPDATE club_enrollments SET enrolled_at = now() - interval '800 days', expires_at = now() - interval '1 minute' WHERE id = '{gold_id}'")).await;
    let r = app
        .gql(
            &t.admin_key,
            "mutation { expireEnrollments { expiredCount userErrors { code } } }",
            json!({}),
        )
        .await;
    assert!(
        r["data"]["expireEnrollments"]["expiredCount"]
            .as_i64()
            .unwrap()
            >= 1,
        "{r}"
    );
    let r = app.gql(&t.admin_key, "query($id: ID) { customer(id: $id) { isClubMember currentEnrollment { id } enrollments { status } } }", json!({ "id": customer })).await;
    assert_eq!(r["data"]["customer"]["isClubMember"], false);
    assert!(r["data"]["customer"]["currentEnrollment"].is_null());
    let before = balance(&app, &t, &customer).await;
    order(&app, &t, &customer, "500.00").await;
    assert_eq!(
        balance(&app, &t, &customer).await,
        before,
        "an expired membership earns nothing"
    );
    let r = app.gql(&t.admin_key, "mutation($e: ID!) { cancelEnrollment(input: { enrollmentId: $e }) { userErrors { code } } }", json!({ "e": gold_id })).await;
    assert_eq!(
        r["data"]["cancelEnrollment"]["userErrors"][0]["code"],
        "INVALID_TRANSITION"
    );
    // History kept: enrolled, upgrade, renewal, expired.
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM club_extensions e JOIN club_enrollments c ON c.id = e.enrollment_id WHERE c.customer_id = '{customer}'")).await, 4);
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_need_365_membership_days_and_never_expire() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let stages = stages(&app, &t).await;
    let customer = new_customer(&app, &t, "points@example.com").await;
    let r = app
        .gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": customer, "s": stage(&stages, "Bronze") }),
        )
        .await;
    let enrollment = r["data"]["enrollCustomer"]["enrollment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 200 cumulative days: below the 365-day threshold, no points.
    exec(&app, &format!("UPDATE club_enrollments SET enrolled_at = now() - interval '200 days', expires_at = now() + interval '30 days' WHERE id = '{enrollment}'")).await;
    order(&app, &t, &customer, "100.00").await;
    assert_eq!(balance(&app, &t, &customer).await, 0);

    // 400 days: 1 point per dollar (whole dollars) plus the 10 % bonus.
    exec(&app, &format!("UPDATE club_enrollments SET enrolled_at = now() - interval '400 days' WHERE id = '{enrollment}'")).await;
    order(&app, &t, &customer, "100.40").await;
    assert_eq!(balance(&app, &t, &customer).await, 110);
    let r = app.gql(&t.admin_key, "query($id: ID) { customer(id: $id) { pointsLifetime cumulativeMembershipDays pointTransactions { nodes { sequence transactionType points balanceAfter } } } }", json!({ "id": customer })).await;
    let c = &r["data"]["customer"];
    assert_eq!(c["pointsLifetime"], 110);
    assert!(c["cumulativeMembershipDays"].as_i64().unwrap() >= 400);
    let entries = c["pointTransactions"]["nodes"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["transactionType"], "BONUS");
    assert_eq!(entries[0]["balanceAfter"], 110);
    assert_eq!(entries[0]["sequence"], 2);

    // Points never expire: the membership ending leaves the balance alone.
    exec(&app, &format!("UPDATE club_enrollments SET expires_at = now() - interval '1 second' WHERE id = '{enrollment}'")).await;
    app.gql(
        &t.admin_key,
        "mutation { expireEnrollments { expiredCount } }",
        json!({}),
    )
    .await;
    assert_eq!(balance(&app, &t, &customer).await, 110);

    // Manual adjustments: never below zero, a reason is required.
    let r = app
        .gql(
            &t.admin_key,
            ADJUST,
            json!({ "c": customer, "p": -500, "r": "goodwill" }),
        )
        .await;
    assert_eq!(
        r["data"]["adjustPoints"]["userErrors"][0]["code"],
        "INSUFFICIENT_POINTS"
    );
    let r = app
        .gql(
            &t.admin_key,
            ADJUST,
            json!({ "c": customer, "p": -10, "r": " " }),
        )
        .await;
    assert_eq!(
        r["data"]["adjustPoints"]["userErrors"][0]["field"],
        json!(["input", "reason"])
    );
    let r = app
        .gql(
            &t.admin_key,
            ADJUST,
            json!({ "c": customer, "p": -10, "r": "breakage" }),
        )
        .await;
    assert_eq!(
        r["data"]["adjustPoints"]["pointTransaction"]["balanceAfter"],
        100
    );
    assert_invariants(&app).await;
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
        r["data"]["redeemReward"]["userErrors"][0]["code"],
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_invariants(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enrollments_leave_one_active_enrollment() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let stages = stages(&app, &t).await;
    let customer = new_customer(&app, &t, "enroll-race@example.com").await;
    let bronze = stage(&stages, "Bronze");
    let results = futures_util::future::join_all(
        (0..8).map(|_| app.gql(&t.admin_key, ENROLL, json!({ "c": customer, "s": bronze }))),
    )
    .await;
    let outcome = codes(&results, "enrollCustomer");
    assert_eq!(
        outcome.iter().filter(|c| *c == "OK").count(),
        1,
        "{outcome:?}"
    );
    assert!(
        outcome.iter().all(|c| c == "OK" || c == "ALREADY_ENROLLED"),
        "{outcome:?}"
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM club_enrollments WHERE customer_id = '{customer}' AND status = 'active'")).await, 1);

    // With one idempotency key the replays return the same enrollment.
    let other = new_customer(&app, &t, "enroll-key@example.com").await;
    let results = futures_util::future::join_all((0..6).map(|_| {
        app.gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": other, "s": bronze, "k": "enroll-1" }),
        )
    }))
    .await;
    let ids: HashSet<String> = results
        .iter()
        .map(|r| r["data"]["enrollCustomer"]["enrollment"]["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM club_enrollments WHERE customer_id = '{other}'")
        )
        .await,
        1
    );
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

/// Fails its first `failures` calls, then records like the default provider.
struct FlakyCrm {
    failures: usize,
    calls: AtomicUsize,
    recorded: RecordingCrm,
}

#[async_trait::async_trait]
impl CrmProvider for FlakyCrm {
    async fn sync_discount(&self, tenant: Uuid, sync: &CrmSync) -> Result<(), String> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err("CRM unavailable (503)".into());
        }
        self.recorded.sync_discount(tenant, sync).await
    }
}

#[derive(QueryableByName, Debug)]
struct Job {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Double)]
    delay_seconds: f64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    sync_status: String,
}

async fn job_state(app: &TestApp, enrollment: &str) -> Job {
    let mut owner = app.owner().await;
    diesel::sql_query(format!(
        "SELECT j.status, j.attempts, extract(epoch FROM j.run_at - now())::float8 AS delay_seconds, j.error, e.sync_status
         FROM queue_jobs j JOIN club_enrollments e ON e.id::text = j.payload->>'enrollmentId'
         WHERE j.job_type = 'crm_sync' AND e.id = '{enrollment}'"
    ))
    .get_result(&mut owner)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_sync_jobs_are_enqueued_retried_with_backoff_and_marked_synced() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    exec(
        &app,
        &format!("DELETE FROM queue_jobs WHERE tenant_id = '{}'", t.id),
    )
    .await;
    let stages = stages(&app, &t).await;
    let customer = new_customer(&app, &t, "crm@example.com").await;
    let r = app
        .gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": customer, "s": stage(&stages, "Bronze") }),
        )
        .await;
    let enrollment = r["data"]["enrollCustomer"]["enrollment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = job_state(&app, &enrollment).await;
    assert_eq!(
        (job.status.as_str(), job.attempts, job.sync_status.as_str()),
        ("pending", 0, "pending")
    );

    let db = TenantDb::new(app.pool.clone(), t.id);
    let crm = FlakyCrm {
        failures: 2,
        calls: AtomicUsize::new(0),
        recorded: RecordingCrm::default(),
    };
    // First attempt fails: retried in 2 s.
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 1);
    let job = job_state(&app, &enrollment).await;
    assert_eq!((job.status.as_str(), job.attempts), ("pending", 1));
    assert!((1.0..=2.5).contains(&job.delay_seconds), "{job:?}");
    assert!(job.error.as_deref().unwrap().contains("CRM unavailable"));
    // Not due yet: nothing runs.
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 0);
    // Second attempt (made due) fails again: the delay doubles.
    exec(
        &app,
        "UPDATE queue_jobs SET run_at = now() WHERE job_type = 'crm_sync'",
    )
    .await;
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 1);
    let job = job_state(&app, &enrollment).await;
    assert_eq!(job.attempts, 2);
    assert!((3.0..=4.5).contains(&job.delay_seconds), "{job:?}");
    // Third attempt succeeds: the job completes and the enrollment is synced.
    exec(
        &app,
        "UPDATE queue_jobs SET run_at = now() WHERE job_type = 'crm_sync'",
    )
    .await;
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 1);
    let job = job_state(&app, &enrollment).await;
    assert_eq!(
        (job.status.as_str(), job.sync_status.as_str()),
        ("completed", "synced")
    );
    let calls = crm.recorded.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1.action, "add");
    assert_eq!(calls[0].1.enrollment_id.to_string(), enrollment);

    // A job that runs out of attempts fails, and so does the enrollment's sync status.
    let r = app.gql(&t.admin_key, "mutation($e: ID!) { cancelEnrollment(input: { enrollmentId: $e }) { enrollment { status syncStatus } } }", json!({ "e": enrollment })).await;
    assert_eq!(
        r["data"]["cancelEnrollment"]["enrollment"]["syncStatus"], "PENDING",
        "{r}"
    );
    exec(
        &app,
        "UPDATE queue_jobs SET max_attempts = 1 WHERE status = 'pending'",
    )
    .await;
    let always_down = FlakyCrm {
        failures: usize::MAX,
        calls: AtomicUsize::new(0),
        recorded: RecordingCrm::default(),
    };
    assert_eq!(
        jobs::run_due_crm_jobs(&db, &always_down, 10).await.unwrap(),
        1
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM club_enrollments WHERE id = '{enrollment}' AND sync_status = 'failed'")).await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM queue_jobs WHERE status = 'failed'"
        )
        .await,
        1
    );
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
    assert_eq!(
        r["data"]["redeemReward"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let r = app
        .gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": Uuid::new_v4(), "r": prize, "q": 1 }),
        )
        .await;
    assert_eq!(
        r["data"]["redeemReward"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    // Outside its availability window, or switched off.
    exec(&app, &format!("UPDATE loyalty_rewards SET available_from = now() - interval '10 days', available_until = now() - interval '1 day' WHERE id = '{prize}'")).await;
    let r = app
        .gql(
            &t.admin_key,
            REDEEM,
            json!({ "c": customer, "r": prize, "q": 1 }),
        )
        .await;
    assert_eq!(
        r["data"]["redeemReward"]["userErrors"][0]["code"],
        "REWARD_UNAVAILABLE"
    );
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
    assert_eq!(
        r["data"]["redeemReward"]["userErrors"][0]["code"],
        "REWARD_UNAVAILABLE"
    );
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
    assert_eq!(
        r["data"]["createClubStage"]["userErrors"][0]["code"], "CONFLICT",
        "{r}"
    );
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
