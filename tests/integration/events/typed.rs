//! Typed subscriptions yielding the objects as a query reads them, and campaign metrics live with replay.

use super::*;

/// The typed subscriptions yield the objects themselves, equal to what a query of the same
/// object answers at that moment, over both protocols; with `after`, the changes since
/// then come first; another tenant's changes never arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_subscriptions_yield_the_objects_as_a_query_reads_them() {
    use crate::loyalty::{funded_customer, reward, stage, stages, ENROLL, REDEEM};
    let app = TestApp::start().await;
    let t = app.tenant("Typed").await;
    let other = app.tenant("Typed Other").await;
    let lead = new_lead(&app, &t).await;
    let club = stages(&app, &t).await;
    let prize = reward(&app, &t, 100, Some(50)).await;
    const LEAD: &str = "id name currentTag archived";
    const REDEMPTION: &str = "id status quantity pointsSpent customerId reward { id name }";
    const ENROLLMENT: &str = "id status customerId stage { name }";
    const ACTIVITY: &str = "id type description data";
    for (n, legacy) in [false, true].into_iter().enumerate() {
        let customer = funded_customer(&app, &t, &format!("typed{n}@example.com"), 1000).await;
        let mut sub = Subscriber::connect(&app, &t.admin_key, legacy).await;
        let subscriptions = [
            format!("subscription {{ leadTagged {{ {LEAD} }} }}"),
            format!("subscription {{ redemptionChanged {{ {REDEMPTION} }} }}"),
            format!("subscription {{ enrollmentChanged {{ {ENROLLMENT} }} }}"),
            format!(
                "subscription($c: ID!) {{ customerActivity(customerId: $c) {{ {ACTIVITY} }} }}"
            ),
        ];
        for (i, query) in subscriptions.iter().enumerate() {
            sub.subscribe(&format!("{}", i + 1), query, json!({ "c": customer }))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Changes in another tenant first: none of them may arrive.
        let theirs = new_lead(&app, &other).await;
        tag(&app, &other, &theirs, "elsewhere").await;

        tag(&app, &t, &lead, &format!("typed{n}")).await;
        let r = app
            .gql(
                &t.admin_key,
                REDEEM,
                json!({ "c": customer, "r": prize, "q": 1 }),
            )
            .await;
        let redemption = r["data"]["redeemReward"]["redemption"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned();
        let r = app
            .gql(
                &t.admin_key,
                ENROLL,
                json!({ "c": customer, "s": stage(&club, "Bronze") }),
            )
            .await;
        let enrollment = r["data"]["enrollCustomer"]["enrollment"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned();
        let r = app.gql(&t.admin_key, "mutation($id: ID!) { recordCustomerActivity(input: { customerId: $id, type: \"cellar_tour\", description: \"Tour\", data: { guests: 2 } }) { activity { id } userErrors { code } } }", json!({ "id": customer })).await;
        let activity = r["data"]["recordCustomerActivity"]["activity"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned();

        let got = sub.events(4).await;
        // Each payload is the object itself: told apart by its id.
        let find = |id: &str| {
            got.iter()
                .find(|g| g["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("{id} not among {got:?}"))
        };
        let query = |field: &str, selection: &str, id: &str| {
            let q = format!("query($id: ID!) {{ {field}(id: $id) {{ {selection} }} }}");
            let (app, key, id, field) =
                (&app, t.admin_key.clone(), id.to_owned(), field.to_owned());
            async move { app.gql(&key, &q, json!({ "id": id })).await["data"][&field].clone() }
        };
        assert_eq!(
            find(&lead),
            query("lead", LEAD, &lead).await,
            "legacy={legacy}"
        );
        assert_eq!(
            find(&redemption),
            query("redemption", REDEMPTION, &redemption).await
        );
        assert_eq!(
            find(&enrollment),
            query("enrollment", ENROLLMENT, &enrollment).await
        );
        let recorded = find(&activity);
        assert_eq!(
            (
                recorded["type"].as_str(),
                recorded["data"]["guests"].as_i64()
            ),
            (Some("cellar_tour"), Some(2))
        );
        assert!(
            got.iter().all(|g| g["currentTag"] != "elsewhere"),
            "another tenant's lead"
        );
        // Nothing more is pending (the other tenant's changes never arrive).
        let more = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
        assert!(more.is_err(), "unexpected: {more:?}");
    }

    // `after` replays the changes since an event (as `events` numbers them), then goes live.
    let r = app
        .gql(
            &t.admin_key,
            "{ events(first: 100) { edges { cursor node { id type } } } }",
            json!({}),
        )
        .await;
    let edges = r["data"]["events"]["edges"].as_array().unwrap().clone();
    let first_tag = edges
        .iter()
        .position(|e| e["node"]["type"] == "lead.tagged")
        .unwrap();
    let before_it = if first_tag == 0 {
        "0".to_owned()
    } else {
        edges[first_tag - 1]["node"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    sub.subscribe(
        "1",
        &format!("subscription($a: String) {{ leadTagged(after: $a) {{ {LEAD} }} }}"),
        json!({ "a": before_it }),
    )
    .await;
    let replayed = sub.events(2).await;
    assert!(
        replayed.iter().all(|l| l["id"] == lead.as_str()),
        "{replayed:?}"
    );
    tag(&app, &t, &lead, "live").await;
    let live = sub.events(1).await;
    assert_eq!(live[0]["currentTag"], "live");
}

/// `campaignMetricsChanged` yields the campaign's metrics as a query reads them after each
/// change; with `after`, once per change since then first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_metrics_changes_arrive_live_and_replay_after_a_position() {
    let app = TestApp::start().await;
    let t = app.tenant("Metrics Feed").await;
    let r = app.gql(&t.admin_key, "{ campaigns(filter: { status: ACTIVE }) { nodes { id recipients(first: 100) { nodes { id status } } } } }", json!({})).await;
    let campaign = &r["data"]["campaigns"]["nodes"][0];
    let id = campaign["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    // Recipients whose funnel can still move.
    let recipients: Vec<String> = campaign["recipients"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "PENDING" || n["status"] == "SENT")
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(recipients.len() >= 2, "{r}");
    const METRICS: &str = "recipients sent delivered opened clicked failed";
    let subscription = format!("subscription($c: ID!, $a: String) {{ campaignMetricsChanged(campaignId: $c, after: $a) {{ {METRICS} }} }}");
    let metrics = || async {
        let q = format!("query($id: ID!) {{ campaign(id: $id) {{ metrics {{ {METRICS} }} }} }}");
        app.gql(&t.admin_key, &q, json!({ "id": id })).await["data"]["campaign"]["metrics"].clone()
    };
    let record = |recipient: String, status: &'static str| {
        let (app, key) = (&app, t.admin_key.clone());
        async move {
            let r = app.gql(&key, "mutation($r: ID!, $s: RecipientStatus!) { recordDeliveryEvent(input: { recipientId: $r, status: $s }) { userErrors { code } } }", json!({ "r": recipient, "s": status })).await;
            assert_eq!(
                r["data"]["recordDeliveryEvent"]["userErrors"],
                json!([]),
                "{r}"
            );
        }
    };
    let position = || async {
        let r = app
            .gql(
                &t.admin_key,
                "{ events(first: 100) { nodes { id } } }",
                json!({}),
            )
            .await;
        r["data"]["events"]["nodes"]
            .as_array()
            .unwrap()
            .last()
            .map_or("0".to_owned(), |n| n["id"].as_str().unwrap().to_owned())
    };
    for (legacy, status) in [(false, "DELIVERED"), (true, "OPENED")] {
        let mut sub = Subscriber::connect(&app, &t.admin_key, legacy).await;
        sub.subscribe("1", &subscription, json!({ "c": id })).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        record(recipients[0].clone(), status).await;
        let live = sub.events(1).await;
        assert_eq!(live[0], metrics().await, "legacy={legacy}");
    }
    // Two changes while nobody listens; a subscriber from before them gets both, then live.
    let mark = position().await;
    record(recipients[1].clone(), "DELIVERED").await;
    record(recipients[1].clone(), "OPENED").await;
    let mut sub = Subscriber::connect(&app, &t.admin_key, false).await;
    sub.subscribe("1", &subscription, json!({ "c": id, "a": mark }))
        .await;
    let replayed = sub.events(2).await;
    assert!(replayed.iter().all(|m| *m == replayed[0]), "{replayed:?}");
    assert_eq!(replayed[0], metrics().await);
    record(recipients[0].clone(), "CLICKED").await;
    assert_eq!(sub.events(1).await[0], metrics().await);
}
