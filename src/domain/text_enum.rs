//! Enumerated statuses and types: stored as `text` with a `CHECK` constraint, read and
//! written by Diesel as Rust enums, exposed to GraphQL as enums. An unexpected value in
//! the database is a deserialisation error (an `INTERNAL` error), never a panic.

/// `text_enum!(pub Name { Variant => "db_value", … })`
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum,
                 diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
                 serde::Serialize, serde::Deserialize)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $value),+ }
            }

            pub fn parse(value: &str) -> Option<Self> {
                match value { $($value => Some($name::$variant),)+ _ => None }
            }

            /// Reads the stored text (or null) from JSON, for `#[serde(deserialize_with)]`.
            pub fn from_db<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
                let text = <Option<String> as serde::Deserialize>::deserialize(d)?;
                text.map(|t| $name::parse(&t).ok_or_else(|| {
                    <D::Error as serde::de::Error>::custom(format!("unexpected {} value {t:?}", stringify!($name)))
                }))
                .transpose()
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg>>::from_sql(bytes)?;
                $name::parse(&text).ok_or_else(|| format!("unexpected {} value {text:?}", stringify!($name)).into())
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(self.as_str(), out)
            }
        }
    };
}
