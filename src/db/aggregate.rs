//! Aggregates computed in PostgreSQL over the rows a list's filter selects: totals,
//! groups and time series, each one statement that answers one JSON text value.
//!
//! The rows come in as the list's own filtered Diesel query (row-level security and the
//! tenant filter included) and are wrapped as a subquery `t`, which PostgreSQL flattens
//! into the aggregate: nothing is loaded row by row. Every SQL text this module writes
//! around that subquery comes from `'static` tables of the domains ([`Field`]); client
//! values (bucket bounds, limits) are bound parameters.
//!
//! Each answer row is `{"key": {…}, "bucket": n, "count": n, "sum": {…}, "avg": {…},
//! "min": {…}, "max": {…}}` with the numbers as text (exact decimals; JSON numbers would
//! pass through floating point on the way).

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use diesel::QueryResult;

/// A column (or expression) of the aggregated rows: `name` is its key in the answer (the
/// snake_case name of the GraphQL field that shows it), `sql` an expression over `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub sql: &'static str,
}

/// What a domain's GraphQL enum of fields stands for.
pub trait AsField: Copy {
    fn field(self) -> Field;
}

/// Defines a GraphQL enum whose variants stand for [`Field`]s.
/// `aggregate_fields!(pub Name { Variant => ("name", "t.sql"), … })`
#[macro_export]
macro_rules! aggregate_fields {
    ($(#[$meta:meta])* $vis:vis $name:ident { $($(#[$vmeta:meta])* $variant:ident => ($field:literal, $sql:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $crate::db::aggregate::AsField for $name {
            fn field(self) -> $crate::db::aggregate::Field {
                match self {
                    $($name::$variant => $crate::db::aggregate::Field { name: $field, sql: $sql }),+
                }
            }
        }

        impl $name {
            /// Every field, in declaration order.
            pub const FIELDS: &'static [$crate::db::aggregate::Field] =
                &[$($crate::db::aggregate::Field { name: $field, sql: $sql }),+];
        }
    };
}

/// The numeric aggregates asked for, per function (`count` always comes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measures {
    pub sum: Vec<Field>,
    pub avg: Vec<Field>,
    pub min: Vec<Field>,
    pub max: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Sum,
    Avg,
    Min,
    Max,
}

impl Function {
    const ALL: [Function; 4] = [Function::Sum, Function::Avg, Function::Min, Function::Max];

    fn name(self) -> &'static str {
        match self {
            Function::Sum => "sum",
            Function::Avg => "avg",
            Function::Min => "min",
            Function::Max => "max",
        }
    }
}

impl Measures {
    pub fn of(&self, function: Function) -> &[Field] {
        match function {
            Function::Sum => &self.sum,
            Function::Avg => &self.avg,
            Function::Min => &self.min,
            Function::Max => &self.max,
        }
    }

    fn of_mut(&mut self, function: Function) -> &mut Vec<Field> {
        match function {
            Function::Sum => &mut self.sum,
            Function::Avg => &mut self.avg,
            Function::Min => &mut self.min,
            Function::Max => &mut self.max,
        }
    }

    /// Adds `field` to `function`'s list unless it is there.
    pub fn add(&mut self, function: Function, field: Field) {
        let list = self.of_mut(function);
        if !list.contains(&field) {
            list.push(field);
        }
    }

    /// `(function, field, alias)` of every aggregate, aliases `m0`, `m1`, …
    fn numbered(&self) -> Vec<(Function, Field, String)> {
        Function::ALL
            .into_iter()
            .flat_map(|f| self.of(f).iter().map(move |field| (f, *field)))
            .enumerate()
            .map(|(i, (f, field))| (f, field, format!("m{i}")))
            .collect()
    }
}

/// How groups are ordered (ties by key, ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOrder {
    Count,
    Key,
    Measure(Function, Field),
}

