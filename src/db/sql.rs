//! Hand-written SQL that PostgreSQL prepares once per connection and reuses.
//!
//! Diesel's `sql_query` marks its statements unsafe to cache, so every call is parsed and
//! planned again. [`Prepared`] takes the same text (with `$1`, `$2`, … placeholders) and
//! typed binds, and lets the connection's statement cache keep it: for the hot statements
//! (nested-connection pages, key lookups, the outbox insert) that planning was a large
//! share of their cost. Analytical statements that run rarely and depend on their
//! parameters' values (insight aggregates, a campaign launch) keep `sql_query`, which
//! plans them for the values at hand every time.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::QueryResult;
use std::marker::PhantomData;
use std::ops::Range;

/// A statement's text and its binds; load rows with `QueryableByName` types.
#[must_use = "a query runs only when loaded or executed"]
pub struct Prepared<'f> {
    sql: std::borrow::Cow<'static, str>,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'f>>,
}

impl<'f> Prepared<'f> {
    pub fn new(sql: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// Binds the next placeholder (`$1` first) as SQL type `ST`.
    pub fn bind<ST, V>(mut self, value: V) -> Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'f,
        ST: Send + 'f,
    {
        self.binds.push(Box::new(Bind::<ST, V> {
            value,
            sql_type: PhantomData,
        }));
        self
    }

    /// Places `query` (a Diesel query, with its own binds) at the next placeholder, as a
    /// subquery's text: a hand-written statement can then read around a list the Diesel
    /// DSL builds (`SELECT …, <relations> FROM ($2) c`). The statement stays cacheable
    /// when `query` is.
    pub fn query<Q>(mut self, query: Q) -> Self
    where
        Q: QueryFragment<Pg> + Send + 'f,
    {
        self.binds.push(Box::new(query));
        self
    }
}

struct Bind<ST, V> {
    value: V,
    sql_type: PhantomData<ST>,
}

impl<ST, V> QueryFragment<Pg> for Bind<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.value)
    }
}

impl QueryFragment<Pg> for Prepared<'_> {
    /// Copies the text, replacing each `$n` with bind n (a placeholder used twice is
    /// bound twice; the rendered text, and so the cache key, is the same on every call).
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let sql = self.sql.as_ref();
        let mut copied = 0;
        for (place, number) in placeholders(sql) {
            let bind = number
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| self.binds.get(i))
                .ok_or_else(|| placeholder_error(&sql[place.clone()]))?;
            out.push_sql(&sql[copied..place.start]);
            bind.walk_ast(out.reborrow())?;
            copied = place.end;
        }
        out.push_sql(&sql[copied..]);
        Ok(())
    }
}

/// Each `$n` placeholder of `sql`: where it stands, and its number (`None` when the digits
/// overflow). Diesel walks a statement several times per execution, so this jumps from
/// `$` to `$`.
pub fn placeholders(sql: &str) -> impl Iterator<Item = (Range<usize>, Option<usize>)> + '_ {
    let bytes = sql.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let start = at + sql[at..].find('$')?;
        let digits = bytes[start + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        at = start + 1 + digits;
        if digits > 0 {
            return Some((start..at, sql[start + 1..at].parse().ok()));
        }
    })
}

fn placeholder_error(placeholder: &str) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("no bind for placeholder {placeholder}").into(),
    )
}

impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}

/// A query with its `LIMIT` written into the text (`<query> LIMIT 51`) rather than bound.
/// A generic plan (the pool plans every statement once: `force_generic_plan`) takes a
/// bound `LIMIT $n` for a tenth of the rows, which is harmless for a list alone but not
/// for a list that is the subquery of a larger statement: planned for all its rows, the
/// page became a parallel scan and sort of the tenant's customers (850 ms instead of 1).
/// Each limit is a statement of its own in the connection's cache (a page's limit is at
/// most `MAX_PAGE_SIZE + 1`); it is a number, never text from a client.
pub struct Limited<Q> {
    pub query: Q,
    pub limit: i64,
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Limited<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(&format!(" LIMIT {}", self.limit));
        Ok(())
    }
}

impl<Q> QueryId for Limited<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Limited<Q> {
    type SqlType = Q::SqlType;
}

