//! Who is calling: API keys (`gg_<role>_…`, stored as SHA-256 hashes), widget keys
//! (`wgt_…`, read-only, published testimonials only), roles, and the one guard that
//! enforces which role may run which field.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bytea, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::sql::Prepared;
use crate::db::tenant::begin_request_snapshot;
use crate::db::{PgPool, TenantDb};
use crate::error::{AppError, AppResult};
use crate::speed::{Mechanism, Speed};

#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum Role {
    Admin,
    Analyst,
    Partner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Partner => "partner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "partner" => Some(Role::Partner),
            _ => None,
        }
    }
}

/// The authenticated caller of one request or one WebSocket connection.
#[derive(Debug, Clone)]
pub enum Principal {
    ApiKey {
        tenant_id: Uuid,
        key_id: Uuid,
        key_name: String,
        role: Role,
    },
    Widget {
        tenant_id: Uuid,
        widget_id: Uuid,
        /// Where the widget may be embedded (host names, `*.` for subdomains); empty:
        /// anywhere. See [`Principal::refuses_origin`].
        allowed_domains: Vec<String>,
    },
}

impl Principal {
    /// Whether a request from a web page of `origin` (its `Origin` header) is refused: a
    /// widget key used on a site its widget does not allow. API keys, widgets allowed
    /// anywhere, and requests without an origin (not from a web page) are not refused.
    pub fn refuses_origin(&self, origin: Option<&str>) -> bool {
        let (
            Principal::Widget {
                allowed_domains, ..
            },
            Some(origin),
        ) = (self, origin)
        else {
            return false;
        };
        if allowed_domains.is_empty() {
            return false;
        }
        // `scheme://host[:port]`; anything else (`null`, say) is no allowed site.
        let host = origin.split_once("://").map(|(_, rest)| {
            rest.split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        });
        !host.is_some_and(|host| {
            allowed_domains
                .iter()
                .any(|pattern| domain_allows(pattern, &host))
        })
    }

    pub fn tenant_id(&self) -> Uuid {
        match self {
            Principal::ApiKey { tenant_id, .. } | Principal::Widget { tenant_id, .. } => *tenant_id,
        }
    }

    /// The read group an API key's queries share with those of its tenant's other keys
    /// of the same role (see `db::group`); widget keys, never known keys, have none.
    pub fn read_group(&self) -> Option<String> {
        match self {
            Principal::ApiKey {
                tenant_id, role, ..
            } => Some(format!("{tenant_id}/{}", role.as_str())),
            Principal::Widget { .. } => None,
        }
    }

    /// Whose cost budget the caller's operations draw on (see `graphql::budget`): its
    /// tenant's, except a widget's, which has its own, so that a public widget key
    /// embedded in web pages can never drain its tenant's dashboards' budget.
    pub fn budget_holder(&self) -> Uuid {
        match self {
            Principal::ApiKey { tenant_id, .. } => *tenant_id,
            Principal::Widget { widget_id, .. } => *widget_id,
        }
    }
}

/// What a field needs. Every root field declares one; the guard below is the only place
/// that decides who passes.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Any API key: admin, analyst or partner.
    Read,
    /// Ingestion mutations: admin or partner.
    Ingest,
    /// Subscriptions: admin or partner (analysts do not get raw event streams).
    Subscribe,
    /// Everything else that writes, and key management.
    Admin,
    /// Published testimonials: a widget key, or any API key.
    Widget,
    /// What the server measured about itself and the partners' calls: admin or analyst.
    Observe,
}

impl Access {
    pub fn allows(self, principal: &Principal) -> bool {
        match (self, principal) {
            (Access::Widget, _) => true,
            (_, Principal::Widget { .. }) => false,
            (Access::Read, Principal::ApiKey { .. }) => true,
            (Access::Ingest | Access::Subscribe, Principal::ApiKey { role, .. }) => {
                matches!(role, Role::Admin | Role::Partner)
            }
            (Access::Admin, Principal::ApiKey { role, .. }) => *role == Role::Admin,
            (Access::Observe, Principal::ApiKey { role, .. }) => {
                matches!(role, Role::Admin | Role::Analyst)
            }
        }
    }
}

/// A freshly generated API key: shown once, stored only as its hash and display prefix.
pub struct GeneratedKey {
    pub secret: String,
    pub hash: Vec<u8>,
    pub prefix: String,
}