/// What shape of answer: one total row, the top groups, or a filled time series.
#[derive(Debug, Clone)]
pub enum Shape {
    Total,
    Groups {
        keys: Vec<Field>,
        order: GroupOrder,
        descending: bool,
        limit: i64,
    },
    /// Rows with `time` in `[from, to)`, bucketed by the bucket starts `bounds`
    /// (ascending; the first at or before `from`); every bucket × key present in the
    /// answer, counted zero when empty. More than `max_points` bucket × key pairs
    /// answer JSON `null`.
    Series {
        time: Field,
        bounds: Vec<DateTime<Utc>>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        keys: Vec<Field>,
        max_points: i64,
    },
}

/// An aggregate statement over `rows`, answering one text column (JSON).
pub struct AggregateQuery {
    pub rows: Box<dyn QueryFragment<Pg> + Send>,
    pub measures: Measures,
    pub shape: Shape,
}

/// `'name', <expr>` pairs for `json_build_object`.
fn object(pairs: impl IntoIterator<Item = (&'static str, String)>) -> String {
    let pairs: Vec<String> = pairs
        .into_iter()
        .map(|(name, expr)| format!("'{name}', {expr}"))
        .collect();
    format!("json_build_object({})", pairs.join(", "))
}

/// The aggregate of `function` over `field`; a sum of no values is 0.
fn aggregate(function: Function, field: Field) -> String {
    match function {
        Function::Sum => format!("coalesce(sum({}), 0)", field.sql),
        other => format!("{}({})", other.name(), field.sql),
    }
}

/// The JSON of one answer row from the computed columns of `source` (`count` as `n`,
/// keys as `k0`, …, aggregates as `m0`, …), empty buckets (`n` NULL) counted zero.
fn row_json(
    measures: &[(Function, Field, String)],
    keys: &[Field],
    source: &str,
    key_source: &str,
    bucket: Option<&str>,
) -> String {
    let mut pairs = Vec::new();
    if let Some(bucket) = bucket {
        pairs.push(("bucket", bucket.to_string()));
    }
    if !keys.is_empty() {
        let key = object(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.name, format!("{key_source}.k{i}"))),
        );
        pairs.push(("key", key));
    }
    pairs.push(("count", format!("coalesce({source}.n, 0)")));
    for function in Function::ALL {
        let fields: Vec<(&'static str, String)> = measures
            .iter()
            .filter(|(f, _, _)| *f == function)
            .map(|(f, field, alias)| {
                let value = match f {
                    Function::Sum => format!("coalesce({source}.{alias}, 0)::text"),
                    _ => format!("{source}.{alias}::text"),
                };
                (field.name, value)
            })
            .collect();
        if !fields.is_empty() {
            pairs.push((function.name(), object(fields)));
        }
    }
    object(pairs)
}

/// `count(*) AS n, <aggregate> AS m0, …`
fn computed(measures: &[(Function, Field, String)]) -> String {
    let mut columns = vec!["count(*) AS n".to_string()];
    columns.extend(
        measures
            .iter()
            .map(|(f, field, alias)| format!("{} AS {alias}", aggregate(*f, *field))),
    );
    columns.join(", ")
}

fn key_columns(keys: &[Field]) -> String {
    keys.iter()
        .enumerate()
        .map(|(i, k)| format!("{} AS k{i}, ", k.sql))
        .collect()
}

fn key_order(keys: &[Field], descending: bool) -> Vec<String> {
    let direction = if descending { "DESC" } else { "ASC" };
    (0..keys.len())
        .map(|i| format!("k{i} {direction} NULLS LAST"))
        .collect()
}

