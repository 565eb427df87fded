//! Aggregates for analysts: `<list>Aggregate(filter)` answers a `<Type>Aggregate` with
//! `count`, `sum`/`avg`/`min`/`max` over the numeric fields, `groupBy` and `series`. One
//! generic shape serves every aggregated list; a domain describes its list once
//! ([`Aggregated`]: its filtered rows, numeric, groupable and time fields) and the names
//! follow from its [`Aggregated::NAME`] (`CustomerAggregate`, `CustomerGroup`,
//! `CustomerBucket`, `CustomerGroupOrderBy`).
//!
//! Each field that reads (the totals, one `groupBy`, one `series`) is one SQL statement
//! ([`crate::db::aggregate`]) computing only the aggregates its selection asks for, in the
//! request's tenant transaction like every read.

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::{Context, InputType, Object, OutputType, SelectionField, TypeName};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use diesel::pg::Pg;
use diesel::query_builder::QueryFragment;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::db::aggregate::{
    AggregateQuery, AsField, Field, Function, GroupOrder, Measures, Rollup, Shape,
};
use crate::db::Tenant;
use crate::error::{AppError, AppResult};
use crate::graphql::connection::OrderDirection;
use crate::graphql::context::request_context;

/// The most groups one `groupBy` answers.
pub const MAX_GROUPS: i32 = 1_000;
/// The groups `groupBy` answers when `first` is not given.
pub const DEFAULT_GROUPS: i32 = 100;
/// The most buckets one `series` answers.
pub const MAX_BUCKETS: usize = 1_000;
/// The most points (buckets × keys) one `series` answers.
pub const MAX_POINTS: i64 = 10_000;

/// A list analysts aggregate.
pub trait Aggregated: Send + Sync + 'static {
    /// The prefix of the GraphQL names: `Customer` gives `CustomerAggregate`, ….
    const NAME: &'static str;
    /// The list's filter as its operations take it (validated).
    type Filter: Send + Sync + 'static;
    /// One value per numeric field (`Option<Decimal>` each), read from the answer.
    type Numbers: OutputType + DeserializeOwned + Default + Send + Sync + 'static;
    /// One value per groupable field, those not grouped by `null`.
    type Key: OutputType + DeserializeOwned + Send + Sync + 'static;
    type GroupField: InputType + AsField + Send + Sync;
    /// The numeric fields, named as [`Aggregated::Numbers`]' fields.
    type NumericField: InputType + AsField + Send + Sync;
    /// The time fields; `series` buckets by the first when none is given.
    type TimeField: InputType + AsField + Send + Sync;
    /// Its `groupBy` ordering (see [`group_order_by!`]).
    type GroupOrderBy: InputType + GroupOrdering + Send + Sync;
    /// The rows `filter` selects in `scope`: the list's own filtered query.
    fn rows(scope: Tenant, filter: &Self::Filter) -> Box<dyn QueryFragment<Pg> + Send>;

    /// The rollup rows standing for the same rows, when the list has a rollup and
    /// `filter` only asks what it keeps.
    fn rollup(_scope: Tenant, _filter: &Self::Filter) -> Option<Rollup> {
        None
    }
}

/// One answer row: the totals, a group or a bucket.
#[derive(Deserialize)]
#[serde(bound = "")]
struct Row<S: Aggregated> {
    #[serde(default)]
    bucket: Option<usize>,
    key: Option<S::Key>,
    count: i64,
    #[serde(default)]
    sum: S::Numbers,
    #[serde(default)]
    avg: S::Numbers,
    #[serde(default)]
    min: S::Numbers,
    #[serde(default)]
    max: S::Numbers,
}

/// `lastActivityAt` → `last_activity_at`
fn snake_case(name: &str) -> String {
    let mut snake = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
}

/// The aggregates a selection (of the totals, a group or a bucket) asks for.
fn measures_of<S: Aggregated>(selection: SelectionField<'_>) -> Measures {
    let mut measures = Measures::default();
    for field in selection.selection_set() {
        let function = match field.name() {
            "sum" => Function::Sum,
            "avg" => Function::Avg,
            "min" => Function::Min,
            "max" => Function::Max,
            _ => continue,
        };
        for number in field.selection_set() {
            let name = snake_case(number.name());
            if let Some(numeric) = S::NumericField::FIELDS.iter().find(|n| n.name == name) {
                measures.add(function, *numeric);
            }
        }
    }
    measures
}

