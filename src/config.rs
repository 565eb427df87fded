//! Every setting of the `growthgraph` binary, with its flag, environment variable and
//! default. Nothing else reads the environment.
//!
//! | flag | env | default | meaning |
//! |---|---|---|---|
//! | `--listen` | `GROWTHGRAPH_LISTEN` | `127.0.0.1:8080` | HTTP listen address |
//! | `--database-url` | `DATABASE_URL` | (none: embedded cluster) | PostgreSQL URL |
//! | `--data-dir` | `GROWTHGRAPH_DATA_DIR` | `./.growthgraph` | embedded cluster's home |
//! | `--pg-bin-dir` | `GROWTHGRAPH_PG_BIN_DIR` | search `PATH`, then `/usr/lib/postgresql/*/bin` | PostgreSQL server binaries for the embedded cluster |
//! | `--replica-url` | `DATABASE_REPLICA_URL` | (none) | optional read replica: queries of known API keys read there while it keeps up |
//! | `--replica-max-lag-ms` | `GROWTHGRAPH_REPLICA_MAX_LAG_MS` | `1000` | how far behind the primary the replica may be and still serve reads (checked every half of it) |
//! | `--pool-size` | `GROWTHGRAPH_POOL_SIZE` | 4 × CPU cores | connections in the pool |
//! | `--statement-timeout-ms` | `GROWTHGRAPH_STATEMENT_TIMEOUT_MS` | `10000` | per statement |
//! | `--max-body-bytes` | `GROWTHGRAPH_MAX_BODY_BYTES` | `262144` | request body limit |
//! | `--max-batch` | `GROWTHGRAPH_MAX_BATCH` | `10` | operations per batched request |
//! | `--batch-window-us` | `GROWTHGRAPH_BATCH_WINDOW_US` | `1000` | how long a DataLoader collects keys before its one statement |
//! | `--read-group` | `GROWTHGRAPH_READ_GROUP` | `64` | most queries of one tenant and role sharing a connection and snapshot |
//! | `--read-group-connections` | `GROWTHGRAPH_READ_GROUP_CONNECTIONS` | CPU cores | most connections one tenant and role's read groups hold |
//! | `--ws-write-timeout-ms` | `GROWTHGRAPH_WS_WRITE_TIMEOUT_MS` | `10000` | how long a WebSocket write may stay blocked |
//! | `--secret-key` | `GROWTHGRAPH_SECRET_KEY` | (none: credentials cannot be stored) | 64 hex digits sealing channel credentials (AES-256-GCM) |
//! | `--tenant-cost-budget` | `GROWTHGRAPH_TENANT_COST_BUDGET` | `10000000` | most cost points a tenant's budget holds |
//! | `--tenant-cost-restore` | `GROWTHGRAPH_TENANT_COST_RESTORE` | `5000000` | cost points a tenant's budget regains per second |
//! | `--tenant-pool-share` | `GROWTHGRAPH_TENANT_POOL_SHARE` | all but a quarter of the pool | most pool connections one tenant's requests hold |
//! | `--request-timeout-ms` | `GROWTHGRAPH_REQUEST_TIMEOUT_MS` | `15000` | longest an operation may run |
//! | `--max-response-bytes` | `GROWTHGRAPH_MAX_RESPONSE_BYTES` | `16777216` | largest response body |
//! | `--allow-insecure-webhooks` | `GROWTHGRAPH_ALLOW_INSECURE_WEBHOOKS` | `false` | development only: `http` webhooks and private addresses |
//! | `--smtp-url` | `GROWTHGRAPH_SMTP_URL` | (none) | the SMTP relay of `smtp` email channels: `smtps://user:pass@host` (TLS), `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtp://host:port` (plain) |
//! | `--sendgrid-base-url` | `GROWTHGRAPH_SENDGRID_BASE_URL` | `https://api.sendgrid.com` | where SendGrid's v3 API is |
//! | `--twilio-base-url` | `GROWTHGRAPH_TWILIO_BASE_URL` | `https://api.twilio.com` | where Twilio's REST API is |
//! | `--resend-base-url` | `GROWTHGRAPH_RESEND_BASE_URL` | `https://api.resend.com` | where Resend's API is |
//! | `--commerce7-base-url` | `GROWTHGRAPH_COMMERCE7_BASE_URL` | `https://api.commerce7.com/v1` | where Commerce7's REST API is |
//! | `--shopify-base-url` | `GROWTHGRAPH_SHOPIFY_BASE_URL` | `https://{shop}` | where Shopify's Admin API is (`{shop}`: the shop's domain) |
//! | `--public-url` | `GROWTHGRAPH_PUBLIC_URL` | (none) | how providers reach this server, for status callbacks and their signatures |
//! | `--local-delivery` | `GROWTHGRAPH_LOCAL_DELIVERY` | `true` with the embedded cluster, else `false` | messages of a channel a tenant has not configured are kept in the database (`local`) instead of failing `not_configured` |
//! | `--delivery-interval-ms` | `GROWTHGRAPH_DELIVERY_INTERVAL_MS` | `200` | how often the message runner looks for due messages |
//! | `--no-scheduler` | `GROWTHGRAPH_NO_SCHEDULER` | `false` | API-only instance: no scheduler, job runner or message runner |
//! | `--demo-sessions-per-hour` | `GROWTHGRAPH_DEMO_SESSIONS_PER_HOUR` | `5` | public demo sessions one visitor may start per tenant and hour |
//! | `--trust-forwarded-for` | `GROWTHGRAPH_TRUST_FORWARDED_FOR` | `false` | a visitor's address is the last `X-Forwarded-For` entry |
//! | `--trusted-documents` | `GROWTHGRAPH_TRUSTED_DOCUMENTS` | (none: any document, and automatic persisted queries) | only the documents this file lists run |
//! | `--log` | `GROWTHGRAPH_LOG` | `info` | tracing filter |
//! | `--log-format` | `GROWTHGRAPH_LOG_FORMAT` | `text` | `text` (coloured on a terminal only) or `json` (one object per line) |
//! | `--otlp-endpoint` | `GROWTHGRAPH_OTLP_ENDPOINT` | (none) | OpenTelemetry collector receiving traces (OTLP over HTTP, JSON) |
//!
//! `serve`'s settings work with the bare binary too (`growthgraph --listen …`), which
//! serves.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::secrets::SecretKey;

