//! The embedded default: `growthgraph serve` with no DATABASE_URL runs its own cluster.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::processes_mentioning;

struct Running {
    child: Child,
    base: String,
    key: String,
    output: Vec<String>,
}

async fn start(data_dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_growthgraph"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env("GROWTHGRAPH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut key, mut output) = (None, None, Vec::new());
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("growthgraph listening on ") {
                base = Some(rest.split('/').take(3).collect::<Vec<_>>().join("/"));
            }
            if let Some(rest) = line.strip_prefix("demo tenant admin API key: ") {
                key = Some(rest.to_owned());
            }
            output.push(line);
            if base.is_some() && key.is_some() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("server starts");
    Running {
        child,
        base: base.expect("listening line"),
        key: key.expect("demo key line"),
        output,
    }
}

async fn stop(mut running: Running) {
    let pid = running.child.id().unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), running.child.wait())
        .await
        .expect("server stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

async fn viewer_slug(client: &reqwest::Client, running: &Running) -> String {
    let response: serde_json::Value = client
        .post(format!("{}/graphql", running.base))
        .bearer_auth(&running.key)
        .json(&serde_json::json!({ "query": "{ viewer { tenant { slug } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["data"]["viewer"]["tenant"]["slug"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_starts_serves_and_stops_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let client = reqwest::Client::new();

    let first = start(&data_dir).await;
    assert!(
        first
            .output
            .iter()
            .any(|l| l.contains("loaded the demo tenant")),
        "{:?}",
        first.output
    );
    let ready = client
        .get(format!("{}/readyz", first.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(viewer_slug(&client, &first).await, "domaine-des-coteaux");
    let page = client
        .get(format!("{}/", first.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/assets/graphiql/graphiql.min.js") && !page.contains("https://"));
    let first_key = first.key.clone();

    // A live subscriber gets a close frame when the server stops.
    let mut request = format!("{}/graphql/ws", first.base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = serde_json::json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", first.key) } });
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let subscribe = serde_json::json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { events { id } }" } });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closing = tokio::spawn(async move {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    });
    stop(first).await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), closing)
            .await
            .unwrap()
            .unwrap(),
        Some(1001)
    );
    assert_eq!(
        processes_mentioning(data_dir.to_str().unwrap()),
        Vec::<u32>::new(),
        "PostgreSQL left running"
    );

    // Second start: same cluster, same data, no new seed.
    let pg_version = std::fs::metadata(data_dir.join("pgdata/PG_VERSION"))
        .unwrap()
        .modified()
        .unwrap();
    let second = start(&data_dir).await;
    assert!(
        !second
            .output
            .iter()
            .any(|l| l.contains("loaded the demo tenant")),
        "re-seeded: {:?}",
        second.output
    );
    assert_eq!(second.key, first_key);
    assert_eq!(viewer_slug(&client, &second).await, "domaine-des-coteaux");
    stop(second).await;
    assert_eq!(
        std::fs::metadata(data_dir.join("pgdata/PG_VERSION"))
            .unwrap()
            .modified()
            .unwrap(),
        pg_version,
        "initdb ran again"
    );
    assert_eq!(
        processes_mentioning(data_dir.to_str().unwrap()),
        Vec::<u32>::new(),
        "PostgreSQL left running"
    );
}

#[tokio::test]
async fn without_postgresql_binaries_it_says_so_in_one_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_growthgraph"))
        .args(["serve", "--pg-bin-dir"])
        .arg(dir.path().join("no-such-dir"))
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("install PostgreSQL") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}

/// Settings given to `Cluster::start_with` are the server's for that run, over the
/// durability's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_runs_with_the_settings_it_was_started_with() {
    use diesel::QueryableByName;
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let app = crate::common::TestApp::start().await;
    let mut owner = app.owner().await;
    for (name, expected) in crate::common::TEST_SETTINGS {
        let shown: Setting = diesel::sql_query("SELECT current_setting($1) AS value")
            .bind::<diesel::sql_types::Text, _>(*name)
            .get_result(&mut owner)
            .await
            .unwrap();
        assert_eq!(shown.value, *expected, "{name}");
    }
    let durability: Setting = diesel::sql_query("SELECT current_setting('fsync') AS value")
        .get_result(&mut owner)
        .await
        .unwrap();
    assert_eq!(
        durability.value, "off",
        "the throwaway durability's settings stay"
    );
}

/// The bare binary serves with `serve`'s settings, from the environment
/// (`GROWTHGRAPH_LISTEN`) and as flags with no subcommand (`--no-scheduler`); its logs
/// carry no colour codes off a terminal, and `--log-format json` gives one JSON object
/// per line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_binary_serves_with_every_setting_and_logs_plainly_off_a_terminal() {
    let url = crate::common::fresh_database().await;
    for format in ["text", "json"] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_growthgraph"))
            .args(["--no-scheduler", "--log-format", format])
            .env("DATABASE_URL", &url)
            .env("GROWTHGRAPH_LISTEN", format!("127.0.0.1:{port}"))
            .env("GROWTHGRAPH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("growthgraph listening on ") {
                    return line;
                }
            }
            panic!("the server ended before listening");
        })
        .await
        .expect("server starts");
        assert!(
            listening.starts_with(&format!(
                "growthgraph listening on http://127.0.0.1:{port}/"
            )),
            "{listening}"
        );
        let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("server stops after SIGTERM")
            .unwrap();
        assert!(output.status.success(), "{:?}", output.status);
        let log = String::from_utf8(output.stderr).unwrap();
        assert!(
            !log.contains('\u{1b}'),
            "colour codes off a terminal: {log}"
        );
        let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "the server logged nothing at info");
        if format == "json" {
            for line in &lines {
                let entry: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(
                    entry["level"].is_string() && entry["fields"].is_object(),
                    "{line}"
                );
            }
        }
    }
    let version = std::process::Command::new(env!("CARGO_BIN_EXE_growthgraph"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("growthgraph {}", env!("CARGO_PKG_VERSION"))
    );
}

