//! Input parsing shared by every domain: IDs are UUIDs, rejected with the field path.

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub fn parse_id(id: &ID, field: &[&str]) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "not a valid ID"))
}

/// [`parse_id`] of an optional ID.
pub fn parse_optional_id(id: &Option<ID>, field: &[&str]) -> AppResult<Option<Uuid>> {
    id.as_ref().map(|id| parse_id(id, field)).transpose()
}

/// Money and other exact decimals, serialised as strings so they never pass through
/// floating point (`"42.50"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub bigdecimal::BigDecimal);

#[async_graphql::Scalar(name = "Decimal")]
impl async_graphql::ScalarType for Decimal {
    fn parse(value: async_graphql::Value) -> async_graphql::InputValueResult<Self> {
        let text = match &value {
            async_graphql::Value::String(s) => s.clone(),
            async_graphql::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => return Err(async_graphql::InputValueError::expected_type(value)),
        };
        if text.len() > 40 {
            return Err(async_graphql::InputValueError::custom("decimal too long"));
        }
        text.parse::<bigdecimal::BigDecimal>()
            .map(Decimal)
            .map_err(|_| async_graphql::InputValueError::custom("not a decimal number"))
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::String(self.0.normalized().to_plain_string_with_scale())
    }
}

trait PlainString {
    fn to_plain_string_with_scale(&self) -> String;
}

impl PlainString for bigdecimal::BigDecimal {
    /// Plain notation (never exponent), at least two decimals for money-like values.
    fn to_plain_string_with_scale(&self) -> String {
        let (_, scale) = self.as_bigint_and_exponent();
        self.with_scale(scale.max(2)).to_plain_string()
    }
}

impl From<bigdecimal::BigDecimal> for Decimal {
    fn from(value: bigdecimal::BigDecimal) -> Self {
        Decimal(value)
    }
}