#[derive(Debug, Parser)]
#[command(
    name = "growthgraph",
    version,
    about = "Multi-tenant GraphQL API for customer growth"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// `serve`'s settings, for the bare binary (no subcommand: it serves).
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// PostgreSQL URL; without it an embedded cluster is started in the data dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Home of the embedded PostgreSQL cluster.
    #[arg(
        long,
        env = "GROWTHGRAPH_DATA_DIR",
        default_value = "./.growthgraph",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Directory holding PostgreSQL's `initdb` and `postgres` for the embedded cluster.
    #[arg(long, env = "GROWTHGRAPH_PG_BIN_DIR", global = true)]
    pub pg_bin_dir: Option<PathBuf>,
    /// Optional read replica: queries of known API keys read there while it keeps up
    /// (see `db::replica`).
    #[arg(long, env = "DATABASE_REPLICA_URL", global = true)]
    pub replica_url: Option<String>,
    /// How far behind the primary the replica may be and still serve reads, in
    /// milliseconds (its replay is checked every half of this).
    #[arg(
        long,
        env = "GROWTHGRAPH_REPLICA_MAX_LAG_MS",
        default_value_t = 1000,
        global = true
    )]
    pub replica_max_lag_ms: u64,
    /// Connections kept in the pool (default: four per CPU core).
    #[arg(
        long,
        env = "GROWTHGRAPH_POOL_SIZE",
        default_value_t = default_pool_size(),
        global = true
    )]
    pub pool_size: usize,
    /// statement_timeout for every server query, in milliseconds.
    #[arg(
        long,
        env = "GROWTHGRAPH_STATEMENT_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub statement_timeout_ms: u64,
    /// Log filter (tracing-subscriber syntax).
    #[arg(long, env = "GROWTHGRAPH_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log lines as text (coloured only on a terminal) or one JSON object each.
    #[arg(
        long,
        env = "GROWTHGRAPH_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// An OpenTelemetry collector (`http://host:4318`): traces go to its `/v1/traces`
    /// over OTLP (HTTP, JSON).
    #[arg(long, env = "GROWTHGRAPH_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default); runs pending migrations first.
    Serve(Box<ServeArgs>),
    /// Run pending migrations and exit.
    Migrate,
    /// Load data: the demo tenant, or synthetic scale data.
    Seed(SeedArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print the GraphQL SDL (what schema.graphql holds).
    Sdl,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTP listen address.
    #[arg(long, env = "GROWTHGRAPH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GROWTHGRAPH_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Largest number of operations in one batched request.
    #[arg(long, env = "GROWTHGRAPH_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
    /// How long (µs) a request's DataLoader collects keys before running its statement.
    #[arg(long, env = "GROWTHGRAPH_BATCH_WINDOW_US", default_value_t = 1000)]
    pub batch_window_us: u64,
    /// Most queries of one tenant and role that share a read snapshot, a connection and
    /// statements when they arrive together (1: each runs alone).
    #[arg(long, env = "GROWTHGRAPH_READ_GROUP", default_value_t = 64)]
    pub read_group: usize,
    /// Most pool connections the read groups of one tenant and role hold at once (default: the
    /// machine's cores).
    #[arg(long, env = "GROWTHGRAPH_READ_GROUP_CONNECTIONS", default_value_t = default_read_group_connections())]
    pub read_group_connections: usize,
    /// How long (ms) a WebSocket write may wait on a client that stopped reading before
    /// the connection is dropped.
    #[arg(
        long,
        env = "GROWTHGRAPH_WS_WRITE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub ws_write_timeout_ms: u64,
    /// The key (64 hex digits) sealing the secrets the server must read back (channel
    /// credentials; see `secrets`); without it, credentials cannot be stored.
    #[arg(
        long,
        env = "GROWTHGRAPH_SECRET_KEY",
        hide_env_values = true,
        value_parser = SecretKeyParser
    )]
    pub secret_key: Option<SecretKey>,
    /// Most cost points a tenant's budget holds (see `graphql::budget`).
    #[arg(long, env = "GROWTHGRAPH_TENANT_COST_BUDGET", default_value_t = DEFAULT_COST_BUDGET)]
    pub tenant_cost_budget: u64,
    /// Cost points a tenant's budget regains per second.
    #[arg(long, env = "GROWTHGRAPH_TENANT_COST_RESTORE", default_value_t = DEFAULT_COST_RESTORE)]
    pub tenant_cost_restore: u64,
    /// Most pool connections one tenant's requests hold at once (0: all but a quarter of
    /// the pool; see `db::share`).
    #[arg(long, env = "GROWTHGRAPH_TENANT_POOL_SHARE", default_value_t = 0)]
    pub tenant_pool_share: usize,
    /// How long (ms) an operation may run before it is stopped with `QUERY_TOO_COMPLEX`.
    #[arg(long, env = "GROWTHGRAPH_REQUEST_TIMEOUT_MS", default_value_t = 15_000)]
    pub request_timeout_ms: u64,
    /// Largest response body, in bytes: a larger one is replaced by a `QUERY_TOO_COMPLEX`
    /// error.
    #[arg(long, env = "GROWTHGRAPH_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Development only: webhook endpoints may be plain `http` and reach loopback and
    /// private addresses.
    #[arg(
        long,
        env = "GROWTHGRAPH_ALLOW_INSECURE_WEBHOOKS",
        default_value_t = false
    )]
    pub allow_insecure_webhooks: bool,
    /// The SMTP relay of `smtp` email channels (the operator's).
    #[arg(long, env = "GROWTHGRAPH_SMTP_URL")]
    pub smtp_url: Option<String>,
    #[arg(
        long,
        env = "GROWTHGRAPH_SENDGRID_BASE_URL",
        default_value = "https://api.sendgrid.com"
    )]
    pub sendgrid_base_url: String,
    #[arg(
        long,
        env = "GROWTHGRAPH_TWILIO_BASE_URL",
        default_value = "https://api.twilio.com"
    )]
    pub twilio_base_url: String,
    #[arg(
        long,
        env = "GROWTHGRAPH_RESEND_BASE_URL",
        default_value = "https://api.resend.com"
    )]
    pub resend_base_url: String,
    /// Where Shopify's Admin API is; `{shop}` stands for the shop's `*.myshopify.com`
    /// domain.
    #[arg(
        long,
        env = "GROWTHGRAPH_SHOPIFY_BASE_URL",
        default_value = "https://{shop}"
    )]
    pub shopify_base_url: String,
    /// Where Commerce7's REST API is.
    #[arg(
        long,
        env = "GROWTHGRAPH_COMMERCE7_BASE_URL",
        default_value = "https://api.commerce7.com/v1"
    )]
    pub commerce7_base_url: String,
    /// How providers reach this server (for status callbacks and their signatures).
    #[arg(long, env = "GROWTHGRAPH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Keep messages of unconfigured channels in the database (`local`) instead of failing
    /// them as `not_configured`; by default on with the embedded cluster only.
    #[arg(long, env = "GROWTHGRAPH_LOCAL_DELIVERY")]
    pub local_delivery: Option<bool>,
    #[arg(long, env = "GROWTHGRAPH_DELIVERY_INTERVAL_MS", default_value_t = 200)]
    pub delivery_interval_ms: u64,
    /// An API-only instance: no scheduler, job runner or message runner.
    #[arg(long, env = "GROWTHGRAPH_NO_SCHEDULER", default_value_t = false)]
    pub no_scheduler: bool,
    /// Most public demo sessions one visitor (IP address, IPv6 /64) may start per tenant
    /// and hour.
    #[arg(long, env = "GROWTHGRAPH_DEMO_SESSIONS_PER_HOUR", default_value_t = 5)]
    pub demo_sessions_per_hour: u32,
    /// Behind a reverse proxy: a visitor's address is the last one of `X-Forwarded-For`
    /// (the one the proxy appended), not the connection's.
    #[arg(long, env = "GROWTHGRAPH_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Only the documents this file lists run (Apollo's persisted query manifest, or a
    /// JSON object of SHA-256 to document): production front ends.
    #[arg(long, env = "GROWTHGRAPH_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,
    /// The speed mechanisms in use: all but the ones `--speed-off` lists, comma-separated,
    /// for measuring what each buys (`crate::speed`); the answers are the same.
    #[arg(long = "speed-off", env = "GROWTHGRAPH_SPEED_OFF", default_value = "", value_parser = crate::speed::Speed::parse)]
    pub speed: crate::speed::Speed,
}

