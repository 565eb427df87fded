//! The one error type. Database and pool failures never reach a client as text: they
//! become `UNAVAILABLE` (the database is unreachable) or `INTERNAL` with a correlation
//! id that is also in the server log next to the real cause.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql turns anything
//! displayable into client-visible text, so the only way out is the `From` below.

use async_graphql::ErrorExtensions;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub enum AppError {
    Unauthenticated(&'static str),
    Forbidden(&'static str),
    BadUserInput { message: String, field: Vec<String> },
    RateLimited(&'static str),
    Unavailable,
    Internal { correlation_id: Uuid },
}

impl AppError {
    pub fn bad_input(field: &[&str], message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            message: message.into(),
            field: field.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Logs `cause` with a fresh correlation id and returns the opaque error.
    pub fn internal(cause: &dyn std::fmt::Debug) -> Self {
        let correlation_id = Uuid::new_v4();
        tracing::error!(%correlation_id, ?cause, "internal error");
        AppError::Internal { correlation_id }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::Unavailable => "UNAVAILABLE",
            AppError::Internal { .. } => "INTERNAL",
        }
    }
}

impl From<DieselError> for AppError {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )
            | DieselError::BrokenTransactionManager => {
                tracing::warn!(?error, "database unavailable");
                AppError::Unavailable
            }
            _ => AppError::internal(&error),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        tracing::warn!(?error, "database pool unavailable");
        AppError::Unavailable
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(error: AppError) -> Self {
        let code = error.code();
        match error {
            AppError::Unauthenticated(message)
            | AppError::Forbidden(message)
            | AppError::RateLimited(message) => {
                async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
            }
            AppError::BadUserInput { message, field } => async_graphql::Error::new(message)
                .extend_with(|_, e| {
                    e.set("code", code);
                    if !field.is_empty() {
                        e.set("field", field.clone());
                    }
                }),
            AppError::Unavailable => {
                async_graphql::Error::new("the database is unavailable, retry shortly")
                    .extend_with(|_, e| e.set("code", code))
            }
            AppError::Internal { correlation_id } => async_graphql::Error::new(format!(
                "internal error (correlation id {correlation_id})"
            ))
            .extend_with(|_, e| {
                e.set("code", code);
                e.set("correlationId", correlation_id.to_string());
            }),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
