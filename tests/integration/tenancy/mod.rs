//! Isolation enforced twice: the two-tenant matrix over every root field, row-level
//! security on its own, pooled connections, and authentication on HTTP and WebSocket.

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::{SinkExt, StreamExt};
use growthgraph::auth::{Proof, Role};
use growthgraph::db::tenant::RequestStart;
use growthgraph::db::{self, TenantDb};
use growthgraph::error::AppError;
use scoped_futures::ScopedFutureExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::common::{backend_pid, error_code, snapshot_state, user_error_code, TestApp};

mod access;
mod known_keys;
mod snapshots;
mod speed;
mod wire;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .count
}

/// For [`count`]: how many customers `tenant` has (all of them as the owner, who is not
/// subject to row-level security).
fn customers_of(tenant: Uuid) -> String {
    format!("SELECT count(*) AS count FROM customers WHERE tenant_id = '{tenant}'")
}

/// The statement that adds a customer with `email` to `tenant`.
fn add_customer(tenant: Uuid, email: &str) -> String {
    format!("INSERT INTO customers (tenant_id, email) VALUES ('{tenant}', '{email}')")
}

/// A pool of one connection (so a test knows which backend the next checkout gets).
fn one_connection_pool(app: &TestApp, statements: Arc<db::StatementCounter>) -> db::PgPool {
    db::build_pool(&app.database_url, 1, Duration::from_secs(5), statements)
}

/// Root fields the matrix below (with `customers::customers_are_isolated_between_tenants`,
/// `loyalty::loyalty_is_isolated_between_tenants`, `loyalty::crm_sync::*`, `loyalty::refunds::*`, `products::*`, `crm::*`, `comms::*`, `messages::tenants_and_jobs::templates_messages_and_email_events_stay_within_their_tenant`,
/// `messages::tenants_and_jobs::admins_retry_and_cancel_deliveries_through_their_jobs`, `scheduler::*`, `automations::*`,
/// `leads::reference::prompts_and_feedback_*`, `leads::reference::the_translation_*`, `outreach::*`, `prompts::*`, `translation::*`, `monitoring::*` and `analytics::*`) exercises; a new root field must be added here (and to
/// the matrix) or this test fails.
const COVERED_QUERY_FIELDS: &[&str] = &[
    "activeCampaigns",
    "apiKeys",
    "appointments",
    "assignPromptVariant",
    "calls",
    "campaign",
    "campaignMetrics",
    "campaignRun",
    "campaigns",
    "channels",
    "clubProgram",
    "communicationTemplates",
    "contacts",
    "crmConnection",
    "customer",
    "customers",
    "customersAggregate",
    "demoSessions",
    "discounts",
    "emailEvents",
    "emailSequenceSteps",
    "emailSequences",
    "emailTemplates",
    "enrollment",
    "enrollments",
    "events",
    "feedback",
    "growthInsights",
    "integrationLogs",
    "intentTranslations",
    "jobs",
    "lead",
    "leads",
    "leadsAggregate",
    "loyaltyRules",
    "message",
    "messages",
    "ordersAggregate",
    "outreachCampaign",
    "outreachCampaigns",
    "outreachEmails",
    "performanceMetrics",
    "pointTransactionsAggregate",
    "previewTemplate",
    "products",
    "profileEmbeddings",
    "promptAbTest",
    "promptAbTests",
    "promptEvolutions",
    "prompts",
    "prospectCandidate",
    "prospectCandidates",
    "prospectIndustryPerformance",
    "prospects",
    "publishedTestimonials",
    "redemption",
    "redemptions",
    "redemptionsAggregate",
    "reward",
    "rewards",
    "similarProspects",
    "testimonials",
    "tickets",
    "translationDictionary",
    "translations",
    "viewer",
    "webhookDeliveries",
    "webhookEndpoints",
    "widgetConfig",
];

