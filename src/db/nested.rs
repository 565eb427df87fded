//! Related rows as one column of an outer statement: `ARRAY(SELECT ROW(<columns>)::<type> …)`.
//!
//! A statement can then return a parent and several of its relations at once (the
//! customer 360 is one statement instead of one per relation). The rows arrive in
//! PostgreSQL's binary format and are decoded by the same Diesel types as a plain query
//! of the model: the `ROW(…)` lists exactly the columns of the model's `Selectable`
//! selection, rendered by Diesel, in field order, cast to the model's composite row type
//! ([`NestedRow`]). Nothing goes through JSON, so numerics, timestamps and enums keep
//! their exact values.

use diesel::deserialize::{self, FromSql, Queryable, QueryableByName};
use diesel::expression::Expression;
use diesel::pg::{Pg, PgQueryBuilder, PgValue};
use diesel::query_builder::{QueryBuilder, QueryFragment};
use diesel::sql_types::{Array, Nullable, Record, Uuid as SqlUuid};
use diesel::{QueryResult, Selectable};
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use super::prefetch::Prefetched;
use super::sql::{Limited, Prepared};
use super::{Tenant, TenantDb};
use crate::error::AppError;
use crate::speed::{Mechanism, Speed};

/// The SQL type of `T`'s selection (a tuple of its columns' types).
pub type SelectionType<T> = <<T as Selectable<Pg>>::SelectExpression as Expression>::SqlType;

/// The SQL type of a nested-rows column of `T` (`NULL` when the relation was not asked for).
pub type Records<T> = Nullable<Array<Record<SelectionType<T>>>>;

/// Decoded nested rows, in the order the subquery returned them.
#[derive(Debug, Clone)]
pub struct Rows<T>(pub Vec<T>);

impl<T> FromSql<Array<Record<SelectionType<T>>>, Pg> for Rows<T>
where
    T: Selectable<Pg> + Queryable<SelectionType<T>, Pg>,
    T::Row: FromSql<Record<SelectionType<T>>, Pg>,
{
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let rows = <Vec<T::Row> as FromSql<Array<Record<SelectionType<T>>>, Pg>>::from_sql(value)?;
        rows.into_iter()
            .map(T::build)
            .collect::<Result<_, _>>()
            .map(Rows)
    }
}

/// A model read as nested rows: its table, and the composite type that lists the columns
/// of its selection in field order (migration `2026-11-23-000016_nested_row_types`; a test
/// checks every such type against its table and model).
///
/// `ROW(…)::<type>` takes its tuple descriptor from PostgreSQL's type cache; an anonymous
/// `ROW(…)` builds and registers one on every execution of the statement.
pub trait NestedRow: Selectable<Pg> {
    const TABLE: &'static str;
    const ROW_TYPE: &'static str;
}

/// The columns of `T`'s selection, in field order (as Diesel renders them, less their
/// table's qualifier and quotes).
pub fn columns_of<T>() -> QueryResult<Vec<String>>
where
    T: NestedRow,
    T::SelectExpression: QueryFragment<Pg>,
{
    let mut builder = PgQueryBuilder::default();
    T::construct_selection().to_sql(&mut builder, &Pg)?;
    let qualified = format!("\"{}\".", T::TABLE);
    Ok(builder
        .finish()
        .split(", ")
        .map(|column| {
            column
                .trim_start_matches(&qualified)
                .trim_matches('"')
                .to_owned()
        })
        .collect())
}

/// `ROW(<T's columns>)::<T's row type>`. Unqualified (`alias` `None`), the columns resolve
/// to the innermost table, which must be T's: an outer alias's columns of the same name do
/// not get in the way. With an alias, they are that alias's.
pub fn row_of<T>(alias: Option<&str>) -> QueryResult<String>
where
    T: NestedRow,
    T::SelectExpression: QueryFragment<Pg>,
{
    let qualifier = alias.map_or_else(String::new, |alias| format!("{alias}."));
    let columns: Vec<String> = columns_of::<T>()?
        .iter()
        .map(|column| format!("{qualifier}\"{column}\""))
        .collect();
    Ok(format!("ROW({})::{}", columns.join(", "), T::ROW_TYPE))
}