pub fn generate_api_key(role: Role) -> GeneratedKey {
    let mut bytes = [0u8; 24]; // 192 bits
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("gg_{}_{}", role.as_str(), hex::encode(bytes));
    let prefix = secret[..secret.len() - 40].to_string();
    GeneratedKey {
        hash: hash_key(&secret),
        secret,
        prefix,
    }
}

pub fn generate_widget_key() -> String {
    generate_secret("wgt_")
}

/// `prefix` followed by 48 hex digits of randomness (192 bits).
pub fn generate_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The SHA-256 of `text` in hex: how demo tokens, visitors' IP addresses and persisted
/// documents are kept and named.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(hash_key(text))
}

/// Whether `token` has the shape of a secret [`generate_secret`] made with `prefix`
/// (checked before a token costs a lookup).
pub fn is_secret(token: &str, prefix: &str) -> bool {
    token.len() == prefix.len() + 48
        && token.starts_with(prefix)
        && token[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = SqlUuid)]
    key_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    key_name: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct WidgetRow {
    #[diesel(sql_type = SqlUuid)]
    widget_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = Array<Nullable<Text>>)]
    allowed_domains: Vec<Option<String>>,
}

/// Whether the allowed-domain `pattern` covers `host`: the same name, or for
/// `*.example.com` any name ending in `.example.com`.
pub fn domain_allows(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .strip_suffix(parent)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => pattern == host,
    }
}

/// How stale `last_used_at` may get before a request refreshes it (off the request path).
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// Resolves an `Authorization` header value to its principal.
pub async fn authenticate(pool: &PgPool, header: Option<&str>) -> AppResult<Principal> {
    let token = bearer_token(header)?;
    let mut conn = pool.get().await?;
    let conn: &AsyncPgConnection = &mut conn;
    let found = lookup(conn, token)
        .await?
        .ok_or(AppError::Unauthenticated("missing or invalid API key"))?;
    Ok(principal_of(pool, found)?.0)
}

/// A request's caller, and how the database vouches for it.
pub struct Authenticated {
    pub principal: Principal,
    pub proof: Proof,
}

pub enum Proof {
    /// The key was looked up on this pooled connection, in the read snapshot the lookup
    /// began (the request's work runs on it).
    LookedUp(Box<Object<AsyncPgConnection>>),
    /// The key was taken from [`KnownKeys`]: the statement that has the database confirm
    /// the caller, sent with the request's first statement (see
    /// `RequestStart::Unconfirmed`). The request takes a connection, or shares
    /// its read group's, when it first needs one.
    Known(String),
}

/// Resolves an `Authorization` header value to its principal, and how the database
/// vouches for it ([`Proof`]). A key in `known` is not looked up: the request
/// starts from what the database said about it before, with the statement that has the
/// database confirm that in the request's snapshot, sent with its first statement.
/// Otherwise the lookup is the snapshot's first statement (one round trip for `BEGIN` and
/// lookup), and its database function scopes the snapshot to the key's tenant; an API
/// key it finds is remembered in `known`. Either way a request makes at most one
/// checkout, and one wait for the pool under load.
pub async fn authenticate_request(
    pool: &PgPool,
    known: Option<&KnownKeys>,
    header: Option<&str>,
    speed: Speed,
) -> AppResult<Authenticated> {
    let token = bearer_token(header)?;
    let hash = token.starts_with("gg_").then(|| hash_key(token));
    if let (Some(known), Some(hash)) = (known, &hash) {
        if let Some((principal, confirmation)) = known.recall(pool, hash) {
            return Ok(Authenticated {
                principal,
                proof: Proof::Known(confirmation),
            });
        }
    }
    let mut conn = pool.get().await?;
    let token = token.to_owned();
    let pipelined = speed.on(Mechanism::PipelinedBegin);
    let found = begin_request_snapshot(&mut conn, pipelined, move |conn| {
        async move { lookup(conn, &token).await }.boxed()
    })
    .await?
    .ok_or(AppError::Unauthenticated("missing or invalid API key"))?;
    let (principal, last_used) = principal_of(pool, found)?;
    if let (Some(known), Some(hash), Some(last_used)) = (known, hash, last_used) {
        known.remember(hash, &principal, last_used);
    }
    Ok(Authenticated {
        principal,
        proof: Proof::LookedUp(Box::new(conn)),
    })
}