/// Runs one aggregate statement over the rows of `filter` in the caller's tenant.
async fn run<S: Aggregated>(
    ctx: &Context<'_>,
    filter: &Arc<S::Filter>,
    measures: Measures,
    shape: Shape,
) -> AppResult<Option<String>> {
    let request = request_context(ctx)?;
    let filter = filter.clone();
    request
        .db
        .query(move |conn, scope| {
            async move {
                AggregateQuery::new(
                    S::rows(scope, &filter),
                    S::rollup(scope, &filter),
                    measures,
                    shape,
                )
                .get_result::<Option<String>>(conn)
                .await
            }
            .scope_boxed()
        })
        .await
}

/// The answer of a statement that always answers.
fn parse<T: DeserializeOwned>(json: Option<String>) -> AppResult<T> {
    let json = json.ok_or_else(|| AppError::internal(&"an aggregate without its answer"))?;
    serde_json::from_str(&json).map_err(|e| AppError::internal(&e))
}

/// The fields of `by`, each once, in order.
fn keys_of<F: AsField>(by: &[F], path: &[&str]) -> AppResult<Vec<Field>> {
    let mut keys: Vec<Field> = Vec::new();
    for field in by.iter().map(|f| f.field()) {
        if !keys.contains(&field) {
            keys.push(field);
        }
    }
    if keys.len() > 4 {
        return Err(AppError::bad_input(path, "group by at most 4 fields"));
    }
    Ok(keys)
}

/// What `groupBy` orders groups by.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupOrderKey {
    /// The group's row count (the default, largest first).
    #[default]
    Count,
    /// The group's key, field by field (nulls last).
    Key,
    Sum,
    Avg,
    Min,
    Max,
}

/// How `groupBy` orders groups: by their count, their key, or an aggregate of a numeric
/// field (`{by: SUM, field: ORDER_TOTAL}`); ties are broken by key. Each aggregated list
/// has its own input (its numeric fields differ): `group_order_by!(Name, NumericField)`.
#[macro_export]
macro_rules! group_order_by {
    ($name:ident, $field:ty) => {
        /// How `groupBy` orders groups: by their count (the default), their key, or an
        /// aggregate of a numeric field (`{by: SUM, field: …}`); ties are broken by key.
        #[derive(async_graphql::InputObject)]
        pub struct $name {
            #[graphql(default)]
            pub by: $crate::graphql::aggregate::GroupOrderKey,
            /// The numeric field of `SUM`, `AVG`, `MIN` and `MAX`.
            pub field: Option<$field>,
            /// Default `DESC` for `COUNT` and aggregates, `ASC` for `KEY`.
            pub direction: Option<$crate::graphql::connection::OrderDirection>,
        }

        impl $crate::graphql::aggregate::GroupOrdering for $name {
            fn parts(
                &self,
            ) -> (
                $crate::graphql::aggregate::GroupOrderKey,
                Option<$crate::db::aggregate::Field>,
                Option<$crate::graphql::connection::OrderDirection>,
            ) {
                use $crate::db::aggregate::AsField;
                (self.by, self.field.map(|f| f.field()), self.direction)
            }
        }
    };
}

/// A list's `groupBy` ordering input (made by [`group_order_by!`]).
pub trait GroupOrdering {
    fn parts(&self) -> (GroupOrderKey, Option<Field>, Option<OrderDirection>);

    /// The order and whether it is descending.
    fn order(&self) -> AppResult<(GroupOrder, bool)> {
        let (by, field, direction) = self.parts();
        let function = match by {
            GroupOrderKey::Count | GroupOrderKey::Key => None,
            GroupOrderKey::Sum => Some(Function::Sum),
            GroupOrderKey::Avg => Some(Function::Avg),
            GroupOrderKey::Min => Some(Function::Min),
            GroupOrderKey::Max => Some(Function::Max),
        };
        let order = match (by, function, field) {
            (GroupOrderKey::Key, _, _) => GroupOrder::Key,
            (_, Some(function), Some(field)) => GroupOrder::Measure(function, field),
            (_, Some(_), None) => {
                return Err(AppError::bad_input(
                    &["orderBy", "field"],
                    "ordering by an aggregate needs its numeric field",
                ))
            }
            _ => GroupOrder::Count,
        };
        let descending = match direction {
            Some(direction) => direction == OrderDirection::Desc,
            None => order != GroupOrder::Key,
        };
        Ok((order, descending))
    }
}

/// The aggregate of the rows a list's filter selects.
pub struct Aggregate<S: Aggregated> {
    filter: Arc<S::Filter>,
    /// What the selection asks of the totals.
    measures: Measures,
    totals: OnceCell<Row<S>>,
}

