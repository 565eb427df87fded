//! Support tickets: numbered, moved along their lifecycle, refusals that write nothing, races.

use super::*;

/// `tenant`'s tickets and their `ticket.changed` events.
async fn ticket_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("tickets", tenant, "ticket.changed")
        .await
}

async fn update_ticket(app: &TestApp, key: &str, input: Value) -> Value {
    app.gql(key, UPDATE_TICKET, json!({ "input": input })).await["data"]["updateTicket"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_open_numbered_and_move_along_their_lifecycle() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Support").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(
            &t.admin_key,
            "mutation { upsertCustomer(input: { email: \"caller@example.com\" }) { customer { id } } }",
            json!({}),
        )
        .await;
    let customer = r["data"]["upsertCustomer"]["customer"]["id"].clone();
    let r = app
        .gql(
            &partner,
            OPEN_TICKET,
            json!({ "input": { "subject": "Broken bottle", "customerId": customer,
                "customerEmail": "Caller@Example.com", "channel": "EMAIL", "priority": "HIGH" } }),
        )
        .await;
    let ticket = r["data"]["openTicket"]["ticket"].clone();
    assert_eq!(
        ticket,
        json!({ "id": ticket["id"], "ticketNumber": "TCK-0001", "subject": "Broken bottle",
                "channel": "email", "priority": "HIGH", "status": "OPEN", "customerId": customer,
                "assignedTo": null, "resolvedAt": null }),
        "{r}"
    );
    let r = app
        .gql(
            &partner,
            OPEN_TICKET,
            json!({ "input": { "subject": "Where is my order?" } }),
        )
        .await;
    assert_eq!(
        r["data"]["openTicket"]["ticket"]["ticketNumber"], "TCK-0002",
        "{r}"
    );
    assert_eq!(r["data"]["openTicket"]["ticket"]["channel"], "phone");
    assert_eq!(r["data"]["openTicket"]["ticket"]["priority"], "MEDIUM");

    let id = ticket["id"].clone();
    let r = update_ticket(
        &app,
        &partner,
        json!({ "id": id, "status": "IN_PROGRESS", "assignedTo": "sara" }),
    )
    .await;
    assert_eq!(
        (&r["ticket"]["status"], &r["ticket"]["assignedTo"]),
        (&json!("IN_PROGRESS"), &json!("sara")),
        "{r}"
    );
    let r = update_ticket(&app, &partner, json!({ "id": id, "status": "RESOLVED" })).await;
    assert!(r["ticket"]["resolvedAt"].is_string(), "{r}");
    let listed = app
        .page_ids(&t.admin_key, "tickets", ", status: RESOLVED")
        .await;
    assert_eq!(listed, vec![id.as_str().unwrap().to_owned()]);
    // Reopened: no longer resolved; priority and assignee change on their own.
    let r = update_ticket(
        &app,
        &partner,
        json!({ "id": id, "status": "IN_PROGRESS", "priority": "URGENT", "assignedTo": null }),
    )
    .await;
    assert_eq!(
        (
            &r["ticket"]["status"],
            &r["ticket"]["priority"],
            &r["ticket"]["assignedTo"],
            &r["ticket"]["resolvedAt"]
        ),
        (
            &json!("IN_PROGRESS"),
            &json!("URGENT"),
            &Value::Null,
            &Value::Null
        ),
        "{r}"
    );
    let r = update_ticket(&app, &partner, json!({ "id": id, "status": "CLOSED" })).await;
    assert_eq!(r["ticket"]["status"], "CLOSED", "{r}");
    // Closed is final.
    for change in [
        json!({ "status": "OPEN" }),
        json!({ "priority": "LOW" }),
        json!({ "status": "CLOSED" }),
    ] {
        let mut input = change.clone();
        input["id"] = id.clone();
        let r = update_ticket(&app, &partner, input).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "{change}: {r}"
        );
    }
    assert_eq!(ticket_rows(&app, t.id).await.1, 6, "one event per change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tickets_and_ticket_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let theirs = app
        .page_ids(&other.admin_key, "customers", "")
        .await
        .remove(0);
    let their_ticket = app
        .page_ids(&other.admin_key, "tickets", "")
        .await
        .remove(0);
    let mine = app.page_ids(&t.admin_key, "tickets", "").await.remove(0);
    let before = ticket_rows(&app, t.id).await;
    let others_before = ticket_rows(&app, other.id).await;
    let long = "x".repeat(301);
    for (input, field, code) in [
        (
            json!({ "subject": "  " }),
            vec!["input", "subject"],
            "INVALID",
        ),
        (
            json!({ "subject": long }),
            vec!["input", "subject"],
            "INVALID",
        ),
        (
            json!({ "subject": "s", "customerEmail": "nope" }),
            vec!["input", "customerEmail"],
            "INVALID",
        ),
        (
            json!({ "subject": "s", "description": "a\u{0}b" }),
            vec!["input", "description"],
            "BAD_USER_INPUT",
        ),
        (
            json!({ "subject": "s", "customerId": theirs }),
            vec!["input", "customerId"],
            "NOT_FOUND",
        ),
    ] {
        let r = app
            .gql(&t.admin_key, OPEN_TICKET, json!({ "input": input }))
            .await;
        assert_eq!(
            refusal(&r, "openTicket"),
            (&json!(field), &json!(code)),
            "{input}: {r}"
        );
    }
    for (input, code) in [
        (
            json!({ "id": their_ticket, "status": "CLOSED" }),
            "NOT_FOUND",
        ),
        (json!({ "id": mine }), "INVALID"),
        (
            json!({ "id": mine, "status": "OPEN", "assignedTo": long }),
            "INVALID",
        ),
    ] {
        let r = update_ticket(&app, &t.admin_key, input.clone()).await;
        assert_eq!(r["userErrors"][0]["code"], code, "{input}: {r}");
    }
    // Not a priority, not an id: refused before anything runs.
    let r = app
        .gql(
            &t.admin_key,
            OPEN_TICKET,
            json!({ "input": { "subject": "s", "priority": "SOON" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &t.admin_key,
            UPDATE_TICKET,
            json!({ "input": { "id": "nope", "status": "OPEN" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            OPEN_TICKET,
            json!({ "input": { "subject": "s" } }),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(ticket_rows(&app, t.id).await, before, "nothing written");
    assert_eq!(ticket_rows(&app, other.id).await, others_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_tickets_get_consecutive_numbers_and_racing_changes_apply_one_at_a_time() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Support").await;
    let answers = futures_util::future::join_all((0..10).map(|n| {
        app.gql(
            &t.admin_key,
            OPEN_TICKET,
            json!({ "input": { "subject": format!("Issue {n}") } }),
        )
    }))
    .await;
    let mut numbers: Vec<String> = answers
        .iter()
        .map(|r| {
            r["data"]["openTicket"]["ticket"]["ticketNumber"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    numbers.sort();
    let want: Vec<String> = (1..=10).map(|n| format!("TCK-{n:04}")).collect();
    assert_eq!(numbers, want);
    // Resolving and closing at once, one at a time under the row's lock: exactly one
    // close applies (closed is final: every later change is refused), and a resolve
    // applies only before it.
    let id = answers[0]["data"]["openTicket"]["ticket"]["id"].clone();
    let changes = [
        "RESOLVED", "CLOSED", "RESOLVED", "CLOSED", "RESOLVED", "CLOSED",
    ];
    let results = futures_util::future::join_all(
        changes
            .iter()
            .map(|s| update_ticket(&app, &t.admin_key, json!({ "id": id, "status": s }))),
    )
    .await;
    let closed_first = results
        .iter()
        .zip(changes)
        .filter(|(r, s)| *s == "CLOSED" && r["ticket"]["status"] == "CLOSED")
        .count();
    assert_eq!(closed_first, 1, "{results:?}");
    for r in &results {
        assert!(
            r["ticket"].is_object() || r["userErrors"][0]["code"] == "INVALID_TRANSITION",
            "{r}"
        );
    }
    let (rows, events) = ticket_rows(&app, t.id).await;
    let applied = results.iter().filter(|r| r["ticket"].is_object()).count() as i64;
    assert_eq!(events, 10 + applied);
    assert!(rows.iter().any(|r| r.contains("\"status\":\"closed\"")));
}
