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

/// [`parse_id`] of an ID an input may leave out but this operation needs (an update's
/// `id` in an input shared with creation): absent, a `BAD_USER_INPUT` error on `field`.
pub fn parse_required_id(id: &Option<ID>, field: &[&str]) -> AppResult<Uuid> {
    match id {
        Some(id) => parse_id(id, field),
        None => Err(crate::error::AppError::bad_input(field, "id is required")),
    }
}

/// Money and other exact decimals, serialised as strings so they never pass through
/// floating point (`"42.50"`). Input may be a string or a JSON number: a number is read
/// as the decimal it was written as (JSON parsers hold it as a double, which keeps 15
/// significant digits exactly), and one with more digits than that is refused rather than
/// rounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub bigdecimal::BigDecimal);

/// Read from the text (or number) PostgreSQL writes, as aggregates answer it.
impl<'de> serde::Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bigdecimal::BigDecimal::deserialize(d).map(Decimal)
    }
}

#[async_graphql::Scalar(name = "Decimal")]
impl async_graphql::ScalarType for Decimal {
    fn parse(value: async_graphql::Value) -> async_graphql::InputValueResult<Self> {
        let text = match &value {
            async_graphql::Value::String(s) => s.clone(),
            async_graphql::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            async_graphql::Value::Number(n) => {
                // The shortest text that reads back as the same double: what was sent,
                // when it had at most 15 significant digits.
                let text = n.to_string();
                if significant_digits(&text) > 15 {
                    return Err(async_graphql::InputValueError::custom(
                        "a number of more than 15 significant digits cannot be exact: send it as a string",
                    ));
                }
                text
            }
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

/// The significant digits of a number's text (`-0.00120e5` has 2).
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1)
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

#[cfg(test)]
mod tests {
    use super::Decimal;
    use async_graphql::ScalarType;

    fn parse(json: &str) -> Result<String, String> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        Decimal::parse(async_graphql::Value::from_json(value).unwrap())
            .map(|d| d.to_value().to_string())
            .map_err(|e| e.into_server_error(Default::default()).message)
    }

    #[test]
    fn decimals_are_read_exactly_from_strings_and_json_numbers() {
        assert_eq!(parse(r#""42.5""#).unwrap(), r#""42.50""#);
        assert_eq!(parse("42").unwrap(), r#""42.00""#);
        assert_eq!(parse("19.99").unwrap(), r#""19.99""#);
        assert_eq!(parse("0.1").unwrap(), r#""0.10""#);
        assert_eq!(
            parse("-1234567890.12345").unwrap(),
            r#""-1234567890.12345""#
        );
        assert_eq!(parse("1e3").unwrap(), r#""1000.00""#);
        // More digits than a double keeps: refused, never rounded.
        let refused = parse("0.12345678901234567").unwrap_err();
        assert!(refused.contains("send it as a string"), "{refused}");
        assert_eq!(
            parse(r#""0.12345678901234567""#).unwrap(),
            r#""0.12345678901234567""#
        );
        assert!(parse("true").is_err());
    }
}
