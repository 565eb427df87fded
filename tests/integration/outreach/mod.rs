//! Prospect discovery and outreach (seed 001 sections 4 and 5): candidates imported once
//! per website and scored by their signals, form tests that end once, and outreach
//! emails generated, approved, sent through a real SMTP server, followed up and counted
//! once per funnel step, even racing.

use chrono::{DateTime, Duration, Utc};
use growthgraph::db::TenantDb;
use growthgraph::scheduler;
use serde_json::{json, Value};

use crate::common::{count, user_error_code, TestApp, TestTenant};

mod campaigns;
mod candidates;
mod profile;

const IMPORT: &str = "mutation($i: [ProspectCandidateInput!]!) { importProspectCandidates(input: $i) { candidates { id businessName website industry automationNeedScore contacted } userErrors { code field message } } }";

/// Imports `rows`, answering the payload.
async fn import(app: &TestApp, key: &str, rows: Value) -> Value {
    let r = app.gql(key, IMPORT, json!({ "i": rows })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["importProspectCandidates"].clone()
}

/// The tenant's candidates (owner's count, row-level security aside).
fn candidates_of(t: &TestTenant) -> String {
    format!(
        "SELECT count(*) AS n FROM prospect_candidates WHERE tenant_id = '{}'",
        t.id
    )
}

async fn tick(app: &TestApp, t: &TestTenant, at: DateTime<Utc>) -> Vec<(&'static str, Value)> {
    scheduler::tick(&TenantDb::new(app.pool.clone(), t.id), at)
        .await
        .unwrap()
}

/// A candidate's score and response score, read as the API gives them.
async fn scores(app: &TestApp, key: &str, id: &str) -> (Value, Value) {
    let r = app
        .gql(
            key,
            "query($id: ID!) { prospectCandidate(id: $id) { automationNeedScore responseScore } }",
            json!({ "id": id }),
        )
        .await;
    let c = &r["data"]["prospectCandidate"];
    (c["automationNeedScore"].clone(), c["responseScore"].clone())
}

fn in_hours(hours: i64) -> String {
    (Utc::now() + Duration::hours(hours)).to_rfc3339()
}
