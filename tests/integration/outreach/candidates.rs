use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_imported_once_per_website_scored_and_filtered() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Prospecting Winery").await;
    let rows = json!([
        { "businessName": "Cave de Lyon", "website": "https://www.Cave-Lyon.example/" },
        { "businessName": "Cave de Lyon again", "website": "cave-lyon.example" },
        { "businessName": "No site", "website": "ftp://nowhere" },
        { "businessName": "Bad mail", "website": "bad-mail.example", "contactEmail": "not-an-address" },
        { "businessName": "Bistro", "website": "http://bistro.example/fr/?utm=1", "industry": "restaurant",
          "language": "FR", "formUrl": "https://bistro.example/contact", "contactEmail": "chef@bistro.example" },
        { "businessName": "  ", "website": "blank.example" },
    ]);
    let p = import(&app, &t.admin_key, rows).await;
    let imported = p["candidates"].as_array().unwrap();
    assert_eq!(imported.len(), 2, "{p}");
    assert_eq!(imported[0]["website"], "cave-lyon.example");
    assert_eq!(imported[1]["website"], "bistro.example/fr");
    // No form (0), never tested (10), tone unknown (5), industry priority 50 (5).
    assert_eq!(imported[0]["automationNeedScore"], 65);
    // The same with a contact form (+10).
    assert_eq!(imported[1]["automationNeedScore"], 75);
    let refused: Vec<(Value, Value)> = p["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].clone(), e["field"].clone()))
        .collect();
    assert_eq!(
        refused,
        vec![
            (json!("CONFLICT"), json!(["input", "1", "website"])),
            (json!("INVALID"), json!(["input", "2", "website"])),
            (json!("INVALID"), json!(["input", "3", "contactEmail"])),
            (json!("INVALID"), json!(["input", "5", "businessName"])),
        ]
    );
    assert_eq!(count(&app, &candidates_of(&t)).await, 2);

    // Known already: refused on its own; the new row beside it is imported.
    let p = import(
        &app,
        &t.admin_key,
        json!([{ "businessName": "Lyon", "website": "http://cave-lyon.example" },
               { "businessName": "Hotel", "website": "hotel.example", "industry": "hospitality" }]),
    )
    .await;
    assert_eq!(p["candidates"].as_array().unwrap().len(), 1);
    assert_eq!(p["userErrors"][0]["code"], "CONFLICT");
    assert_eq!(
        p["userErrors"][0]["field"],
        json!(["input", "0", "website"])
    );
    assert_eq!(count(&app, &candidates_of(&t)).await, 3);

    // More than a thousand rows: refused whole, nothing written.
    let many: Vec<Value> = (0..1_001)
        .map(|i| json!({ "businessName": format!("B{i}"), "website": format!("b{i}.example") }))
        .collect();
    let r = app.gql(&t.admin_key, IMPORT, json!({ "i": many })).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );
    assert_eq!(count(&app, &candidates_of(&t)).await, 3);
    // Analysts read candidates but do not import them.
    let analyst = app.key(&t, growthgraph::auth::Role::Analyst).await;
    let r = app
        .gql(
            &analyst,
            IMPORT,
            json!({ "i": [{ "businessName": "X", "website": "x.example" }] }),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
    assert_eq!(count(&app, &candidates_of(&t)).await, 3);

    let list = |filter: Value| {
        let app = &app;
        let key = analyst.clone();
        async move {
            let r = app
                .gql(
                    &key,
                    "query($f: ProspectCandidateFilter) { prospectCandidates(filter: $f, first: 10) { nodes { businessName } } }",
                    json!({ "f": filter }),
                )
                .await;
            r["data"]["prospectCandidates"]["nodes"]
                .as_array()
                .unwrap_or_else(|| panic!("{r}"))
                .iter()
                .map(|n| n["businessName"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(json!({ "industry": "restaurant" })).await, ["Bistro"]);
    assert_eq!(list(json!({ "language": "FR" })).await, ["Bistro"]);
    assert_eq!(list(json!({ "scoreMin": 70 })).await, ["Bistro"]);
    assert_eq!(
        list(json!({ "scoreMax": 65 })).await,
        ["Hotel", "Cave de Lyon"]
    );
    assert_eq!(list(json!({ "contacted": false })).await.len(), 3);
    assert_eq!(list(json!({ "contacted": true })).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_imports_of_the_same_websites_make_one_candidate_each() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Racing Imports").await;
    let rows: Vec<Value> = (0..50)
        .map(|i| json!({ "businessName": format!("Shop {i}"), "website": format!("https://shop{i}.example/") }))
        .collect();
    // The same rows in three orders: the imports wait for each other, none deadlocks.
    let orders: Vec<Vec<Value>> = vec![
        rows.clone(),
        rows.iter().rev().cloned().collect(),
        rows.iter()
            .skip(25)
            .chain(rows.iter().take(25))
            .cloned()
            .collect(),
    ];
    let imports = (0..6).map(|i| import(&app, &t.admin_key, json!(orders[i % 3])));
    let payloads = futures_util::future::join_all(imports).await;
    let imported: usize = payloads
        .iter()
        .map(|p| p["candidates"].as_array().unwrap().len())
        .sum();
    let refused: usize = payloads
        .iter()
        .map(|p| p["userErrors"].as_array().unwrap().len())
        .sum();
    assert_eq!(imported, 50);
    assert_eq!(refused, 5 * 50);
    assert_eq!(count(&app, &candidates_of(&t)).await, 50);
}

const START_TEST: &str = "mutation($p: ID!, $at: DateTime) { recordFormTest(input: { prospectId: $p, submittedAt: $at }) { formTest { id status submittedAt } userErrors { code field } } }";
const END_TEST: &str = "mutation($i: RecordFormTestResultInput!) { recordFormTestResult(input: $i) { formTest { status score responseTimeMinutes autoresponderTone } userErrors { code field message } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_tests_end_once_and_feed_the_candidates_score() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Form Tests").await;
    let p = import(
        &app,
        &t.admin_key,
        json!([{ "businessName": "Bistro", "website": "bistro.example", "formUrl": "https://bistro.example/contact" },
               { "businessName": "Hotel", "website": "hotel.example", "formUrl": "https://hotel.example/contact" }]),
    )
    .await;
    let bistro = p["candidates"][0]["id"].as_str().unwrap().to_owned();
    let hotel = p["candidates"][1]["id"].as_str().unwrap().to_owned();
    let submitted = Utc::now() - Duration::hours(2);
    let r = app
        .gql(
            &t.admin_key,
            START_TEST,
            json!({ "p": bistro, "at": submitted.to_rfc3339() }),
        )
        .await;
    let test = r["data"]["recordFormTest"]["formTest"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    assert_eq!(r["data"]["recordFormTest"]["formTest"]["status"], "PENDING");
    // One waits at a time.
    let r = app
        .gql(&t.admin_key, START_TEST, json!({ "p": bistro }))
        .await;
    assert_eq!(user_error_code(&r, "recordFormTest"), "CONFLICT");
    let tests = format!(
        "SELECT count(*) AS n FROM prospect_form_tests WHERE tenant_id = '{}'",
        t.id
    );
    assert_eq!(count(&app, &tests).await, 1);

    // Refused results write nothing: no answer time, a tone without autoresponder, an
    // answer before the test, a result that is no ending.
    for (input, field) in [
        (
            json!({ "testId": test, "status": "COMPLETED" }),
            "responseReceivedAt",
        ),
        (
            json!({ "testId": test, "status": "FAILED", "autoresponderTone": "ROBOTIC" }),
            "autoresponderTone",
        ),
        (
            json!({ "testId": test, "status": "COMPLETED", "responseReceivedAt": in_hours(-3) }),
            "responseReceivedAt",
        ),
        (json!({ "testId": test, "status": "PENDING" }), "status"),
    ] {
        let r = app.gql(&t.admin_key, END_TEST, json!({ "i": input })).await;
        let e = &r["data"]["recordFormTestResult"]["userErrors"][0];
        assert_eq!(e["code"], "INVALID", "{r}");
        assert_eq!(e["field"], json!(["input", field]), "{r}");
    }
    assert_eq!(
        scores(&app, &t.admin_key, &bistro).await,
        (json!(75), json!(null))
    );

    // Answered 95 minutes later by a robotic autoresponder: 30 + 10 = 40; the score
    // becomes 45 + 10 (form) + 12 ((100 − 40) / 5) + 8 (robotic) + 5 (industry) = 80.
    let answered = submitted + Duration::minutes(95);
    let completed = json!({ "i": { "testId": test, "status": "COMPLETED", "responseReceivedAt": answered.to_rfc3339(),
        "hasAutoresponder": true, "autoresponderTone": "ROBOTIC", "autoresponderContent": "Thank you for your message." } });
    // Racing results: one ends the test, the others are refused.
    let racing = (0..4).map(|_| app.gql(&t.admin_key, END_TEST, completed.clone()));
    let results = futures_util::future::join_all(racing).await;
    let ended: Vec<&Value> = results
        .iter()
        .map(|r| &r["data"]["recordFormTestResult"])
        .filter(|p| p["userErrors"] == json!([]))
        .collect();
    assert_eq!(ended.len(), 1, "{results:?}");
    assert_eq!(
        ended[0]["formTest"],
        json!({ "status": "COMPLETED", "score": 40, "responseTimeMinutes": 95, "autoresponderTone": "ROBOTIC" })
    );
    for r in &results {
        let p = &r["data"]["recordFormTestResult"];
        if p["userErrors"] != json!([]) {
            assert_eq!(p["userErrors"][0]["code"], "INVALID_TRANSITION", "{r}");
        }
    }
    assert_eq!(
        scores(&app, &t.admin_key, &bistro).await,
        (json!(80), json!(40))
    );

    // A test unanswered for 48 hours times out when the scheduler passes: score 0, the
    // candidate's need 45 + 10 + 20 + 10 (no autoresponder) + 5 = 90.
    let r = app
        .gql(
            &t.admin_key,
            START_TEST,
            json!({ "p": hotel, "at": in_hours(-49) }),
        )
        .await;
    assert_eq!(r["data"]["recordFormTest"]["userErrors"], json!([]), "{r}");
    let ran = tick(&app, &t, Utc::now()).await;
    assert!(
        ran.iter()
            .any(|(task, result)| *task == "form_test_timeouts" && result["timedOut"] == 1),
        "{ran:?}"
    );
    assert_eq!(
        scores(&app, &t.admin_key, &hotel).await,
        (json!(90), json!(0))
    );
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { prospectCandidate(id: $id) { formTests { status score } } }",
            json!({ "id": hotel }),
        )
        .await;
    assert_eq!(
        r["data"]["prospectCandidate"]["formTests"],
        json!([{ "status": "TIMEOUT", "score": 0 }])
    );
    // And the next tick finds nothing to time out.
    let ran = tick(&app, &t, Utc::now()).await;
    assert!(
        !ran.iter().any(|(task, _)| *task == "form_test_timeouts"),
        "{ran:?}"
    );
}
