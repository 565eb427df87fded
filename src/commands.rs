//! What each subcommand does. `main.rs` only parses; everything else starts here.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::net::TcpListener;

use crate::app::AppState;
use crate::auth::Role;
use crate::config::{Cli, Command, GlobalArgs, KeyCommand, SeedArgs, ServeArgs, TenantCommand};
use crate::db::cluster::{Cluster, Durability};
use crate::db::{self, tenant::in_tenant_transaction};
use crate::domain::tenancy::ops as tenancy;
use crate::domain::OpError;
use crate::{graphql, http, seed};

const EMBEDDED_DATABASE: &str = "growthgraph";
const DEMO_KEY_FILE: &str = "demo-admin-key";
/// Tenant `seed --scale` creates when no `--tenant` is given.
const SCALE_TENANT: &str = "scale-test";

/// Runs the command line. `started` is called once the server's state is built, before it
/// serves (the binary releases the memory start-up freed there).
pub fn run(cli: Cli, started: fn()) -> ExitCode {
    let tracer = match crate::telemetry::init_tracing(&cli.global) {
        Ok(tracer) => tracer,
        Err(message) => {
            eprintln!("growthgraph: {message}");
            return ExitCode::FAILURE;
        }
    };
    if matches!(cli.command, Some(Command::Sdl)) {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(run_async(cli, started));
    drop(runtime);
    // The spans still batched go out before the process ends.
    if let Some(tracer) = tracer {
        if let Err(error) = tracer.shutdown() {
            eprintln!("growthgraph: the last traces were not exported: {error}");
        }
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("growthgraph: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The database to use: `--database-url`, or the embedded cluster (started here).
struct Database {
    url: String,
    cluster: Option<Cluster>,
}

impl Database {
    async fn open(global: &GlobalArgs) -> Result<Self, String> {
        if let Some(url) = &global.database_url {
            return Ok(Database {
                url: url.clone(),
                cluster: None,
            });
        }
        let root = global.data_dir.clone();
        let bin_dir = global.pg_bin_dir.clone();
        let cluster = tokio::task::spawn_blocking(move || {
            Cluster::start(&root, bin_dir.as_deref(), Durability::Durable)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        create_database_if_missing(&cluster.url("postgres"), EMBEDDED_DATABASE).await?;
        Ok(Database {
            url: cluster.url(EMBEDDED_DATABASE),
            cluster: Some(cluster),
        })
    }

    async fn close(self) {
        if let Some(cluster) = self.cluster {
            match tokio::task::spawn_blocking(move || cluster.stop()).await {
                Ok(Ok(())) => tracing::info!("embedded PostgreSQL stopped"),
                other => tracing::error!(?other, "embedded PostgreSQL did not stop cleanly"),
            }
        }
    }
}

pub async fn create_database_if_missing(maintenance_url: &str, name: &str) -> Result<(), String> {
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let mut conn = db::connect_owner(maintenance_url).await?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    if !found.exists {
        conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn run_async(cli: Cli, started: fn()) -> Result<(), String> {
    let command = cli.command.unwrap_or(Command::Serve(Box::new(cli.serve)));
    let database = Database::open(&cli.global).await?;
    let outcome = run_command(command, &cli.global, &database, started).await;
    database.close().await;
    outcome
}

async fn run_command(
    command: Command,
    global: &GlobalArgs,
    database: &Database,
    started: fn(),
) -> Result<(), String> {
    match command {
        Command::Serve(args) => serve(*args, global, database, started).await,
        Command::Migrate => {
            let applied = db::migrate(&database.url).await?;
            println!("{} migration(s) applied", applied.len());
            Ok(())
        }
        Command::Seed(args) => seed_command(args, database).await,
        Command::Tenant(TenantCommand::Create { name, slug }) => {
            db::migrate(&database.url).await?;
            let mut conn = db::connect_owner(&database.url).await?;
            let (tenant, key) = tenancy::create_tenant(&mut conn, &name, slug.as_deref())
                .await
                .map_err(op_message)?;
            println!(
                "tenant {} ({}) created: id {}",
                tenant.name, tenant.slug, tenant.id
            );
            println!("admin API key (shown once, store it now): {key}");
            Ok(())
        }
        Command::Key(KeyCommand::Create { tenant, role, name }) => {
            let role = Role::parse(&role).ok_or("--role must be admin, analyst or partner")?;
            db::migrate(&database.url).await?;
            let mut conn = db::connect_owner(&database.url).await?;
            let found = tenancy::find_tenant_by_slug(&mut conn, &tenant)
                .await
                .map_err(|e| format!("{e:?}"))?
                .ok_or_else(|| format!("no tenant with slug {tenant}"))?;
            let name = name.unwrap_or_else(|| format!("{} key", role.as_str()));
            let (key, secret) = in_tenant_transaction(&mut conn, found.id, |conn, scope| {
                use scoped_futures::ScopedFutureExt;
                let name = &name;
                async move { tenancy::create_api_key(conn, scope, name, role).await }.scope_boxed()
            })
            .await
            .map_err(op_message)?;
            println!(
                "{} key {} created for {}",
                role.as_str(),
                key.id,
                found.slug
            );
            println!("API key (shown once, store it now): {secret}");
            Ok(())
        }
        Command::Sdl => unreachable!("handled before the runtime starts"),
    }
}

fn op_message(error: OpError) -> String {
    match error {
        OpError::User(e) | OpError::Answered(e) => e.message,
        OpError::App(e) => format!("{e:?}"),
    }
}

async fn seed_command(args: SeedArgs, database: &Database) -> Result<(), String> {
    db::migrate(&database.url).await?;
    let mut conn = db::connect_owner(&database.url).await?;
    if args.demo {
        match seed::demo::seed_demo(&mut conn).await? {
            Some(key) => println!("demo tenant loaded; admin API key (shown once): {key}"),
            None => println!("demo tenant already present; nothing to do"),
        }
        return Ok(());
    }
    if let Some(count) = args.scale {
        let slug = args.tenant.as_deref().unwrap_or(SCALE_TENANT);
        let tenant = match tenancy::find_tenant_by_slug(&mut conn, slug)
            .await
            .map_err(|e| format!("{e:?}"))?
        {
            Some(tenant) => tenant,
            None if args.tenant.is_none() => {
                let (tenant, key) =
                    tenancy::create_tenant(&mut conn, "Scale test", Some(SCALE_TENANT))
                        .await
                        .map_err(op_message)?;
                println!("created tenant {SCALE_TENANT}; admin API key (shown once): {key}");
                tenant
            }
            None => return Err(format!("no tenant with slug {slug}")),
        };
        let took = seed::scale::seed_scale(&database.url, tenant.id, count).await?;
        println!(
            "loaded {count} customers into {} in {:.1} s",
            tenant.slug,
            took.as_secs_f64()
        );
        return Ok(());
    }
    Err("nothing to seed: pass --demo or --scale N".into())
}

async fn tenant_count(conn: &mut AsyncPgConnection) -> Result<i64, String> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let count: Count = diesel::sql_query("SELECT count(*) AS count FROM tenants")
        .get_result(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(count.count)
}

fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")
}

async fn serve(
    args: ServeArgs,
    global: &GlobalArgs,
    database: &Database,
    started: fn(),
) -> Result<(), String> {
    let applied = db::migrate(&database.url).await?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "migrations applied");
    }
    let mut demo_key = None;
    if database.cluster.is_some() {
        let key_file = global.data_dir.join(DEMO_KEY_FILE);
        let mut conn = db::connect_owner(&database.url).await?;
        if tenant_count(&mut conn).await? == 0 {
            if let Some(key) = seed::demo::seed_demo(&mut conn).await? {
                println!("loaded the demo tenant into the empty database");
                write_secret_file(&key_file, &key)
                    .map_err(|e| format!("cannot save the demo key: {e}"))?;
            }
        }
        demo_key = std::fs::read_to_string(&key_file)
            .ok()
            .map(|k| k.trim().to_owned());
    }
    let statements = Arc::new(db::StatementCounter::default());
    let pool = db::build_pool(
        &database.url,
        global.pool_size,
        Duration::from_millis(global.statement_timeout_ms),
        statements.clone(),
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let graphiql_key = demo_key.clone().filter(|_| addr.ip().is_loopback());
    // API-only instances (`--no-scheduler`) run no background work at all (and so keep no
    // measurements of themselves: the scheduler writes them).
    crate::observed::OBSERVED.set_enabled(!args.no_scheduler);
    let background = (!args.no_scheduler).then(|| {
        let providers = Arc::new(crate::domain::messages::providers::Providers::new(
            args.provider_settings(database.cluster.is_some()),
        ));
        [
            crate::jobs::spawn_background(
                pool.clone(),
                Arc::new(crate::domain::crm::provider::Connectors::new(
                    pool.clone(),
                    args.secret_key.clone(),
                    args.crm_settings(),
                )),
                Arc::new(crate::scheduler::SystemClock),
                Duration::from_secs(5),
                args.allow_insecure_webhooks,
            ),
            crate::jobs::spawn_delivery(
                pool.clone(),
                providers,
                args.secret_key.clone(),
                Duration::from_millis(args.delivery_interval_ms.max(10)),
            ),
        ]
    });
    // Fan-out has its own few connections: it never competes with requests for the pool.
    let hub = crate::events::EventHub::new(db::build_pool(
        &database.url,
        4,
        Duration::from_millis(global.statement_timeout_ms),
        Arc::new(db::StatementCounter::default()),
    ));
    let replica = global.replica_url.as_deref().map(|url| {
        let replica_pool = db::build_pool(
            url,
            global.pool_size,
            Duration::from_millis(global.statement_timeout_ms),
            statements.clone(),
        );
        let max_lag = Duration::from_millis(global.replica_max_lag_ms);
        db::replica::Replica::watch(replica_pool, pool.clone(), max_lag)
    });
    let trusted = match &args.trusted_documents {
        None => None,
        Some(path) => Some(crate::http::persisted::PersistedDocuments::load(path)?),
    };
    let mut state = AppState::new(pool, replica, statements, args, graphiql_key, hub);
    if let Some(documents) = trusted {
        state = state.with_trusted_documents(documents);
    }
    started();
    let listener_task = state.hub.spawn_listener(database.url.clone());
    let shutdown = shutdown_signal();
    println!("growthgraph listening on http://{addr}/ (GraphiQL), POST http://{addr}/graphql");
    if let Some(key) = &demo_key {
        println!("demo tenant admin API key: {key}");
    }
    let stop_sockets = state.shutdown.clone();
    // Responses and events are small single writes: send them at once rather than let
    // Nagle's algorithm hold one back for an ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, http::service(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Subscribers get a close frame; in-flight requests finish.
            let _ = stop_sockets.send(true);
        })
        .await
        .map_err(|e| e.to_string())?;
    for task in background.iter().flatten() {
        task.abort();
    }
    listener_task.abort();
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (not
/// when it is first awaited), so a signal sent as soon as the server says it listens
/// stops it cleanly instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
