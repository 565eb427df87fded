//! Appointments: no overlaps, their lifecycle, refusals that write nothing, racing bookings.

use super::*;

/// `tenant`'s appointments and their `appointment.changed` events.
async fn appointment_rows(app: &TestApp, tenant: Uuid) -> (Vec<String>, i64) {
    app.rows_and_events("rendez_vous", tenant, "appointment.changed")
        .await
}

async fn book(app: &TestApp, key: &str, date: &str, time: &str, minutes: i32) -> Value {
    let input =
        json!({ "clientName": "Claire", "date": date, "time": time, "durationMinutes": minutes });
    app.gql(key, BOOK, json!({ "input": input })).await["data"]["bookAppointment"].clone()
}

async fn change_appointment(app: &TestApp, key: &str, id: &Value, status: &str) -> Value {
    app.gql(
        key,
        CHANGE_APPOINTMENT,
        json!({ "id": id, "status": status }),
    )
    .await["data"]["changeAppointment"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointments_do_not_overlap_and_move_along_their_lifecycle() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Tasting room").await;
    let partner = app.key(&t, Role::Partner).await;
    let r = app
        .gql(
            &partner,
            BOOK,
            json!({ "input": { "clientName": "Claire", "clientEmail": "Claire@Example.com",
                "date": "2026-12-01", "time": "10:00:00" } }),
        )
        .await;
    let first = r["data"]["bookAppointment"]["appointment"].clone();
    assert_eq!(
        first,
        json!({ "id": first["id"], "date": "2026-12-01", "time": "10:00:00", "durationMinutes": 30,
                "status": "PENDING", "clientName": "Claire", "clientEmail": "claire@example.com" }),
        "{r}"
    );
    // Back to back is fine; overlapping is not; another day is another day.
    let next = book(&app, &partner, "2026-12-01", "10:30:00", 60).await;
    assert_eq!(next["appointment"]["status"], "PENDING", "{next}");
    for (time, minutes) in [
        ("10:15:00", 15),
        ("09:45:00", 30),
        ("11:29:00", 5),
        ("09:00:00", 240),
    ] {
        let r = book(&app, &partner, "2026-12-01", time, minutes).await;
        assert_eq!(
            (&r["userErrors"][0]["code"], &r["userErrors"][0]["field"]),
            (&json!("CONFLICT"), &json!(["input", "time"])),
            "{time} for {minutes}: {r}"
        );
    }
    let r = book(&app, &partner, "2026-12-02", "10:15:00", 15).await;
    assert_eq!(r["appointment"]["status"], "PENDING", "{r}");
    // Cancelled, its time is free again.
    let id = first["id"].clone();
    let r = change_appointment(&app, &partner, &id, "CANCELLED").await;
    assert_eq!(r["appointment"]["status"], "CANCELLED", "{r}");
    let r = book(&app, &partner, "2026-12-01", "10:15:00", 15).await;
    assert_eq!(r["appointment"]["status"], "PENDING", "{r}");

    // pending → confirmed → completed; then final.
    let id = next["appointment"]["id"].clone();
    let r = change_appointment(&app, &partner, &id, "NO_SHOW").await;
    assert_eq!(
        r["userErrors"][0]["code"], "INVALID_TRANSITION",
        "a pending one: {r}"
    );
    for status in ["CONFIRMED", "COMPLETED"] {
        let r = change_appointment(&app, &partner, &id, status).await;
        assert_eq!(r["appointment"]["status"], status, "{r}");
    }
    for status in ["CANCELLED", "PENDING", "NO_SHOW"] {
        let r = change_appointment(&app, &partner, &id, status).await;
        assert_eq!(
            r["userErrors"][0]["code"], "INVALID_TRANSITION",
            "{status}: {r}"
        );
    }
    let (rows, events) = appointment_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (4, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bookings_and_appointment_changes_write_nothing() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let other = app.tenant("Winery B").await;
    let theirs = app
        .page_ids(&other.admin_key, "customers", "")
        .await
        .remove(0);
    let their_appointment = app
        .page_ids(&other.admin_key, "appointments", "")
        .await
        .remove(0);
    let before = appointment_rows(&app, t.id).await;
    let base = json!({ "clientName": "Claire", "date": "2027-01-05", "time": "09:00:00" });
    let with = |extra: Value| {
        let mut input = base.clone();
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    for (input, field, code) in [
        (with(json!({ "clientName": " " })), "clientName", "INVALID"),
        (
            with(json!({ "clientEmail": "claire" })),
            "clientEmail",
            "INVALID",
        ),
        (
            with(json!({ "durationMinutes": 0 })),
            "durationMinutes",
            "INVALID",
        ),
        (
            with(json!({ "durationMinutes": 481 })),
            "durationMinutes",
            "INVALID",
        ),
        (
            with(json!({ "notes": "a\u{0}" })),
            "notes",
            "BAD_USER_INPUT",
        ),
        (
            with(json!({ "customerId": theirs })),
            "customerId",
            "NOT_FOUND",
        ),
    ] {
        let r = app.gql(&t.admin_key, BOOK, json!({ "input": input })).await;
        assert_eq!(
            refusal(&r, "bookAppointment"),
            (&json!(["input", field]), &json!(code)),
            "{input}: {r}"
        );
    }
    for input in [
        with(json!({ "date": "2027-02-30" })),
        with(json!({ "time": "25:00:00" })),
    ] {
        let r = app.gql(&t.admin_key, BOOK, json!({ "input": input })).await;
        assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    }
    let r = change_appointment(&app, &t.admin_key, &json!(their_appointment), "CONFIRMED").await;
    assert_eq!(r["userErrors"][0]["code"], "NOT_FOUND", "{r}");
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app.gql(&analyst, BOOK, json!({ "input": base })).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(
        appointment_rows(&app, t.id).await,
        before,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_bookings_of_one_slot_make_one_appointment() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Tasting room").await;
    let same = futures_util::future::join_all(
        (0..8).map(|_| book(&app, &t.admin_key, "2026-12-03", "15:00:00", 45)),
    )
    .await;
    let booked = same.iter().filter(|r| r["appointment"].is_object()).count();
    assert_eq!(booked, 1, "{same:?}");
    assert!(same
        .iter()
        .all(|r| r["appointment"].is_object() || r["userErrors"][0]["code"] == "CONFLICT"));
    // Distinct slots of the same day, at once: all of them.
    let slots: Vec<String> = (8..14).map(|h| format!("{h:02}:00:00")).collect();
    let distinct = futures_util::future::join_all(
        slots
            .iter()
            .map(|slot| book(&app, &t.admin_key, "2026-12-03", slot, 60)),
    )
    .await;
    assert!(
        distinct.iter().all(|r| r["appointment"].is_object()),
        "{distinct:?}"
    );
    let (rows, events) = appointment_rows(&app, t.id).await;
    assert_eq!((rows.len(), events), (7, 7));
}
