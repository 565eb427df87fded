//! Idempotency keys for mutations with money-like effects: the same key with the same
//! input returns the first result and writes nothing more, even when the two requests
//! race (they serialise on a transaction-scoped advisory lock of the key); the same key
//! with different input is `IDEMPOTENCY_KEY_REUSED`. Keys are per tenant and kept 24 h.
//! The first result is the answer, business-rule violations included (Stripe's rule): the
//! work runs in a savepoint, and a violation rolls the work back to it while its answer is
//! recorded and committed, so a retry gets the same violation even if it would now pass.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::schema::idempotency_keys;
use crate::db::Tenant;
use crate::domain::{OpError, OpResult, UserError, UserErrorCode};
use crate::error::AppError;

#[derive(Queryable)]
struct Stored {
    request_hash: Vec<u8>,
    response: serde_json::Value,
}

/// Runs `work` once per (tenant, key). `operation` names the mutation; `request` is its
/// input (hashed to recognise a reused key). `T` is what a replay returns.
pub async fn once<T, F>(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    key: Option<&str>,
    operation: &str,
    request: &impl Serialize,
    work: F,
) -> OpResult<T>
where
    T: Serialize + DeserializeOwned + Send,
    F: AsyncFnOnce(&mut AsyncPgConnection) -> OpResult<T>,
{
    let Some(key) = key else {
        return work(conn).await;
    };
    if key.is_empty() || key.len() > 200 || key.contains('\0') {
        return Err(UserError::new(
            UserErrorCode::Invalid,
            &["input", "idempotencyKey"],
            "idempotencyKey must be 1-200 characters",
        )
        .into());
    }
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(request).map_err(|e| AppError::internal(&e))?);
    let request_hash = hasher.finalize().to_vec();

    crate::db::sql::lock_key(conn, &format!("idempotency:{}:{key}", scope.id())).await?;
    let stored: Option<Stored> = idempotency_keys::table
        .filter(idempotency_keys::tenant_id.eq(scope.id()))
        .filter(idempotency_keys::idempotency_key.eq(key))
        .filter(idempotency_keys::expires_at.gt(diesel::dsl::now))
        .select((idempotency_keys::request_hash, idempotency_keys::response))
        .first(conn)
        .await
        .optional()?;
    if let Some(stored) = stored {
        if stored.request_hash != request_hash {
            return Err(UserError::new(
                UserErrorCode::IdempotencyKeyReused,
                &["input", "idempotencyKey"],
                "this idempotency key was already used with a different input",
            )
            .into());
        }
        if let Some(violation) = recorded_violation(&stored.response) {
            return Err(OpError::User(violation));
        }
        return serde_json::from_value(stored.response)
            .map_err(|e| OpError::App(AppError::internal(&e)));
    }

    let (result, response) = match super::in_savepoint(conn, work).await? {
        Ok(result) => {
            let response = serde_json::to_value(&result).map_err(|e| AppError::internal(&e))?;
            (Ok(result), response)
        }
        Err(violation) => {
            let response = serde_json::json!({ VIOLATION: &violation });
            (Err(OpError::Answered(violation)), response)
        }
    };
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::tenant_id.eq(scope.id()),
            idempotency_keys::idempotency_key.eq(key),
            idempotency_keys::operation.eq(operation),
            idempotency_keys::request_hash.eq(&request_hash),
            idempotency_keys::response.eq(&response),
        ))
        .on_conflict((
            idempotency_keys::tenant_id,
            idempotency_keys::idempotency_key,
        ))
        .do_update()
        .set((
            idempotency_keys::operation.eq(operation),
            idempotency_keys::request_hash.eq(&request_hash),
            idempotency_keys::response.eq(&response),
            idempotency_keys::created_at.eq(diesel::dsl::now),
            idempotency_keys::expires_at.eq(chrono::Utc::now() + chrono::Duration::hours(24)),
        ))
        .execute(conn)
        .await?;
    result
}

/// The key under which a recorded answer holds a business-rule violation.
const VIOLATION: &str = "__userError";

fn recorded_violation(response: &serde_json::Value) -> Option<UserError> {
    serde_json::from_value(response.get(VIOLATION)?.clone()).ok()
}
