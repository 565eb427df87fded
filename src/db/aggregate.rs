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
    /// Every field, in declaration order.
    const FIELDS: &'static [Field];
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
            const FIELDS: &'static [$crate::db::aggregate::Field] =
                &[$($crate::db::aggregate::Field { name: $field, sql: $sql }),+];

            fn field(self) -> $crate::db::aggregate::Field {
                match self {
                    $($name::$variant => $crate::db::aggregate::Field { name: $field, sql: $sql }),+
                }
            }
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

/// A time range `[from, to)`, either end open (`None`).
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// What a rollup table of an aggregated table keeps (see the migration that creates
/// them): per key of `keys` (and quarter hour of `time`, its `bucket`), `n` rows and the
/// sums of `sums`, each in a column named as its field.
#[derive(Debug)]
pub struct RollupSpec {
    pub keys: &'static [&'static str],
    pub sums: &'static [&'static str],
    pub time: Option<Field>,
}

/// The rollup rows of a query's filter: they stand for the rows the filter selects,
/// but for the filter's `range` on the rollup's time field, which the rollup leaves to
/// the statement.
pub struct Rollup {
    pub spec: &'static RollupSpec,
    pub rows: Box<dyn QueryFragment<Pg> + Send>,
    pub range: TimeRange,
}

/// How a statement reads a rollup: its rows in the whole quarter hours of the range,
/// and the table's rows in the quarter hours the range cuts through.
struct RollupPlan {
    rows: Box<dyn QueryFragment<Pg> + Send>,
    /// The columns read: the keys, then the numbers.
    columns: Vec<Field>,
    /// The time field of the edges (and of a series, `w.ts`).
    time: Option<Field>,
    series: bool,
    /// The rollup's buckets read, `[from, to)`; `None`: none (the range is within one
    /// quarter hour).
    buckets: Option<TimeRange>,
    /// The table's rows read, each `[from, to)`.
    edges: Vec<TimeRange>,
}

/// A quarter hour, in seconds: the rollups' time buckets.
const QUARTER_HOUR: i64 = 900;

fn on_quarter_hour(at: &DateTime<Utc>) -> bool {
    at.timestamp().rem_euclid(QUARTER_HOUR) == 0 && at.timestamp_subsec_nanos() == 0
}

/// The quarter hour holding `at`.
fn quarter_hour_down(at: DateTime<Utc>) -> DateTime<Utc> {
    let down = at.timestamp().div_euclid(QUARTER_HOUR) * QUARTER_HOUR;
    DateTime::from_timestamp(down, 0).unwrap_or(at)
}

/// The first quarter hour starting at or after `at` (`at` itself at the end of time:
/// the rollup's buckets from there on are all after it too).
fn quarter_hour_up(at: DateTime<Utc>) -> DateTime<Utc> {
    match on_quarter_hour(&at) {
        true => at,
        false => quarter_hour_down(at)
            .checked_add_signed(chrono::Duration::seconds(QUARTER_HOUR))
            .unwrap_or(at),
    }
}

/// How to read `rollup` for `measures` in `shape`, when it holds what they need: sums
/// and averages of the fields it sums (its numbers are never null), keys it keeps, a
/// series by its time field on quarter-hour boundaries.
fn plan(rollup: Rollup, measures: &Measures, shape: &Shape) -> Option<RollupPlan> {
    let spec = rollup.spec;
    if !measures.min.is_empty() || !measures.max.is_empty() {
        return None;
    }
    let mut numbers: Vec<Field> = Vec::new();
    for field in measures.sum.iter().chain(&measures.avg) {
        if !numbers.contains(field) {
            numbers.push(*field);
        }
    }
    let keys: &[Field] = match shape {
        Shape::Total => &[],
        Shape::Groups { keys, .. } => keys,
        Shape::Series { keys, .. } => keys,
    };
    let fits = numbers.iter().all(|n| spec.sums.contains(&n.name))
        && keys.iter().all(|k| spec.keys.contains(&k.name));
    if !fits {
        return None;
    }
    let (mut low, mut high) = rollup.range;
    let series = matches!(shape, Shape::Series { .. });
    if let Shape::Series {
        time,
        bounds,
        from,
        to,
        ..
    } = shape
    {
        if spec.time.map(|t| t.name) != Some(time.name) || !bounds.iter().all(on_quarter_hour) {
            return None;
        }
        low = Some(low.map_or(*from, |l| l.max(*from)));
        high = Some(high.map_or(*to, |h| h.min(*to)));
    }
    let whole_from = low.map(quarter_hour_up);
    let whole_to = high.map(quarter_hour_down);
    let buckets = match (whole_from, whole_to) {
        (Some(from), Some(to)) if from >= to => None,
        _ => Some((whole_from, whole_to)),
    };
    let edges = match buckets {
        None => vec![(low, high)],
        Some(_) => {
            let mut edges = Vec::new();
            if let (Some(l), Some(w)) = (low, whole_from) {
                if l < w {
                    edges.push((Some(l), Some(w)));
                }
            }
            if let (Some(w), Some(h)) = (whole_to, high) {
                if w < h {
                    edges.push((Some(w), Some(h)));
                }
            }
            edges
        }
    };
    Some(RollupPlan {
        rows: rollup.rows,
        columns: keys.iter().chain(&numbers).copied().collect(),
        time: spec.time,
        series,
        buckets,
        edges,
    })
}

