//! Rules over the whole database catalog, and migrations that reverse exactly.

use std::process::Command;

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::QueryableByName;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use growthgraph::db::{self, cluster, MIGRATIONS};

use crate::common::{empty_database, fresh_database};

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn names(conn: &mut AsyncPgConnection, sql: &str) -> Vec<String> {
    diesel::sql_query(sql)
        .load::<Name>(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

fn pg_dump(url: &str) -> String {
    let bin = cluster::find_bin_dir(None).expect("PostgreSQL binaries");
    let output = Command::new(bin.join("pg_dump"))
        .args(["--schema-only", "--dbname", url])
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        // pg_dump protects its output with a random \restrict token per run.
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn with_harness<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> T + Send + 'static,
) -> T {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .unwrap();
        f(&mut conn)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_up_down_up_leave_the_same_catalog() {
    let url = empty_database().await;
    let empty = pg_dump(&url);

    db::migrate(&url).await.unwrap();
    let first = pg_dump(&url);

    with_harness(&url, |conn| {
        conn.revert_all_migrations(MIGRATIONS).unwrap();
    })
    .await;
    let mut conn = db::connect_owner(&url).await.unwrap();
    conn.batch_execute("DROP TABLE __diesel_schema_migrations")
        .await
        .unwrap();
    assert_eq!(
        pg_dump(&url),
        empty,
        "down.sql files do not reverse the migrations exactly"
    );

    db::migrate(&url).await.unwrap();
    assert_eq!(
        pg_dump(&url),
        first,
        "migrating again gives a different catalog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_table_has_tenant_id_a_foreign_key_and_a_leading_index() {
    let url = fresh_database().await;
    let mut conn = db::connect_owner(&url).await.unwrap();
    let tables = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT IN
           ('tenants', 'intent_translations', 'translation_dictionary', '__diesel_schema_migrations')
         ORDER BY 1",
    )
    .await;
    assert!(!tables.is_empty());

    let missing_column = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r'
           AND c.relname NOT IN ('tenants', 'intent_translations', 'translation_dictionary', '__diesel_schema_migrations')
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                           AND a.attname = 'tenant_id' AND a.attnotnull AND NOT a.attisdropped)",
    )
    .await;
    assert_eq!(
        missing_column,
        Vec::<String>::new(),
        "tables without tenant_id NOT NULL"
    );

    let missing_fk = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
         WHERE n.nspname = 'public' AND c.relkind = 'r'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f'
                           AND k.confrelid = 'tenants'::regclass AND k.conkey = ARRAY[a.attnum]
                           AND k.confdeltype = 'c')",
    )
    .await;
    assert_eq!(
        missing_fk,
        Vec::<String>::new(),
        "tables without tenant_id → tenants ON DELETE CASCADE"
    );

    let missing_index = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
         WHERE n.nspname = 'public' AND c.relkind = 'r'
           AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum)",
    )
    .await;
    assert_eq!(
        missing_index,
        Vec::<String>::new(),
        "tables without an index led by tenant_id"
    );
}