impl QueryFragment<Pg> for AggregateQuery {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // The text depends on what was asked: planned each time, never cached.
        out.unsafe_to_cache_prepared();
        let mut measures = self.measures.clone();
        if let Shape::Groups {
            order: GroupOrder::Measure(function, field),
            ..
        } = &self.shape
        {
            measures.add(*function, *field);
        }
        let numbered = measures.numbered();
        match &self.shape {
            Shape::Total => {
                let json = row_json(&numbered, &[], "a", "a", None);
                out.push_sql(&format!(
                    "SELECT {json}::text FROM (SELECT {} FROM (",
                    computed(&numbered)
                ));
                self.rows.walk_ast(out.reborrow())?;
                out.push_sql(") t) a");
            }
            Shape::Groups {
                keys,
                order,
                descending,
                limit,
            } => {
                let direction = if *descending { "DESC" } else { "ASC" };
                let mut order_by = match order {
                    GroupOrder::Count => vec![format!("n {direction}")],
                    GroupOrder::Key => key_order(keys, *descending),
                    GroupOrder::Measure(function, field) => {
                        let alias = numbered
                            .iter()
                            .find(|(f, m, _)| f == function && m == field)
                            .map(|(_, _, alias)| alias.clone())
                            .unwrap_or_else(|| "n".into());
                        vec![format!("{alias} {direction} NULLS LAST")]
                    }
                };
                if *order != GroupOrder::Key {
                    order_by.extend(key_order(keys, false));
                }
                let order_by = order_by.join(", ");
                let json = row_json(&numbered, keys, "a", "a", None);
                let group_by: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
                out.push_sql(&format!(
                    "SELECT coalesce(json_agg({json} ORDER BY {order_by}), '[]')::text FROM (SELECT {}{} FROM (",
                    key_columns(keys),
                    computed(&numbered),
                ));
                self.rows.walk_ast(out.reborrow())?;
                out.push_sql(&format!(
                    ") t GROUP BY {} ORDER BY {order_by} LIMIT ",
                    group_by.join(", ")
                ));
                out.push_bind_param::<BigInt, _>(limit)?;
                out.push_sql(") a");
            }
            Shape::Series {
                time,
                bounds,
                from,
                to,
                keys,
                max_points,
            } => {
                let group_by: Vec<String> = (1..=keys.len() + 1).map(|i| i.to_string()).collect();
                out.push_sql("WITH a AS (SELECT width_bucket(");
                out.push_sql(time.sql);
                out.push_sql(", ");
                out.push_bind_param::<Array<Timestamptz>, _>(bounds)?;
                out.push_sql(&format!(
                    ") AS b, {}{} FROM (",
                    key_columns(keys),
                    computed(&numbered)
                ));
                self.rows.walk_ast(out.reborrow())?;
                out.push_sql(&format!(") t WHERE {} >= ", time.sql));
                out.push_bind_param::<Timestamptz, _>(from)?;
                out.push_sql(&format!(" AND {} < ", time.sql));
                out.push_bind_param::<Timestamptz, _>(to)?;
                let distinct: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
                let joined: String = (0..keys.len())
                    .map(|i| format!(" AND a.k{i} IS NOT DISTINCT FROM k.k{i}"))
                    .collect();
                let mut order_by = vec!["s.b".to_string()];
                order_by.extend(key_order(keys, false).into_iter().map(|k| format!("k.{k}")));
                let json = row_json(&numbered, keys, "a", "k", Some("s.b"));
                // Without keys, `k` is the one row every bucket is paired with.
                let k = match keys.is_empty() {
                    true => "SELECT".to_string(),
                    false => format!("SELECT DISTINCT {} FROM a", distinct.join(", ")),
                };
                out.push_sql(&format!(
                    " GROUP BY {}), k AS ({k}) SELECT CASE WHEN (SELECT count(*) FROM k) * ",
                    group_by.join(", "),
                ));
                // The number of buckets is the server's, written as a literal.
                let buckets = bounds.len();
                out.push_sql(&buckets.to_string());
                out.push_sql(" > ");
                out.push_bind_param::<BigInt, _>(max_points)?;
                out.push_sql(&format!(
                    " THEN NULL ELSE coalesce(json_agg({json} ORDER BY {}), '[]') END::text \
                     FROM generate_series(1, {buckets}) s(b) CROSS JOIN k \
                     LEFT JOIN a ON a.b = s.b{joined}",
                    order_by.join(", ")
                ));
            }
        }
        Ok(())
    }
}

impl QueryId for AggregateQuery {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for AggregateQuery {
    /// JSON; `NULL` for a series with too many points.
    type SqlType = Nullable<Text>;
}
