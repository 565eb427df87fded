//! The business domains. Each has `model.rs` (Diesel structs checked against the
//! generated schema), `ops.rs` (the operations: plain async functions over a connection
//! already scoped to a tenant, one transaction per mutation) and `graphql.rs` (thin
//! resolvers calling ops).

#[macro_use]
pub mod text_enum;

pub mod automations;
pub mod campaigns;
pub mod catalog;
pub mod comms;
pub mod crm;
pub mod customers;
pub mod events;
pub mod growth;
pub mod idempotency;
pub mod leads;
pub mod loyalty;
pub mod messages;
pub mod outreach;
pub mod prompts;
pub mod tenancy;
pub mod webhooks;

use crate::error::AppError;

/// Business-rule violation codes (`userErrors[].code`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum, serde::Serialize, serde::Deserialize,
)]
pub enum UserErrorCode {
    InsufficientPoints,
    OutOfStock,
    RewardUnavailable,
    NotEligible,
    AlreadyEnrolled,
    InvalidTransition,
    IdempotencyKeyReused,
    NotFound,
    Invalid,
    Conflict,
}

/// A business-rule violation: reported in the payload's `userErrors`, nothing written.
#[derive(Debug, Clone, async_graphql::SimpleObject, serde::Serialize, serde::Deserialize)]
pub struct UserError {
    /// Path to the offending input field, e.g. `["input", "email"]`.
    pub field: Option<Vec<String>>,
    pub code: UserErrorCode,
    pub message: String,
}

impl UserError {
    pub fn new(code: UserErrorCode, field: &[&str], message: impl Into<String>) -> Self {
        Self {
            field: (!field.is_empty()).then(|| field.iter().map(|s| s.to_string()).collect()),
            code,
            message: message.into(),
        }
    }
}

/// What an operation can fail with: a business rule (rolled back, reported to the
/// caller as a user error) or an application error (top-level GraphQL error).
#[derive(Debug)]
pub enum OpError {
    User(UserError),
    /// A business-rule violation that is the recorded answer of an idempotency key
    /// ([`idempotency::once`]): the work was rolled back to a savepoint, and the
    /// transaction commits the record alone.
    Answered(UserError),
    App(AppError),
}

impl crate::db::tenant::WorkError for OpError {
    fn commits(&self) -> bool {
        matches!(self, OpError::Answered(_))
    }
}

impl From<AppError> for OpError {
    fn from(e: AppError) -> Self {
        OpError::App(e)
    }
}

impl From<diesel::result::Error> for OpError {
    /// A unique-key clash is a generic conflict for the caller (no constraint names leak);
    /// operations that expect a specific clash check for it first.
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => OpError::User(UserError::new(
                UserErrorCode::Conflict,
                &[],
                "this conflicts with an existing record",
            )),
            e => OpError::App(e.into()),
        }
    }
}

/// Where no business rule can be violated (jobs, the scheduler), one that is is an
/// internal error.
impl From<OpError> for AppError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::App(e) => e,
            OpError::User(u) | OpError::Answered(u) => AppError::internal(&u),
        }
    }
}