/// Every table the five seeds name: present by its name, or merged (SPEC §3).
const SEED_TABLES: &[(&str, &str)] = &[
    // 000 MuchLove growth automations
    ("companies", "tenants"),
    ("contacts", "contacts"),
    ("demo_sessions", "demo_sessions"),
    ("email_sequences", "email_sequences"),
    ("email_events", "email_events"),
    ("widget_configs", "widget_configs"),
    // 001 Avenir AI
    ("clients", "tenants"),
    ("lead_memory", "lead_memory"),
    ("lead_actions", "lead_actions"),
    ("lead_notes", "lead_notes"),
    ("growth_brain", "growth_brain"),
    ("feedback_tracking", "feedback_tracking"),
    ("performance_metrics", "performance_metrics"),
    ("prompt_registry", "prompt_registry"),
    ("prompt_performance", "prompt_performance"),
    ("prompt_ab_tests", "prompt_ab_tests"),
    ("prompt_evolution", "prompt_evolution"),
    ("prospect_candidates", "prospect_candidates"),
    ("prospect_outreach_log", "prospect_outreach_log"),
    (
        "prospect_industry_performance",
        "prospect_industry_performance",
    ),
    ("prospect_form_tests", "prospect_form_tests"),
    ("outreach_campaigns", "outreach_campaigns"),
    ("outreach_emails", "outreach_emails"),
    ("outreach_tracking", "outreach_tracking"),
    ("outreach_metrics", "outreach_metrics"),
    ("email_templates", "email_templates"),
    ("translation_cache", "translation_cache"),
    ("translation_dictionary", "translation_dictionary"),
    ("queue_jobs", "queue_jobs"),
    ("integration_logs", "integration_logs"),
    ("avenir_profile_embeddings", "avenir_profile_embeddings"),
    ("intent_translations", "intent_translations"),
    // 002 Coccinelle channels
    ("channel_configurations", "channel_configurations"),
    ("channel_messages_log", "communication_log"),
    ("call_logs", "call_logs"),
    ("rendez_vous", "rendez_vous"),
    ("prospects", "prospects"),
    ("tickets", "tickets"),
    // 003 CRM campaign builder
    ("target_group_mappings", "target_group_mappings"),
    ("campaigns", "campaigns"),
    ("campaign_executions", "campaign_executions"),
    ("campaign_recipients", "campaign_recipients"),
    ("customer_360", "customers"),
    ("customer_activities", "customer_activities"),
    ("active_campaigns", "active_campaigns"),
    ("campaign_metrics", "campaign_metrics"),
    // 004 wine club and loyalty
    ("platform_sessions", "platform_sessions"),
    ("customers", "customers"),
    ("products", "products"),
    ("orders", "orders"),
    ("discounts", "discounts"),
    ("club_programs", "club_programs"),
    ("club_stages", "club_stages"),
    ("club_enrollments", "club_enrollments"),
    ("club_extensions", "club_extensions"),
    ("loyalty_point_rules", "loyalty_point_rules"),
    ("point_transactions", "point_transactions"),
    ("loyalty_rewards", "loyalty_rewards"),
    ("reward_redemptions", "reward_redemptions"),
    ("communication_configs", "channel_configurations"),
    ("communication_templates", "communication_templates"),
    ("communication_log", "communication_log"),
    ("communication_preferences", "communication_preferences"),
    ("crm_sync_queue", "queue_jobs"),
    // platform tables the product adds
    ("api_keys", "api_keys"),
    ("domain_events", "domain_events"),
    ("idempotency_keys", "idempotency_keys"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_table_is_accounted_for() {
    let url = fresh_database().await;
    let mut conn = db::connect_owner(&url).await.unwrap();
    let present = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v')",
    )
    .await;
    let missing: Vec<_> = SEED_TABLES
        .iter()
        .filter(|(_, table)| !present.iter().any(|p| p == table))
        .collect();
    assert_eq!(missing, Vec::<&(&str, &str)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_foreign_key_has_an_index() {
    let url = fresh_database().await;
    let mut conn = db::connect_owner(&url).await.unwrap();
    let unindexed = names(
        &mut conn,
        "SELECT k.conrelid::regclass::text || '.' || k.conname AS name
         FROM pg_constraint k
         WHERE k.contype = 'f' AND k.connamespace = 'public'::regnamespace
           AND NOT EXISTS (
             SELECT 1 FROM pg_index i
             WHERE i.indrelid = k.conrelid
               AND (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] @> k.conkey
               AND (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] <@ k.conkey)
         ORDER BY 1",
    )
    .await;
    assert_eq!(
        unindexed,
        Vec::<String>::new(),
        "foreign keys without a covering index"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_enumerated_status_is_constrained_and_updated_at_has_a_trigger() {
    let url = fresh_database().await;
    let mut conn = db::connect_owner(&url).await.unwrap();
    let unchecked = names(
        &mut conn,
        "SELECT c.relname || '.' || a.attname AS name
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
           AND a.attname IN ('status', 'role', 'channel', 'channel_type', 'action_type', 'reward_type',
                             'transaction_type', 'job_type', 'urgency', 'churn_risk', 'segment_kind')
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c'
                           AND a.attnum = ANY (k.conkey))
         ORDER BY 1",
    )
    .await;
    assert_eq!(
        unchecked,
        Vec::<String>::new(),
        "enumerated columns without a CHECK"
    );

    let no_trigger = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attname = 'updated_at'
           AND NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                           WHERE t.tgrelid = c.oid AND p.proname = 'set_updated_at')",
    )
    .await;
    assert_eq!(
        no_trigger,
        Vec::<String>::new(),
        "updated_at without its trigger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_covers_every_tenant_table_and_the_app_role_is_unprivileged() {
    let url = fresh_database().await;
    let mut conn = db::connect_owner(&url).await.unwrap();
    let unprotected = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity
                    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))",
    )
    .await;
    assert_eq!(
        unprotected,
        Vec::<String>::new(),
        "tenant tables without forced RLS and a policy"
    );

    #[derive(QueryableByName)]
    struct RoleFacts {
        #[diesel(sql_type = Bool)]
        rolsuper: bool,
        #[diesel(sql_type = Bool)]
        rolbypassrls: bool,
        #[diesel(sql_type = BigInt)]
        owned: i64,
    }
    let facts: RoleFacts = diesel::sql_query(
        "SELECT r.rolsuper, r.rolbypassrls,
                (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS owned
         FROM pg_roles r WHERE r.rolname = 'growthgraph_app'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(
        !facts.rolsuper && !facts.rolbypassrls,
        "the app role must not bypass RLS"
    );
    assert_eq!(facts.owned, 0, "the app role must own nothing");

    let definer_views = names(
        &mut conn,
        "SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind = 'v' AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)",
    )
    .await;
    assert_eq!(
        definer_views,
        Vec::<String>::new(),
        "views must be security_invoker"
    );

    let unpinned = names(
        &mut conn,
        "SELECT p.proname AS name FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
           AND p.prosecdef AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search_path=%')",
    )
    .await;
    assert_eq!(
        unpinned,
        Vec::<String>::new(),
        "SECURITY DEFINER functions without a pinned search_path"
    );
    let definers = names(
        &mut conn,
        "SELECT p.proname AS name FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef ORDER BY 1",
    )
    .await;
    assert_eq!(
        definers,
        vec![
            "authenticate_api_key",
            "authenticate_widget_key",
            "channel_hook_target",
            "confirm_api_key",
            "crm_hook_target",
            "demo_session_tenant",
            "demo_tenant",
            "job_queue_metrics",
            "retention_metrics",
            "scheduler_tenant_ids",
            "sequence_domain_events",
            "tenants_with_due_jobs",
        ],
        "unreviewed SECURITY DEFINER"
    );

    let writable_reference = names(
        &mut conn,
        "SELECT t.name FROM (VALUES ('intent_translations'), ('translation_dictionary')) t(name)
         WHERE has_table_privilege('growthgraph_app', t.name, 'INSERT')
            OR has_table_privilege('growthgraph_app', t.name, 'UPDATE')
            OR has_table_privilege('growthgraph_app', t.name, 'DELETE')",
    )
    .await;
    assert_eq!(
        writable_reference,
        Vec::<String>::new(),
        "reference tables must be read-only to the app role"
    );
}

#[test]
fn committed_schema_graphql_matches_the_running_schema() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(
        committed,
        growthgraph::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -- sdl > schema.graphql`"
    );
}
