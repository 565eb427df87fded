//! Node.js scripts against the running server: GraphiQL in Debian's Chromium, and graphql-http's GraphQL-over-HTTP audit.

use super::*;

/// GraphiQL in headless Chromium (`tests/browser/graphiql.mjs`, puppeteer-core): the
/// schema loads on first load with the pre-filled key (Docs explorer, autocomplete), the
/// Customer 360 tab answers data, the live `events` subscription shows an event made
/// meanwhile, a key typed later fetches the schema again; any console error or failed
/// request fails it. Needs Node and Chromium (`.ci/run` installs them); the script's npm
/// packages are installed on first use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_works_in_a_real_browser() {
    let (app, tenant) = TestApp::with_graphiql_key().await;
    let report = node_script("graphiql.mjs", &[&app.base, &tenant.admin_key]).await;
    assert!(report.contains(": ok"), "{report}");
}

/// graphql-http's audit of the GraphQL-over-HTTP spec (`tests/browser/audit.mjs`): every
/// audit passes, none warns. The tally is also written to
/// `target/graphql-http-audit.txt` (`.ci/run` prints it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_over_http_audit_passes_whole() {
    let app = TestApp::start().await;
    let tenant = app.bare_tenant("Audit").await;
    let report = node_script("audit.mjs", &[&app.base, &tenant.admin_key]).await;
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::write(target.join("graphql-http-audit.txt"), &report);
    assert!(report.contains(" 0 warnings, 0 errors"), "{report}");
}

/// Runs `tests/browser/<script>` with Node (its npm packages installed on first use) and
/// returns what it printed; fails when it fails.
async fn node_script(script: &str, args: &[&str]) -> String {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    INSTALLED
        .get_or_init(|| async {
            // What `npm ci` installed last, unless the lock file changed since.
            let modified = |path: &str| {
                std::fs::metadata(dir.join(path))
                    .and_then(|m| m.modified())
                    .ok()
            };
            let current = match (
                modified("node_modules/.package-lock.json"),
                modified("package-lock.json"),
            ) {
                (Some(installed), Some(locked)) => installed >= locked,
                _ => false,
            };
            if !current {
                let installed = tokio::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir)
                    .status()
                    .await
                    .expect("npm (Node.js) runs the browser and audit tests");
                assert!(installed.success(), "npm ci in tests/browser");
            }
        })
        .await;
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} ends within two minutes"))
    .expect("node runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{script}: {report}");
    report
}