const COVERED_MUTATION_FIELDS: &[&str] = &[
    "addLeadNote",
    "adjustPoints",
    "approveOutreachEmail",
    "archiveLead",
    "bookAppointment",
    "cancelEmailSequence",
    "cancelEnrollment",
    "cancelJob",
    "cancelRedemption",
    "changeAppointment",
    "cleanupExpiredDemoSessions",
    "completeCampaign",
    "configureChannel",
    "configureCrm",
    "configureWidget",
    "convertLead",
    "createApiKey",
    "createCampaign",
    "createClubStage",
    "createOutreachCampaign",
    "createPromptAbTest",
    "createPromptVariant",
    "createReward",
    "createTestimonial",
    "createWebhookEndpoint",
    "deleteLead",
    "disableWebhookEndpoint",
    "enrollCustomer",
    "expireEnrollments",
    "fulfillRedemption",
    "generateOutreachEmails",
    "importProspectCandidates",
    "ingestLead",
    "launchCampaign",
    "moderateTestimonial",
    "openTicket",
    "pauseCampaign",
    "pauseEmailSequence",
    "reactivateLead",
    "recordCall",
    "recordCustomerActivity",
    "recordDeliveryEvent",
    "recordFormTest",
    "recordFormTestResult",
    "recordOrder",
    "recordOutreachEvent",
    "recordPromptExecution",
    "recordProspect",
    "redeemReward",
    "refreshGrowthInsights",
    "refundOrder",
    "refundRedemption",
    "rejectOutreachEmail",
    "renewEnrollment",
    "replaceProfileEmbeddings",
    "rescheduleAppointment",
    "resumeCampaign",
    "resumeEmailSequence",
    "retryCrmSync",
    "retryJob",
    "revertLeadConversion",
    "revokeApiKey",
    "saveClubProgram",
    "saveCommunicationTemplate",
    "saveContact",
    "saveEmailSequenceSteps",
    "saveEmailTemplate",
    "sendMessage",
    "setCommunicationPreferences",
    "setLinkedinConsent",
    "setProspectEmbedding",
    "shareTestimonialOnLinkedin",
    "startEmailSequence",
    "startPromptAbTest",
    "stopPromptAbTest",
    "tagLead",
    "translate",
    "updateCampaign",
    "updateClubStage",
    "updateLeadAnalysis",
    "updateLeadNote",
    "updateLoyaltyRules",
    "updateOutreachCampaign",
    "updatePromptVariant",
    "updateProspect",
    "updateReward",
    "updateTenantSettings",
    "updateTicket",
    "upgradeEnrollment",
    "upsertCustomer",
    "upsertDiscount",
    "upsertProduct",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_covers_every_root_field() {
    let schema = growthgraph::graphql::build_schema(None);
    let response = async_graphql::Schema::execute(
        &schema,
        "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }",
    )
    .await;
    let data = response.data.into_json().unwrap();
    let names = |kind: &str| -> Vec<String> {
        let mut names: Vec<String> = data["__schema"][kind]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("queryType"), COVERED_QUERY_FIELDS);
    assert_eq!(names("mutationType"), COVERED_MUTATION_FIELDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_or_changes_another_tenants_rows() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    let b_key_id = {
        let r = app
            .gql(&b.admin_key, "{ viewer { apiKey { id } } }", json!({}))
            .await;
        r["data"]["viewer"]["apiKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // viewer
    let r = app
        .gql(&a.admin_key, "{ viewer { tenant { id slug } } }", json!({}))
        .await;
    assert_eq!(r["data"]["viewer"]["tenant"]["id"], a.id.to_string());

    // apiKeys: only A's.
    let r = app
        .gql(
            &a.admin_key,
            "{ apiKeys(first: 100) { nodes { id } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = r["data"]["apiKeys"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert!(!ids.contains(&b_key_id.as_str()));

    // publishedTestimonials: exactly A's published ones.
    let mut owner = app.owner().await;
    let expected = count(
        &mut owner,
        &format!("SELECT count(*) AS count FROM testimonials WHERE tenant_id = '{}' AND status = 'published'", a.id),
    )
    .await;
    assert!(expected > 0);
    let r = app
        .gql(
            &a.admin_key,
            "{ publishedTestimonials(first: 100) { nodes { id } } }",
            json!({}),
        )
        .await;
    let ids: Vec<String> = r["data"]["publishedTestimonials"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len() as i64, expected);
    for id in &ids {
        let owner_tenant = count(
            &mut owner,
            &format!(
                "SELECT count(*) AS count FROM testimonials WHERE id = '{id}' AND tenant_id = '{}'",
                a.id
            ),
        )
        .await;
        assert_eq!(owner_tenant, 1, "testimonial {id} is not tenant A's");
    }

    // revokeApiKey on B's key behaves exactly like a random id, and B's key keeps working.
    let revoke = "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { apiKey { id } userErrors { field code message } } }";
    let foreign = app
        .gql(&a.admin_key, revoke, json!({ "id": b_key_id }))
        .await;
    let random = app
        .gql(&a.admin_key, revoke, json!({ "id": Uuid::new_v4() }))
        .await;
    assert_eq!(foreign["data"], random["data"]);
    assert_eq!(user_error_code(&foreign, "revokeApiKey"), "NOT_FOUND");
    let r = app
        .gql(&b.admin_key, "{ viewer { tenant { id } } }", json!({}))
        .await;
    assert_eq!(r["data"]["viewer"]["tenant"]["id"], b.id.to_string());

    // createApiKey writes into the caller's tenant only.
    app.gql(
        &a.admin_key,
        "mutation { createApiKey(input: { name: \"ci\", role: ANALYST }) { apiKey { id } } }",
        json!({}),
    )
    .await;
    let b_keys = count(
        &mut owner,
        &format!(
            "SELECT count(*) AS count FROM api_keys WHERE tenant_id = '{}'",
            b.id
        ),
    )
    .await;
    assert_eq!(b_keys, 1);
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

/// A unit of work that adds a customer with `email` to its tenant.
fn insert_customer(
    email: &'static str,
) -> impl for<'r> FnOnce(
    &'r mut AsyncPgConnection,
    db::Tenant,
) -> scoped_futures::ScopedBoxFuture<'static, 'r, Result<(), AppError>>
       + Send {
    move |conn, tenant| {
        async move {
            conn.batch_execute(&add_customer(tenant.id(), email))
                .await
                .map_err(AppError::from)
        }
        .scope_boxed()
    }
}

/// A read of the snapshot's tenant setting and what row-level security lets it see.
fn read_snapshot(
    conn: &mut AsyncPgConnection,
    _: db::Tenant,
) -> scoped_futures::ScopedBoxFuture<'static, '_, diesel::QueryResult<crate::common::SnapshotState>>
{
    async move {
        diesel::sql_query(crate::common::SNAPSHOT_STATE)
            .get_result(conn)
            .await
    }
    .scope_boxed()
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    api_key: String,
}

/// The tenant's testimonial widget key (read as the owner).
async fn widget_key(owner: &mut AsyncPgConnection, tenant: Uuid) -> String {
    let key: Key = diesel::sql_query(format!(
        "SELECT api_key FROM widget_configs WHERE tenant_id = '{tenant}'"
    ))
    .get_result(owner)
    .await
    .unwrap();
    key.api_key
}
