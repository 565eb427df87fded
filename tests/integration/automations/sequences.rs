//! Email sequences: started, paused, resumed and cancelled once each way; refusals that write nothing; races.

use super::*;

/// `tenant`'s email sequences and their `email_sequence.changed` events.
async fn sequence_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("email_sequences", tenant, "email_sequence.changed")
        .await
}

const START: &str =
    "mutation($input: StartEmailSequenceInput!) { startEmailSequence(input: $input) {
    emailSequence { id recipientEmail segment status currentStep nextSendAt contactId }
    userErrors { field code message } } }";

/// `pause`, `resume` or `cancel` of the sequence `id`: its answer.
async fn change_sequence(app: &TestApp, key: &str, change: &str, id: &str) -> Value {
    let query = format!(
        "mutation($id: ID!) {{ {change}EmailSequence(input: {{ id: $id }}) {{
            emailSequence {{ id status nextSendAt }} userErrors {{ field code }} }} }}"
    );
    app.gql(key, &query, json!({ "id": id })).await["data"][format!("{change}EmailSequence")]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_sequences_start_pause_resume_and_cancel_once_each_way() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Sequences").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(
            &partner,
            START,
            json!({ "input": { "recipientEmail": " Frozen@Example.com ", "segment": "FROZEN_STARTER" } }),
        )
        .await;
    let started = r["data"]["startEmailSequence"]["emailSequence"].clone();
    assert_eq!(
        r["data"]["startEmailSequence"]["userErrors"],
        json!([]),
        "{r}"
    );
    assert_eq!(
        (
            &started["recipientEmail"],
            &started["segment"],
            &started["status"],
            &started["currentStep"]
        ),
        (
            &json!("frozen@example.com"),
            &json!("FROZEN_STARTER"),
            &json!("ACTIVE"),
            &json!(0)
        )
    );
    assert!(started["nextSendAt"].is_string(), "the first step is due");
    let id = started["id"].as_str().unwrap().to_owned();

    let paused = change_sequence(&app, &t.admin_key, "pause", &id).await;
    assert_eq!(paused["emailSequence"]["status"], "PAUSED", "{paused}");
    assert!(paused["emailSequence"]["nextSendAt"].is_null());
    // Listed by status.
    let listed = app
        .page_ids(&t.admin_key, "emailSequences", ", status: PAUSED")
        .await;
    assert_eq!(listed, vec![id.clone()]);
    let resumed = change_sequence(&app, &t.admin_key, "resume", &id).await;
    assert_eq!(resumed["emailSequence"]["status"], "ACTIVE", "{resumed}");
    assert!(resumed["emailSequence"]["nextSendAt"].is_string());
    // Open: a second one for the same recipient and segment is a conflict (any case of
    // the address); another segment is not.
    let again =
        json!({ "input": { "recipientEmail": "FROZEN@example.com", "segment": "FROZEN_STARTER" } });
    let r = app.gql(&partner, START, again.clone()).await;
    assert_eq!(user_error_code(&r, "startEmailSequence"), "CONFLICT", "{r}");
    let other_segment =
        json!({ "input": { "recipientEmail": "frozen@example.com", "segment": "FREE_MAXIMIZER" } });
    let r = app.gql(&partner, START, other_segment).await;
    assert_eq!(
        r["data"]["startEmailSequence"]["emailSequence"]["status"], "ACTIVE",
        "{r}"
    );

    let cancelled = change_sequence(&app, &t.admin_key, "cancel", &id).await;
    assert_eq!(
        cancelled["emailSequence"]["status"], "CANCELLED",
        "{cancelled}"
    );
    // Closed: a new one may start.
    let r = app.gql(&partner, START, again).await;
    assert_eq!(
        r["data"]["startEmailSequence"]["emailSequence"]["status"], "ACTIVE",
        "{r}"
    );
    assert_eq!(sequence_rows(&app, t.id).await.1, 6, "one event per change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sequence_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Sequences").await;
    let other = app.tenant("Winery B").await;
    let r = app
        .gql(
            &t.admin_key,
            START,
            json!({ "input": { "recipientEmail": "a@example.com", "segment": "COLLECTOR_UNUSED" } }),
        )
        .await;
    let id = r["data"]["startEmailSequence"]["emailSequence"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = app
        .page_ids(&other.admin_key, "emailSequences", "")
        .await
        .remove(0);
    let cancelled = change_sequence(&app, &t.admin_key, "cancel", &id).await;
    assert_eq!(cancelled["emailSequence"]["status"], "CANCELLED");
    let before = sequence_rows(&app, t.id).await;
    let others_before = sequence_rows(&app, other.id).await;

    for (input, field, code) in [
        (
            json!({ "recipientEmail": "not-an-address", "segment": "COLLECTOR_UNUSED" }),
            "recipientEmail",
            "INVALID",
        ),
        (
            json!({ "recipientEmail": "b@example.com", "segment": "COLLECTOR_UNUSED",
                 "contactId": "00000000-0000-0000-0000-000000000001" }),
            "contactId",
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, START, json!({ "input": input }))
            .await;
        let error = &r["data"]["startEmailSequence"]["userErrors"][0];
        assert_eq!(
            (&error["field"], &error["code"]),
            (&json!(["input", field]), &json!(code)),
            "{r}"
        );
    }
    // Unknown segment, malformed id: refused before anything runs.
    let r = app
        .gql(
            &t.admin_key,
            START,
            json!({ "input": { "recipientEmail": "b@example.com", "segment": "VIP" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &t.admin_key,
            "mutation { pauseEmailSequence(input: { id: \"nope\" }) { userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    // No way out of cancelled; another tenant's sequence does not exist here.
    for change in ["pause", "resume", "cancel"] {
        let r = change_sequence(&app, &t.admin_key, change, &id).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "{change}: {r}"
        );
        let r = change_sequence(&app, &t.admin_key, change, &theirs).await;
        assert_eq!(r["userErrors"][0]["code"], "NOT_FOUND", "{change}: {r}");
    }
    // Analysts start nothing; partners start sequences but do not change them.
    let analyst = app.key(&t, Role::Analyst).await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(&analyst, START, json!({ "input": { "recipientEmail": "c@example.com", "segment": "COLLECTOR_UNUSED" } }))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = app
        .gql(
            &partner,
            "mutation($id: ID!) { pauseEmailSequence(input: { id: $id }) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(sequence_rows(&app, t.id).await, before, "nothing written");
    assert_eq!(sequence_rows(&app, other.id).await, others_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_starts_open_one_sequence_and_racing_changes_apply_one_at_a_time() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Sequences").await;
    let start = json!({ "input": { "recipientEmail": "race@example.com", "segment": "REJECTED_REQUESTER" } });
    let answers =
        futures_util::future::join_all((0..8).map(|_| app.gql(&t.admin_key, START, start.clone())))
            .await;
    let started: Vec<&Value> = answers
        .iter()
        .map(|r| &r["data"]["startEmailSequence"])
        .filter(|p| p["emailSequence"].is_object())
        .collect();
    assert_eq!(started.len(), 1, "{answers:?}");
    for r in &answers {
        let p = &r["data"]["startEmailSequence"];
        assert!(
            p["emailSequence"].is_object() || p["userErrors"][0]["code"] == "CONFLICT",
            "{r}"
        );
    }
    let id = started[0]["emailSequence"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Pauses and cancels at once: exactly one pause can win (from active), exactly one
    // cancel (from active or paused); every other one is refused.
    let changes = ["pause", "cancel", "pause", "cancel", "pause", "cancel"];
    let answers = futures_util::future::join_all(
        changes
            .iter()
            .map(|change| change_sequence(&app, &t.admin_key, change, &id)),
    )
    .await;
    let applied: Vec<&str> = changes
        .iter()
        .zip(&answers)
        .filter(|(_, r)| r["emailSequence"].is_object())
        .map(|(change, _)| *change)
        .collect();
    for r in &answers {
        assert!(
            r["emailSequence"].is_object() || r["userErrors"][0]["code"] == "INVALID_TRANSITION",
            "{r}"
        );
    }
    assert_eq!(
        applied.iter().filter(|c| **c == "cancel").count(),
        1,
        "{applied:?}"
    );
    assert!(
        applied.iter().filter(|c| **c == "pause").count() <= 1,
        "{applied:?}"
    );
    let (rows, events) = sequence_rows(&app, t.id).await;
    assert_eq!((rows.len() as i64, events), (1, 1 + applied.len() as i64));
    assert!(rows[0].contains("\"status\":\"cancelled\""), "{rows:?}");
}
