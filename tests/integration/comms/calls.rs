//! Call reports: applied forward only, refusals that write nothing, racing reports.

use super::*;

/// `tenant`'s calls and their `call.recorded` events.
async fn call_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("call_logs", tenant, "call.recorded")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_one_call_update_it_and_never_move_it_back() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Calls").await;
    let partner = app.key(&t, Role::Partner).await;
    let call = |status: &str| json!({ "provider": "VAPI", "providerCallId": "call_42", "direction": "INBOUND", "status": status });
    let ringing = report(&app, &partner, call("RINGING")).await;
    assert_eq!(ringing["call"]["status"], "RINGING", "{ringing}");
    let id = ringing["call"]["id"].clone();
    let mut in_progress = call("IN_PROGRESS");
    in_progress["agentType"] = json!("SUPPORT");
    let r = report(&app, &partner, in_progress).await;
    assert_eq!(
        (
            &r["call"]["id"],
            &r["call"]["status"],
            &r["call"]["agentType"]
        ),
        (&id, &json!("IN_PROGRESS"), &json!("support")),
        "{r}"
    );
    let mut completed = call("COMPLETED");
    completed["durationSeconds"] = json!(185);
    completed["summary"] = json!("Damaged bottle reported");
    let r = report(&app, &partner, completed).await;
    assert_eq!(
        (
            &r["call"]["status"],
            &r["call"]["durationSeconds"],
            &r["call"]["agentType"]
        ),
        (&json!("COMPLETED"), &json!(185), &json!("support")),
        "what a report leaves out stays: {r}"
    );
    // A late report: the call stays completed.
    let r = report(&app, &partner, call("RINGING")).await;
    assert_eq!(
        (&r["call"]["id"], &r["call"]["status"]),
        (&id, &json!("COMPLETED")),
        "{r}"
    );
    // The same id from another provider, and a report without an id, are other calls.
    let mut twilio = call("COMPLETED");
    twilio["provider"] = json!("TWILIO");
    assert_ne!(report(&app, &partner, twilio).await["call"]["id"], id);
    for _ in 0..2 {
        let r = report(
            &app,
            &partner,
            json!({ "provider": "VAPI", "direction": "OUTBOUND", "status": "NO_ANSWER" }),
        )
        .await;
        assert_eq!(r["call"]["status"], "NO_ANSWER", "{r}");
    }
    let (rows, events) = call_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (4, 7));
    let listed = app.page_ids(&t.admin_key, "calls", "").await;
    assert_eq!(listed.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_call_reports_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let theirs = app
        .page_ids(&other.admin_key, "customers", "")
        .await
        .remove(0);
    let before = call_rows(&app, t.id).await;
    let base = json!({ "provider": "RETELL", "providerCallId": "r1", "direction": "INBOUND", "status": "COMPLETED" });
    let with = |extra: Value| {
        let mut input = base.clone();
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    for (input, field, code) in [
        (
            with(json!({ "durationSeconds": -1 })),
            "durationSeconds",
            "INVALID",
        ),
        (
            with(json!({ "recordingUrl": "ftp://x/y.mp3" })),
            "recordingUrl",
            "INVALID",
        ),
        (
            with(json!({ "providerCallId": "" })),
            "providerCallId",
            "INVALID",
        ),
        (
            with(json!({ "startedAt": "2026-11-20T10:00:00Z", "endedAt": "2026-11-20T09:00:00Z" })),
            "endedAt",
            "INVALID",
        ),
        (
            with(json!({ "summary": "a\u{0}" })),
            "summary",
            "BAD_USER_INPUT",
        ),
        (
            with(json!({ "customerId": theirs })),
            "customerId",
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, RECORD_CALL, json!({ "input": input.clone() }))
            .await;
        assert_eq!(
            refusal(&r, "recordCall"),
            (&json!(["input", field]), &json!(code)),
            "{input}: {r}"
        );
    }
    let r = app
        .gql(
            &t.admin_key,
            RECORD_CALL,
            json!({ "input": with(json!({ "status": "HUNG_UP" })) }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app
        .gql(&analyst, RECORD_CALL, json!({ "input": base }))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(call_rows(&app, t.id).await, before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reports_of_one_call_make_one_row_at_its_furthest_status() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Calls").await;
    let statuses = [
        "QUEUED",
        "RINGING",
        "COMPLETED",
        "IN_PROGRESS",
        "RINGING",
        "QUEUED",
        "IN_PROGRESS",
        "RINGING",
    ];
    let answers = futures_util::future::join_all(statuses.iter().map(|status| {
        report(
            &app,
            &t.admin_key,
            json!({ "provider": "TWILIO", "providerCallId": "CA123", "direction": "OUTBOUND", "status": status }),
        )
    }))
    .await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|r| {
            r["call"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let (rows, events) = call_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (1, 8));
    assert!(rows[0].contains("\"status\":\"completed\""), "{rows:?}");
}