impl<S: Aggregated> TypeName for Aggregate<S> {
    fn type_name() -> Cow<'static, str> {
        format!("{}Aggregate", S::NAME).into()
    }
}

impl<S: Aggregated> Aggregate<S> {
    /// The aggregate of the rows `filter` selects; `ctx` is the aggregate field's (its
    /// selection decides what the totals compute).
    pub fn new(ctx: &Context<'_>, filter: S::Filter) -> Self {
        Self {
            filter: Arc::new(filter),
            measures: measures_of::<S>(ctx.field()),
            totals: OnceCell::new(),
        }
    }

    async fn totals(&self, ctx: &Context<'_>) -> AppResult<&Row<S>> {
        self.totals
            .get_or_try_init(|| async {
                let json = run::<S>(ctx, &self.filter, self.measures.clone(), Shape::Total).await?;
                parse(json)
            })
            .await
    }
}

#[Object(name_type)]
impl<S: Aggregated> Aggregate<S> {
    /// How many rows the filter selects.
    async fn count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        Ok(self.totals(ctx).await?.count)
    }

    /// Sums of the numeric fields (0 over no values).
    async fn sum(&self, ctx: &Context<'_>) -> AppResult<&S::Numbers> {
        Ok(&self.totals(ctx).await?.sum)
    }

    /// Averages of the numeric fields (null over no values).
    async fn avg(&self, ctx: &Context<'_>) -> AppResult<&S::Numbers> {
        Ok(&self.totals(ctx).await?.avg)
    }

    async fn min(&self, ctx: &Context<'_>) -> AppResult<&S::Numbers> {
        Ok(&self.totals(ctx).await?.min)
    }

    async fn max(&self, ctx: &Context<'_>) -> AppResult<&S::Numbers> {
        Ok(&self.totals(ctx).await?.max)
    }

    /// The rows grouped by the fields of `by` (one group per distinct combination),
    /// the first `first` groups (default 100, at most 1 000) in `orderBy` order (default:
    /// largest count first).
    async fn group_by(
        &self,
        ctx: &Context<'_>,
        by: Vec<S::GroupField>,
        first: Option<i32>,
        order_by: Option<S::GroupOrderBy>,
    ) -> AppResult<Vec<Group<S>>> {
        let keys = keys_of(&by, &["by"])?;
        if keys.is_empty() {
            return Err(AppError::bad_input(&["by"], "group by at least one field"));
        }
        let first = first.unwrap_or(DEFAULT_GROUPS);
        if !(0..=MAX_GROUPS).contains(&first) {
            return Err(AppError::bad_input(
                &["first"],
                format!("first must be between 0 and {MAX_GROUPS}"),
            ));
        }
        let (order, descending) = match &order_by {
            Some(order_by) => order_by.order()?,
            None => (GroupOrder::Count, true),
        };
        let shape = Shape::Groups {
            keys,
            order,
            descending,
            limit: first.into(),
        };
        let json = run::<S>(ctx, &self.filter, measures_of::<S>(ctx.field()), shape).await?;
        let rows: Vec<Row<S>> = parse(json)?;
        Ok(rows.into_iter().map(|row| Group(row)).collect())
    }

    /// The rows with their time field (`field`, default the list's creation or order
    /// time) in `[from, to)`, per `interval` starting at calendar boundaries of
    /// `timeZone` (an IANA name, default `UTC`): every bucket from the one holding
    /// `from` to the one holding the end, empty ones counted zero. With `by`, one point
    /// per bucket and key present in the range. At most 1 000 buckets and 10 000 points.
    #[allow(clippy::too_many_arguments)]
    async fn series(
        &self,
        ctx: &Context<'_>,
        interval: Interval,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        time_zone: Option<String>,
        field: Option<S::TimeField>,
        #[graphql(default)] by: Vec<S::GroupField>,
    ) -> AppResult<Vec<Bucket<S>>> {
        let zone = match time_zone.as_deref() {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                AppError::bad_input(&["timeZone"], "not a time zone name (such as Europe/Paris)")
            })?,
        };
        let keys = keys_of(&by, &["by"])?;
        let bounds = bucket_starts(interval, from, to, zone)?;
        let shape = Shape::Series {
            time: field.map(|f| f.field()).unwrap_or(S::TimeField::FIELDS[0]),
            bounds: bounds.clone(),
            from,
            to,
            keys,
            max_points: MAX_POINTS,
        };
        let json = run::<S>(ctx, &self.filter, measures_of::<S>(ctx.field()), shape).await?;
        let Some(json) = json else {
            return Err(AppError::bad_input(
                &["by"],
                format!("the series would have more than {MAX_POINTS} points: narrow the range, the interval or by"),
            ));
        };
        let rows: Vec<Row<S>> = parse(Some(json))?;
        rows.into_iter()
            .map(|row| {
                let start = row
                    .bucket
                    .and_then(|b| b.checked_sub(1))
                    .and_then(|b| bounds.get(b).copied())
                    .ok_or_else(|| AppError::internal(&"a series row outside its buckets"))?;
                Ok(Bucket { start, row })
            })
            .collect()
    }
}