/// An aggregate statement over `rows`, answering one text column (JSON). With a rollup
/// that holds what it needs, it reads the rollup instead (and the rows of the quarter
/// hours a time range cuts through).
pub struct AggregateQuery {
    rows: Box<dyn QueryFragment<Pg> + Send>,
    measures: Measures,
    shape: Shape,
    rollup: Option<RollupPlan>,
}

impl AggregateQuery {
    pub fn new(
        rows: Box<dyn QueryFragment<Pg> + Send>,
        rollup: Option<Rollup>,
        mut measures: Measures,
        shape: Shape,
    ) -> Self {
        // The aggregate groups are ordered by is computed with the others.
        if let Shape::Groups {
            order: GroupOrder::Measure(function, field),
            ..
        } = &shape
        {
            measures.add(*function, *field);
        }
        let rollup = rollup.and_then(|r| plan(r, &measures, &shape));
        Self {
            rows,
            measures,
            shape,
            rollup,
        }
    }

    /// Whether the statement reads a rollup.
    pub fn reads_rollup(&self) -> bool {
        self.rollup.is_some()
    }

    fn count(&self) -> &'static str {
        match self.rollup {
            None => "count(*)",
            Some(_) => "sum(w.n)",
        }
    }

    /// The aggregate of `function` over `field`; a sum of no values is 0.
    fn aggregate(&self, function: Function, field: Field) -> String {
        match (&self.rollup, function) {
            (None, Function::Sum) => format!("coalesce(sum({}), 0)", field.sql),
            (None, other) => format!("{}({})", other.name(), field.sql),
            (Some(_), Function::Sum) => format!("coalesce(sum(w.{}), 0)", field.name),
            // As avg() computes it: the sum divided by the count, as numerics.
            (Some(_), _) => format!(
                "sum(w.{})::numeric / nullif(sum(w.n), 0)::numeric",
                field.name
            ),
        }
    }

    fn key(&self, field: Field) -> String {
        match self.rollup {
            None => field.sql.to_string(),
            Some(_) => format!("w.{}", field.name),
        }
    }

    fn time(&self, field: Field) -> String {
        match self.rollup {
            None => field.sql.to_string(),
            Some(_) => "w.ts".into(),
        }
    }

    /// A rollup's keys whose rows cancel out (all deleted) are no groups.
    fn having(&self) -> &'static str {
        match self.rollup {
            None => "",
            Some(_) => " HAVING sum(w.n) > 0",
        }
    }

    /// `count(*) AS n, <aggregate> AS m0, …`
    fn computed(&self, measures: &[(Function, Field, String)]) -> String {
        let mut columns = vec![format!("{} AS n", self.count())];
        columns.extend(
            measures
                .iter()
                .map(|(f, field, alias)| format!("{} AS {alias}", self.aggregate(*f, *field))),
        );
        columns.join(", ")
    }

    fn key_columns(&self, keys: &[Field]) -> String {
        keys.iter()
            .enumerate()
            .map(|(i, k)| format!("{} AS k{i}, ", self.key(*k)))
            .collect()
    }

    /// Writes the `FROM` item: `(<rows>) t`, or `(<rollup rows> UNION ALL <edge rows>) w`.
    fn walk_from<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let Some(plan) = &self.rollup else {
            out.push_sql("(");
            self.rows.walk_ast(out.reborrow())?;
            out.push_sql(") t");
            return Ok(());
        };
        let ts = match plan.series {
            true => ", r.bucket AS ts",
            false => "",
        };
        out.push_sql("(");
        if let Some((from, to)) = &plan.buckets {
            let columns: String = plan
                .columns
                .iter()
                .map(|c| format!(", r.{}", c.name))
                .collect();
            out.push_sql(&format!("SELECT r.n{columns}{ts} FROM ("));
            plan.rows.walk_ast(out.reborrow())?;
            out.push_sql(") r WHERE true");
            if let Some(from) = from {
                out.push_sql(" AND r.bucket >= ");
                out.push_bind_param::<Timestamptz, _>(from)?;
            }
            if let Some(to) = to {
                out.push_sql(" AND r.bucket < ");
                out.push_bind_param::<Timestamptz, _>(to)?;
            }
        }
        if let (Some(time), false) = (plan.time, plan.edges.is_empty()) {
            if plan.buckets.is_some() {
                out.push_sql(" UNION ALL ");
            }
            let columns: String = plan
                .columns
                .iter()
                .map(|c| format!(", {} AS {}", c.sql, c.name))
                .collect();
            let ts = match plan.series {
                true => format!(", {} AS ts", time.sql),
                false => String::new(),
            };
            out.push_sql(&format!("SELECT 1 AS n{columns}{ts} FROM ("));
            self.rows.walk_ast(out.reborrow())?;
            out.push_sql(") t WHERE false");
            for (from, to) in &plan.edges {
                out.push_sql(" OR (true");
                if let Some(from) = from {
                    out.push_sql(&format!(" AND {} >= ", time.sql));
                    out.push_bind_param::<Timestamptz, _>(from)?;
                }
                if let Some(to) = to {
                    out.push_sql(&format!(" AND {} < ", time.sql));
                    out.push_bind_param::<Timestamptz, _>(to)?;
                }
                out.push_sql(")");
            }
        }
        out.push_sql(") w");
        Ok(())
    }
}