/// One relation of a page's rows: the rows of `table` whose `parent` column names the
/// page's row, in `order`, as the column `name`; `row` renders their `ROW(…)`
/// ([`row_of`] of the relation's model).
pub struct PagePart {
    pub name: &'static str,
    pub table: &'static str,
    pub parent: &'static str,
    pub order: &'static str,
    pub row: fn(Option<&str>) -> QueryResult<String>,
}

/// A page's relations, and the statement of each choice of them (which are asked for),
/// rendered once for the life of the process.
pub struct PageParts<const N: usize> {
    parts: [PagePart; N],
    statements: OnceLock<Vec<String>>,
}

impl<const N: usize> PageParts<N> {
    pub const fn new(parts: [PagePart; N]) -> Self {
        PageParts {
            parts,
            statements: OnceLock::new(),
        }
    }

    /// `SELECT p.*, <each part> FROM ($2) p`: a page (`$2`, the list's own query) and each
    /// part `asked` for of each of its rows (`NULL` for the others), in one statement
    /// scoped to the tenant `$1`.
    fn statement(&self, asked: [bool; N]) -> QueryResult<&str> {
        let choice = asked
            .iter()
            .enumerate()
            .fold(0, |choice, (i, on)| choice | usize::from(*on) << i);
        if let Some(statements) = self.statements.get() {
            return Ok(&statements[choice]);
        }
        let statements = (0..1 << N)
            .map(|choice| {
                let columns = self.parts.iter().enumerate().map(|(i, part)| {
                    Ok(match choice >> i & 1 == 1 {
                        true => format!(
                            "ARRAY(SELECT {} FROM {} WHERE tenant_id = $1 AND {} = p.id ORDER BY {}) AS {}",
                            (part.row)(None)?,
                            part.table,
                            part.parent,
                            part.order,
                            part.name
                        ),
                        false => format!("NULL AS {}", part.name),
                    })
                });
                let columns = columns.collect::<QueryResult<Vec<String>>>()?;
                Ok(format!("SELECT p.*, {} FROM ($2) p", columns.join(", ")))
            })
            .collect::<QueryResult<Vec<String>>>()?;
        Ok(&self.statements.get_or_init(|| statements)[choice])
    }

    /// The `around` of [`read_page`] for a page whose parts `asked` are read (none read
    /// when none is asked for); `file` files a row's parts and answers its model.
    pub fn around<R: 'static, M: 'static>(
        &'static self,
        asked: [bool; N],
        file: fn(&Prefetched, R) -> M,
    ) -> impl FnOnce(&Arc<Prefetched>) -> QueryResult<Option<Around<R, M>>> {
        move |filed| {
            if !asked.contains(&true) {
                return Ok(None);
            }
            let filed = filed.clone();
            Ok(Some(Around {
                sql: Cow::Borrowed(self.statement(asked)?),
                binds: Box::new(|query| query),
                file: Box::new(move |row| file(&filed, row)),
            }))
        }
    }
}

