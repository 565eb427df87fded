//! The tenant's CRM connection: written by `configureCrm` (credentials sealed), read by the
//! sync runner (credentials opened) and by the CRM's webhooks (found by their token).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use super::model::{CrmConnection, CrmPlatform};
use super::provider::CrmError;
use crate::db::schema::{
    club_stages, crm_connections, crm_webhook_receipts, customers, platform_sessions,
};
use crate::db::Tenant;
use crate::domain::{check_json_object, events, user_error, OpResult, UserErrorCode};
use crate::secrets::SecretKey;

/// At most this much credentials (serialised JSON).
const MAX_CREDENTIALS_BYTES: usize = 8 * 1024;

/// What sealed CRM credentials are bound to: the tenant and the CRM (a sealed value
/// copied to another tenant's row does not open there).
pub fn credentials_context(tenant: Uuid, platform: CrmPlatform) -> String {
    format!("crm_connections/{tenant}/{}", platform.as_str())
}

/// The tenant's CRM connection, if any.
pub async fn connection(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Option<CrmConnection>> {
    crm_connections::table
        .filter(crm_connections::tenant_id.eq(scope.id()))
        .select(CrmConnection::as_select())
        .first(conn)
        .await
        .optional()
}

/// What `configureCrm` asks for.
#[derive(Clone)]
pub struct CrmInput {
    pub platform: CrmPlatform,
    pub shop: String,
    /// A JSON object; `None` keeps the stored credentials (same CRM only).
    pub credentials: Option<Value>,
    pub enabled: Option<bool>,
    pub rotate_hook_token: bool,
}

impl std::fmt::Debug for CrmInput {
    /// Never the credentials themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmInput")
            .field("platform", &self.platform)
            .field("shop", &self.shop)
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A connection as `configureCrm` answers it: with its webhook token when one was made
/// (the first time, or on request), shown this once.
#[derive(Debug)]
pub struct ConfiguredCrm {
    pub connection: CrmConnection,
    pub hook_token: Option<String>,
}

/// Whether `tenant` names a Commerce7 tenant (the first part of its admin's host name).
pub fn valid_commerce7_tenant(tenant: &str) -> bool {
    (1..=100).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !tenant.starts_with('-')
}

/// Whether `shop` names a Shopify store: its `*.myshopify.com` domain (the Admin API is
/// reached there, so nothing else may be named).
pub fn valid_shopify_shop(shop: &str) -> bool {
    let Some(name) = shop.strip_suffix(".myshopify.com") else {
        return false;
    };
    (1..=60).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn invalid(field: &str, message: &str) -> crate::domain::OpError {
    user_error(UserErrorCode::Invalid, &["input", field], message)
}

/// The credentials a CRM needs, checked before they are sealed.
fn check_credentials(platform: CrmPlatform, credentials: &Value) -> OpResult<()> {
    check_json_object("credentials", credentials, MAX_CREDENTIALS_BYTES)?;
    let text = |name: &str| {
        credentials[name]
            .as_str()
            .filter(|v| !v.is_empty() && v.len() <= 500 && !v.contains(['\0', '\r', '\n']))
    };
    match platform {
        CrmPlatform::Shopify => {
            if text("accessToken").is_none() {
                return Err(invalid(
                    "credentials",
                    "Shopify credentials need accessToken (the Admin API access token) and may have webhookSecret (the app's client secret)",
                ));
            }
            if !credentials["webhookSecret"].is_null() && text("webhookSecret").is_none() {
                return Err(invalid("credentials", "webhookSecret must be a string"));
            }
            if !credentials["refreshToken"].is_null() {
                let expires = credentials["expiresIn"].as_i64();
                if text("refreshToken").is_none()
                    || text("clientId").is_none()
                    || text("webhookSecret").is_none()
                    || !expires.is_some_and(|s| (60..=31_536_000).contains(&s))
                {
                    return Err(invalid(
                        "credentials",
                        "an expiring token comes with refreshToken, expiresIn (seconds), clientId and webhookSecret (the app's client secret)",
                    ));
                }
            }
            Ok(())
        }
        CrmPlatform::Commerce7 => {
            if text("appId").is_none() || text("appSecret").is_none() {
                return Err(invalid(
                    "credentials",
                    "Commerce7 credentials need appId and appSecret (the app's basic authentication) and may have webhookUsername and webhookPassword",
                ));
            }
            for name in ["webhookUsername", "webhookPassword"] {
                if !credentials[name].is_null() && text(name).is_none() {
                    return Err(invalid("credentials", &format!("{name} must be a string")));
                }
            }
            Ok(())
        }
    }
}

/// A change of an existing connection.
#[derive(AsChangeset)]
#[diesel(table_name = crm_connections)]
struct ConnectionChange {
    provider: CrmPlatform,
    shop: String,
    credentials_sealed: Vec<u8>,
    hook_token_hash: Option<Vec<u8>>,
    enabled: Option<bool>,
}

/// Connects the tenant's CRM, or changes its connection (one per tenant; concurrent
/// first calls make one). Credentials are sealed with `key` (refused when the server has
/// none) and never returned; they are required when the CRM is first connected or
/// changes. A connection gets a webhook token when it has none or `rotate_hook_token`.
/// Enrollments whose sync ended `not_configured` are queued again.
pub async fn configure_crm(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: CrmInput,
    key: Option<&SecretKey>,
) -> OpResult<ConfiguredCrm> {
    use crm_connections as c;
    let shop = input.shop.trim().to_ascii_lowercase();
    if input.platform == CrmPlatform::Shopify && !valid_shopify_shop(&shop) {
        return Err(invalid(
            "shop",
            "a Shopify shop is its myshopify.com domain, e.g. acme-wines.myshopify.com",
        ));
    }
    if input.platform == CrmPlatform::Commerce7 && !valid_commerce7_tenant(&shop) {
        return Err(invalid(
            "shop",
            "a Commerce7 tenant is the first part of its admin's address, e.g. spectrawinery",
        ));
    }
    if let Some(credentials) = &input.credentials {
        check_credentials(input.platform, credentials)?;
    }
    let Some(key) = key else {
        return Err(invalid(
            "credentials",
            "this server has no secret key (GROWTHGRAPH_SECRET_KEY): CRM credentials cannot be stored",
        ));
    };
    crate::db::sql::lock_key(conn, &format!("crm_connection/{}", scope.id())).await?;
    let existing: Option<(CrmPlatform, Vec<u8>)> = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select((c::provider, c::credentials_sealed))
        .first(conn)
        .await
        .optional()?;
    let context = credentials_context(scope.id(), input.platform);
    let mut credentials = input.credentials.clone();
    if let Some(given) = credentials.as_mut() {
        // New credentials replace the stored OAuth tokens (new ones come with them).
        diesel::delete(
            platform_sessions::table.filter(platform_sessions::tenant_id.eq(scope.id())),
        )
        .execute(conn)
        .await?;
        if given["refreshToken"].is_string() {
            store_session(conn, scope, input.platform, &shop, given, key).await?;
            // The session holds the tokens from now on; the connection keeps the client's.
            let object = given.as_object_mut().expect("checked: an object");
            for name in ["accessToken", "refreshToken", "expiresIn"] {
                object.remove(name);
            }
        }
    }
    let sealed = match (&credentials, &existing) {
        (Some(credentials), _) => key.seal(&context, credentials.to_string().as_bytes()),
        (None, Some((platform, sealed))) if *platform == input.platform => sealed.clone(),
        (None, _) => {
            return Err(invalid(
                "credentials",
                "credentials are required to connect this CRM",
            ))
        }
    };
    let token = (existing.is_none() || input.rotate_hook_token)
        .then(|| crate::auth::generate_secret("ghk_"));
    let connection: CrmConnection = match &existing {
        None => {
            diesel::insert_into(c::table)
                .values((
                    c::tenant_id.eq(scope.id()),
                    c::provider.eq(input.platform),
                    c::shop.eq(&shop),
                    c::credentials_sealed.eq(&sealed),
                    c::hook_token_hash.eq(crate::auth::hash_key(token.as_deref().unwrap_or(""))),
                    c::enabled.eq(input.enabled.unwrap_or(true)),
                ))
                .returning(CrmConnection::as_returning())
                .get_result(conn)
                .await?
        }
        Some(_) => {
            // What is left out (`None`) keeps its value.
            let change = ConnectionChange {
                provider: input.platform,
                shop: shop.clone(),
                credentials_sealed: sealed,
                hook_token_hash: token.as_deref().map(crate::auth::hash_key),
                enabled: input.enabled,
            };
            diesel::update(c::table.filter(c::tenant_id.eq(scope.id())))
                .set(change)
                .returning(CrmConnection::as_returning())
                .get_result(conn)
                .await?
        }
    };
    if connection.enabled {
        requeue_not_configured(conn, scope).await?;
    }
    events::record(
        conn,
        scope,
        "crm.configured",
        scope.id(),
        json!({
            "provider": connection.provider.as_str(),
            "shop": connection.shop,
            "enabled": connection.enabled,
        }),
    )
    .await?;
    Ok(ConfiguredCrm {
        connection,
        hook_token: token,
    })
}

/// Queues a sync again for each enrollment whose last one ended `not_configured` (and has
/// none queued): the CRM they waited for is there now.
async fn requeue_not_configured(conn: &mut AsyncPgConnection, scope: Tenant) -> OpResult<()> {
    use crate::db::schema::club_enrollments as e;
    use crate::domain::loyalty::model::{EnrollmentStatus, SyncStatus};
    let waiting: Vec<Uuid> = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .filter(e::sync_status.eq(SyncStatus::NotConfigured))
        .filter(e::status.eq_any([EnrollmentStatus::Active, EnrollmentStatus::Expired]))
        .select(e::id)
        .load(conn)
        .await?;
    for enrollment in waiting {
        crate::domain::loyalty::ops::retry_crm_sync(conn, scope, enrollment).await?;
    }
    Ok(())
}

/// The customer a sync is about, as the CRM is told of them.
#[derive(Debug, Clone)]
pub struct SyncCustomer {
    pub email: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// The CRM's id of the customer, once known.
    pub crm_customer_id: Option<String>,
}

impl SyncCustomer {
    /// The name as CRMs keep it: the first word, then the rest.
    pub fn first_and_last_name(&self) -> (Option<String>, Option<String>) {
        let Some(name) = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return (None, None);
        };
        match name.split_once(char::is_whitespace) {
            Some((first, last)) => (Some(first.to_owned()), Some(last.trim().to_owned())),
            None => (Some(name.to_owned()), None),
        }
    }

    /// The phone when it is in E.164 form (`+` and 8 to 15 digits), the only form CRMs
    /// accept.
    pub fn e164_phone(&self) -> Option<&str> {
        self.phone.as_deref().filter(|p| {
            p.strip_prefix('+').is_some_and(|d| {
                (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
            })
        })
    }
}

/// Everything a sync needs: the tenant's CRM with its credentials opened, and the customer.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub platform: CrmPlatform,
    pub shop: String,
    pub credentials: Value,
    pub customer: SyncCustomer,
    /// The stage's name and its CRM discount (tag) as the stage holds it now.
    pub stage_name: String,
    pub stage_tag: Option<String>,
}

impl SyncTarget {
    /// A credential by name ("" when absent).
    pub fn credential(&self, name: &str) -> &str {
        self.credentials[name].as_str().unwrap_or("")
    }
}

/// A customer's email, name, phone and CRM id.
type CustomerRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The tenant's CRM with its credentials opened, and the customer of a sync; the reason
/// when there is nothing to sync with (no or a disabled connection: `NotConfigured`).
pub async fn sync_target(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer: Uuid,
    stage: Uuid,
    key: Option<&SecretKey>,
) -> QueryResult<Result<SyncTarget, CrmError>> {
    use crm_connections as c;
    let row: Option<(CrmPlatform, String, Vec<u8>, bool)> = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select((c::provider, c::shop, c::credentials_sealed, c::enabled))
        .first(conn)
        .await
        .optional()?;
    let Some((platform, shop, sealed, true)) = row else {
        return Ok(Err(CrmError::NotConfigured));
    };
    let Some(mut credentials) = open_credentials(scope, platform, &sealed, key) else {
        return Ok(Err(CrmError::Refused(
            "the CRM credentials cannot be opened with this server's secret key: configure the CRM again"
                .into(),
        )));
    };
    if let Some(key) = key {
        if let Some(token) = session_access_token(conn, scope, platform, &shop, key).await? {
            credentials["accessToken"] = Value::String(token);
        }
    }
    let found: Option<CustomerRow> = customers::table
        .filter(customers::tenant_id.eq(scope.id()))
        .filter(customers::id.eq(customer))
        .select((
            customers::email,
            customers::name,
            customers::phone,
            customers::crm_customer_id,
        ))
        .first(conn)
        .await
        .optional()?;
    let customer = match found {
        None => {
            return Ok(Err(CrmError::Refused(
                "the customer no longer exists".into(),
            )))
        }
        Some((None, ..)) => {
            return Ok(Err(CrmError::Refused(
                "the customer has no email: the CRM knows its customers by email".into(),
            )))
        }
        Some((Some(email), name, phone, crm_customer_id)) => SyncCustomer {
            email,
            name,
            phone,
            crm_customer_id,
        },
    };
    let stage: Option<(String, Option<String>)> = club_stages::table
        .filter(club_stages::tenant_id.eq(scope.id()))
        .filter(club_stages::id.eq(stage))
        .select((club_stages::name, club_stages::crm_discount_id))
        .first(conn)
        .await
        .optional()?;
    let Some((stage_name, stage_tag)) = stage else {
        return Ok(Err(CrmError::Refused("the stage no longer exists".into())));
    };
    Ok(Ok(SyncTarget {
        platform,
        shop,
        credentials,
        customer,
        stage_name,
        stage_tag,
    }))
}

/// Records the tag a stage's first sync made in the CRM, unless the stage has one by now
/// (set meanwhile, or by a racing sync): the stage's tag after this.
pub async fn remember_stage_tag(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    stage: Uuid,
    tag: String,
) -> QueryResult<String> {
    use crate::domain::loyalty::model::SyncStatus;
    let target = club_stages::table
        .filter(club_stages::tenant_id.eq(scope.id()))
        .filter(club_stages::id.eq(stage));
    let set: Option<Option<String>> =
        diesel::update(target.filter(club_stages::crm_discount_id.is_null()))
            .set((
                club_stages::crm_discount_id.eq(&tag),
                club_stages::sync_status.eq(SyncStatus::Synced),
            ))
            .returning(club_stages::crm_discount_id)
            .get_result(conn)
            .await
            .optional()?;
    match set {
        Some(_) => Ok(tag),
        None => Ok(target
            .select(club_stages::crm_discount_id)
            .first::<Option<String>>(conn)
            .await?
            .unwrap_or(tag)),
    }
}

/// Records the CRM's id of a customer (learned by a sync or a webhook).
pub async fn remember_crm_customer(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer: Uuid,
    crm_id: String,
) -> QueryResult<()> {
    diesel::update(
        customers::table
            .filter(customers::tenant_id.eq(scope.id()))
            .filter(customers::id.eq(customer)),
    )
    .set(customers::crm_customer_id.eq(crm_id))
    .execute(conn)
    .await
    .map(|_| ())
}

/// The tenant and CRM a webhook token names, across tenants (see the migration's reviewed
/// `crm_hook_target`).
pub async fn hook_target(
    pool: &crate::db::PgPool,
    token: &str,
) -> crate::error::AppResult<Option<(Uuid, CrmPlatform)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        tenant_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        provider: String,
    }
    let mut conn = pool.get().await?;
    let row: Option<Row> = diesel::sql_query("SELECT tenant_id, provider FROM crm_hook_target($1)")
        .bind::<diesel::sql_types::Bytea, _>(crate::auth::hash_key(token))
        .get_result(&mut conn)
        .await
        .optional()?;
    Ok(row.and_then(|r| Some((r.tenant_id, CrmPlatform::parse(&r.provider)?))))
}

