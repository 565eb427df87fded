//! The prompt learning loop (seed 001 §3): variants and A/B tests checked, each subject
//! assigned one arm for ever, executions tallied exactly even racing, a winner declared by
//! the two-proportion z-test (values worked by hand) and replacing its parent, tests
//! closed inconclusive when their time runs out, and feedback learned by the scheduler.

use chrono::{Duration, Utc};
use growthgraph::db::TenantDb;
use growthgraph::scheduler;
use serde_json::{json, Value};

use crate::common::{count, user_error_code, TestApp, TestTenant};

const VARIANT: &str = "mutation($i: CreatePromptVariantInput!) { createPromptVariant(input: $i) { prompt { id variantVersion isActive } userErrors { code field } } }";
const TEST: &str = "mutation($i: CreatePromptAbTestInput!) { createPromptAbTest(input: $i) { test { id status } userErrors { code field message } } }";
const START: &str = "mutation($id: ID!) { startPromptAbTest(id: $id) { test { status startedAt } userErrors { code field } } }";
const STOP: &str = "mutation($id: ID!) { stopPromptAbTest(id: $id) { test { status } userErrors { code field } } }";
const ASSIGN: &str = "query($t: String!, $k: String!) { assignPromptVariant(testName: $t, subjectKey: $k) { arm variant { id variantId } } }";
const EXECUTE: &str = "mutation($i: RecordPromptExecutionInput!) { recordPromptExecution(input: $i) { executionId prompt { usageCount score } test { status } userErrors { code field message } } }";
const STATE: &str = "query($t: String!) { promptAbTest(testName: $t) { status outcome pValue controlResults { executions successes successRate meanQuality } treatmentResults { executions successes successRate } winner { variantId isActive } control { variantId isActive score usageCount } treatment { variantId isActive score usageCount } } }";