impl From<UserError> for OpError {
    fn from(e: UserError) -> Self {
        OpError::User(e)
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// `tenant_row!(conn, scope, table, id, selection, &["input", "field"], "no such …")`:
/// `selection` of the tenant's row `id` in `table` (a table of `db::schema` with
/// `tenant_id` and `id`), or a `NOT_FOUND` user error on the field, for ids that input
/// names. `tenant_row!(locked conn, …)` also locks the row for the transaction.
/// `tenant_row!(change conn, scope, table, id, changes)` sets `changes` (an `AsChangeset`
/// of `Option`s whose `Default` sets nothing) on the row in one statement, and runs none
/// when there is nothing to change (its `updated_at` stays).
#[macro_export]
macro_rules! tenant_row {
    (change $conn:expr, $scope:expr, $table:ident, $id:expr, $changes:expr) => {{
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use $crate::db::schema::$table as table;
        let changes = $changes;
        if changes != Default::default() {
            let row = table::table
                .filter(table::tenant_id.eq($scope.id()))
                .filter(table::id.eq($id));
            diesel::update(row).set(changes).execute($conn).await?;
        }
    }};
    (locked $conn:expr, $scope:expr, $table:ident, $id:expr, $selection:expr, $field:expr, $message:expr) => {
        $crate::tenant_row!(@find $conn, $scope, $table, $id, $selection, $field, $message, for_update)
    };
    ($conn:expr, $scope:expr, $table:ident, $id:expr, $selection:expr, $field:expr, $message:expr) => {
        $crate::tenant_row!(@find $conn, $scope, $table, $id, $selection, $field, $message, clone)
    };
    (@find $conn:expr, $scope:expr, $table:ident, $id:expr, $selection:expr, $field:expr, $message:expr, $lock:ident) => {{
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use $crate::db::schema::$table as table;
        let found = table::table
            .filter(table::tenant_id.eq($scope.id()))
            .filter(table::id.eq($id))
            .select($selection)
            .$lock()
            .first($conn)
            .await
            .optional()?;
        found.ok_or_else(|| {
            $crate::domain::user_error($crate::domain::UserErrorCode::NotFound, $field, $message)
        })
    }};
}

/// Runs `work` in a savepoint of the caller's transaction: a business-rule violation rolls
/// back what `work` wrote and comes back as a value (the transaction goes on); any other
/// error rolls it back and is returned.
pub async fn in_savepoint<T, F>(
    conn: &mut diesel_async::AsyncPgConnection,
    work: F,
) -> OpResult<Result<T, UserError>>
where
    F: AsyncFnOnce(&mut diesel_async::AsyncPgConnection) -> OpResult<T>,
{
    use diesel_async::{AnsiTransactionManager, TransactionManager};
    AnsiTransactionManager::begin_transaction(conn).await?;
    match work(conn).await {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(Ok(value))
        }
        Err(OpError::User(violation)) => {
            AnsiTransactionManager::rollback_transaction(conn).await?;
            Ok(Err(violation))
        }
        Err(error) => {
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            Err(error)
        }
    }
}

/// A business-rule violation as an operation error (`Err(user_error(…))?`).
pub fn user_error(code: UserErrorCode, field: &[&str], message: &str) -> OpError {
    OpError::User(UserError::new(code, field, message))
}

/// Free text of an input: at most `max` characters and no NUL byte (else an `INVALID` user
/// error on `input.<field>`).
pub fn check_text(field: &str, value: Option<&str>, max: usize) -> OpResult<()> {
    match value {
        Some(v) if v.chars().count() > max || v.contains('\0') => Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            &format!("{field} must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// An amount of money of an input: 0 to 9 999 999 999.99, at most two decimals (else an
/// `INVALID` user error on `field`, the input path).
pub fn check_money(value: &bigdecimal::BigDecimal, field: &[&str]) -> OpResult<()> {
    if value < &bigdecimal::BigDecimal::from(0)
        || value >= &bigdecimal::BigDecimal::from(10_000_000_000i64)
        || value.fractional_digit_count() > 2
    {
        let name = field.last().copied().unwrap_or("amount");
        return Err(user_error(
            UserErrorCode::Invalid,
            field,
            &format!("{name} must be between 0 and 9999999999.99 with at most 2 decimals"),
        ));
    }
    Ok(())
}

/// An optional URL of an input: at most `max` characters, `https` with a host.
pub fn check_https_url(field: &str, value: Option<&str>, max: usize) -> OpResult<()> {
    check_text(field, value, max)?;
    let https = |url: &str| {
        reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some())
    };
    match value {
        Some(url) if !https(url) => Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            &format!("{field} must be an https URL"),
        )),
        _ => Ok(()),
    }
}

/// [`check_text`] of a required field, which may not be blank either.
pub fn check_required_text(field: &str, value: &str, max: usize) -> OpResult<()> {
    if value.trim().is_empty() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            &format!("{field} is required"),
        ));
    }
    check_text(field, Some(value), max)
}

/// A JSON object of an input (settings, credentials), at most `max_bytes` serialised.
pub fn check_json_object(field: &str, value: &serde_json::Value, max_bytes: usize) -> OpResult<()> {
    if !value.is_object() || value.to_string().len() > max_bytes {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            &format!("{field} must be a JSON object of at most {max_bytes} bytes"),
        ));
    }
    Ok(())
}

/// A mutation's payload: what the operation returned (absent when it was refused) and the
/// user errors that refused it. [`payload!`] declares the usual one-object payload; a pair
/// `(Option<T>, Vec<UserError>)` serves a resolver that builds its answer itself.
pub trait Payload: Sized {
    /// What the operation returns when it succeeds.
    type Value;
    fn new(value: Option<Self::Value>, user_errors: Vec<UserError>) -> Self;
}

impl<T> Payload for (Option<T>, Vec<UserError>) {
    type Value = T;
    fn new(value: Option<T>, user_errors: Vec<UserError>) -> Self {
        (value, user_errors)
    }
}