impl ServeArgs {
    /// Where the providers are, as these settings say (`embedded`: the server runs its
    /// own cluster, where local delivery is the default).
    pub fn provider_settings(
        &self,
        embedded: bool,
    ) -> crate::domain::messages::providers::ProviderSettings {
        crate::domain::messages::providers::ProviderSettings {
            smtp_url: self.smtp_url.clone(),
            sendgrid_base_url: self.sendgrid_base_url.clone(),
            twilio_base_url: self.twilio_base_url.clone(),
            resend_base_url: self.resend_base_url.clone(),
            public_url: self.public_url.clone(),
            local_delivery: self.local_delivery.unwrap_or(embedded),
        }
    }
}

impl ServeArgs {
    /// Where the CRMs are, as these settings say.
    pub fn crm_settings(&self) -> crate::domain::crm::provider::CrmSettings {
        crate::domain::crm::provider::CrmSettings {
            shopify_base_url: self.shopify_base_url.clone(),
            commerce7_base_url: self.commerce7_base_url.clone(),
        }
    }
}

/// A tenant's cost budget by default: 500 operations at the largest cost allowed at once.
pub const DEFAULT_COST_BUDGET: u64 = 10_000_000;
/// What a tenant's budget regains per second by default: about ten thousand customer
/// 360s (cost ≈ 400), or 250 operations at the largest cost. The pool share
/// (`db::share`) is what keeps a tenant's heavy queries from slowing the others; the
/// budget bounds how much work one tenant may ask for at all.
pub const DEFAULT_COST_RESTORE: u64 = 5_000_000;

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            max_body_bytes: 256 * 1024,
            max_batch: 10,
            batch_window_us: 1000,
            read_group: 64,
            read_group_connections: default_read_group_connections(),
            ws_write_timeout_ms: 10_000,
            secret_key: None,
            tenant_cost_budget: DEFAULT_COST_BUDGET,
            tenant_cost_restore: DEFAULT_COST_RESTORE,
            tenant_pool_share: 0,
            request_timeout_ms: 15_000,
            max_response_bytes: 16 * 1024 * 1024,
            allow_insecure_webhooks: false,
            smtp_url: None,
            sendgrid_base_url: "https://api.sendgrid.com".into(),
            twilio_base_url: "https://api.twilio.com".into(),
            resend_base_url: "https://api.resend.com".into(),
            shopify_base_url: "https://{shop}".into(),
            commerce7_base_url: "https://api.commerce7.com/v1".into(),
            public_url: None,
            local_delivery: None,
            delivery_interval_ms: 200,
            no_scheduler: false,
            demo_sessions_per_hour: 5,
            trust_forwarded_for: false,
            trusted_documents: None,
            speed: crate::speed::Speed::default(),
        }
    }
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Load the demo tenant (idempotent).
    #[arg(long)]
    pub demo: bool,
    /// Bulk-load N synthetic customers with their activities, orders, enrollments, points,
    /// campaign recipients and leads.
    #[arg(long)]
    pub scale: Option<u64>,
    /// Tenant slug for --scale.
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first admin API key (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a tenant and print it (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
    },
}