/// What the database last said about each API key in recent use, by key hash: the
/// principal a request with that key starts from. Not a cache of the answer: each such
/// request has the database confirm it in the request's own snapshot, and a key revoked
/// since is refused there (the request is then answered from a fresh lookup, and the key
/// forgotten).
#[derive(Default)]
pub struct KnownKeys {
    keys: Mutex<HashMap<Vec<u8>, Known>>,
}

struct Known {
    principal: Principal,
    /// The statement that confirms it (migration `2026-11-23-000017_confirm_api_key`).
    confirmation: String,
    /// When the key's use was last recorded (`api_keys.last_used_at`).
    last_used: DateTime<Utc>,
}

impl KnownKeys {
    /// At most this many keys are kept (the map starts over when full).
    const MAX_KEYS: usize = 10_000;

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Known>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal last found for `hash` and the statement that confirms it, recording
    /// the key's use if that is stale.
    fn recall(&self, pool: &PgPool, hash: &[u8]) -> Option<(Principal, String)> {
        let mut keys = self.keys();
        let known = keys.get_mut(hash)?;
        if let Principal::ApiKey {
            tenant_id, key_id, ..
        } = known.principal
        {
            let now = Utc::now();
            if is_stale(Some(known.last_used), now) {
                known.last_used = now;
                touch_last_used(pool.clone(), tenant_id, key_id);
            }
        }
        Some((known.principal.clone(), known.confirmation.clone()))
    }

    /// Remembers an API key's principal (other principals are always looked up).
    fn remember(&self, hash: Vec<u8>, principal: &Principal, last_used: DateTime<Utc>) {
        let Principal::ApiKey {
            tenant_id,
            key_id,
            role,
            ..
        } = principal
        else {
            return;
        };
        // Every value is hex digits, a UUID or a role name: nothing to escape.
        // (A statement each pool connection prepared, run by `EXECUTE`, bought nothing
        // measurable: `docs/architecture.md`.)
        let confirmation = format!(
            "SELECT confirm_api_key('\\x{}'::bytea, '{key_id}'::uuid, '{tenant_id}'::uuid, \
             '{}'::text)",
            hex::encode(&hash),
            role.as_str()
        );
        let mut keys = self.keys();
        if keys.len() >= Self::MAX_KEYS {
            keys.clear();
        }
        let principal = principal.clone();
        keys.insert(
            hash,
            Known {
                principal,
                confirmation,
                last_used,
            },
        );
    }

    /// Forgets the API key `key_id`: it was revoked, or changed (see
    /// `EventHub::spawn_listener`).
    pub fn forget_key(&self, key_id: Uuid) {
        self.keys().retain(|_, known| {
            !matches!(known.principal, Principal::ApiKey { key_id: id, .. } if id == key_id)
        });
    }

    /// Forgets every key (changes to keys may have gone unheard).
    pub fn forget_all(&self) {
        self.keys().clear();
    }

    /// Forgets the key of a request whose caller the database did not confirm.
    pub fn forget(&self, header: Option<&str>) {
        if let Ok(token) = bearer_token(header) {
            self.keys().remove(&hash_key(token));
        }
    }
}

fn bearer_token(header: Option<&str>) -> AppResult<&str> {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or(AppError::Unauthenticated("missing or invalid API key"))
}

/// What a key's lookup found.
enum Found {
    Key(KeyRow),
    Widget(WidgetRow),
}

/// Looks a token up with the key functions (which also scope the current transaction, if
/// any, to the key's tenant).
async fn lookup(conn: &AsyncPgConnection, token: &str) -> diesel::QueryResult<Option<Found>> {
    let mut conn = conn;
    if token.starts_with("wgt_") {
        let rows: Vec<WidgetRow> = Prepared::new(
            "SELECT widget_id, tenant_id, allowed_domains FROM authenticate_widget_key($1)",
        )
        .bind::<Text, _>(token)
        .load(&mut conn)
        .await?;
        return Ok(rows.into_iter().next().map(Found::Widget));
    }
    if !token.starts_with("gg_") {
        return Ok(None);
    }
    let rows: Vec<KeyRow> = Prepared::new(
        "SELECT key_id, tenant_id, role, key_name, last_used_at FROM authenticate_api_key($1)",
    )
    .bind::<Bytea, _>(hash_key(token))
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next().map(Found::Key))
}

