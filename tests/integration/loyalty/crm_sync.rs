//! CRM sync jobs: enqueued with each enrollment change, retried with backoff, marked synced.

use super::*;

/// Fails its first `failures` calls, then records each call and succeeds.
struct FlakyCrm {
    failures: usize,
    calls: AtomicUsize,
    recorded: std::sync::Mutex<Vec<(Uuid, CrmSync)>>,
}

#[async_trait::async_trait]
impl CrmProvider for FlakyCrm {
    async fn sync_discount(&self, tenant: Uuid, sync: &CrmSync) -> Result<(), CrmError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(CrmError::Failed("CRM unavailable (503)".into()));
        }
        self.recorded.lock().unwrap().push((tenant, sync.clone()));
        Ok(())
    }
}

#[derive(QueryableByName, Debug)]
struct Job {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Double)]
    delay_seconds: f64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    sync_status: String,
}

async fn job_state(app: &TestApp, enrollment: &str) -> Job {
    let mut owner = app.owner().await;
    diesel::sql_query(format!(
        "SELECT j.status, j.attempts, extract(epoch FROM j.run_at - now())::float8 AS delay_seconds, j.error, e.sync_status
         FROM queue_jobs j JOIN club_enrollments e ON e.id::text = j.payload->>'enrollmentId'
         WHERE j.job_type = 'crm_sync' AND e.id = '{enrollment}'"
    ))
    .get_result(&mut owner)
    .await
    .unwrap()
}

/// A new customer of `t` enrolled in Bronze, with no other job queued: the enrollment.
async fn enrolled(app: &TestApp, t: &TestTenant, email: &str) -> String {
    exec(
        app,
        &format!("DELETE FROM queue_jobs WHERE tenant_id = '{}'", t.id),
    )
    .await;
    let stages = stages(app, t).await;
    let customer = new_customer(app, t, email).await;
    let r = app
        .gql(
            &t.admin_key,
            ENROLL,
            json!({ "c": customer, "s": stage(&stages, "Bronze") }),
        )
        .await;
    r["data"]["enrollCustomer"]["enrollment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_sync_jobs_are_enqueued_retried_with_backoff_and_marked_synced() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let enrollment = enrolled(&app, &t, "crm@example.com").await;
    let job = job_state(&app, &enrollment).await;
    assert_eq!(
        (job.status.as_str(), job.attempts, job.sync_status.as_str()),
        ("pending", 0, "pending")
    );

    let db = TenantDb::new(app.pool.clone(), t.id);
    let crm = FlakyCrm {
        failures: 2,
        calls: AtomicUsize::new(0),
        recorded: Default::default(),
    };
    // First attempt fails: retried in 2 s.
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 1);
    let job = job_state(&app, &enrollment).await;
    assert_eq!((job.status.as_str(), job.attempts), ("pending", 1));
    assert!((1.0..=2.5).contains(&job.delay_seconds), "{job:?}");
    assert!(job.error.as_deref().unwrap().contains("CRM unavailable"));
    // Not due yet: nothing runs.
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 0);
    // Second attempt (made due) fails again: the delay doubles.
    exec(
        &app,
        "UPDATE queue_jobs SET run_at = now() WHERE job_type = 'crm_sync'",
    )
    .await;
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 1);
    let job = job_state(&app, &enrollment).await;
    assert_eq!(job.attempts, 2);
    assert!((3.0..=4.5).contains(&job.delay_seconds), "{job:?}");
    // Third attempt succeeds: the job completes and the enrollment is synced.
    exec(
        &app,
        "UPDATE queue_jobs SET run_at = now() WHERE job_type = 'crm_sync'",
    )
    .await;
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 1);
    let job = job_state(&app, &enrollment).await;
    assert_eq!(
        (job.status.as_str(), job.sync_status.as_str()),
        ("completed", "synced")
    );
    let calls = crm.recorded.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1.action, "add");
    assert_eq!(calls[0].1.enrollment_id.to_string(), enrollment);

    // A job that runs out of attempts fails, and so does the enrollment's sync status.
    let r = app.gql(&t.admin_key, "mutation($e: ID!) { cancelEnrollment(input: { enrollmentId: $e }) { enrollment { status syncStatus } } }", json!({ "e": enrollment })).await;
    assert_eq!(
        r["data"]["cancelEnrollment"]["enrollment"]["syncStatus"], "PENDING",
        "{r}"
    );
    exec(
        &app,
        "UPDATE queue_jobs SET max_attempts = 1 WHERE status = 'pending'",
    )
    .await;
    let always_down = FlakyCrm {
        failures: usize::MAX,
        calls: AtomicUsize::new(0),
        recorded: Default::default(),
    };
    assert_eq!(
        jobs::run_due_crm_jobs(&db, &always_down, 10).await.unwrap(),
        1
    );
    assert_eq!(count(&app, &format!("SELECT count(*) AS n FROM club_enrollments WHERE id = '{enrollment}' AND sync_status = 'failed'")).await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM queue_jobs WHERE status = 'failed'"
        )
        .await,
        1
    );
}