/// One group of `groupBy`.
pub struct Group<S: Aggregated>(Row<S>);

impl<S: Aggregated> TypeName for Group<S> {
    fn type_name() -> Cow<'static, str> {
        format!("{}Group", S::NAME).into()
    }
}

#[Object(name_type)]
impl<S: Aggregated> Group<S> {
    /// The group's values of the fields grouped by (the others null).
    async fn key(&self) -> AppResult<&S::Key> {
        self.0
            .key
            .as_ref()
            .ok_or_else(|| AppError::internal(&"a group without its key"))
    }
    async fn count(&self) -> i64 {
        self.0.count
    }
    async fn sum(&self) -> &S::Numbers {
        &self.0.sum
    }
    async fn avg(&self) -> &S::Numbers {
        &self.0.avg
    }
    async fn min(&self) -> &S::Numbers {
        &self.0.min
    }
    async fn max(&self) -> &S::Numbers {
        &self.0.max
    }
}

/// One point of a `series`: a bucket (and a key, with `by`).
pub struct Bucket<S: Aggregated> {
    start: DateTime<Utc>,
    row: Row<S>,
}

impl<S: Aggregated> TypeName for Bucket<S> {
    fn type_name() -> Cow<'static, str> {
        format!("{}Bucket", S::NAME).into()
    }
}

#[Object(name_type)]
impl<S: Aggregated> Bucket<S> {
    /// Where the bucket starts (a calendar boundary in the series' time zone).
    async fn start(&self) -> DateTime<Utc> {
        self.start
    }
    /// With `by`: the key of this point (the fields not grouped by null).
    async fn key(&self) -> Option<&S::Key> {
        self.row.key.as_ref()
    }
    async fn count(&self) -> i64 {
        self.row.count
    }
    async fn sum(&self) -> &S::Numbers {
        &self.row.sum
    }
    async fn avg(&self) -> &S::Numbers {
        &self.row.avg
    }
    async fn min(&self) -> &S::Numbers {
        &self.row.min
    }
    async fn max(&self) -> &S::Numbers {
        &self.row.max
    }
}

/// The width of a series' buckets.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Interval {
    Hour,
    Day,
    /// ISO weeks, starting on Monday.
    Week,
    Month,
}

/// The instant `local` (a wall-clock time of `zone`) stands for: the earlier of two when
/// the clock goes back, the first instant after the gap when it skips forward.
fn instant(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..16 {
        if let Some(at) = zone.from_local_datetime(&probe).earliest() {
            return at.with_timezone(&Utc);
        }
        probe += Duration::minutes(15);
    }
    Utc.from_utc_datetime(&local)
}

/// The first day of the bucket holding `date`, and of the next one.
fn calendar_bucket(interval: Interval, date: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    match interval {
        Interval::Hour | Interval::Day => Some((date, date.succ_opt()?)),
        Interval::Week => {
            let monday = date - Duration::days(date.weekday().num_days_from_monday().into());
            Some((monday, monday.checked_add_signed(Duration::days(7))?))
        }
        Interval::Month => {
            let first = date.with_day(1)?;
            let next = match first.month() {
                12 => NaiveDate::from_ymd_opt(first.year().checked_add(1)?, 1, 1)?,
                m => NaiveDate::from_ymd_opt(first.year(), m + 1, 1)?,
            };
            Some((first, next))
        }
    }
}