/// `'name', <expr>` pairs for `json_build_object`.
fn object(pairs: impl IntoIterator<Item = (&'static str, String)>) -> String {
    let pairs: Vec<String> = pairs
        .into_iter()
        .map(|(name, expr)| format!("'{name}', {expr}"))
        .collect();
    format!("json_build_object({})", pairs.join(", "))
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
        let numbered = self.measures.numbered();
        let having = self.having();
        match &self.shape {
            Shape::Total => {
                let json = row_json(&numbered, &[], "a", "a", None);
                out.push_sql(&format!(
                    "SELECT {json}::text FROM (SELECT {} FROM ",
                    self.computed(&numbered)
                ));
                self.walk_from(&mut out)?;
                out.push_sql(") a");
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
                    "SELECT coalesce(json_agg({json} ORDER BY {order_by}), '[]')::text FROM (SELECT {}{} FROM ",
                    self.key_columns(keys),
                    self.computed(&numbered),
                ));
                self.walk_from(&mut out)?;
                out.push_sql(&format!(
                    " GROUP BY {}{having} ORDER BY {order_by} LIMIT ",
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
                let time_sql = self.time(*time);
                out.push_sql(&format!("WITH a AS (SELECT width_bucket({time_sql}, "));
                out.push_bind_param::<Array<Timestamptz>, _>(bounds)?;
                out.push_sql(&format!(
                    ") AS b, {}{} FROM ",
                    self.key_columns(keys),
                    self.computed(&numbered)
                ));
                self.walk_from(&mut out)?;
                // A rollup's rows are already those of the range.
                if self.rollup.is_none() {
                    out.push_sql(&format!(" WHERE {time_sql} >= "));
                    out.push_bind_param::<Timestamptz, _>(from)?;
                    out.push_sql(&format!(" AND {time_sql} < "));
                    out.push_bind_param::<Timestamptz, _>(to)?;
                }
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
                    " GROUP BY {}{having}), k AS ({k}) SELECT CASE WHEN (SELECT count(*) FROM k) * ",
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

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: RollupSpec = RollupSpec {
        keys: &["status"],
        sums: &["total"],
        time: Some(TIME),
    };
    const TIME: Field = Field {
        name: "at",
        sql: "t.at",
    };
    const STATUS: Field = Field {
        name: "status",
        sql: "t.status",
    };
    const CUSTOMER: Field = Field {
        name: "customer",
        sql: "t.customer",
    };
    const TOTAL: Field = Field {
        name: "total",
        sql: "t.total",
    };
    const OTHER: Field = Field {
        name: "other",
        sql: "t.other",
    };

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn rollup(range: (Option<&str>, Option<&str>)) -> Rollup {
        Rollup {
            spec: &SPEC,
            rows: Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("true")),
            range: (range.0.map(at), range.1.map(at)),
        }
    }

    fn sums(fields: &[Field]) -> Measures {
        Measures {
            sum: fields.to_vec(),
            ..Measures::default()
        }
    }

    fn groups(keys: &[Field]) -> Shape {
        Shape::Groups {
            keys: keys.to_vec(),
            order: GroupOrder::Count,
            descending: true,
            limit: 10,
        }
    }

    fn series(from: &str, to: &str, bounds: &[&str]) -> Shape {
        Shape::Series {
            time: TIME,
            bounds: bounds.iter().map(|b| at(b)).collect(),
            from: at(from),
            to: at(to),
            keys: vec![],
            max_points: 100,
        }
    }

    #[test]
    fn a_rollup_is_read_only_for_what_it_keeps() {
        let reads = |measures: Measures, shape: Shape| {
            plan(rollup((None, None)), &measures, &shape).is_some()
        };
        assert!(reads(sums(&[TOTAL]), Shape::Total));
        assert!(reads(sums(&[TOTAL]), groups(&[STATUS])));
        let averages = Measures {
            avg: vec![TOTAL],
            ..Measures::default()
        };
        assert!(reads(averages, groups(&[STATUS])));
        assert!(
            !reads(sums(&[OTHER]), Shape::Total),
            "a number it does not sum"
        );
        assert!(
            !reads(sums(&[]), groups(&[CUSTOMER])),
            "a key it does not keep"
        );
        let minimum = Measures {
            min: vec![TOTAL],
            ..Measures::default()
        };
        assert!(!reads(minimum, Shape::Total), "minimums are not kept");
        // Ordering groups by a maximum needs the rows.
        let query = AggregateQuery::new(
            Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("true")),
            Some(rollup((None, None))),
            sums(&[TOTAL]),
            Shape::Groups {
                keys: vec![STATUS],
                order: GroupOrder::Measure(Function::Max, TOTAL),
                descending: true,
                limit: 10,
            },
        );
        assert!(!query.reads_rollup());
        // A series by its time field on quarter hours, not one cut elsewhere.
        assert!(reads(
            sums(&[]),
            series(
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
                &["2026-01-01T00:00:00Z"]
            )
        ));
        assert!(!reads(
            sums(&[]),
            series(
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
                &["2026-01-01T00:10:00Z"]
            )
        ));
    }

    #[test]
    fn quarter_hours_at_the_ends_of_time_do_not_overflow() {
        let end = DateTime::<Utc>::MAX_UTC;
        assert!(quarter_hour_up(end) >= end);
        assert!(quarter_hour_down(end) <= end);
        let start = DateTime::<Utc>::MIN_UTC;
        assert!(quarter_hour_up(start) >= start);
        assert!(plan(
            Rollup {
                spec: &SPEC,
                rows: Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("true")),
                range: (Some(start), Some(end)),
            },
            &sums(&[TOTAL]),
            &Shape::Total
        )
        .is_some());
    }

    #[test]
    fn the_quarter_hours_a_range_cuts_through_are_read_from_the_rows() {
        let plan_of = |range: (Option<&str>, Option<&str>), shape: Shape| {
            plan(rollup(range), &sums(&[TOTAL]), &shape).expect("the rollup fits")
        };
        let whole = plan_of((None, None), Shape::Total);
        assert_eq!(whole.buckets, Some((None, None)));
        assert!(whole.edges.is_empty());

        let cut = plan_of(
            (Some("2026-01-01T10:07:00Z"), Some("2026-01-01T12:20:30Z")),
            Shape::Total,
        );
        assert_eq!(
            cut.buckets,
            Some((
                Some(at("2026-01-01T10:15:00Z")),
                Some(at("2026-01-01T12:15:00Z"))
            ))
        );
        assert_eq!(
            cut.edges,
            [
                (
                    Some(at("2026-01-01T10:07:00Z")),
                    Some(at("2026-01-01T10:15:00Z"))
                ),
                (
                    Some(at("2026-01-01T12:15:00Z")),
                    Some(at("2026-01-01T12:20:30Z"))
                ),
            ]
        );
        // Within one quarter hour: the rows alone.
        let narrow = plan_of(
            (Some("2026-01-01T10:01:00Z"), Some("2026-01-01T10:14:00Z")),
            Shape::Total,
        );
        assert_eq!(narrow.buckets, None);
        assert_eq!(
            narrow.edges,
            [(
                Some(at("2026-01-01T10:01:00Z")),
                Some(at("2026-01-01T10:14:00Z"))
            )]
        );
        // A series reads its range within the filter's.
        let chart = plan_of(
            (Some("2026-01-01T06:00:00Z"), None),
            series(
                "2026-01-01T00:00:00Z",
                "2026-01-01T12:05:00Z",
                &["2026-01-01T00:00:00Z"],
            ),
        );
        assert_eq!(
            chart.buckets,
            Some((
                Some(at("2026-01-01T06:00:00Z")),
                Some(at("2026-01-01T12:00:00Z"))
            ))
        );
        assert_eq!(
            chart.edges,
            [(
                Some(at("2026-01-01T12:00:00Z")),
                Some(at("2026-01-01T12:05:00Z"))
            )]
        );
    }
}