/// A statement that reads a page's relations around the page's own query: its text, with
/// `$1` the tenant and `$2` the list (a subquery whose order the statement keeps: its
/// relations are columns, no join or sort above the list reorders the rows); `binds`
/// binds its places after `$2`; `file` files a row's relations for the child resolvers
/// and answers its model.
pub struct Around<R, M> {
    pub sql: Cow<'static, str>,
    pub binds: Box<dyn FnOnce(Prepared<'static>) -> Prepared<'static> + Send>,
    pub file: Box<dyn Fn(R) -> M + Send>,
}

/// Reads a page: the query `list` gives (its first `limit` rows, the limit written into
/// the text: [`Limited`]), alone, or through `around` (built from the request's filed
/// rows) when `speed` reads pages' relations ([`Mechanism::PageRelations`]), the request
/// files rows and the selection asks for a relation, in one statement in the request's
/// snapshot. The rows are filed under the
/// connection's lock: a write of the same request clears them before it begins.
pub async fn read_page<Q, M, R, L>(
    db: &TenantDb,
    speed: Speed,
    (list, limit): (L, i64),
    around: impl FnOnce(&Arc<Prefetched>) -> QueryResult<Option<Around<R, M>>>,
) -> Result<Vec<M>, AppError>
where
    L: FnOnce(Tenant) -> Result<Q, AppError> + Send,
    Q: QueryFragment<Pg> + Send + 'static,
    Limited<Q>: for<'q> LoadQuery<'q, AsyncPgConnection, M>,
    M: Send + 'static,
    R: QueryableByName<Pg> + Send + 'static,
{
    let around = match db.prefetched() {
        Some(filed) if speed.on(Mechanism::PageRelations) => around(filed)?,
        _ => None,
    };
    db.query(|conn, scope| {
        async move {
            let list = Limited {
                query: list(scope)?,
                limit,
            };
            let Some(Around { sql, binds, file }) = around else {
                return Ok(list.load(conn).await?);
            };
            let query = Prepared::new(sql)
                .bind::<SqlUuid, _>(scope.id())
                .query(list);
            let rows: Vec<R> = binds(query).load(conn).await?;
            Ok::<_, AppError>(rows.into_iter().map(file).collect())
        }
        .scope_boxed()
    })
    .await
}

/// A nested row paired with the row it refers to (`ROW(<A's row>, <B's row or NULL>)`):
/// the reference is read by a scalar subquery in the same part, instead of a part of its
/// own that would look the rows up again.
type Pair<A, B> = Record<(Record<SelectionType<A>>, Nullable<Record<SelectionType<B>>>)>;

/// The SQL type of a nested-pairs column.
pub type PairRecords<A, B> = Nullable<Array<Pair<A, B>>>;

/// Decoded nested pairs, in the order the subquery returned them (`None` where the
/// referenced row was not asked for).
#[derive(Debug, Clone)]
pub struct Pairs<A, B>(pub Vec<(A, Option<B>)>);

impl<A, B> FromSql<Array<Pair<A, B>>, Pg> for Pairs<A, B>
where
    A: Selectable<Pg> + Queryable<SelectionType<A>, Pg>,
    A::Row: FromSql<Record<SelectionType<A>>, Pg>,
    B: Selectable<Pg> + Queryable<SelectionType<B>, Pg>,
    B::Row: FromSql<Record<SelectionType<B>>, Pg>,
{
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let rows =
            <Vec<(A::Row, Option<B::Row>)> as FromSql<Array<Pair<A, B>>, Pg>>::from_sql(value)?;
        rows.into_iter()
            .map(|(a, b)| Ok((A::build(a)?, b.map(B::build).transpose()?)))
            .collect::<deserialize::Result<_>>()
            .map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::customers::model::Activity;

    #[test]
    fn a_pages_statements_are_rendered_once_per_choice_of_parts() {
        static PARTS: PageParts<2> = PageParts::new([
            PagePart {
                name: "a",
                table: "customer_activities",
                parent: "customer_id",
                order: "created_at",
                row: row_of::<Activity>,
            },
            PagePart {
                name: "b",
                table: "customer_activities",
                parent: "customer_id",
                order: "id",
                row: row_of::<Activity>,
            },
        ]);
        let both = PARTS.statement([true, true]).unwrap();
        assert!(
            both.starts_with("SELECT p.*, ARRAY(SELECT ROW(\"id\""),
            "{both}"
        );
        assert!(both.ends_with("ORDER BY id) AS b FROM ($2) p"), "{both}");
        let first = PARTS.statement([true, false]).unwrap();
        assert!(
            first.ends_with(
                "WHERE tenant_id = $1 AND customer_id = p.id ORDER BY created_at) AS a, \
                 NULL AS b FROM ($2) p"
            ),
            "{first}"
        );
        assert_eq!(
            PARTS.statement([false, false]).unwrap(),
            "SELECT p.*, NULL AS a, NULL AS b FROM ($2) p"
        );
        assert!(std::ptr::eq(both, PARTS.statement([true, true]).unwrap()));
    }

    #[test]
    fn a_row_lists_the_models_columns_in_field_order_as_its_row_type() {
        assert_eq!(
            row_of::<Activity>(None).unwrap(),
            "ROW(\"id\", \"customer_id\", \"activity_type\", \"activity_description\", \
             \"activity_data\", \"created_at\")::activity_row"
        );
        assert_eq!(
            row_of::<Activity>(Some("a")).unwrap(),
            "ROW(a.\"id\", a.\"customer_id\", a.\"activity_type\", a.\"activity_description\", \
             a.\"activity_data\", a.\"created_at\")::activity_row"
        );
        assert_eq!(
            columns_of::<Activity>().unwrap(),
            [
                "id",
                "customer_id",
                "activity_type",
                "activity_description",
                "activity_data",
                "created_at"
            ]
        );
    }
}
