//! Related rows as one column of an outer statement: `ARRAY(SELECT ROW(<columns>) …)`.
//!
//! A statement can then return a parent and several of its relations at once (the
//! customer 360 is one statement instead of one per relation). The rows arrive in
//! PostgreSQL's binary format and are decoded by the same Diesel types as a plain query
//! of the model: the `ROW(…)` lists exactly the columns of the model's `Selectable`
//! selection, rendered by Diesel, in field order. Nothing goes through JSON, so numerics,
//! timestamps and enums keep their exact values.

use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::Expression;
use diesel::pg::{Pg, PgQueryBuilder, PgValue};
use diesel::query_builder::{QueryBuilder, QueryFragment};
use diesel::sql_types::{Array, Nullable, Record};
use diesel::{QueryResult, Selectable};

/// The SQL type of `T`'s selection (a tuple of its columns' types).
pub type SelectionType<T> = <<T as Selectable<Pg>>::SelectExpression as Expression>::SqlType;

/// The SQL type of a nested-rows column of `T` (`NULL` when the relation was not asked for).
pub type Records<T> = Nullable<Array<Record<SelectionType<T>>>>;

/// Decoded nested rows, in the order the subquery returned them.
#[derive(Debug)]
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

/// `ROW(<T's columns>)` for a subquery that reads `table` (T's table) alone: Diesel renders
/// the columns qualified (`"orders"."id"`); unqualified, they resolve to the innermost
/// table, so an outer alias's columns of the same name do not get in the way.
pub fn row_of<T>(table: &str) -> QueryResult<String>
where
    T: Selectable<Pg>,
    T::SelectExpression: QueryFragment<Pg>,
{
    let mut builder = PgQueryBuilder::default();
    builder.push_sql("ROW(");
    T::construct_selection().to_sql(&mut builder, &Pg)?;
    builder.push_sql(")");
    Ok(builder.finish().replace(&format!("\"{table}\"."), ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::customers::model::Activity;

    #[test]
    fn a_row_lists_the_models_columns_in_field_order_unqualified() {
        assert_eq!(
            row_of::<Activity>("customer_activities").unwrap(),
            "ROW(\"id\", \"customer_id\", \"activity_type\", \"activity_description\", \
             \"activity_data\", \"created_at\")"
        );
    }
}