/// Declares a mutation payload of one object, `Payload` of what the operation returns:
/// `payload!(RewardPayload { reward: Reward } from model::Reward)` (the object is made
/// `From` the value), or `from Option<model::Reward>` when the operation reads the object
/// back and may find nothing; `{ api_key: ApiKey, secret } from (model::ApiKey, String)`
/// for an object made with a secret shown only in this answer.
#[macro_export]
macro_rules! payload {
    ($(#[$meta:meta])* $name:ident { $(#[$fmeta:meta])* $field:ident: $object:ty } from Option<$value:ty>) => {
        $crate::payload!(@declare $(#[$meta])* $name { $(#[$fmeta])* $field: $object }
            Option<$value>, |value: Option<Option<$value>>| value.flatten().map(<$object>::from));
    };
    ($(#[$meta:meta])* $name:ident { $(#[$fmeta:meta])* $field:ident: $object:ty } from $value:ty) => {
        $crate::payload!(@declare $(#[$meta])* $name { $(#[$fmeta])* $field: $object }
            $value, |value: Option<$value>| value.map(<$object>::from));
    };
    // An object made with a secret shown only in this answer: the value is the pair.
    ($(#[$meta:meta])* $name:ident { $field:ident: $object:ty, $(#[$smeta:meta])* secret } from ($value:ty, String)) => {
        $(#[$meta])*
        #[derive(async_graphql::SimpleObject)]
        pub struct $name {
            pub $field: Option<$object>,
            $(#[$smeta])*
            pub secret: Option<String>,
            pub user_errors: Vec<$crate::domain::UserError>,
        }

        impl $crate::domain::Payload for $name {
            type Value = ($value, String);
            fn new(
                made: Option<($value, String)>,
                user_errors: Vec<$crate::domain::UserError>,
            ) -> Self {
                let ($field, secret) =
                    made.map(|(made, secret)| (<$object>::from(made), secret)).unzip();
                Self { $field, secret, user_errors }
            }
        }
    };
    (@declare $(#[$meta:meta])* $name:ident { $(#[$fmeta:meta])* $field:ident: $object:ty } $value:ty, $build:expr) => {
        $(#[$meta])*
        #[derive(async_graphql::SimpleObject)]
        pub struct $name {
            $(#[$fmeta])*
            pub $field: Option<$object>,
            pub user_errors: Vec<$crate::domain::UserError>,
        }

        impl $crate::domain::Payload for $name {
            type Value = $value;
            fn new(value: Option<$value>, user_errors: Vec<$crate::domain::UserError>) -> Self {
                Self { $field: ($build)(value), user_errors }
            }
        }
    };
}

/// Maps an operation's outcome to a mutation payload: business-rule violations become
/// `userErrors`, everything else stays a top-level error.
pub fn payload<P: Payload>(result: OpResult<P::Value>) -> Result<P, AppError> {
    match result {
        Ok(value) => Ok(P::new(Some(value), Vec::new())),
        Err(OpError::User(error) | OpError::Answered(error)) => Ok(P::new(None, vec![error])),
        Err(OpError::App(error)) => Err(error),
    }
}

/// Runs a write in the request's unit of work (`TenantDb::run`) and maps its outcome to
/// the mutation's payload ([`payload`]): the one way a mutation resolver writes.
pub async fn write_payload<'a, P, F>(
    ctx: &async_graphql::Context<'_>,
    work: F,
) -> Result<P, AppError>
where
    P: Payload,
    P::Value: Send + 'a,
    F: crate::db::tenant::Work<'a, OpResult<P::Value>>,
{
    let result = crate::graphql::context::request_context(ctx)?
        .db
        .run(work)
        .await;
    payload(result)
}

/// [`write_payload`] of an operation that returns the id of what it changed: `load` reads
/// that object back in the same unit of work, for the payload.
pub async fn write_and_load<'a, P, T, W, L>(
    ctx: &async_graphql::Context<'_>,
    work: W,
    load: L,
) -> Result<P, AppError>
where
    P: Payload<Value = Option<T>>,
    W: crate::db::tenant::Work<'a, OpResult<uuid::Uuid>>,
    L: for<'r> FnOnce(
            &'r mut diesel_async::AsyncPgConnection,
            crate::db::Tenant,
            uuid::Uuid,
        )
            -> scoped_futures::ScopedBoxFuture<'a, 'r, diesel::QueryResult<Option<T>>>
        + Send
        + 'a,
    T: Send + 'a,
{
    use scoped_futures::ScopedFutureExt;
    write_payload(ctx, |conn, scope| {
        async move {
            let id = work(conn, scope).await?;
            Ok(load(conn, scope, id).await?)
        }
        .scope_boxed()
    })
    .await
}
