//! Prospects: recorded, qualified, contacted and converted once; refusals that write nothing; races.

use super::*;

/// `tenant`'s prospects and their `prospect.changed` events.
async fn prospect_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("prospects", tenant, "prospect.changed")
        .await
}

async fn update_prospect(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, UPDATE_PROSPECT, json!({ "input": input }))
        .await["data"]["updateProspect"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prospects_are_recorded_then_qualified_contacted_and_converted_once() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prospecting").await;
    let partner = app.key(&t, Role::Partner).await;
    let call = report(
        &app,
        &partner,
        json!({ "provider": "VAPI", "direction": "INBOUND", "status": "COMPLETED", "agentType": "QUALIFICATION" }),
    )
    .await["call"]["id"]
        .clone();
    let r = app
        .gql(
            &partner,
            RECORD_PROSPECT,
            json!({ "input": { "name": "Hugo", "email": "Hugo@Corp.example", "qualificationScore": 64,
                "source": "WEB", "callId": call, "need": "Corporate gifts" } }),
        )
        .await;
    let prospect = r["data"]["recordProspect"]["prospect"].clone();
    assert_eq!(
        prospect,
        json!({ "id": prospect["id"], "name": "Hugo", "email": "hugo@corp.example", "status": "NEW",
                "qualificationScore": 64, "source": "web", "callId": call, "notes": null }),
        "{r}"
    );
    let id = prospect["id"].clone();
    let r = update_prospect(
        &app,
        &partner,
        json!({ "id": id, "status": "QUALIFIED", "qualificationScore": 82 }),
    )
    .await;
    assert_eq!(
        (
            &r["prospect"]["status"],
            &r["prospect"]["qualificationScore"]
        ),
        (&json!("QUALIFIED"), &json!(82)),
        "{r}"
    );
    let r = update_prospect(
        &app,
        &partner,
        json!({ "id": id, "notes": "Wants 200 boxes" }),
    )
    .await;
    assert_eq!(
        (&r["prospect"]["status"], &r["prospect"]["notes"]),
        (&json!("QUALIFIED"), &json!("Wants 200 boxes")),
        "{r}"
    );
    for status in ["CONTACTED", "CONVERTED"] {
        let r = update_prospect(&app, &partner, json!({ "id": id, "status": status })).await;
        assert_eq!(r["prospect"]["status"], status, "{r}");
    }
    for change in [
        json!({ "status": "QUALIFIED" }),
        json!({ "qualificationScore": 10 }),
        json!({ "notes": null }),
    ] {
        let mut input = change.clone();
        input["id"] = id.clone();
        let r = update_prospect(&app, &partner, input).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "converted is final: {change}: {r}"
        );
    }
    // A new prospect cannot jump to converted.
    let r = app
        .gql(
            &partner,
            RECORD_PROSPECT,
            json!({ "input": { "name": "Ines" } }),
        )
        .await;
    let other = r["data"]["recordProspect"]["prospect"]["id"].clone();
    let r = update_prospect(
        &app,
        &partner,
        json!({ "id": other, "status": "CONVERTED" }),
    )
    .await;
    assert_eq!(r["userErrors"][0]["code"], "INVALID_TRANSITION", "{r}");
    let listed = app
        .page_ids(&t.admin_key, "prospects", ", status: CONVERTED")
        .await;
    assert_eq!(listed, vec![id.as_str().unwrap().to_owned()]);
    let (rows, events) = prospect_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (2, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_prospects_and_prospect_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let their_prospect = app
        .page_ids(&other.admin_key, "prospects", "")
        .await
        .remove(0);
    let mine = app.page_ids(&t.admin_key, "prospects", "").await.remove(0);
    let their_call = app.page_ids(&other.admin_key, "calls", "").await.remove(0);
    let before = prospect_rows(&app, t.id).await;
    for (input, field, code) in [
        (json!({ "name": "" }), "name", "INVALID"),
        (json!({ "name": "P", "email": "nope" }), "email", "INVALID"),
        (
            json!({ "name": "P", "qualificationScore": 101 }),
            "qualificationScore",
            "INVALID",
        ),
        (
            json!({ "name": "P", "need": "x".repeat(2001) }),
            "need",
            "INVALID",
        ),
        (
            json!({ "name": "P", "callId": their_call }),
            "callId",
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, RECORD_PROSPECT, json!({ "input": input }))
            .await;
        let error = &r["data"]["recordProspect"]["userErrors"][0];
        assert_eq!(
            (&error["field"], &error["code"]),
            (&json!(["input", field]), &json!(code)),
            "{input}: {r}"
        );
    }
    for (input, code) in [
        (json!({ "id": mine }), "INVALID"),
        (json!({ "id": mine, "qualificationScore": -1 }), "INVALID"),
        (
            json!({ "id": their_prospect, "status": "QUALIFIED" }),
            "NOT_FOUND",
        ),
    ] {
        let r = update_prospect(&app, &t.admin_key, input.clone()).await;
        assert_eq!(r["userErrors"][0]["code"], code, "{input}: {r}");
    }
    let r = app
        .gql(
            &t.admin_key,
            RECORD_PROSPECT,
            json!({ "input": { "name": "P", "source": "FAX" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            RECORD_PROSPECT,
            json!({ "input": { "name": "P" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(prospect_rows(&app, t.id).await, before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_prospect_changes_convert_once() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prospecting").await;
    let r = app
        .gql(
            &t.admin_key,
            RECORD_PROSPECT,
            json!({ "input": { "name": "Hugo" } }),
        )
        .await;
    let id = r["data"]["recordProspect"]["prospect"]["id"].clone();
    let r = update_prospect(
        &app,
        &t.admin_key,
        json!({ "id": id, "status": "QUALIFIED" }),
    )
    .await;
    assert_eq!(r["prospect"]["status"], "QUALIFIED");
    // Converting and disqualifying at once, under the row's lock: one conversion at most,
    // and once converted nothing else applies.
    let changes = [
        "CONVERTED",
        "UNQUALIFIED",
        "CONVERTED",
        "CONTACTED",
        "CONVERTED",
        "UNQUALIFIED",
    ];
    let results = futures_util::future::join_all(
        changes
            .iter()
            .map(|s| update_prospect(&app, &t.admin_key, json!({ "id": id, "status": s }))),
    )
    .await;
    let converted = results
        .iter()
        .filter(|r| r["prospect"]["status"] == "CONVERTED")
        .count();
    assert!(converted <= 1, "{results:?}");
    for r in &results {
        assert!(
            r["prospect"].is_object() || r["userErrors"][0]["code"] == "INVALID_TRANSITION",
            "{r}"
        );
    }
    let applied = results.iter().filter(|r| r["prospect"].is_object()).count() as i64;
    let (rows, events) = prospect_rows(&app, t.id).await;
    assert_eq!((rows.len() as i64, events), (1, 2 + applied));
}