const RETRY: &str = "mutation($e: ID!) { retryCrmSync(input: { enrollmentId: $e }) { enrollment { id syncStatus } userErrors { field code } } }";

/// Without a CRM, a sync says so: the enrollment is `NOT_CONFIGURED` (never `SYNCED`) and
/// its job failed with the reason, not retried; admins queue it again, once however many
/// retries race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_crm_a_sync_ends_not_configured_and_admins_queue_it_again_once() {
    let app = TestApp::start().await;
    let t = app.tenant("Winery A").await;
    let enrollment = enrolled(&app, &t, "no-crm@example.com").await;
    let db = TenantDb::new(app.pool.clone(), t.id);
    // The server's provider when no CRM connector is configured.
    assert_eq!(
        jobs::run_due_crm_jobs(&db, &jobs::NoCrm, 10).await.unwrap(),
        1
    );
    let job = job_state(&app, &enrollment).await;
    assert_eq!(
        (
            job.status.as_str(),
            job.sync_status.as_str(),
            job.error.as_deref()
        ),
        ("failed", "not_configured", Some(jobs::NOT_CONFIGURED))
    );
    let read = || {
        app.gql(
            &t.admin_key,
            "query($e: ID!) { enrollment(id: $e) { syncStatus syncError } }",
            json!({ "e": enrollment }),
        )
    };
    assert_eq!(
        read().await["data"]["enrollment"],
        json!({ "syncStatus": "NOT_CONFIGURED", "syncError": jobs::NOT_CONFIGURED })
    );

    // Nor does the demo data claim a sync that never happened.
    let demo = app
        .gql(&t.admin_key, "{ clubProgram { stages { syncStatus } } enrollments(first: 100) { nodes { syncStatus } } }", json!({}))
        .await;
    let statuses: Vec<&Value> = demo["data"]["clubProgram"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .chain(demo["data"]["enrollments"]["nodes"].as_array().unwrap())
        .map(|s| &s["syncStatus"])
        .collect();
    assert!(statuses.len() > 3, "{demo}");
    assert!(statuses.iter().all(|s| *s != "SYNCED"), "{demo}");

    // Analysts may not queue syncs; an unknown enrollment is refused; nothing is queued.
    let analyst = app.key(&t, Role::Analyst).await;
    let r = app.gql(&analyst, RETRY, json!({ "e": enrollment })).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = app
        .gql(&t.admin_key, RETRY, json!({ "e": Uuid::new_v4() }))
        .await;
    assert_eq!(
        r["data"]["retryCrmSync"]["userErrors"],
        json!([{ "field": ["input", "enrollmentId"], "code": "NOT_FOUND" }])
    );
    let pending =
        "SELECT count(*) AS n FROM queue_jobs WHERE job_type = 'crm_sync' AND status = 'pending'";
    assert_eq!(count(&app, pending).await, 0);

    // Racing retries queue one sync.
    let retries = (0..6).map(|_| app.gql(&t.admin_key, RETRY, json!({ "e": enrollment })));
    for r in futures_util::future::join_all(retries).await {
        assert_eq!(r["data"]["retryCrmSync"]["userErrors"], json!([]), "{r}");
        assert_eq!(
            r["data"]["retryCrmSync"]["enrollment"]["syncStatus"],
            "PENDING"
        );
    }
    assert_eq!(count(&app, pending).await, 1);
    assert_eq!(
        read().await["data"]["enrollment"],
        json!({ "syncStatus": "PENDING", "syncError": null })
    );
    // With a CRM now, the queued sync runs and the enrollment is synced.
    let crm = FlakyCrm {
        failures: 0,
        calls: AtomicUsize::new(0),
        recorded: Default::default(),
    };
    assert_eq!(jobs::run_due_crm_jobs(&db, &crm, 10).await.unwrap(), 1);
    assert_eq!(crm.recorded.lock().unwrap()[0].1.action, "add");
    assert_eq!(
        count(&app, &format!("SELECT count(*) AS n FROM club_enrollments WHERE id = '{enrollment}' AND sync_status = 'synced'")).await,
        1
    );
}
