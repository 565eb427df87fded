//! Input parsing shared by every domain: IDs are UUIDs, rejected with the field path.

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub fn parse_id(id: &ID, field: &[&str]) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "not a valid ID"))
}