/// Whether a key's recorded use is too old to leave as it is.
fn is_stale(last_used_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_used_at.is_none_or(|t| {
        now - t > chrono::Duration::from_std(LAST_USED_RESOLUTION).unwrap_or_default()
    })
}

/// The principal a lookup found; an API key whose recorded use is stale gets it refreshed
/// (off the request path). For an API key, also when its use was last recorded.
fn principal_of(pool: &PgPool, found: Found) -> AppResult<(Principal, Option<DateTime<Utc>>)> {
    let row = match found {
        Found::Widget(row) => {
            let principal = Principal::Widget {
                tenant_id: row.tenant_id,
                widget_id: row.widget_id,
                allowed_domains: row.allowed_domains.into_iter().flatten().collect(),
            };
            return Ok((principal, None));
        }
        Found::Key(row) => row,
    };
    let role = Role::parse(&row.role).ok_or_else(|| AppError::internal(&row.role))?;
    let now = Utc::now();
    let mut last_used = row.last_used_at;
    if is_stale(last_used, now) {
        last_used = Some(now);
        touch_last_used(pool.clone(), row.tenant_id, row.key_id);
    }
    let principal = Principal::ApiKey {
        tenant_id: row.tenant_id,
        key_id: row.key_id,
        key_name: row.key_name,
        role,
    };
    Ok((principal, last_used))
}

/// Records key use without making the request wait for it.
fn touch_last_used(pool: PgPool, tenant_id: Uuid, key_id: Uuid) {
    use scoped_futures::ScopedFutureExt;
    tokio::spawn(async move {
        let db = TenantDb::new(pool, tenant_id);
        let result = db
            .run(|conn, tenant| {
                async move {
                    use crate::db::schema::api_keys::dsl;
                    use diesel::{ExpressionMethods, QueryDsl};
                    diesel::update(
                        dsl::api_keys
                            .filter(dsl::tenant_id.eq(tenant.id()))
                            .filter(dsl::id.eq(key_id)),
                    )
                    .set(dsl::last_used_at.eq(diesel::dsl::now))
                    .execute(conn)
                    .await?;
                    Ok::<_, AppError>(())
                }
                .scope_boxed()
            })
            .await;
        if let Err(error) = result {
            tracing::warn!(?error, "could not record API key use");
        }
    });
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{domain_allows, Principal, Role};

    #[test]
    fn allowed_domain_patterns_cover_their_host_or_its_subdomains() {
        assert!(domain_allows("shop.example.com", "shop.example.com"));
        assert!(!domain_allows("shop.example.com", "example.com"));
        assert!(!domain_allows("shop.example.com", "evilshop.example.com"));
        assert!(domain_allows("*.example.org", "a.example.org"));
        assert!(domain_allows("*.example.org", "a.b.example.org"));
        assert!(!domain_allows("*.example.org", "example.org"));
        assert!(!domain_allows("*.example.org", "evilexample.org"));
        assert!(!domain_allows("*.example.org", ".example.org"));
    }

    #[test]
    fn only_widget_keys_on_sites_they_do_not_allow_are_refused() {
        let widget = |domains: &[&str]| Principal::Widget {
            tenant_id: Uuid::nil(),
            widget_id: Uuid::nil(),
            allowed_domains: domains.iter().map(|d| d.to_string()).collect(),
        };
        let restricted = widget(&["shop.example.com", "*.example.org"]);
        for allowed in [
            None,
            Some("https://shop.example.com"),
            Some("http://SHOP.example.com:8080"),
            Some("https://a.example.org"),
        ] {
            assert!(!restricted.refuses_origin(allowed), "{allowed:?}");
        }
        for refused in [
            "https://evil.example",
            "null",
            "https://example.org",
            "shop.example.com",
        ] {
            assert!(restricted.refuses_origin(Some(refused)), "{refused}");
        }
        assert!(!widget(&[]).refuses_origin(Some("https://anywhere.example")));
        let key = Principal::ApiKey {
            tenant_id: Uuid::nil(),
            key_id: Uuid::nil(),
            key_name: "k".into(),
            role: Role::Admin,
        };
        assert!(!key.refuses_origin(Some("https://evil.example")));
    }
}
