//! Campaigns: exact metrics (against a recount written here) under random and concurrent
//! delivery events, launch and status transitions, workflow validation, outreach metrics
//! through the same machinery, and isolation.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::auth::Role;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{assert_page_relations_as_loaders, count, statements_of, TestApp, TestTenant};

#[derive(QueryableByName, Debug, PartialEq)]
struct Recount {
    #[diesel(sql_type = BigInt)]
    recipients: i64,
    #[diesel(sql_type = BigInt)]
    sent: i64,
    #[diesel(sql_type = BigInt)]
    delivered: i64,
    #[diesel(sql_type = BigInt)]
    opened: i64,
    #[diesel(sql_type = BigInt)]
    clicked: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
}

async fn recount(app: &TestApp, campaign: &str) -> Recount {
    let mut owner = app.owner().await;
    diesel::sql_query(format!(
        "SELECT count(*) AS recipients, count(sent_at) AS sent, count(delivered_at) AS delivered, count(opened_at) AS opened,
                count(clicked_at) AS clicked, count(*) FILTER (WHERE status = 'failed') AS failed
         FROM campaign_recipients WHERE campaign_id = '{campaign}'"
    ))
    .get_result(&mut owner)
    .await
    .unwrap()
}

fn rate(n: i64, d: i64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

pub(crate) async fn assert_metrics_exact(app: &TestApp, t: &TestTenant, campaign: &str) {
    let expected = recount(app, campaign).await;
    let r = app
        .gql(&t.admin_key, "query($id: ID!) { campaign(id: $id) { metrics { recipients sent delivered opened clicked failed deliveryRate openRate clickRate clickToOpenRate failureRate } } }", json!({ "id": campaign }))
        .await;
    let m = &r["data"]["campaign"]["metrics"];
    let got = Recount {
        recipients: m["recipients"].as_i64().unwrap(),
        sent: m["sent"].as_i64().unwrap(),
        delivered: m["delivered"].as_i64().unwrap(),
        opened: m["opened"].as_i64().unwrap(),
        clicked: m["clicked"].as_i64().unwrap(),
        failed: m["failed"].as_i64().unwrap(),
    };
    assert_eq!(got, expected, "counters differ from a full recount");
    let close = |field: &str, expected: f64| {
        let got = m[field].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-12,
            "{field}: {got} != {expected}"
        );
    };
    close("deliveryRate", rate(expected.delivered, expected.sent));
    close("openRate", rate(expected.opened, expected.sent));
    close("clickRate", rate(expected.clicked, expected.sent));
    close("clickToOpenRate", rate(expected.clicked, expected.opened));
    close("failureRate", rate(expected.failed, expected.sent));
}

/// `n` customers in segment `segment`, the first `opted_out` of them opted out of email.
async fn audience(app: &TestApp, t: &TestTenant, segment: &str, n: usize, opted_out: usize) {
    app.owner()
        .await
        .batch_execute(&format!(
            "INSERT INTO customers (tenant_id, email, segment) SELECT '{t}', '{segment}' || g || '@example.com', '{segment}' FROM generate_series(1, {n}) g;
             INSERT INTO communication_preferences (tenant_id, customer_id, channel, communication_type, opted_in)
             SELECT tenant_id, id, 'email', 'marketing', false FROM customers
             WHERE tenant_id = '{t}' AND segment = '{segment}' AND substr(email, length('{segment}') + 1, 4) ~ '^[0-9]+@' AND
                   split_part(substr(email, length('{segment}') + 1), '@', 1)::int <= {opted_out};",
            t = t.id
        ))
        .await
        .unwrap();
}

const CREATE: &str = "mutation($input: CampaignInput!) { createCampaign(input: $input) { campaign { id status } userErrors { field code message } } }";