/// Four connections per CPU core: enough to keep PostgreSQL busy while the server works
/// on results between statements, few enough that its backends do not fight over the
/// cores. (On this 2-core machine, 8 connections gave 1.4–1.6× the throughput of 32 at 64
/// clients, and a lower p99, in every benchmark scenario tried.)
pub fn default_pool_size() -> usize {
    4 * cores()
}

/// One connection per CPU core for one API key's read groups (see `db::group`).
pub fn default_read_group_connections() -> usize {
    cores()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn a_malformed_secret_key_is_refused_without_being_echoed() {
        let almost = "5f1e0c8a9b2d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0";
        let error = Cli::try_parse_from(["growthgraph", "serve", "--secret-key", almost])
            .expect_err("63 digits");
        let shown = error.to_string();
        assert!(shown.contains("64 hex digits"), "{shown}");
        assert!(!shown.contains(&almost[..16]), "{shown}");
        let good = format!("{almost}f");
        let cli = Cli::try_parse_from(["growthgraph", "serve", "--secret-key", &good]).unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve");
        };
        assert!(args.secret_key.is_some());
        assert!(
            !format!("{args:?}").contains(&good[..16]),
            "Debug shows no key"
        );
    }

    /// The README's configuration table (or, for the tuning settings, the one of
    /// docs/operations.md) has a row for every setting of `serve` and the global ones,
    /// naming its environment variable and, unless it depends on the machine (cores), its
    /// default.
    #[test]
    fn the_readme_lists_every_setting_with_its_variable_and_default() {
        let readme = concat!(
            include_str!("../README.md"),
            include_str!("../docs/operations.md")
        );
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve");
        let mut checked = 0;
        for arg in cli.get_arguments().chain(serve.get_arguments()) {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if matches!(long, "help" | "version") {
                continue;
            }
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `--{long}` |")))
                .unwrap_or_else(|| panic!("README has no row for --{long}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let env = arg.get_env().expect("every setting has a variable");
            assert_eq!(cells[2], format!("`{}`", env.to_string_lossy()), "{row}");
            if let [default] = arg.get_default_values() {
                let default = default.to_string_lossy();
                assert!(
                    cells[3].contains("cores") || cells[3].contains(&*default),
                    "--{long} defaults to {default}: {row}"
                );
            }
            checked += 1;
        }
        assert!(checked >= 15, "{checked} settings");
    }
}

/// Parses `--secret-key` without ever echoing the value (clap's own errors quote it).
#[derive(Clone)]
struct SecretKeyParser;

impl clap::builder::TypedValueParser for SecretKeyParser {
    type Value = SecretKey;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SecretKey, clap::Error> {
        value
            .to_str()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    "--secret-key (GROWTHGRAPH_SECRET_KEY) must be 64 hex digits (32 bytes), \
                     e.g. from `openssl rand -hex 32`\n",
                )
            })
    }
}