/// The tenant's CRM credentials, opened (for a webhook's signature).
pub async fn hook_credentials(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    key: Option<&SecretKey>,
) -> QueryResult<Option<Value>> {
    use crm_connections as c;
    let row: Option<(CrmPlatform, Vec<u8>)> = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select((c::provider, c::credentials_sealed))
        .first(conn)
        .await
        .optional()?;
    Ok(row.and_then(|(platform, sealed)| open_credentials(scope, platform, &sealed, key)))
}

/// Credentials sealed for the tenant's `platform`, opened (`None`: no key, another key, or
/// not what was sealed).
fn open_credentials(
    scope: Tenant,
    platform: CrmPlatform,
    sealed: &[u8],
    key: Option<&SecretKey>,
) -> Option<Value> {
    let plain = key?.open(&credentials_context(scope.id(), platform), sealed)?;
    serde_json::from_slice(&plain).ok()
}

/// Notes a webhook delivery as applied; `false` when it was already (a retry or a replay).
pub async fn first_delivery(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    platform: CrmPlatform,
    delivery_id: &str,
    topic: &str,
) -> QueryResult<bool> {
    use crm_webhook_receipts as r;
    let inserted = diesel::insert_into(r::table)
        .values((
            r::tenant_id.eq(scope.id()),
            r::provider.eq(platform.as_str()),
            r::delivery_id.eq(delivery_id),
            r::topic.eq(topic),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// What sealed session tokens are bound to: the tenant, the CRM, the shop and which token.
fn session_context(tenant: Uuid, platform: CrmPlatform, shop: &str, token: &str) -> String {
    format!(
        "platform_sessions/{tenant}/{}/{shop}/{token}",
        platform.as_str()
    )
}

/// Stores an OAuth session of the shop (`accessToken`, `refreshToken`, `expiresIn`),
/// sealed, replacing the shop's previous one.
async fn store_session(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    platform: CrmPlatform,
    shop: &str,
    given: &Value,
    key: &SecretKey,
) -> QueryResult<()> {
    let text = |name: &str| given[name].as_str().unwrap_or("").to_owned();
    let tokens = SessionTokens {
        access_token: text("accessToken"),
        refresh_token: text("refreshToken"),
        expires_in: given["expiresIn"].as_i64().unwrap_or(3600),
        refresh_token_expires_in: None,
        scope: None,
    };
    let (access, refresh) = seal_tokens(scope.id(), platform, shop, &tokens, key);
    diesel::insert_into(platform_sessions::table)
        .values((
            platform_sessions::tenant_id.eq(scope.id()),
            platform_sessions::platform.eq(platform.as_str()),
            platform_sessions::shop.eq(shop),
            platform_sessions::access_token_encrypted.eq(access),
            platform_sessions::refresh_token_encrypted.eq(Some(refresh)),
            platform_sessions::expires_at
                .eq(Utc::now() + chrono::Duration::seconds(tokens.expires_in)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

fn seal_tokens(
    tenant: Uuid,
    platform: CrmPlatform,
    shop: &str,
    tokens: &SessionTokens,
    key: &SecretKey,
) -> (Vec<u8>, Vec<u8>) {
    (
        key.seal(
            &session_context(tenant, platform, shop, "access"),
            tokens.access_token.as_bytes(),
        ),
        key.seal(
            &session_context(tenant, platform, shop, "refresh"),
            tokens.refresh_token.as_bytes(),
        ),
    )
}

/// Tokens a CRM's OAuth endpoint answered.
#[derive(Clone)]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub refresh_token_expires_in: Option<i64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for SessionTokens {
    /// Never the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The shop's session access token, opened, if the tenant has a session for it.
async fn session_access_token(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    platform: CrmPlatform,
    shop: &str,
    key: &SecretKey,
) -> QueryResult<Option<String>> {
    let sealed: Option<Vec<u8>> = platform_sessions::table
        .filter(platform_sessions::tenant_id.eq(scope.id()))
        .filter(platform_sessions::platform.eq(platform.as_str()))
        .filter(platform_sessions::shop.eq(shop))
        .select(platform_sessions::access_token_encrypted)
        .first(conn)
        .await
        .optional()?;
    Ok(sealed.and_then(|sealed| {
        let context = session_context(scope.id(), platform, shop, "access");
        String::from_utf8(key.open(&context, &sealed)?).ok()
    }))
}

/// A session to refresh: the shop, its refresh token and the app's client credentials,
/// opened.
pub struct DueSession {
    pub id: Uuid,
    pub platform: CrmPlatform,
    pub shop: String,
    pub refresh_token: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The tenant's sessions whose access token expires within `within` (or has), with what
/// refreshing them takes.
pub async fn sessions_due(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    within: chrono::Duration,
    key: &SecretKey,
) -> QueryResult<Vec<DueSession>> {
    let rows: Vec<(Uuid, String, String, Option<Vec<u8>>)> = platform_sessions::table
        .filter(platform_sessions::tenant_id.eq(scope.id()))
        .filter(platform_sessions::refresh_token_encrypted.is_not_null())
        .filter(platform_sessions::expires_at.lt(Utc::now() + within))
        .select((
            platform_sessions::id,
            platform_sessions::platform,
            platform_sessions::shop,
            platform_sessions::refresh_token_encrypted,
        ))
        .load(conn)
        .await?;
    let client = hook_credentials(conn, scope, Some(key))
        .await?
        .unwrap_or_default();
    Ok(rows
        .into_iter()
        .filter_map(|(id, platform, shop, sealed)| {
            let platform = CrmPlatform::parse(&platform)?;
            let context = session_context(scope.id(), platform, &shop, "refresh");
            let refresh_token = String::from_utf8(key.open(&context, &sealed?)?).ok()?;
            Some(DueSession {
                id,
                platform,
                shop,
                refresh_token,
                client_id: client["clientId"].as_str().unwrap_or("").to_owned(),
                client_secret: client["webhookSecret"].as_str().unwrap_or("").to_owned(),
            })
        })
        .collect())
}

/// Records a refresh: the new tokens sealed (the old refresh token is spent), or why it
/// failed.
pub async fn record_refresh(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    session: &DueSession,
    outcome: Result<SessionTokens, String>,
    key: &SecretKey,
) -> QueryResult<()> {
    let target = platform_sessions::table
        .filter(platform_sessions::tenant_id.eq(scope.id()))
        .filter(platform_sessions::id.eq(session.id));
    match outcome {
        Ok(tokens) => {
            let (access, refresh) =
                seal_tokens(scope.id(), session.platform, &session.shop, &tokens, key);
            let now = Utc::now();
            diesel::update(target)
                .set((
                    platform_sessions::access_token_encrypted.eq(access),
                    platform_sessions::refresh_token_encrypted.eq(Some(refresh)),
                    platform_sessions::expires_at
                        .eq(now + chrono::Duration::seconds(tokens.expires_in)),
                    platform_sessions::refresh_token_expires_at.eq(tokens
                        .refresh_token_expires_in
                        .map(|s| now + chrono::Duration::seconds(s))),
                    platform_sessions::scope.eq(tokens.scope),
                    platform_sessions::refreshed_at.eq(now),
                    platform_sessions::last_refresh_error.eq(None::<String>),
                ))
                .execute(conn)
                .await?;
        }
        Err(error) => {
            diesel::update(target)
                .set(platform_sessions::last_refresh_error.eq(Some(super::http::kept(&error))))
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// The tenant's session state for the API: when its access token expires and why the last
/// refresh failed (never a token).
pub async fn session_state(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Option<(Option<DateTime<Utc>>, Option<String>)>> {
    platform_sessions::table
        .filter(platform_sessions::tenant_id.eq(scope.id()))
        .select((
            platform_sessions::expires_at,
            platform_sessions::last_refresh_error,
        ))
        .first(conn)
        .await
        .optional()
}
