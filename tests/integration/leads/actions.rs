//! Lead actions audited once each, refused transitions writing nothing, concurrent tagging.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lead_action_is_audited_once_and_refused_transitions_write_nothing() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Leads A").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(&partner, INGEST, json!({ "input": { "name": "Ana", "email": "ana@bistro.example", "message": "20 cases a month?", "language": "FR",
            "intent": "B2B partnership", "tone": "Professional", "urgency": "HIGH", "confidenceScore": "0.91", "idempotencyKey": "form-1" } }))
        .await;
    let id = r["data"]["ingestLead"]["lead"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = app.gql(&partner, INGEST, json!({ "input": { "name": "Ana", "email": "ana@bistro.example", "message": "20 cases a month?", "language": "FR",
            "intent": "B2B partnership", "tone": "Professional", "urgency": "HIGH", "confidenceScore": "0.91", "idempotencyKey": "form-1" } })).await;
    assert_eq!(
        replay["data"]["ingestLead"]["lead"]["id"],
        id.as_str(),
        "idempotent ingest"
    );
    // Partners ingest but do not curate.
    let r = app
        .gql(
            &partner,
            &act("tagLead", ", tag: \"x\""),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN");

    assert_eq!(
        code(&run(&app, &t, "tagLead", ", tag: \"no/slashes!\"", &id).await),
        Some("INVALID")
    );
    let p = run(&app, &t, "tagLead", ", tag: \"Lead Chaud\"", &id).await;
    assert_eq!(p["lead"]["currentTag"], "Lead Chaud");
    assert_eq!(
        run(&app, &t, "archiveLead", "", &id).await["lead"]["archived"],
        true
    );
    assert_eq!(
        code(&run(&app, &t, "archiveLead", "", &id).await),
        Some("INVALID_TRANSITION")
    );
    let listed = app
        .gql(&t.admin_key, "{ leads { nodes { id } } }", json!({}))
        .await;
    assert!(
        !listed.to_string().contains(&id),
        "archived leads are hidden by default"
    );
    let listed = app
        .gql(
            &t.admin_key,
            "{ leads(filter: { archived: true }) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(listed.to_string().contains(&id));
    assert_eq!(
        run(&app, &t, "reactivateLead", "", &id).await["lead"]["archived"],
        false
    );
    assert_eq!(
        code(&run(&app, &t, "reactivateLead", "", &id).await),
        Some("INVALID_TRANSITION")
    );

    // Conversion links the lead to the customer's 360 and leaves a feedback record.
    assert_eq!(
        code(&run(&app, &t, "revertLeadConversion", ", reason: \"x\"", &id).await),
        Some("INVALID_TRANSITION")
    );
    assert_eq!(
        run(&app, &t, "convertLead", "", &id).await["lead"]["currentTag"],
        "Converted"
    );
    assert_eq!(
        code(&run(&app, &t, "convertLead", "", &id).await),
        Some("INVALID_TRANSITION")
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { lead(id: $id) { customer { email leads { id } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(r["data"]["lead"]["customer"]["email"], "ana@bistro.example");
    assert_eq!(r["data"]["lead"]["customer"]["leads"][0]["id"], id.as_str());
    let p = run(&app, &t, "revertLeadConversion", ", reason: \"   \"", &id).await;
    assert_eq!(
        (code(&p), &p["userErrors"][0]["field"]),
        (Some("INVALID"), &json!(["input", "reason"]))
    );
    assert!(run(
        &app,
        &t,
        "revertLeadConversion",
        ", reason: \"Duplicate order\"",
        &id
    )
    .await["lead"]["id"]
        .is_string());
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM feedback_tracking WHERE lead_id = '{id}' AND expires_at > now() + interval '364 days'")).await, 2);

    // Notes, analysis history.
    let r = app.gql(&t.admin_key, "mutation($id: ID!) { addLeadNote(input: { leadId: $id, note: \"Call back Tuesday\" }) { note { id } } }", json!({ "id": id })).await;
    let note = r["data"]["addLeadNote"]["note"]["id"].clone();
    let r = app.gql(&t.admin_key, "mutation($id: ID!) { updateLeadNote(input: { noteId: $id, note: \"Call back Wednesday\" }) { note { note } } }", json!({ "id": note })).await;
    assert_eq!(
        r["data"]["updateLeadNote"]["note"]["note"],
        "Call back Wednesday"
    );
    for tone in ["Friendly", "Friendly"] {
        app.gql(&t.admin_key, "mutation($id: ID!, $t: String) { updateLeadAnalysis(input: { leadId: $id, tone: $t, confidenceScore: \"0.75\" }) { lead { tone } } }", json!({ "id": id, "t": tone })).await;
    }
    let r = app.gql(&t.admin_key, "query($id: ID!) { lead(id: $id) { notes { note } history { tone { value } confidence { value } urgency { value } } actions { action tag reversionReason conversionOutcome } } }", json!({ "id": id })).await;
    let lead = &r["data"]["lead"];
    assert_eq!(
        lead["history"]["tone"],
        json!([{ "value": "Professional" }, { "value": "Friendly" }])
    );
    assert_eq!(lead["history"]["confidence"].as_array().unwrap().len(), 2);
    assert_eq!(lead["history"]["urgency"].as_array().unwrap().len(), 1);

    // One UPDATE whatever the analysis changes: five fields cost what one does, and a
    // changed urgency and confidence append to their histories as the tone did.
    let analysis = "mutation($i: UpdateLeadAnalysisInput!) { updateLeadAnalysis(input: $i) { lead { aiSummary intent tone urgency confidenceScore } } }";
    let mut statements = Vec::new();
    for input in [
        json!({ "leadId": id, "intent": "pricing" }),
        json!({ "leadId": id, "aiSummary": "Wants a quote", "intent": "quote", "tone": "Warm",
            "urgency": "LOW", "confidenceScore": "0.5" }),
    ] {
        let request = app.gql(&t.admin_key, analysis, json!({ "i": input }));
        let (r, cost) = crate::common::statements_of(&app, request).await;
        statements.push(cost);
        assert!(r["errors"].is_null(), "{r}");
    }
    assert_eq!(
        statements[0], statements[1],
        "one field or five: one UPDATE"
    );
    let r = app.gql(&t.admin_key, "query($id: ID!) { lead(id: $id) { aiSummary intent tone urgency confidenceScore history { tone { value } confidence { value } urgency { value } } } }", json!({ "id": id })).await;
    let analysed = &r["data"]["lead"];
    assert_eq!(
        (
            &analysed["aiSummary"],
            &analysed["intent"],
            &analysed["tone"],
            &analysed["urgency"]
        ),
        (
            &json!("Wants a quote"),
            &json!("quote"),
            &json!("Warm"),
            &json!("LOW")
        ),
        "{r}"
    );
    assert_eq!(analysed["history"]["tone"].as_array().unwrap().len(), 3);
    assert_eq!(
        analysed["history"]["confidence"].as_array().unwrap().len(),
        3
    );
    assert_eq!(analysed["history"]["urgency"].as_array().unwrap().len(), 2);

    // Deleted: hidden, and every further action refused.
    assert_eq!(
        run(&app, &t, "deleteLead", "", &id).await["lead"]["deleted"],
        true
    );
    for (name, extra) in [
        ("tagLead", ", tag: \"x\""),
        ("archiveLead", ""),
        ("reactivateLead", ""),
        ("deleteLead", ""),
        ("convertLead", ""),
    ] {
        assert_eq!(
            code(&run(&app, &t, name, extra, &id).await),
            Some("INVALID_TRANSITION"),
            "{name} on a deleted lead"
        );
    }
    let listed = app
        .gql(&t.admin_key, "{ leads { nodes { id } } }", json!({}))
        .await;
    assert!(!listed.to_string().contains(&id));

    // Exactly one audit row per successful action, in order.
    let actions: Vec<&str> = lead["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "CREATED",
            "TAGGED",
            "ARCHIVED",
            "REACTIVATED",
            "CONVERTED",
            "REVERTED"
        ]
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM lead_actions WHERE lead_id = '{id}'")
        )
        .await,
        7
    );
    let reverted = &lead["actions"][5];
    assert_eq!(
        (
            reverted["reversionReason"].as_str(),
            reverted["conversionOutcome"].as_bool()
        ),
        (Some("Duplicate order"), Some(false))
    );
    assert_eq!(lead["actions"][4]["conversionOutcome"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tagging_audits_every_tag_and_the_last_one_wins() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Leads A").await;
    let r = app
        .gql(
            &t.admin_key,
            INGEST,
            json!({ "input": { "name": "Bo", "email": "bo@example.com" } }),
        )
        .await;
    let id = r["data"]["ingestLead"]["lead"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tags: Vec<String> = (0..10).map(|i| format!("tag {i}")).collect();
    let results = futures_util::future::join_all(tags.iter().map(|tag| {
        app.gql(&t.admin_key, "mutation($id: ID!, $t: String!) { tagLead(input: { leadId: $id, tag: $t }) { userErrors { code } } }", json!({ "id": id, "t": tag }))
    }))
    .await;
    assert!(
        results.iter().all(|r| r["data"]["tagLead"]["userErrors"]
            .as_array()
            .unwrap()
            .is_empty()),
        "{results:?}"
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { lead(id: $id) { currentTag actions { action tag } } }",
            json!({ "id": id }),
        )
        .await;
    let tagged: Vec<&str> = r["data"]["lead"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "TAGGED")
        .map(|a| a["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tagged.len(), 10);
    let distinct: std::collections::HashSet<_> = tagged.iter().collect();
    assert_eq!(distinct.len(), 10, "each tag audited once");
    assert_eq!(
        r["data"]["lead"]["currentTag"],
        *tagged.last().unwrap(),
        "the last tag wins"
    );
}
