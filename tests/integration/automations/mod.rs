//! Growth automations: email sequences and demo sessions (the tenant's rows newest first,
//! paged without gaps or repeats), and the testimonial widget's settings (admins only),
//! read and configured.

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use growthgraph::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{error_code, user_error_code, TestApp, TestTenant};

mod demo_sessions;
mod sequences;
mod widget;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_sequences_and_demo_sessions_list_only_the_tenants_rows_newest_first() {
    let app = TestApp::start().await;
    let a = app.tenant("Winery A").await;
    let b = app.tenant("Winery B").await;
    // More rows for A, each batch created at one instant: ties are ordered by id.
    app.insert_for(
        &a,
        "INSERT INTO email_sequences (tenant_id, recipient_email, segment, status, created_at) \
         SELECT $1, 'seq' || g || '@example.com', 'frozen_starter', \
                (ARRAY['active', 'paused', 'active'])[g], now() - interval '1 day' \
         FROM generate_series(1, 3) g",
    )
    .await;
    app.insert_for(
        &a,
        "INSERT INTO demo_sessions (tenant_id, session_token, created_at) \
         SELECT $1, 'test-token-' || $1 || '-' || g, now() - interval '1 day' \
         FROM generate_series(1, 3) g",
    )
    .await;
    for (field, table) in [
        ("emailSequences", "email_sequences"),
        ("demoSessions", "demo_sessions"),
    ] {
        let rows = app.assert_lists_own_rows(field, table, &a, &b).await;
        assert!(rows >= 3, "{table}");
    }
    for (status, sql) in [("ACTIVE", "active"), ("PAUSED", "paused")] {
        assert_eq!(
            app.page_ids(
                &a.admin_key,
                "emailSequences",
                &format!(", status: {status}")
            )
            .await,
            app.ids_by_sql("email_sequences", &a, Some(("status", sql)))
                .await,
            "emailSequences with status {status}"
        );
    }
    let r = app
        .gql(
            &a.admin_key,
            "{ emailSequences(first: 101) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let r = app
        .gql(
            &a.admin_key,
            "{ demoSessions(after: \"nope\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
}