/// With `--otlp-endpoint`, traces reach an OpenTelemetry collector (here a local one
/// taking OTLP/HTTP JSON): a `graphql` span per request with its operation, tenant and
/// the correlation id its answer carried, and a child span per SQL statement (its text,
/// never its binds), all flushed when the server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector_with_a_span_per_request_and_statement() {
    use std::sync::{Arc, Mutex};
    let url = crate::common::fresh_database().await;
    let mut owner = growthgraph::db::connect_owner(&url).await.unwrap();
    let (tenant, key) =
        growthgraph::domain::tenancy::ops::create_tenant(&mut owner, "Traced", None)
            .await
            .unwrap();
    // The collector: every body posted to /v1/traces.
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let collector = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(received): axum::extract::State<
                    Arc<Mutex<Vec<serde_json::Value>>>,
                >,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    assert_eq!(headers["content-type"], "application/json");
                    received
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    "{}"
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_growthgraph"))
        .args(["--no-scheduler", "--otlp-endpoint", &endpoint])
        .env("DATABASE_URL", &url)
        .env("GROWTHGRAPH_LISTEN", format!("127.0.0.1:{port}"))
        .env("GROWTHGRAPH_LOG", "warn,growthgraph=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("growthgraph listening on ") {
                return;
            }
        }
    })
    .await
    .expect("server starts");
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .bearer_auth(&key)
        .json(&serde_json::json!({ "query": "query Traced { viewer { tenant { name } } }" }))
        .send()
        .await
        .unwrap();
    let correlation = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.status(), 200);
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("server stops")
        .unwrap();
    assert!(status.success(), "{status:?}");

    let spans: Vec<serde_json::Value> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| {
            body["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let attribute = |span: &serde_json::Value, key: &str| {
        span["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == key))
            .map(|kv| {
                kv["value"]["stringValue"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
    };
    let request = spans
        .iter()
        .find(|s| {
            s["name"] == "graphql"
                && attribute(s, "correlation_id").as_deref() == Some(&correlation)
        })
        .unwrap_or_else(|| panic!("no graphql span for {correlation} in {spans:?}"));
    assert_eq!(attribute(request, "operation").as_deref(), Some("Traced"));
    assert_eq!(attribute(request, "tenant_id"), Some(tenant.id.to_string()));
    let statements: Vec<&serde_json::Value> = spans
        .iter()
        .filter(|s| s["name"] == "sql" && s["parentSpanId"] == request["spanId"])
        .collect();
    assert!(
        !statements.is_empty(),
        "no statement spans under the request: {spans:?}"
    );
    for statement in &statements {
        assert_eq!(statement["traceId"], request["traceId"]);
        let sql = attribute(statement, "db.statement").unwrap_or_default();
        assert!(
            !sql.is_empty() && !sql.contains(&key) && !sql.contains("binds"),
            "{sql}"
        );
    }
}
