//! Club membership as seed 004 has it: enroll, upgrade, renew and expire; points after 365 membership days that never expire; one active enrollment whatever races.

use super::*;

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
    assert_eq!(user_error_code(&r, "enrollCustomer"), "ALREADY_ENROLLED");

    // Gold needs a qualifying order of at least 300.
    let r = app
        .gql(
            &t.admin_key,
            UPGRADE,
            json!({ "e": bronze_id, "s": stage(&stages, "Gold") }),
        )
        .await;
    assert_eq!(user_error_code(&r, "upgradeEnrollment"), "NOT_ELIGIBLE");
    let small = order(&app, &t, &customer, "120.00").await;
    let r = app
        .gql(
            &t.admin_key,
            UPGRADE,
            json!({ "e": bronze_id, "s": stage(&stages, "Gold"), "o": small }),
        )
        .await;
    assert_eq!(user_error_code(&r, "upgradeEnrollment"), "NOT_ELIGIBLE");
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
        user_error_code(&r, "upgradeEnrollment"),
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
    assert_eq!(user_error_code(&r, "renewEnrollment"), "NOT_ELIGIBLE");

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
        user_error_code(&r, "cancelEnrollment"),
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
    assert_eq!(user_error_code(&r, "adjustPoints"), "INSUFFICIENT_POINTS");
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