/// Takes the transaction-scoped advisory lock named `key` (held until the transaction
/// ends): what serialises the work on one natural key that has no row to lock yet.
pub async fn lock_key(conn: &mut diesel_async::AsyncPgConnection, key: &str) -> QueryResult<()> {
    use diesel_async::RunQueryDsl;
    Prepared::new("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<diesel::sql_types::Text, _>(key.to_owned())
        .execute(conn)
        .await
        .map(|_| ())
}

/// An `ILIKE` pattern matching text that contains `search` as typed: its `\`, `%` and
/// `_` stand for themselves.
pub fn contains_pattern(search: &str) -> String {
    let escaped = search
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{Integer, Text};

    #[test]
    fn a_contains_pattern_matches_wildcards_and_escapes_as_typed() {
        assert_eq!(contains_pattern("ab"), "%ab%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    fn rendered(query: &Prepared<'_>) -> String {
        diesel::debug_query::<Pg, _>(query).to_string()
    }

    #[test]
    fn placeholders_become_binds_in_order_and_repeats_bind_again() {
        let query = Prepared::new("SELECT $1::int + $2::int, $1::int, '$x' AS price")
            .bind::<Integer, _>(40)
            .bind::<Integer, _>(2);
        let text = rendered(&query);
        assert!(
            text.starts_with("SELECT $1::int + $2::int, $3::int, '$x' AS price"),
            "{text}"
        );
        assert!(text.contains("binds: [40, 2, 40]"), "{text}");
    }

    #[test]
    fn placeholders_are_dollar_digits_only() {
        let text = "SELECT $1, '$x', $ , $12, $99999999999999999999999";
        let found: Vec<(&str, Option<usize>)> = placeholders(text)
            .map(|(place, number)| (&text[place], number))
            .collect();
        assert_eq!(
            found,
            [
                ("$1", Some(1)),
                ("$12", Some(12)),
                ("$99999999999999999999999", None)
            ]
        );
    }

    #[test]
    fn a_placeholder_without_a_bind_is_an_error_not_a_panic() {
        let query = Prepared::new("SELECT $2").bind::<Text, _>("only one");
        let mut builder = diesel::pg::PgQueryBuilder::default();
        assert!(query.to_sql(&mut builder, &Pg).is_err());
    }

    #[test]
    fn a_query_at_a_placeholder_is_rendered_with_its_binds_in_place() {
        use crate::db::schema::customers;
        use diesel::prelude::*;
        let list = customers::table
            .select(customers::id)
            .filter(customers::name.eq("Ana"))
            .limit(3)
            .into_boxed();
        let query = Prepared::new("SELECT $1::int, c.id FROM ($2) c WHERE $3::int > 0")
            .bind::<Integer, _>(7)
            .query(list)
            .bind::<Integer, _>(9);
        let text = rendered(&query);
        assert!(
            text.starts_with(
                "SELECT $1::int, c.id FROM (SELECT \"customers\".\"id\" FROM \"customers\" \
                 WHERE (\"customers\".\"name\" = $2) LIMIT $3) c WHERE $4::int > 0"
            ),
            "{text}"
        );
        assert!(text.contains("binds: [7, \"Ana\", 3, 9]"), "{text}");
        assert!(query.is_safe_to_cache_prepared(&Pg).unwrap());
    }

    #[test]
    fn a_limited_query_writes_its_limit_into_the_text() {
        use crate::db::schema::customers;
        use diesel::prelude::*;
        let list = customers::table
            .select(customers::id)
            .filter(customers::name.eq("Ana"))
            .into_boxed();
        let query = Prepared::new("SELECT c.id FROM ($1) c").query(Limited {
            query: list,
            limit: 51,
        });
        let text = rendered(&query);
        assert!(
            text.starts_with(
                "SELECT c.id FROM (SELECT \"customers\".\"id\" FROM \"customers\" \
                 WHERE (\"customers\".\"name\" = $1) LIMIT 51) c"
            ),
            "{text}"
        );
        assert!(query.is_safe_to_cache_prepared(&Pg).unwrap());
    }

    #[test]
    fn the_statement_may_be_cached_unlike_sql_query() {
        let text = "SELECT $1::text";
        let prepared = Prepared::new(text).bind::<Text, _>("a");
        assert!(prepared.is_safe_to_cache_prepared(&Pg).unwrap());
        let raw = diesel::sql_query(text).bind::<Text, _>("a");
        assert!(!raw.is_safe_to_cache_prepared(&Pg).unwrap());
    }
}
