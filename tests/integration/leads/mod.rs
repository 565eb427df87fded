//! Leads, their audit trail, and growth insights checked against figures computed here.

use std::collections::BTreeMap;

use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use growthgraph::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{
    assert_page_relations_as_loaders, count, error_code, user_error_code, TestApp, TestTenant,
};

mod actions;
mod insights;
mod reference;

const INGEST: &str = "mutation($input: IngestLeadInput!) { ingestLead(input: $input) { lead { id currentTag } userErrors { field code message } } }";

fn act(name: &str, extra: &str) -> String {
    format!("mutation($id: ID!) {{ {name}(input: {{ leadId: $id {extra} }}) {{ lead {{ id archived deleted currentTag }} userErrors {{ field code }} }} }}")
}

async fn run(app: &TestApp, t: &TestTenant, name: &str, extra: &str, id: &str) -> Value {
    let r = app
        .gql(&t.admin_key, &act(name, extra), json!({ "id": id }))
        .await;
    r["data"][name].clone()
}

fn code(payload: &Value) -> Option<&str> {
    payload["userErrors"][0]["code"].as_str()
}

struct L {
    intent: Option<&'static str>,
    tone: Option<&'static str>,
    urgency: &'static str,
    confidence: Option<f64>,
    language: &'static str,
    day: u32,
    archived: bool,
    deleted: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_page_forward_and_backward_in_either_order_through_ties() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Paged leads").await;
    // Eleven leads at four instants (ties broken by id), three of them archived.
    app.insert_for(
        &t,
        "INSERT INTO lead_memory (tenant_id, name, email, archived, created_at)
         SELECT $1, 'L' || i, 'l' || i || '@example.com', i % 4 = 1,
                timestamptz '2026-01-01 00:00:00+00' + (i / 3) * interval '1 day'
         FROM generate_series(0, 10) AS i",
    )
    .await;
    for archived in [false, true] {
        let newest_first = app
            .ids_by_sql(
                "lead_memory",
                &t,
                Some(("archived::text", &archived.to_string())),
            )
            .await;
        assert_eq!(newest_first.len(), if archived { 3 } else { 8 });
        let oldest_first: Vec<String> = newest_first.iter().rev().cloned().collect();
        for (direction, expected) in [
            ("", &newest_first),
            ("DESC", &newest_first),
            ("ASC", &oldest_first),
        ] {
            let order = match direction {
                "" => String::new(),
                d => format!(", orderBy: {{ direction: {d} }}"),
            };
            let args = format!(", filter: {{ archived: {archived} }}{order}");
            let forward = app.page_ids(&t.admin_key, "leads", &args).await;
            assert_eq!(&forward, expected, "forward{args}");
            let backward = app.page_ids_backward(&t.admin_key, "leads", &args).await;
            assert_eq!(&backward, expected, "backward{args}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_and_insights_are_isolated_between_tenants() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let b_lead = app
        .gql(
            &b.admin_key,
            "{ leads(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await["data"]["leads"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = app
        .gql(
            &a.admin_key,
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({ "id": b_lead }),
        )
        .await;
    assert!(foreign["data"]["lead"].is_null());
    let listed = app.gql(&a.admin_key, "{ leads(first: 100, filter: { archived: true }) { nodes { id } } all: leads(first: 100) { nodes { id } } }", json!({})).await;
    assert!(!listed.to_string().contains(&b_lead));
    for (name, extra) in [
        ("tagLead", ", tag: \"x\""),
        ("archiveLead", ""),
        ("deleteLead", ""),
        ("convertLead", ""),
        ("revertLeadConversion", ", reason: \"r\""),
    ] {
        let f = run(&app, &a, name, extra, &b_lead).await;
        let r = run(&app, &a, name, extra, &Uuid::new_v4().to_string()).await;
        assert_eq!(f, r, "{name}");
        assert_eq!(code(&f), Some("NOT_FOUND"));
    }
    let r = app.gql(&a.admin_key, "mutation($id: ID!) { addLeadNote(input: { leadId: $id, note: \"n\" }) { userErrors { code } } }", json!({ "id": b_lead })).await;
    assert_eq!(user_error_code(&r, "addLeadNote"), "NOT_FOUND");
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM lead_actions WHERE lead_id = '{b_lead}' AND action_type <> 'created' AND performed_by = 'api'")).await, 0);

    // Insights: each tenant's refresh sees its own leads only.
    app.gql(&b.admin_key, "mutation { ingestLead(input: { name: \"Only B\", email: \"b@example.com\" }) { lead { id } } }", json!({})).await;
    let ra = app
        .gql(
            &a.admin_key,
            "mutation { refreshGrowthInsights { growthInsights { totalLeads } } }",
            json!({}),
        )
        .await;
    let rb = app
        .gql(
            &b.admin_key,
            "mutation { refreshGrowthInsights { growthInsights { totalLeads } } }",
            json!({}),
        )
        .await;
    let (ta, tb) = (
        ra["data"]["refreshGrowthInsights"]["growthInsights"]["totalLeads"]
            .as_i64()
            .unwrap(),
        rb["data"]["refreshGrowthInsights"]["growthInsights"]["totalLeads"]
            .as_i64()
            .unwrap(),
    );
    assert_eq!(tb, ta + 1, "B's extra lead never counts for A");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM growth_brain").await,
        2
    );
}

/// A `leads` page reads the actions and notes its nodes ask for in one statement for the
/// whole page, and answers as the loaders do: under `nodes` or `edges { node }`, either
/// order, ties in the relations' own order broken by id, a lead with neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leads_page_reads_its_actions_and_notes_in_one_statement() {
    let app = TestApp::start().await;
    let t = app.bare_tenant("Leads with history").await;
    app.insert_for(
        &t,
        "INSERT INTO lead_memory (tenant_id, name, email, created_at)
         SELECT $1, 'L' || i, 'l' || i || '@example.com', timestamptz '2026-01-01' + i * interval '1 hour'
         FROM generate_series(0, 5) AS i;",
    )
    .await;
    app.insert_for(
        &t,
        "INSERT INTO lead_actions (tenant_id, lead_id, action_type, tag, \"timestamp\", performed_by)
         SELECT $1, id, 'tagged', 'tag ' || k, timestamptz '2026-02-01' + (k / 2) * interval '1 minute', 'ops'
         FROM lead_memory, generate_series(1, 4) AS k WHERE tenant_id = $1 AND name <> 'L0'",
    )
    .await;
    app.insert_for(
        &t,
        "INSERT INTO lead_notes (tenant_id, lead_id, note, created_at)
         SELECT $1, id, 'note ' || k, timestamptz '2026-02-01' + (k % 2) * interval '1 minute'
         FROM lead_memory, generate_series(1, 3) AS k WHERE tenant_id = $1 AND name <> 'L0'",
    )
    .await;
    let both = "{ leads(first: 6) { nodes { id name actions { id action tag timestamp performedBy }
        notes { id note createdAt } } } }";
    let selections = [
        "{ leads(first: 4, orderBy: { direction: ASC }) { edges { node { id actions { id tag } } } } }",
        "{ leads(first: 3) { nodes { notes { note } } pageInfo { hasNextPage } } }",
        "{ leads(first: 6) { nodes { id } edges { node { actions { id } notes { id } } } } }",
    ];
    let alone = "{ leads(first: 6) { nodes { id name } } }";
    assert_page_relations_as_loaders(&app, &t.admin_key, &selections, (both, alone)).await;
    let answer = app.gql(&t.admin_key, both, json!({})).await;
    let nodes = answer["data"]["leads"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes[5]["actions"], json!([]), "L0 has none: {answer}");
    assert_eq!(nodes[0]["actions"].as_array().unwrap().len(), 4);
    assert_eq!(nodes[0]["notes"].as_array().unwrap().len(), 3);
}