async fn launched(app: &TestApp, t: &TestTenant, segment: &str) -> String {
    let r = app
        .gql(
            &t.admin_key,
            CREATE,
            json!({ "input": { "name": format!("To {segment}"), "targetSegment": segment } }),
        )
        .await;
    let id = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.gql(&t.admin_key, "mutation($id: ID!) { launchCampaign(input: { id: $id }) { campaign { status } userErrors { code } } }", json!({ "id": id })).await;
    assert_eq!(
        r["data"]["launchCampaign"]["campaign"]["status"], "ACTIVE",
        "{r}"
    );
    id
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

async fn recipient_ids(app: &TestApp, campaign: &str) -> Vec<String> {
    let mut owner = app.owner().await;
    diesel::sql_query(format!("SELECT id::text AS id FROM campaign_recipients WHERE campaign_id = '{campaign}' ORDER BY id"))
        .load::<Id>(&mut owner)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

const EVENT: &str = "mutation($r: ID!, $s: RecipientStatus!) { recordDeliveryEvent(input: { recipientId: $r, status: $s }) { recipient { status } userErrors { code } } }";
const STATUSES: [&str; 5] = ["SENT", "DELIVERED", "OPENED", "CLICKED", "FAILED"];

fn rank(s: &str) -> usize {
    [
        "PENDING",
        "SENT",
        "DELIVERED",
        "OPENED",
        "CLICKED",
        "FAILED",
    ]
    .iter()
    .position(|x| *x == s)
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_equal_a_recount_after_random_repeated_and_out_of_order_events() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Campaigns A").await;
    let partner = app.key(&t, Role::Partner).await;
    audience(&app, &t, "seg", 60, 0).await;
    let campaign = launched(&app, &t, "seg").await;
    let recipients = recipient_ids(&app, &campaign).await;
    assert_eq!(recipients.len(), 60);
    assert_metrics_exact(&app, &t, &campaign).await;

    // The model: forward only, failed is terminal, repeats change nothing.
    let mut expected: std::collections::HashMap<String, &str> =
        recipients.iter().map(|r| (r.clone(), "PENDING")).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..300 {
        let r = &recipients[rng.gen_range(0..recipients.len())];
        let status = STATUSES[rng.gen_range(0..STATUSES.len())];
        let response = app
            .gql(&partner, EVENT, json!({ "r": r, "s": status }))
            .await;
        assert!(
            response["data"]["recordDeliveryEvent"]["userErrors"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{response}"
        );
        let current = expected[r];
        if current != "FAILED" && rank(status) > rank(current) {
            expected.insert(r.clone(), status);
        }
        assert_eq!(
            response["data"]["recordDeliveryEvent"]["recipient"]["status"],
            expected[r]
        );
    }
    assert_metrics_exact(&app, &t, &campaign).await;
    let r = app.gql(&t.admin_key, "query($id: ID!) { campaign(id: $id) { recipients(first: 100) { nodes { id status } } } }", json!({ "id": campaign })).await;
    for node in r["data"]["campaign"]["recipients"]["nodes"]
        .as_array()
        .unwrap()
    {
        assert_eq!(node["status"], expected[node["id"].as_str().unwrap()]);
    }
    // The list view agrees.
    let r = app
        .gql(
            &t.admin_key,
            "{ campaignMetrics(first: 10) { nodes { campaign { id } metrics { sent clicked } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["campaignMetrics"]["nodes"][0]["metrics"]["sent"]
            .as_i64()
            .unwrap(),
        recount(&app, &campaign).await.sent
    );
}

/// `campaign(id:)` reads the campaign with its counters in one statement when `metrics` is
/// asked for, and answers as the list does; another
/// tenant's campaign is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_and_its_metrics_are_one_statement_and_answer_as_the_list() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Campaigns A").await;
    let other = app.bare_tenant("Campaigns B").await;
    let partner = app.key(&t, Role::Partner).await;
    audience(&app, &t, "seg", 12, 0).await;
    let campaign = launched(&app, &t, "seg").await;
    for (i, r) in recipient_ids(&app, &campaign).await.iter().enumerate() {
        let status = STATUSES[i % STATUSES.len()];
        app.gql(&partner, EVENT, json!({ "r": r, "s": status }))
            .await;
    }
    let selection = "id name status metrics { recipients sent delivered opened clicked failed openRate clickRate }";
    let one = format!("query($id: ID!) {{ campaign(id: $id) {{ {selection} }} }}");
    let list = app
        .gql(
            &t.admin_key,
            &format!("{{ campaigns(first: 10) {{ nodes {{ {selection} }} }} }}"),
            json!({}),
        )
        .await;
    let node = list["data"]["campaigns"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == campaign)
        .cloned()
        .expect("the campaign is listed");
    assert!(node["metrics"]["sent"].as_i64().unwrap() > 0, "{node}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for query in [
        one.as_str(),
        "query($id: ID!) { campaign(id: $id) { id name } }",
    ] {
        let before = app.statements.data_statements();
        let r = app
            .gql(&t.admin_key, query, json!({ "id": campaign }))
            .await;
        assert_eq!(
            app.statements.data_statements() - before,
            2,
            "the key's confirmation and one read: {query}"
        );
        assert_eq!(r["data"]["campaign"]["id"], campaign, "{r}");
    }
    let r = app.gql(&t.admin_key, &one, json!({ "id": campaign })).await;
    assert_eq!(r["data"]["campaign"], node);
    let r = app
        .gql(&other.admin_key, &one, json!({ "id": campaign }))
        .await;
    assert!(r["data"]["campaign"].is_null(), "{r}");
}

/// A `campaigns` page reads the counters (`metrics`) and executions its nodes ask for in
/// one statement for the whole page, and answers as the loaders do: under `nodes` or
/// `edges { node }`, a draft with neither counters nor executions, two executions of one
/// campaign in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaigns_page_reads_its_metrics_and_executions_in_one_statement() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Campaigns A").await;
    let partner = app.key(&t, Role::Partner).await;
    audience(&app, &t, "seg", 6, 0).await;
    let campaign = launched(&app, &t, "seg").await;
    launched(&app, &t, "seg").await;
    let draft = app
        .gql(
            &t.admin_key,
            CREATE,
            json!({ "input": { "name": "Draft", "targetSegment": "seg" } }),
        )
        .await;
    assert!(
        draft["data"]["createCampaign"]["campaign"]["id"].is_string(),
        "{draft}"
    );
    for (i, r) in recipient_ids(&app, &campaign).await.iter().enumerate() {
        let status = STATUSES[i % STATUSES.len()];
        app.gql(&partner, EVENT, json!({ "r": r, "s": status }))
            .await;
    }
    app.insert_for(
        &t,
        "INSERT INTO campaign_executions (tenant_id, campaign_id, execution_type, status, started_at)
         SELECT tenant_id, id, 'manual', 'completed', now() - interval '1 day'
         FROM campaigns WHERE tenant_id = $1 AND status = 'active'",
    )
    .await;
    let both = "{ campaigns(first: 10) { nodes { id name
        metrics { recipients sent delivered opened clicked failed openRate clickRate }
        executions { id executionType status startedAt } } } }";
    let selections = [
        "{ campaigns(first: 2) { edges { node { id executions { id } } } pageInfo { hasNextPage } } }",
        "{ campaigns(first: 10) { nodes { metrics { sent deliveryRate } } } }",
    ];
    let alone = "{ campaigns(first: 10) { nodes { id name } } }";
    assert_page_relations_as_loaders(&app, &t.admin_key, &selections, (both, alone)).await;
    let answer = app.gql(&t.admin_key, both, json!({})).await;
    let nodes = answer["data"]["campaigns"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let launched_one = nodes.iter().find(|n| n["id"] == campaign).unwrap();
    assert!(
        launched_one["metrics"]["sent"].as_i64().unwrap() > 0,
        "{answer}"
    );
    assert!(
        launched_one["executions"].as_array().unwrap().len() >= 2,
        "{answer}"
    );
    let draft = nodes.iter().find(|n| n["name"] == "Draft").unwrap();
    assert_eq!(draft["executions"], json!([]), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_delivery_events_keep_the_counters_exact() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Campaigns A").await;
    audience(&app, &t, "rush", 50, 0).await;
    let campaign = launched(&app, &t, "rush").await;
    let recipients = recipient_ids(&app, &campaign).await;
    let mut events = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        for status in [
            "SENT",
            "DELIVERED",
            "OPENED",
            if i % 5 == 0 { "FAILED" } else { "CLICKED" },
            "SENT",
        ] {
            events.push((r.clone(), status));
        }
    }
    let results = futures_util::future::join_all(
        events
            .iter()
            .map(|(r, s)| app.gql(&t.admin_key, EVENT, json!({ "r": r, "s": s }))),
    )
    .await;
    assert!(
        results.iter().all(|r| r["errors"].is_null()),
        "{:?}",
        results.iter().find(|r| !r["errors"].is_null())
    );
    assert_metrics_exact(&app, &t, &campaign).await;
    // Every recipient was delivered or failed; a FAILED arriving first means never sent.
    let counts = recount(&app, &campaign).await;
    assert_eq!(counts.recipients, 50);
    assert!(counts.sent >= 40 && counts.failed == 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_skips_opted_out_customers_and_every_status_transition_pair() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Campaigns A").await;
    audience(&app, &t, "optin", 10, 3).await;
    let r = app
        .gql(
            &t.admin_key,
            CREATE,
            json!({ "input": { "name": "Spring", "targetSegment": "optin" } }),
        )
        .await;
    let id = r["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = |name: &'static str| {
        let query = format!("mutation($id: ID!) {{ {name}(input: {{ id: $id }}) {{ campaign {{ status }} userErrors {{ code }} }} }}");
        let (app, key, id) = (&app, t.admin_key.clone(), id.clone());
        async move {
            let r = app.gql(&key, &query, json!({ "id": id })).await;
            let p = &r["data"][name];
            p["userErrors"][0]["code"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| p["campaign"]["status"].as_str().unwrap().to_owned())
        }
    };
    // draft
    for refused in ["pauseCampaign", "resumeCampaign", "completeCampaign"] {
        assert_eq!(
            change(refused).await,
            "INVALID_TRANSITION",
            "draft → {refused}"
        );
    }
    assert_eq!(change("launchCampaign").await, "ACTIVE");
    let recipients = recipient_ids(&app, &id).await;
    assert_eq!(recipients.len(), 7, "the 3 opted-out customers are skipped");
    // active
    for refused in ["launchCampaign", "resumeCampaign"] {
        assert_eq!(
            change(refused).await,
            "INVALID_TRANSITION",
            "active → {refused}"
        );
    }
    assert_eq!(change("pauseCampaign").await, "PAUSED");
    // paused
    for refused in ["launchCampaign", "pauseCampaign"] {
        assert_eq!(
            change(refused).await,
            "INVALID_TRANSITION",
            "paused → {refused}"
        );
    }
    assert_eq!(change("resumeCampaign").await, "ACTIVE");
    assert_eq!(change("pauseCampaign").await, "PAUSED");
    assert_eq!(change("completeCampaign").await, "COMPLETED");
    // completed
    for refused in [
        "launchCampaign",
        "pauseCampaign",
        "resumeCampaign",
        "completeCampaign",
    ] {
        assert_eq!(
            change(refused).await,
            "INVALID_TRANSITION",
            "completed → {refused}"
        );
    }
    let r = app
        .gql(
            &t.admin_key,
            "query($id: ID!) { campaign(id: $id) { startedAt completedAt executions { status } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        r["data"]["campaign"]["executions"][0]["status"],
        "COMPLETED"
    );
    assert!(r["data"]["campaign"]["completedAt"].is_string());
}

/// An update sets the fields it is given in one statement (the name trimmed), leaves the
/// others as they are, and writes nothing when it is given nothing to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_sets_the_fields_given_at_once_and_leaves_the_others() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Campaigns U").await;
    let input = json!({ "name": "Spring", "description": "Wines", "targetSegment": "vip" });
    let r = app
        .gql(&t.admin_key, CREATE, json!({ "input": input }))
        .await;
    let id = r["data"]["createCampaign"]["campaign"]["id"].clone();
    const UPDATE: &str = "mutation($input: CampaignInput!) { updateCampaign(input: $input) { campaign { name description channel targetSegment scheduledAt } userErrors { code } } }";
    let steps = [
        (
            json!({ "id": id, "name": "  Summer  " }),
            json!({ "name": "Summer", "description": "Wines", "channel": "EMAIL", "targetSegment": "vip", "scheduledAt": null }),
        ),
        (
            json!({ "id": id, "description": "Reds", "channel": "SMS", "targetSegment": "club", "scheduledAt": "2027-03-01T09:00:00Z" }),
            json!({ "name": "Summer", "description": "Reds", "channel": "SMS", "targetSegment": "club", "scheduledAt": "2027-03-01T09:00:00+00:00" }),
        ),
        (
            json!({ "id": id }),
            json!({ "name": "Summer", "description": "Reds", "channel": "SMS", "targetSegment": "club", "scheduledAt": "2027-03-01T09:00:00+00:00" }),
        ),
    ];
    // An update names its campaign: without an id it is refused and nothing is written.
    let r = app
        .gql(
            &t.admin_key,
            UPDATE,
            json!({ "input": { "name": "Orphan" } }),
        )
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );
    assert_eq!(
        r["errors"][0]["extensions"]["field"],
        json!(["input", "id"]),
        "{r}"
    );
    let orphans = format!(
        "SELECT count(*) AS n FROM campaigns WHERE tenant_id = '{}' AND name = 'Orphan'",
        t.id
    );
    assert_eq!(count(&app, &orphans).await, 0);
    // A first update before the measured ones, so that each of them follows an update.
    let warm = json!({ "input": { "id": id, "name": "Spring" } });
    app.gql(&t.admin_key, UPDATE, warm).await;
    let mut statements = Vec::new();
    for (input, expected) in steps {
        let request = app.gql(&t.admin_key, UPDATE, json!({ "input": input }));
        let (r, cost) = statements_of(&app, request).await;
        statements.push(cost);
        assert_eq!(r["data"]["updateCampaign"]["userErrors"], json!([]), "{r}");
        assert_eq!(r["data"]["updateCampaign"]["campaign"], expected, "{input}");
    }
    assert_eq!(
        statements[0], statements[1],
        "one field or four: one UPDATE"
    );
    assert_eq!(
        statements[2] + 1,
        statements[0],
        "nothing to change: no UPDATE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_validation_points_at_the_offending_field() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Campaigns A").await;
    let cases = [
        (
            json!({ "nodes": [{ "id": "a" }, { "id": "b" }], "edges": [{ "source": "a", "target": "b" }, { "source": "a", "target": "zzz" }] }),
            json!(["input", "workflow", "edges", "1", "target"]),
        ),
        (
            json!({ "nodes": [{ "type": "email" }], "edges": [] }),
            json!(["input", "workflow", "nodes", "0", "id"]),
        ),
        (
            json!({ "nodes": [{ "id": "a" }, { "id": "a" }], "edges": [] }),
            json!(["input", "workflow", "nodes", "1", "id"]),
        ),
        (
            json!({ "nodes": [{ "id": "a" }], "edges": [{ "target": "a" }] }),
            json!(["input", "workflow", "edges", "0", "source"]),
        ),
        (
            json!({ "edges": [] }),
            json!(["input", "workflow", "nodes"]),
        ),
    ];
    for (workflow, field) in cases {
        let r = app
            .gql(
                &t.admin_key,
                CREATE,
                json!({ "input": { "name": "Flow", "workflow": workflow } }),
            )
            .await;
        assert_eq!(
            r["data"]["createCampaign"]["userErrors"][0]["field"], field,
            "{r}"
        );
    }
    assert_eq!(
        app.gql(&t.admin_key, "{ campaigns { nodes { id } } }", json!({}))
            .await["data"]["campaigns"]["nodes"],
        json!([])
    );
    let ok = json!({ "nodes": [{ "id": "start" }, { "id": "mail" }], "edges": [{ "id": "e", "source": "start", "target": "mail" }] });
    let r = app
        .gql(
            &t.admin_key,
            CREATE,
            json!({ "input": { "name": "Flow", "workflow": ok } }),
        )
        .await;
    assert_eq!(r["data"]["createCampaign"]["campaign"]["status"], "DRAFT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outreach_metrics_use_the_same_machinery() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let r = app.gql(&t.admin_key, "{ outreachCampaigns(first: 5) { nodes { id metrics { sent replied replyRate } emails(first: 20) { nodes { id events { action } } } } } }", json!({})).await;
    let campaign = &r["data"]["outreachCampaigns"]["nodes"][0];
    let nodes = campaign["emails"]["nodes"].as_array().unwrap();
    let replied = |e: &Value| e["events"].to_string().contains("REPLIED");
    // emails[0] already replied in the demo data; emails[1] has not.
    let emails: Vec<String> = [
        nodes.iter().find(|e| replied(e)).unwrap(),
        nodes.iter().find(|e| !replied(e)).unwrap(),
    ]
    .iter()
    .map(|e| e["id"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(campaign["metrics"]["sent"], 2);
    assert_eq!(campaign["metrics"]["replied"], 1);
    let event = "mutation($e: ID!, $a: OutreachAction!) { recordOutreachEvent(input: { emailId: $e, action: $a }) { event { action } userErrors { code } } }";
    for (email, action) in [
        (&emails[1], "REPLIED"),
        (&emails[1], "REPLIED"),
        (&emails[0], "CLICKED"),
        (&emails[0], "BOUNCED"),
        (&emails[0], "UNSUBSCRIBED"),
    ] {
        let r = app
            .gql(&t.admin_key, event, json!({ "e": email, "a": action }))
            .await;
        assert_eq!(
            r["data"]["recordOutreachEvent"]["event"]["action"], action,
            "{r}"
        );
    }
    let r = app.gql(&t.admin_key, "query($id: ID!) { outreachCampaign(id: $id) { metrics { sent opened clicked replied bounced unsubscribed replyRate bounceRate openRate clickToOpenRate } } }", json!({ "id": campaign["id"] })).await;
    let m = &r["data"]["outreachCampaign"]["metrics"];
    assert_eq!(
        (
            m["sent"].as_i64(),
            m["replied"].as_i64(),
            m["bounced"].as_i64(),
            m["unsubscribed"].as_i64()
        ),
        (Some(2), Some(2), Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(m["replyRate"], 1.0);
    assert_eq!(m["bounceRate"], 0.5);
    assert_eq!(m["clickToOpenRate"], 0.5);
    let r = app
        .gql(
            &t.admin_key,
            "{ emailTemplates { name language } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["emailTemplates"][0]["language"], "fr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_recipients_and_outreach_are_isolated_between_tenants() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let r = app.gql(&b.admin_key, "{ campaigns(filter: { status: ACTIVE }) { nodes { id recipients(first: 1) { nodes { id } } } } outreachCampaigns { nodes { id emails(first: 1) { nodes { id } } } } }", json!({})).await;
    let b_campaign = r["data"]["campaigns"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_recipient = r["data"]["campaigns"]["nodes"][0]["recipients"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_outreach = r["data"]["outreachCampaigns"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_email = r["data"]["outreachCampaigns"]["nodes"][0]["emails"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let random = Uuid::new_v4().to_string();
    for query in [
        "query($id: ID!) { campaign(id: $id) { id } }",
        "query($id: ID!) { outreachCampaign(id: $id) { id } }",
    ] {
        for id in [&b_campaign, &b_outreach] {
            assert_eq!(
                app.gql(&a.admin_key, query, json!({ "id": id })).await,
                app.gql(&a.admin_key, query, json!({ "id": random })).await
            );
        }
    }
    let listed = app.gql(&a.admin_key, "{ campaigns(first: 100) { nodes { id } } campaignMetrics(first: 100) { nodes { campaign { id } } } activeCampaigns { nodes { id } } outreachCampaigns { nodes { id } } outreachEmails(first: 100) { nodes { id } } }", json!({})).await;
    for id in [&b_campaign, &b_outreach, &b_email] {
        assert!(!listed.to_string().contains(id.as_str()), "{id} leaked");
    }
    let writes = [
        (EVENT, json!({ "r": b_recipient, "s": "SENT" }), json!({ "r": random, "s": "SENT" })),
        ("mutation($id: ID!) { launchCampaign(input: { id: $id }) { userErrors { code } } }", json!({ "id": b_campaign }), json!({ "id": random })),
        ("mutation($id: ID!) { pauseCampaign(input: { id: $id }) { userErrors { code } } }", json!({ "id": b_campaign }), json!({ "id": random })),
        ("mutation($id: ID!) { updateCampaign(input: { id: $id, name: \"x\" }) { userErrors { code } } }", json!({ "id": b_campaign }), json!({ "id": random })),
        ("mutation($e: ID!) { recordOutreachEvent(input: { emailId: $e, action: OPENED }) { userErrors { code } } }", json!({ "e": b_email }), json!({ "e": random })),
    ];
    for (mutation, foreign, random) in writes {
        let f = app.gql(&a.admin_key, mutation, foreign).await;
        assert_eq!(
            f["data"],
            app.gql(&a.admin_key, mutation, random).await["data"],
            "{mutation}"
        );
        assert!(f.to_string().contains("NOT_FOUND"), "{f}");
    }
    let r = app
        .gql(
            &b.admin_key,
            "query($id: ID!) { campaign(id: $id) { status } }",
            json!({ "id": b_campaign }),
        )
        .await;
    assert_eq!(r["data"]["campaign"]["status"], "ACTIVE");
    let _: Value = r;
}