async fn variant(app: &TestApp, t: &TestTenant, name: &str, variant_id: &str) -> String {
    let r = app
        .gql(&t.admin_key, VARIANT, json!({ "i": { "promptName": name, "variantId": variant_id, "text": format!("Prompt {variant_id}") } }))
        .await;
    r["data"]["createPromptVariant"]["prompt"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

async fn running_test(app: &TestApp, t: &TestTenant, input: Value) -> String {
    let r = app.gql(&t.admin_key, TEST, json!({ "i": input })).await;
    let id = r["data"]["createPromptAbTest"]["test"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let r = app.gql(&t.admin_key, START, json!({ "id": id })).await;
    assert_eq!(
        r["data"]["startPromptAbTest"]["test"]["status"], "RUNNING",
        "{r}"
    );
    id
}

async fn execute(app: &TestApp, key: &str, input: Value) -> Value {
    let r = app.gql(key, EXECUTE, json!({ "i": input })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["recordPromptExecution"].clone()
}

async fn state(app: &TestApp, key: &str, test: &str) -> Value {
    let r = app.gql(key, STATE, json!({ "t": test })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["promptAbTest"].clone()
}

async fn tick(
    app: &TestApp,
    t: &TestTenant,
    at: chrono::DateTime<Utc>,
) -> Vec<(&'static str, Value)> {
    scheduler::tick(&TenantDb::new(app.pool.clone(), t.id), at)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_and_tests_are_checked_and_each_subject_keeps_its_arm() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prompt Lab").await;
    let v1 = variant(&app, &t, "lead_analysis", "lead_v1").await;
    let v2 = variant(&app, &t, "lead_analysis", "lead_v2").await;
    let other = variant(&app, &t, "reply_writer", "reply_v1").await;
    let r = app
        .gql(
            &t.admin_key,
            "{ prompts(name: \"lead_analysis\") { nodes { variantId variantVersion } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["prompts"]["nodes"],
        json!([{ "variantId": "lead_v2", "variantVersion": 2 }, { "variantId": "lead_v1", "variantVersion": 1 }])
    );
    for (input, code, field) in [
        (
            json!({ "promptName": "lead_analysis", "variantId": "lead_v1", "text": "again" }),
            "CONFLICT",
            "variantId",
        ),
        (
            json!({ "promptName": "lead_analysis", "variantId": "lead_v3", "text": " " }),
            "INVALID",
            "text",
        ),
    ] {
        let r = app.gql(&t.admin_key, VARIANT, json!({ "i": input })).await;
        let e = &r["data"]["createPromptVariant"]["userErrors"][0];
        assert_eq!(
            (&e["code"], &e["field"]),
            (&json!(code), &json!(["input", field])),
            "{r}"
        );
    }

    let tests = format!(
        "SELECT count(*) AS n FROM prompt_ab_tests WHERE tenant_id = '{}'",
        t.id
    );
    let base = json!({ "testName": "v1 vs v2", "controlVariantId": v1, "treatmentVariantId": v2,
        "controlTrafficPercentage": "30", "treatmentTrafficPercentage": "70" });
    let with = |change: Value| {
        let mut input = base.clone();
        for (k, v) in change.as_object().unwrap() {
            input[k] = v.clone();
        }
        input
    };
    for (input, field) in [
        (
            with(json!({ "treatmentTrafficPercentage": "60" })),
            "treatmentTrafficPercentage",
        ),
        (
            with(
                json!({ "controlTrafficPercentage": "30.555", "treatmentTrafficPercentage": "69.445" }),
            ),
            "controlTrafficPercentage",
        ),
        (
            with(json!({ "treatmentVariantId": v1 })),
            "treatmentVariantId",
        ),
        (
            with(json!({ "treatmentVariantId": other })),
            "treatmentVariantId",
        ),
        (
            with(json!({ "significanceLevel": "0.7" })),
            "significanceLevel",
        ),
        (with(json!({ "minSampleSize": 0 })), "minSampleSize"),
    ] {
        let r = app.gql(&t.admin_key, TEST, json!({ "i": input })).await;
        let e = &r["data"]["createPromptAbTest"]["userErrors"][0];
        assert_eq!(
            (&e["code"], &e["field"]),
            (&json!("INVALID"), &json!(["input", field])),
            "{r}"
        );
    }
    assert_eq!(count(&app, &tests).await, 0);
    let r = app.gql(&t.admin_key, TEST, json!({ "i": base })).await;
    let test = r["data"]["createPromptAbTest"]["test"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(r["data"]["createPromptAbTest"]["test"]["status"], "DRAFT");
    let r = app.gql(&t.admin_key, TEST, json!({ "i": base })).await;
    assert_eq!(user_error_code(&r, "createPromptAbTest"), "CONFLICT");
    // A draft assigns nothing.
    let r = app
        .gql(
            &t.admin_key,
            ASSIGN,
            json!({ "t": "v1 vs v2", "k": "lead-1" }),
        )
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );

    let r = app.gql(&t.admin_key, START, json!({ "id": test })).await;
    assert_eq!(
        r["data"]["startPromptAbTest"]["test"]["status"], "RUNNING",
        "{r}"
    );
    // One running test per prompt.
    let r = app
        .gql(
            &t.admin_key,
            TEST,
            json!({ "i": with(json!({ "testName": "second" })) }),
        )
        .await;
    let second = r["data"]["createPromptAbTest"]["test"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.gql(&t.admin_key, START, json!({ "id": second })).await;
    assert_eq!(user_error_code(&r, "startPromptAbTest"), "CONFLICT", "{r}");

    // Each key keeps its arm; the shares follow the percentages (30 % of 400 keys: the
    // hash's exact shares over 10 000 keys are a unit test of `stats::bucket`).
    let analyst = app.key(&t, growthgraph::auth::Role::Analyst).await;
    let mut control = 0;
    for i in 0..400 {
        let key = format!("lead-{i}");
        let a = app
            .gql(&analyst, ASSIGN, json!({ "t": "v1 vs v2", "k": key }))
            .await;
        let b = app
            .gql(&t.admin_key, ASSIGN, json!({ "t": "v1 vs v2", "k": key }))
            .await;
        assert_eq!(a["data"], b["data"], "{a} {b}");
        let arm = &a["data"]["assignPromptVariant"];
        match arm["arm"].as_str() {
            Some("CONTROL") => {
                control += 1;
                assert_eq!(arm["variant"]["id"], json!(v1));
            }
            Some("TREATMENT") => assert_eq!(arm["variant"]["id"], json!(v2)),
            _ => panic!("{a}"),
        }
    }
    assert!(
        (90..=150).contains(&control),
        "{control} of 400 in a 30 % arm"
    );

    // An arm of a running test is not retired; the test stops once.
    let retire = "mutation($id: ID!) { updatePromptVariant(input: { id: $id, isActive: false }) { prompt { isActive } userErrors { code } } }";
    let r = app.gql(&t.admin_key, retire, json!({ "id": v1 })).await;
    assert_eq!(
        user_error_code(&r, "updatePromptVariant"),
        "CONFLICT",
        "{r}"
    );
    let r = app.gql(&t.admin_key, STOP, json!({ "id": test })).await;
    assert_eq!(
        r["data"]["stopPromptAbTest"]["test"]["status"], "CANCELLED",
        "{r}"
    );
    let r = app.gql(&t.admin_key, STOP, json!({ "id": test })).await;
    assert_eq!(
        user_error_code(&r, "stopPromptAbTest"),
        "INVALID_TRANSITION"
    );
    let r = app.gql(&t.admin_key, retire, json!({ "id": v1 })).await;
    assert_eq!(
        r["data"]["updatePromptVariant"]["prompt"]["isActive"], false,
        "{r}"
    );
    // Text and state change in one statement: one field or both cost the same.
    let update = "mutation($i: UpdatePromptVariantInput!) { updatePromptVariant(input: $i) { prompt { text isActive } userErrors { code } } }";
    let mut statements = Vec::new();
    for (input, expected) in [
        (
            json!({ "id": v1, "text": "Hello" }),
            json!({ "text": "Hello", "isActive": false }),
        ),
        (
            json!({ "id": v1, "text": "Bonjour", "isActive": true }),
            json!({ "text": "Bonjour", "isActive": true }),
        ),
    ] {
        let request = app.gql(&t.admin_key, update, json!({ "i": input }));
        let (r, cost) = crate::common::statements_of(&app, request).await;
        statements.push(cost);
        assert_eq!(r["data"]["updatePromptVariant"]["prompt"], expected, "{r}");
    }
    assert_eq!(
        statements[0], statements[1],
        "one UPDATE for one field or two"
    );
    // Analysts read, they do not run tests.
    let r = app.gql(&analyst, START, json!({ "id": second })).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_executions_are_tallied_exactly_and_the_winner_replaces_its_parent() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prompt Winner").await;
    let a = variant(&app, &t, "lead_analysis", "lead_a").await;
    let b = variant(&app, &t, "lead_analysis", "lead_b").await;
    running_test(&app, &t, json!({ "testName": "a vs b", "controlVariantId": a, "treatmentVariantId": b, "minSampleSize": 40 })).await;

    // Refused executions write nothing.
    let executions = format!(
        "SELECT count(*) AS n FROM prompt_performance WHERE tenant_id = '{}'",
        t.id
    );
    for (input, field) in [
        (json!({ "variantId": a, "executionId": "x" }), "quality"),
        (
            json!({ "variantId": a, "executionId": "x", "quality": 1.5 }),
            "quality",
        ),
        (
            json!({ "variantId": a, "executionId": "x", "quality": 0.5, "environment": "moon" }),
            "environment",
        ),
        (
            json!({ "variantId": a, "executionId": "x", "quality": 0.5, "userRating": 9 }),
            "userRating",
        ),
        (
            json!({ "variantId": uuid::Uuid::new_v4(), "executionId": "x", "quality": 0.5 }),
            "variantId",
        ),
    ] {
        let p = execute(&app, &t.admin_key, input).await;
        assert_eq!(p["userErrors"][0]["field"], json!(["input", field]), "{p}");
    }
    assert_eq!(count(&app, &executions).await, 0);

    // Control: 12 successes of 40; treatment: 28 of 40 (quality 0.9 a success, 0.3 not),
    // all 80 at once. By hand: pooled p = 0.5, standard error √(0.25 × (2/40)) = 0.111803,
    // z = 0.4 / 0.111803 = 3.57771, two-sided p = erfc(3.57771 / √2) = 0.00035.
    let partner = app.key(&t, growthgraph::auth::Role::Partner).await;
    let calls = (0..80).map(|i| {
        let (variant, successes) = if i % 2 == 0 { (&a, 12) } else { (&b, 28) };
        let quality = if i / 2 < successes { 0.9 } else { 0.3 };
        let input = json!({ "variantId": variant, "executionId": format!("exec-{i}"), "quality": quality,
            "latencyMs": 850, "tokens": 512, "costUsd": "0.001024" });
        let (app, key) = (&app, &partner);
        async move { execute(app, key, input).await }
    });
    for p in futures_util::future::join_all(calls).await {
        assert_eq!(p["userErrors"], json!([]), "{p}");
    }
    let s = state(&app, &t.admin_key, "a vs b").await;
    assert_eq!(s["status"], "COMPLETED", "{s}");
    assert_eq!(s["outcome"], "WINNER");
    assert_eq!(s["controlResults"]["executions"], 40);
    assert_eq!(s["controlResults"]["successes"], 12);
    assert_eq!(s["treatmentResults"]["successes"], 28);
    assert!(
        (s["pValue"].as_f64().unwrap() - 0.00035).abs() < 1e-5,
        "{s}"
    );
    assert_eq!(s["winner"]["variantId"], "lead_b");
    // The parent is retired; the variants' scores are their mean quality.
    assert_eq!(
        (
            &s["control"]["isActive"],
            &s["control"]["usageCount"],
            &s["control"]["score"]
        ),
        (&json!(false), &json!(40), &json!("0.48"))
    );
    assert_eq!(
        (
            &s["treatment"]["isActive"],
            &s["treatment"]["usageCount"],
            &s["treatment"]["score"]
        ),
        (&json!(true), &json!(40), &json!("0.72"))
    );
    let r = app.gql(&t.admin_key, "{ promptEvolutions { evolutionType improvementScore parent { variantId } child { variantId } } }", json!({})).await;
    assert_eq!(
        r["data"]["promptEvolutions"],
        json!([{ "evolutionType": "optimization", "improvementScore": "0.40",
                 "parent": { "variantId": "lead_a" }, "child": { "variantId": "lead_b" } }])
    );
    // Every subject now gets the winner; an execution recorded again is refused.
    let r = app
        .gql(
            &t.admin_key,
            ASSIGN,
            json!({ "t": "a vs b", "k": "anyone" }),
        )
        .await;
    assert_eq!(r["data"]["assignPromptVariant"]["arm"], "WINNER", "{r}");
    assert_eq!(
        r["data"]["assignPromptVariant"]["variant"]["variantId"],
        "lead_b"
    );
    let p = execute(
        &app,
        &partner,
        json!({ "variantId": b, "executionId": "exec-1", "quality": 0.9 }),
    )
    .await;
    assert_eq!(p["userErrors"][0]["code"], "CONFLICT", "{p}");
    assert_eq!(count(&app, &executions).await, 80);
    // Outside any test, racing executions still each count in the score: 20 more of
    // quality 0.9 make (25.2 + 3.6 + 18) / 60 = 0.78.
    let calls = (0..20).map(|i| {
        let input = json!({ "variantId": b, "executionId": format!("later-{i}"), "quality": 0.9 });
        let (app, key) = (&app, &partner);
        async move { execute(app, key, input).await }
    });
    futures_util::future::join_all(calls).await;
    let r = app
        .gql(
            &t.admin_key,
            "{ prompts(name: \"lead_analysis\") { nodes { variantId usageCount score } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["prompts"]["nodes"][0],
        json!({ "variantId": "lead_b", "usageCount": 60, "score": "0.78" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_without_evidence_closes_inconclusive_and_feedback_is_learned_once() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prompt Clock").await;
    let a = variant(&app, &t, "reply_writer", "reply_a").await;
    let b = variant(&app, &t, "reply_writer", "reply_b").await;
    running_test(
        &app,
        &t,
        json!({ "testName": "slow", "controlVariantId": a, "treatmentVariantId": b,
        "minSampleSize": 1000, "maxDurationDays": 1 }),
    )
    .await;
    for i in 0..20 {
        let variant = if i % 2 == 0 { &a } else { &b };
        let p = execute(&app, &t.admin_key, json!({ "variantId": variant, "executionId": format!("e{i}"), "quality": if i % 4 < 2 { 0.9 } else { 0.2 } })).await;
        assert_eq!(p["test"]["status"], "RUNNING", "{p}");
    }
    // Before its time: still running.
    assert!(!tick(&app, &t, Utc::now())
        .await
        .iter()
        .any(|(task, _)| *task == "prompt_tests"));
    let ran = tick(&app, &t, Utc::now() + Duration::days(2)).await;
    assert!(
        ran.iter()
            .any(|(task, r)| *task == "prompt_tests" && r["closed"] == 1),
        "{ran:?}"
    );
    let s = state(&app, &t.admin_key, "slow").await;
    assert_eq!(
        (&s["status"], &s["outcome"], &s["winner"]),
        (&json!("COMPLETED"), &json!("INCONCLUSIVE"), &json!(null)),
        "{s}"
    );
    assert!(s["pValue"].as_f64().unwrap() > 0.05, "{s}");
    assert_eq!(
        (&s["control"]["isActive"], &s["treatment"]["isActive"]),
        (&json!(true), &json!(true))
    );
    let r = app
        .gql(&t.admin_key, ASSIGN, json!({ "t": "slow", "k": "x" }))
        .await;
    assert_eq!(r["data"]["assignPromptVariant"]["arm"], "CONTROL", "{r}");

    // Feedback: processed once by the scheduler; the execution it judges gains a tenth of
    // the learning impact (0.8 × 50 / 100 = 0.4 → quality 0.5 + 0.04), and its variant's
    // score, the mean quality of its 11 executions, follows: (5 × 0.9 + 5 × 0.2 + 0.5) / 11
    // = 0.545 before, 6.04 / 11 = 0.549 after.
    let mut owner = app.owner().await;
    use diesel_async::SimpleAsyncConnection;
    owner
        .batch_execute(&format!(
            "INSERT INTO feedback_tracking (id, tenant_id, action_type, outcome, confidence_score, impact_score)
             VALUES ('00000000-0000-0000-0000-00000000f00d', '{}', 'email_response', 'positive', 0.8, 50)",
            t.id
        ))
        .await
        .unwrap();
    let p = execute(
        &app,
        &t.admin_key,
        json!({ "variantId": b, "executionId": "judged", "quality": 0.5,
        "feedbackId": "00000000-0000-0000-0000-00000000f00d" }),
    )
    .await;
    assert_eq!(p["prompt"]["score"], "0.545", "{p}");
    let ran = tick(&app, &t, Utc::now()).await;
    assert!(
        ran.iter()
            .any(|(task, r)| *task == "feedback_learning" && r["processed"] == 1),
        "{ran:?}"
    );
    let learned = format!(
        "SELECT count(*) AS n FROM feedback_tracking WHERE tenant_id = '{}' AND learning_applied
           AND learning_impact = 0.4 AND processed_at IS NOT NULL",
        t.id
    );
    assert_eq!(count(&app, &learned).await, 1);
    let judged = format!(
        "SELECT count(*) AS n FROM prompt_performance WHERE tenant_id = '{}' AND execution_id = 'judged' AND output_quality_score = 0.54",
        t.id
    );
    assert_eq!(count(&app, &judged).await, 1);
    let r = app
        .gql(
            &t.admin_key,
            "{ prompts(name: \"reply_writer\") { nodes { variantId score } } }",
            json!({}),
        )
        .await;
    let score = r["data"]["prompts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["variantId"] == "reply_b")
        .unwrap()["score"]
        .clone();
    assert_eq!(score, "0.549", "{r}");
    assert!(!tick(&app, &t, Utc::now())
        .await
        .iter()
        .any(|(task, _)| *task == "feedback_learning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_tests_stay_within_their_tenant() {
    let app = TestApp::start().await;
    let a = app.bare_tenant("Prompt A").await;
    let b = app.bare_tenant("Prompt B").await;
    let v1 = variant(&app, &a, "lead_analysis", "v1").await;
    let v2 = variant(&app, &a, "lead_analysis", "v2").await;
    let test = running_test(
        &app,
        &a,
        json!({ "testName": "mine", "controlVariantId": v1, "treatmentVariantId": v2 }),
    )
    .await;
    let r = app.gql(&b.admin_key, "{ promptAbTests { nodes { id } } promptAbTest(testName: \"mine\") { id } promptEvolutions { id } prompts { nodes { id } } }", json!({})).await;
    assert_eq!(
        r["data"],
        json!({ "promptAbTests": { "nodes": [] }, "promptAbTest": null, "promptEvolutions": [], "prompts": { "nodes": [] } }),
        "{r}"
    );
    let r = app
        .gql(&b.admin_key, ASSIGN, json!({ "t": "mine", "k": "x" }))
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );
    for (mutation, vars, name) in [
        (STOP, json!({ "id": test }), "stopPromptAbTest"),
        ("mutation($id: ID!) { updatePromptVariant(input: { id: $id, text: \"x\" }) { userErrors { code } } }", json!({ "id": v1 }), "updatePromptVariant"),
        (EXECUTE, json!({ "i": { "variantId": v1, "executionId": "x", "quality": 0.5 } }), "recordPromptExecution"),
        (TEST, json!({ "i": { "testName": "theirs", "controlVariantId": v1, "treatmentVariantId": v2 } }), "createPromptAbTest"),
    ] {
        let r = app.gql(&b.admin_key, mutation, vars).await;
        assert_eq!(r["data"][name]["userErrors"][0]["code"], "NOT_FOUND", "{name}: {r}");
    }
    // The same names in another tenant are free.
    variant(&app, &b, "lead_analysis", "v1").await;
}
