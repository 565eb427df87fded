//! Campaign workflows run by the scheduler: branches on opens, completion, and a restarted server resuming without repeating or skipping a step.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_two_step_workflow_branches_on_opens_and_completes_the_campaign() {
    let (app, t, sink, providers) = setup("Workflows").await;
    let mut ids = Vec::new();
    for (kind, subject) in [
        ("CUSTOM", "New vintage"),
        ("WELCOME", "Thanks for reading"),
        ("UPGRADE", "Did you miss it?"),
    ] {
        let r = app.gql(&t.admin_key, "mutation($i: SaveCommunicationTemplateInput!) { saveCommunicationTemplate(input: $i) { template { id } userErrors { code } } }",
            json!({ "i": { "templateType": kind, "channel": "EMAIL", "name": subject, "subject": subject, "textContent": subject } })).await;
        ids.push(
            r["data"]["saveCommunicationTemplate"]["template"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "INSERT INTO customers (tenant_id, email, segment) VALUES ('{t}', 'ann@flow.example', 'vip'), ('{t}', 'bob@flow.example', 'vip')",
        t = t.id
    )).await.unwrap();
    let node = |id: &str, kind: &str, data: Value| json!({ "id": id, "type": kind, "data": data, "position": { "x": 0, "y": 0 } });
    let edge = |id: &str, from: &str, to: &str, handle: Option<&str>| json!({ "id": id, "source": from, "target": to, "sourceHandle": handle });
    let workflow = json!({
        "nodes": [
            node("start", "trigger", json!({})),
            node("first", "send", json!({ "channel": "email", "templateId": ids[0] })),
            node("pause", "wait", json!({ "hours": 24 })),
            node("opened", "condition", json!({ "check": "opened" })),
            node("thanks", "send", json!({ "channel": "email", "templateId": ids[1] })),
            node("nudge", "send", json!({ "channel": "email", "templateId": ids[2] })),
            node("done", "end", json!({})),
        ],
        "edges": [
            edge("e1", "start", "first", None), edge("e2", "first", "pause", None), edge("e3", "pause", "opened", None),
            edge("e4", "opened", "thanks", Some("yes")), edge("e5", "opened", "nudge", Some("no")),
            edge("e6", "thanks", "done", None), edge("e7", "nudge", "done", None),
        ],
    });
    let create = "mutation($i: CampaignInput!) { createCampaign(input: $i) { campaign { id } userErrors { field code message } } }";
    // Refused, with the path: an unknown node type, a cycle that never waits.
    let mut bad = workflow.clone();
    bad["nodes"][3]["type"] = json!("teleport");
    let r = app
        .gql(
            &t.admin_key,
            create,
            json!({ "i": { "name": "Bad", "workflow": bad } }),
        )
        .await;
    assert_eq!(
        r["data"]["createCampaign"]["userErrors"][0]["field"],
        json!(["input", "workflow", "nodes", "3", "type"])
    );
    let mut cycle = workflow.clone();
    cycle["edges"]
        .as_array_mut()
        .unwrap()
        .push(edge("back", "thanks", "opened", None));
    let r = app
        .gql(
            &t.admin_key,
            create,
            json!({ "i": { "name": "Loop", "workflow": cycle } }),
        )
        .await;
    assert_eq!(user_error_code(&r, "createCampaign"), "INVALID", "{r}");
    assert_eq!(
        r["data"]["createCampaign"]["userErrors"][0]["field"][2],
        "edges"
    );
    let mut waiting_cycle = workflow.clone();
    waiting_cycle["edges"]
        .as_array_mut()
        .unwrap()
        .push(edge("again", "nudge", "pause", None));
    let r = app
        .gql(
            &t.admin_key,
            create,
            json!({ "i": { "name": "Loop with a wait", "workflow": waiting_cycle } }),
        )
        .await;
    assert_eq!(
        r["data"]["createCampaign"]["userErrors"],
        json!([]),
        "a cycle through a wait is allowed"
    );

    let launch_at = at(2027, 9, 1, 8, 0);
    let r = app
        .gql(
            &t.admin_key,
            create,
            json!({ "i": { "name": "Vintage", "targetSegment": "vip", "workflow": workflow,
        "scheduledAt": launch_at.to_rfc3339() } }),
        )
        .await;
    let campaign = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let state = "query($id: ID!) { campaign(id: $id) { status completedAt metrics { sent opened } executions { status metrics } recipients(first: 5) { nodes { id email } } } }";

    assert!(tick(&app, &t, launch_at - Duration::hours(1))
        .await
        .iter()
        .all(|(task, _)| *task != "scheduled_campaigns"));
    let (a, b) = tokio::join!(tick(&app, &t, launch_at), tick(&app, &t, launch_at));
    let launched: Vec<&Value> = a
        .iter()
        .chain(b.iter())
        .filter(|(task, _)| *task == "scheduled_campaigns")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(launched.len(), 1, "launched once");
    // The same instant again: the first sends are not repeated.
    tick(&app, &t, launch_at).await;
    assert_eq!(send_due(&app, &t, &providers).await, 2);
    let r = app
        .gql(&t.admin_key, state, json!({ "id": campaign }))
        .await;
    assert_eq!(r["data"]["campaign"]["status"], "ACTIVE");
    let recipients = r["data"]["campaign"]["recipients"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    let ann = recipients
        .iter()
        .find(|n| n["email"] == "ann@flow.example")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(&t.admin_key, "mutation($r: ID!) { recordDeliveryEvent(input: { recipientId: $r, status: OPENED }) { userErrors { code } } }", json!({ "r": ann })).await;

    // After the wait, two instances tick: each recipient takes its branch once.
    tick(&app, &t, launch_at + Duration::hours(23)).await;
    assert_eq!(send_due(&app, &t, &providers).await, 0);
    let later = launch_at + Duration::hours(25);
    tokio::join!(tick(&app, &t, later), tick(&app, &t, later));
    tick(&app, &t, later + Duration::hours(1)).await;
    assert_eq!(send_due(&app, &t, &providers).await, 2);
    let mail = sink.received();
    let to = |who: &str, subject: &str| {
        mail.iter()
            .filter(|m| {
                m.contains(&format!("To: {who}")) && m.contains(&format!("Subject: {subject}"))
            })
            .count()
    };
    assert_eq!(mail.len(), 4);
    assert_eq!(
        (
            to("ann@flow.example", "New vintage"),
            to("ann@flow.example", "Thanks for reading")
        ),
        (1, 1)
    );
    assert_eq!(
        (
            to("bob@flow.example", "New vintage"),
            to("bob@flow.example", "Did you miss it?")
        ),
        (1, 1)
    );

    let r = app
        .gql(&t.admin_key, state, json!({ "id": campaign }))
        .await;
    let c = &r["data"]["campaign"];
    assert_eq!(c["status"], "COMPLETED", "{r}");
    assert!(c["completedAt"].is_string());
    assert_eq!(c["executions"][0]["status"], "COMPLETED");
    assert_eq!(c["executions"][0]["metrics"]["recipients"], 2);
    let r = app
        .gql(
            &t.admin_key,
            "query($r: ID!) { campaignRun(recipientId: $r) { nodeId status path } }",
            json!({ "r": ann }),
        )
        .await;
    let run = &r["data"]["campaignRun"];
    assert_eq!(
        (run["nodeId"].as_str(), run["status"].as_str()),
        (Some("done"), Some("ended")),
        "{r}"
    );
    let nodes: Vec<&str> = run["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, vec!["first", "pause", "opened", "thanks", "done"]);
    let other = app.bare_tenant("Workflows Other").await;
    let r = app
        .gql(
            &other.admin_key,
            "query($r: ID!) { campaignRun(recipientId: $r) { nodeId } }",
            json!({ "r": ann }),
        )
        .await;
    assert_eq!(r["data"]["campaignRun"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_resumes_a_workflow_without_repeating_or_skipping_a_step() {
    let (app, t, sink, providers) = setup("Resume").await;
    let r = app.gql(&t.admin_key, "mutation { saveCommunicationTemplate(input: { templateType: CUSTOM, channel: EMAIL, name: \"Hello\", subject: \"Hello\", textContent: \"Hello\" }) { template { id } } }", json!({})).await;
    let template = r["data"]["saveCommunicationTemplate"]["template"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut conn = app.owner().await;
    conn.batch_execute(&format!(
        "INSERT INTO customers (tenant_id, email, segment) VALUES ('{}', 'cy@resume.example', 'r')",
        t.id
    ))
    .await
    .unwrap();
    let workflow = json!({
        "nodes": [{ "id": "s", "type": "trigger" }, { "id": "a", "type": "send", "data": { "templateId": template } },
                  { "id": "w", "type": "wait", "data": { "hours": 1 } }, { "id": "b", "type": "send", "data": { "templateId": template } }],
        "edges": [{ "id": "1", "source": "s", "target": "a" }, { "id": "2", "source": "a", "target": "w" }, { "id": "3", "source": "w", "target": "b" }],
    });
    let start = at(2027, 10, 1, 12, 0);
    let r = app.gql(&t.admin_key, "mutation($i: CampaignInput!) { createCampaign(input: $i) { campaign { id } } }",
        json!({ "i": { "name": "Resume", "targetSegment": "r", "workflow": workflow, "scheduledAt": start.to_rfc3339() } })).await;
    let campaign = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A scheduled campaign with no audience cannot launch: it stays a draft, says so, and
    // holds nothing else back.
    let r = app
        .gql(
            &t.admin_key,
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { campaign { id } } }",
            json!({ "i": { "name": "Nobody", "scheduledAt": start.to_rfc3339() } }),
        )
        .await;
    let nobody = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ran = tick(&app, &t, start).await;
    let scheduled = ran
        .iter()
        .find(|(task, _)| *task == "scheduled_campaigns")
        .unwrap()
        .1
        .clone();
    assert_eq!(
        scheduled,
        json!({ "launched": [campaign], "notLaunched": [nobody] })
    );
    // The first server goes away mid-workflow; another one, started later, takes over.
    let second = app.second_instance().await;
    let resumed = TenantDb::new(second.pool.clone(), t.id);
    scheduler::tick(&resumed, start + Duration::minutes(30))
        .await
        .unwrap();
    scheduler::tick(&resumed, start + Duration::hours(2))
        .await
        .unwrap();
    scheduler::tick(&resumed, start + Duration::hours(3))
        .await
        .unwrap();
    send_due(&app, &t, &providers).await;
    assert_eq!(sink.received().len(), 2, "each send step once");
    let r = app.gql(&t.admin_key, "query($id: ID!) { campaign(id: $id) { status recipients(first: 1) { nodes { id } } } }", json!({ "id": campaign })).await;
    assert_eq!(r["data"]["campaign"]["status"], "COMPLETED");
    let recipient = r["data"]["campaign"]["recipients"]["nodes"][0]["id"].clone();
    let r = app
        .gql(
            &t.admin_key,
            "query($r: ID!) { campaignRun(recipientId: $r) { path } }",
            json!({ "r": recipient }),
        )
        .await;
    let nodes: Vec<&str> = r["data"]["campaignRun"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        nodes,
        vec!["a", "w", "b", "b"],
        "sent a, waited at w, sent b, ended after b"
    );
}