/// The starts of the buckets of `interval` covering `[from, to)` at `zone`'s calendar
/// boundaries (hours are those of its wall clock, a day lasts 23 or 25 hours across a
/// daylight-saving change). Refused when `from` is not before `to` or there would be
/// more than [`MAX_BUCKETS`].
pub fn bucket_starts(
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    zone: Tz,
) -> AppResult<Vec<DateTime<Utc>>> {
    if from >= to {
        return Err(AppError::bad_input(&["to"], "to must be after from"));
    }
    for (at, field) in [(from, "from"), (to, "to")] {
        if !(1000..=9999).contains(&at.year()) {
            return Err(AppError::bad_input(
                &[field],
                "a series runs between the years 1000 and 9999",
            ));
        }
    }
    let too_many = || {
        AppError::bad_input(
            &["interval"],
            format!("more than {MAX_BUCKETS} buckets: widen the interval or narrow the range"),
        )
    };
    let local = from.with_timezone(&zone).naive_local();
    let mut starts = Vec::new();
    match interval {
        Interval::Hour => {
            let hour = local.date().and_hms_opt(local.hour(), 0, 0);
            let first = hour.map(|h| instant(zone, h)).unwrap_or(from);
            // The wall clock's hour may start after `from` when it was skipped.
            let mut start = if first > from {
                first - Duration::hours(1)
            } else {
                first
            };
            while start < to {
                if starts.len() == MAX_BUCKETS {
                    return Err(too_many());
                }
                starts.push(start);
                start += Duration::hours(1);
            }
        }
        _ => {
            let mut date = local.date();
            loop {
                let Some((first, next)) = calendar_bucket(interval, date) else {
                    return Err(too_many());
                };
                let start = instant(zone, first.and_time(chrono::NaiveTime::MIN));
                if start >= to && !starts.is_empty() {
                    break;
                }
                if starts.len() == MAX_BUCKETS {
                    return Err(too_many());
                }
                starts.push(start);
                date = next;
            }
        }
    }
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn days_in_paris_last_23_and_25_hours_across_daylight_saving() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let spring = bucket_starts(
            Interval::Day,
            at("2026-03-28T12:00:00Z"),
            at("2026-03-30T12:00:00Z"),
            paris,
        )
        .unwrap();
        assert_eq!(
            spring,
            [
                at("2026-03-27T23:00:00Z"),
                at("2026-03-28T23:00:00Z"),
                at("2026-03-29T22:00:00Z"),
            ]
        );
        let autumn = bucket_starts(
            Interval::Hour,
            at("2026-10-25T00:30:00Z"),
            at("2026-10-25T02:00:00Z"),
            paris,
        )
        .unwrap();
        // 02:00 CEST, 02:00 CET, 03:00 CET: the repeated hour is two buckets.
        assert_eq!(
            autumn,
            [at("2026-10-25T00:00:00Z"), at("2026-10-25T01:00:00Z")]
        );
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let weeks = bucket_starts(
            Interval::Week,
            at("2026-12-02T10:00:00Z"),
            at("2026-12-15T00:00:00Z"),
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(
            weeks,
            [
                at("2026-11-30T00:00:00Z"),
                at("2026-12-07T00:00:00Z"),
                at("2026-12-14T00:00:00Z")
            ]
        );
        let months = bucket_starts(
            Interval::Month,
            at("2026-11-15T00:00:00Z"),
            at("2027-01-02T00:00:00Z"),
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(
            months,
            [
                at("2026-11-01T00:00:00Z"),
                at("2026-12-01T00:00:00Z"),
                at("2027-01-01T00:00:00Z")
            ]
        );
    }

    #[test]
    fn ranges_are_refused_backwards_or_with_too_many_buckets() {
        let from = at("2026-01-01T00:00:00Z");
        assert!(bucket_starts(Interval::Day, from, from, Tz::UTC).is_err());
        assert!(
            bucket_starts(Interval::Hour, from, from + Duration::hours(1001), Tz::UTC).is_err()
        );
        assert_eq!(
            bucket_starts(Interval::Hour, from, from + Duration::hours(1000), Tz::UTC)
                .unwrap()
                .len(),
            1000
        );
        assert!(bucket_starts(Interval::Month, from, DateTime::<Utc>::MAX_UTC, Tz::UTC).is_err());
        // The ends of time are refused, never overflowed.
        let end = DateTime::<Utc>::MAX_UTC;
        for interval in [
            Interval::Hour,
            Interval::Day,
            Interval::Week,
            Interval::Month,
        ] {
            assert!(bucket_starts(interval, end - Duration::hours(3), end, Tz::UTC).is_err());
            assert!(bucket_starts(interval, DateTime::<Utc>::MIN_UTC, from, Tz::UTC).is_err());
        }
    }

    #[test]
    fn graphql_names_become_column_names() {
        assert_eq!(snake_case("lastActivityAt"), "last_activity_at");
        assert_eq!(snake_case("ltv"), "ltv");
    }
}
