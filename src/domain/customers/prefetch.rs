//! The customer 360 in one statement.
//!
//! `customer(id:)` / `customer(email:)` look at the selection below them and read the
//! customer together with every relation it asks for (enrollments and their stages,
//! the first page of each nested connection, the campaigns of the campaign-history page,
//! preferences, leads): one `SELECT` whose extra columns are nested rows
//! ([`crate::db::nested`]). The rows are filed under the loader keys the child resolvers
//! will ask for ([`crate::db::prefetch`]), so those resolvers run no statement.
//!
//! Each part mirrors its loader: the same table, filter, order and page size (the page
//! parts are rendered from the loaders' own [`ChildRelation`]s). A field this does not
//! cover (a page after a cursor, an alias asking for a second page, an invalid argument)
//! finds nothing filed and goes to its loader as before, so the answer never depends on
//! whether a part was read here. A test compares this path with the loaders' for the full
//! selection.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_graphql::{Context, Lookahead, Value};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Text, Uuid as SqlUuid};
use diesel::OptionalExtension;
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{BoxFuture, FutureExt};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::graphql::{ActivitiesOf, OrdersOf, PreferencesOf, ACTIVITIES, ORDERS};
use super::model;
use super::ops::ListQuery;
use crate::db::children::{nested_first_children, ChildRelation};
use crate::db::nested::{
    columns_of, read_page, row_of, Around, NestedRow, PairRecords, Pairs, Records, Rows,
};
use crate::db::page::PageRequest;
use crate::db::prefetch::Prefetched;
use crate::db::sql::Prepared;
use crate::db::Tenant;
use crate::domain::campaigns::graphql::{CampaignHistoryOf, CampaignKey, RECIPIENTS_OF_CUSTOMER};
use crate::domain::campaigns::model::{Campaign, Recipient};
use crate::domain::comms::graphql::{CommunicationsOf, COMMUNICATIONS};
use crate::domain::comms::model::Communication;
use crate::domain::leads::graphql::LeadsOfCustomer;
use crate::domain::leads::model::{Lead, LeadAction, LeadNote};
use crate::domain::loyalty::graphql::{
    CurrentEnrollmentKey, EnrollmentsKey, PointsOf, RedemptionsOf, StageKey, POINT_TRANSACTIONS,
    REDEMPTIONS,
};
use crate::domain::loyalty::model::{
    ClubStage, Enrollment, EnrollmentStatus, PointTransaction, Redemption,
};
use crate::error::AppResult;
use crate::graphql::context::RequestContext;
use crate::graphql::loaders::ChildPage;

/// The models read as nested rows (the 360's, and the relations of `leads` and
/// `campaigns` pages: see [`crate::domain::leads::prefetch`] and
/// [`crate::domain::campaigns::prefetch`]), with their tables and row types (see
/// [`NestedRow`]), and the list of them for the test that checks each type against its
/// table and model.
macro_rules! nested_rows {
    ($($model:ty => $table:literal as $row_type:literal,)+) => {
        $(impl NestedRow for $model {
            const TABLE: &'static str = $table;
            const ROW_TYPE: &'static str = $row_type;
        })+

        /// Each nested row's table, row type and the columns of its model's selection.
        pub fn nested_row_types() -> diesel::QueryResult<Vec<(&'static str, &'static str, Vec<String>)>> {
            Ok(vec![$(($table, $row_type, columns_of::<$model>()?),)+])
        }
    };
}

nested_rows! {
    Enrollment => "club_enrollments" as "enrollment_row",
    ClubStage => "club_stages" as "club_stage_row",
    model::Activity => "customer_activities" as "activity_row",
    model::Order => "orders" as "order_row",
    PointTransaction => "point_transactions" as "point_transaction_row",
    Redemption => "reward_redemptions" as "redemption_row",
    Communication => "communication_log" as "communication_row",
    Recipient => "campaign_recipients" as "campaign_recipient_row",
    Campaign => "campaigns" as "campaign_row",
    model::CommunicationPreference => "communication_preferences" as "communication_preference_row",
    Lead => "lead_memory" as "lead_row",
    LeadAction => "lead_actions" as "lead_action_row",
    LeadNote => "lead_notes" as "lead_note_row",
    crate::domain::campaigns::model::Counters => "campaign_delivery_counters" as "campaign_counters_row",
    crate::domain::campaigns::model::Execution => "campaign_executions" as "campaign_execution_row",
}

/// The 360's plain pages: a first page of a model's rows per customer, the loader's
/// `ChildPage` keyed by the connection's filter type. Adding one is its entry here (the
/// part's name, as `Row`'s column and `Firsts`' field; its model; its loader filter; its
/// GraphQL field; its `ChildRelation`) and its model's row type in `nested_rows!`: the
/// plan, the statement's column and parameter, the row's column and the filing follow.
macro_rules! page_parts {
    ($($part:ident: $model:ty, $filter:ident, $field:literal, $relation:expr;)+) => {
        /// The plain pages the selection asks for.
        #[derive(Default, Clone, PartialEq, Eq, Hash)]
        struct PagePlans {
            $($part: Option<Page<$filter>>,)+
        }

        /// The plain pages' nested rows (`NULL` for pages not asked for).
        #[derive(QueryableByName, Clone)]
        struct PageRows {
            $(#[diesel(sql_type = Records<$model>)]
            $part: Option<Rows<$model>>,)+
        }

        impl PagePlans {
            fn of(selection: &Lookahead<'_>) -> Self {
                PagePlans {
                    $($part: page(selection, $field, $filter),)+
                }
            }

            /// Every plain page, each of the size `first` gives it.
            fn every(first: &Firsts) -> AppResult<Self> {
                Ok(PagePlans {
                    $($part: Some(Page {
                        limit: first_page_limit(Some(first.$part))?,
                        filter: $filter,
                    }),)+
                })
            }

            /// Each page's rows to read (0 for a page not asked for), in the order of
            /// their parameters.
            fn limits(&self) -> Vec<i64> {
                vec![$(self.$part.as_ref().map_or(0, |p| p.limit),)+]
            }

            /// Which pages are asked for, in the same order.
            fn asked(&self) -> Vec<bool> {
                vec![$(self.$part.is_some(),)+]
            }

            /// Each page's column name, relation and row (in the same order).
            fn columns() -> diesel::QueryResult<Vec<(&'static str, &'static ChildRelation, String)>> {
                Ok(vec![$((stringify!($part), $relation, row_of::<$model>(None)?),)+])
            }

            /// Files the pages of customer `id`.
            fn file(&self, prefetched: &Prefetched, id: Uuid, rows: PageRows) {
                $(file_page(prefetched, id, &self.$part, rows.$part);)+
            }
        }
    };
}

page_parts! {
    orders: model::Order, OrdersOf, "orders", &ORDERS;
    point_transactions: PointTransaction, PointsOf, "pointTransactions", &POINT_TRANSACTIONS;
    redemptions: Redemption, RedemptionsOf, "redemptions", &REDEMPTIONS;
    communications: Communication, CommunicationsOf, "communications", &COMMUNICATIONS;
}

/// How the customer is found.
pub enum Lookup {
    Id(Uuid),
    /// Lower-cased (emails are unique per tenant, case-insensitively).
    Email(String),
}

/// A nested page the selection asks for: its loader key's size and filter.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Page<F> {
    limit: i64,
    filter: F,
}

/// What the selection below `customer` asks for. The 360s of one read group with the
/// same plan are read by one statement.
#[derive(Default, Clone, PartialEq, Eq, Hash)]
struct Plan {
    /// Every enrollment: for `enrollments`, `cumulativeMembershipDays` and
    /// `currentEnrollment` (the active one among them: at most one, by constraint).
    enrollments: bool,
    stages: bool,
    activities: Option<Page<ActivitiesOf>>,
    pages: PagePlans,
    campaign_history: Option<Page<CampaignHistoryOf>>,
    /// The campaigns of the campaign-history page.
    campaigns: bool,
    preferences: bool,
    leads: bool,
}

impl Plan {
    fn of(selection: &Lookahead<'_>) -> Self {
        let asks = |path: &[&str]| {
            let mut look = selection.field(path[0]);
            for name in &path[1..] {
                look = look.field(name);
            }
            look.exists()
        };
        Plan {
            enrollments: asks(&["enrollments"])
                || asks(&["cumulativeMembershipDays"])
                || asks(&["currentEnrollment"]),
            stages: asks(&["currentEnrollment", "stage"]) || asks(&["enrollments", "stage"]),
            activities: first_page(selection, "activities").and_then(|(limit, types)| {
                let filter = ActivitiesOf::new(types).ok()?;
                Some(Page { limit, filter })
            }),
            pages: PagePlans::of(selection),
            campaign_history: page(selection, "campaignHistory", CampaignHistoryOf),
            campaigns: asks(&["campaignHistory", "nodes", "campaign"])
                || asks(&["campaignHistory", "edges", "node", "campaign"]),
            preferences: asks(&["communicationPreferences"]),
            leads: asks(&["leads"]),
        }
    }
}

/// The first page a nested-connection field asks for: its size (plus one) and its
/// `types:`, when the page starts at the newest row and its arguments are valid. A page
/// after a cursor, or an invalid argument (the resolver reports it), is left to the
/// loader.
fn first_page(selection: &Lookahead<'_>, field: &str) -> Option<(i64, Option<Vec<String>>)> {
    let field = selection
        .field(field)
        .selection_fields()
        .into_iter()
        .next()?;
    let (mut first, mut types) = (None, None);
    for (name, value) in field.arguments().ok()? {
        match (name.as_str(), value) {
            (_, Value::Null) => {}
            ("first", Value::Number(n)) => first = Some(i32::try_from(n.as_i64()?).ok()?),
            ("types", Value::List(items)) => {
                let strings = items.into_iter().map(|item| match item {
                    Value::String(s) => Some(s),
                    _ => None,
                });
                types = Some(strings.collect::<Option<Vec<String>>>()?);
            }
            _ => return None,
        }
    }
    Some((first_page_limit(first).ok()?, types))
}

/// The rows a connection's first page of `first` reads (its loader key's size), or why
/// `first` is refused.
fn first_page_limit(first: Option<i32>) -> AppResult<i64> {
    Ok(PageRequest::<DateTime<Utc>>::new(first, None)?.limit())
}

/// [`first_page`] of a connection without a kind filter, keyed by `filter`.
fn page<F>(selection: &Lookahead<'_>, field: &str, filter: F) -> Option<Page<F>> {
    first_page(selection, field).map(|(limit, _)| Page { limit, filter })
}

/// The statement's row: the customer's columns, then one nested-rows column per part
/// (`NULL` for parts not asked for).
#[derive(QueryableByName, Clone)]
struct Row {
    #[diesel(embed)]
    customer: model::Customer,
    /// With each enrollment's stage when the selection asks for stages.
    #[diesel(sql_type = PairRecords<Enrollment, ClubStage>)]
    enrollments: Option<Pairs<Enrollment, ClubStage>>,
    #[diesel(sql_type = Records<model::Activity>)]
    activities: Option<Rows<model::Activity>>,
    #[diesel(embed)]
    pages: PageRows,
    /// With each recipient's campaign when the selection asks for campaigns.
    #[diesel(sql_type = PairRecords<Recipient, Campaign>)]
    campaign_history: Option<Pairs<Recipient, Campaign>>,
    #[diesel(sql_type = Records<model::CommunicationPreference>)]
    preferences: Option<Rows<model::CommunicationPreference>>,
    #[diesel(sql_type = Records<Lead>)]
    leads: Option<Rows<Lead>>,
}

/// Where the statement's customers come from (`$2`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// An array of ids.
    Ids,
    /// A lower-cased email.
    Email,
    /// A page: the list's own query, as a subquery.
    Page,
}

/// The statement's parameters have fixed places, whichever parts it has, so its text
/// depends only on the plan's shape: `$1` tenant, `$2` the ids (an array), the
/// lower-cased email or the page's query ([`Source`]), then the page sizes and the activity types, the plain pages' sizes
/// last, in `page_parts!`' order (a part left out leaves its parameter unused).
const ACTIVITIES_LIMIT: usize = 3;
const ACTIVITY_TYPES: usize = 4;
const HISTORY_LIMIT: usize = 5;
const FIRST_PAGE_LIMIT: usize = 6;

/// The values of `$3` onwards (0 or empty for a part left out).
struct Binds {
    activities: i64,
    activity_types: Vec<String>,
    campaign_history: i64,
    /// The plain pages', from [`FIRST_PAGE_LIMIT`] on.
    pages: Vec<i64>,
}

impl Binds {
    /// Binds `$3` onwards, in the order of their places.
    fn bind(self, query: Prepared<'static>) -> Prepared<'static> {
        let query = query
            .bind::<BigInt, _>(self.activities)
            .bind::<Array<Text>, _>(self.activity_types)
            .bind::<BigInt, _>(self.campaign_history);
        self.pages
            .into_iter()
            .fold(query, |query, limit| query.bind::<BigInt, _>(limit))
    }
}

impl Plan {
    fn binds(&self) -> Binds {
        fn limit<F>(page: &Option<Page<F>>) -> i64 {
            page.as_ref().map_or(0, |p| p.limit)
        }
        Binds {
            activities: limit(&self.activities),
            activity_types: self
                .activities
                .as_ref()
                .and_then(|p| p.filter.0.clone())
                .unwrap_or_default(),
            campaign_history: limit(&self.campaign_history),
            pages: self.pages.limits(),
        }
    }

    /// What the statement's text depends on, one bit per choice.
    fn shape(&self, source: Source) -> u32 {
        [
            self.enrollments,
            self.stages,
            self.activities.is_some(),
            self.activities
                .as_ref()
                .is_some_and(|p| p.filter.0.is_some()),
            self.campaign_history.is_some(),
            self.campaign_history.is_some() && self.campaigns,
            self.preferences,
            self.leads,
            source == Source::Email,
            source == Source::Page,
        ]
        .into_iter()
        .chain(self.pages.asked())
        .enumerate()
        .fold(0, |shape, (bit, on)| shape | (u32::from(on) << bit))
    }
}

/// Statement texts by shape. Only a few shapes occur in practice; past this many the text
/// is built per request instead of kept.
static STATEMENTS: LazyLock<Mutex<HashMap<u32, &'static str>>> = LazyLock::new(Default::default);
const MAX_STATEMENTS: usize = 256;

fn statement_text(plan: &Plan, source: Source) -> diesel::QueryResult<Cow<'static, str>> {
    let shape = plan.shape(source);
    let mut statements = STATEMENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(text) = statements.get(&shape) {
        return Ok(Cow::Borrowed(text));
    }
    let text = build_statement(plan, source)?;
    if statements.len() >= MAX_STATEMENTS {
        return Ok(Cow::Owned(text));
    }
    let text: &'static str = Box::leak(text.into_boxed_str());
    statements.insert(shape, text);
    Ok(Cow::Borrowed(text))
}

fn build_statement(plan: &Plan, source: Source) -> diesel::QueryResult<String> {
    let mut columns = vec!["c.*".to_owned()];
    let mut column = |name: &str, sql: Option<String>| {
        let sql = sql.unwrap_or_else(|| "NULL".to_owned());
        columns.push(format!("{sql} AS {name}"));
    };
    let of_customer = "WHERE tenant_id = $1 AND customer_id = c.id";
    let page = |relation: &ChildRelation, row: String, kinds: Option<usize>, limit: usize| {
        nested_first_children(relation, &row, "c.id", limit, kinds)
    };
    // A referenced row not asked for is a typed NULL (the column's type stays the same).
    let referenced = |asked: bool, sql: String, row_type: &str| match asked {
        true => format!("({sql})"),
        false => format!("NULL::{row_type}"),
    };
    let stage = referenced(
        plan.stages,
        format!(
            "SELECT {} FROM club_stages s WHERE s.tenant_id = $1 \
             AND s.id = club_enrollments.stage_id",
            row_of::<ClubStage>(Some("s"))?
        ),
        ClubStage::ROW_TYPE,
    );
    let enrollment = row_of::<Enrollment>(None)?;
    column(
        "enrollments",
        plan.enrollments.then(|| {
            format!(
                "ARRAY(SELECT ROW({enrollment}, {stage}) FROM club_enrollments {of_customer} \
                 ORDER BY enrolled_at, created_at, id)"
            )
        }),
    );
    let activities = match &plan.activities {
        Some(p) => Some(page(
            &ACTIVITIES,
            row_of::<model::Activity>(None)?,
            p.filter.0.is_some().then_some(ACTIVITY_TYPES),
            ACTIVITIES_LIMIT,
        )),
        None => None,
    };
    column("activities", activities);
    let asked = plan.pages.asked();
    for (i, (name, relation, rows)) in PagePlans::columns()?.into_iter().enumerate() {
        let sql = asked[i].then(|| page(relation, rows, None, FIRST_PAGE_LIMIT + i));
        column(name, sql);
    }
    let campaign = referenced(
        plan.campaigns,
        format!(
            "SELECT {} FROM campaigns k WHERE k.tenant_id = $1 \
             AND k.id = {}.campaign_id",
            row_of::<Campaign>(Some("k"))?,
            RECIPIENTS_OF_CUSTOMER.table
        ),
        Campaign::ROW_TYPE,
    );
    let history = match &plan.campaign_history {
        Some(_) => Some(page(
            &RECIPIENTS_OF_CUSTOMER,
            format!("ROW({}, {campaign})", row_of::<Recipient>(None)?),
            None,
            HISTORY_LIMIT,
        )),
        None => None,
    };
    column("campaign_history", history);
    let preferences = row_of::<model::CommunicationPreference>(None)?;
    column(
        "preferences",
        plan.preferences.then(|| {
            format!(
                "ARRAY(SELECT {preferences} FROM communication_preferences {of_customer} \
                 ORDER BY channel, communication_type)"
            )
        }),
    );
    let leads = row_of::<Lead>(None)?;
    column(
        "leads",
        plan.leads.then(|| {
            format!(
                "ARRAY(SELECT {leads} FROM lead_memory {of_customer} AND NOT deleted \
                 ORDER BY created_at, id)"
            )
        }),
    );
    let columns = columns.join(", ");
    Ok(match source {
        Source::Ids => format!("SELECT {columns} FROM customers c WHERE c.tenant_id = $1 AND c.id = ANY($2)"),
        Source::Email => format!(
            "SELECT {columns} FROM customers c WHERE c.tenant_id = $1 AND lower(c.email) = $2 LIMIT 1"
        ),
        // The list's order is the subquery's: the relations are columns, no join or
        // sort above it reorders the rows.
        Source::Page => format!("SELECT {columns} FROM ($2) c"),
    })
}

/// Page sizes (`first:`) of the 360's nested connections.
#[derive(Debug, Clone, Copy)]
pub struct Firsts {
    pub activities: i32,
    pub orders: i32,
    pub point_transactions: i32,
    pub redemptions: i32,
    pub communications: i32,
    pub campaign_history: i32,
}

/// The minimal SQL of a 360, which SPEC §8 has the server measured against (the benchmark
/// hands it to pgbench): the statement `customer(id:)` runs when its selection asks for
/// every part, each nested page `first` rows, and the values of its parameters after `$1`
/// (the tenant) and `$2` (the customer's id) as `(place, value)`.
pub fn every_part_statement(first: Firsts) -> AppResult<(String, Vec<(usize, i64)>)> {
    fn page<F>(first: i32, filter: F) -> AppResult<Option<Page<F>>> {
        let limit = first_page_limit(Some(first))?;
        Ok(Some(Page { limit, filter }))
    }
    let plan = Plan {
        enrollments: true,
        stages: true,
        activities: page(first.activities, ActivitiesOf(None))?,
        pages: PagePlans::every(&first)?,
        campaign_history: page(first.campaign_history, CampaignHistoryOf)?,
        campaigns: true,
        preferences: true,
        leads: true,
    };
    let text = build_statement(&plan, Source::Ids)?;
    let binds = plan.binds();
    let pages = binds.pages.into_iter().enumerate();
    let limits = [(ACTIVITIES_LIMIT, binds.activities)]
        .into_iter()
        .chain(pages.map(|(i, limit)| (FIRST_PAGE_LIMIT + i, limit)))
        .chain([(HISTORY_LIMIT, binds.campaign_history)])
        .collect();
    Ok((text, limits))
}

/// Reads the customer and, on a request's handle, every relation the selection below
/// `customer` asks for, filing those for the child resolvers. By id, with the 360s of
/// the same plan of the request's read group: one statement for all of them.
pub async fn customer(
    ctx: &Context<'_>,
    request: &RequestContext,
    lookup: Lookup,
) -> AppResult<Option<model::Customer>> {
    let filed = request.db.prefetched().cloned();
    let plan = match filed {
        Some(_) => Plan::of(&ctx.look_ahead()),
        None => Plan::default(),
    };
    match lookup {
        Lookup::Id(id) => {
            let found = request.db.query_together(plan, (id, filed), by_ids);
            found.await
        }
        Lookup::Email(email) => {
            request
                .db
                .query(|conn, scope| {
                    async move {
                        let sql = statement_text(&plan, Source::Email)?;
                        let query = Prepared::new(sql)
                            .bind::<SqlUuid, _>(scope.id())
                            .bind::<Text, _>(email);
                        let row: Option<Row> =
                            plan.binds().bind(query).get_result(conn).await.optional()?;
                        // Filed while the request's connection is still held: a write in
                        // the same request (which clears filed rows under that lock)
                        // cannot fall between this read and its filing.
                        Ok::<_, diesel::result::Error>(
                            row.map(|row| file(filed.as_deref(), &plan, row)),
                        )
                    }
                    .scope_boxed()
                })
                .await
        }
    }
}

/// Reads a `customers` page (`list`, [`super::ops::list_query`]) and every relation the
/// selection below its nodes asks for (under `nodes`, else under `edges { node }`) in one
/// statement, the list as its subquery, and files the relations for the child resolvers:
/// the page and its relations cost one statement instead of one plus a loader batch per
/// relation and level. A page whose nodes ask for no relation, or outside a request, is
/// the list alone.
pub async fn customers_page<F>(
    ctx: &Context<'_>,
    request: &RequestContext,
    (list, limit): (F, i64),
) -> AppResult<Vec<model::Customer>>
where
    F: FnOnce(Tenant) -> AppResult<ListQuery> + Send,
{
    read_page(&request.db, request.speed, (list, limit), |filed| {
        let plan = Plan::of(&crate::graphql::connection::node_selection(ctx));
        if plan == Plan::default() {
            return Ok(None);
        }
        let (filed, binds) = (filed.clone(), plan.binds());
        Ok(Some(Around {
            sql: statement_text(&plan, Source::Page)?,
            binds: Box::new(|query| binds.bind(query)),
            file: Box::new(move |row| file(Some(&filed), &plan, row)),
        }))
    })
    .await
}

/// A customer to read by id, and where its request files the nested rows (`None`:
/// nowhere, outside requests).
type ById = (Uuid, Option<Arc<Prefetched>>);

/// Reads the customers of `items` with `plan`, files each one's nested rows for its
/// request (under the connection's lock, as for the lookup by email), and answers each
/// item in order.
fn by_ids<'r>(
    conn: &'r mut AsyncPgConnection,
    scope: Tenant,
    plan: &'r Plan,
    items: Vec<ById>,
) -> BoxFuture<'r, diesel::QueryResult<Vec<Option<model::Customer>>>> {
    async move {
        let sql = statement_text(plan, Source::Ids)?;
        let ids: Vec<Uuid> = items.iter().map(|(id, _)| *id).collect();
        let query = Prepared::new(sql)
            .bind::<SqlUuid, _>(scope.id())
            .bind::<Array<SqlUuid>, _>(ids);
        let rows: Vec<Row> = plan.binds().bind(query).load(conn).await?;
        // An id asked for twice (two requests, one customer) is answered twice.
        let mut asked: HashMap<Uuid, usize> = HashMap::new();
        for (id, _) in &items {
            *asked.entry(*id).or_default() += 1;
        }
        let mut rows: HashMap<Uuid, Row> = rows.into_iter().map(|r| (r.customer.id, r)).collect();
        let answers = items.into_iter().map(|(id, filed)| {
            let left = asked.get_mut(&id)?;
            *left -= 1;
            let row = match *left {
                0 => rows.remove(&id)?,
                _ => rows.get(&id)?.clone(),
            };
            Some(file(filed.as_deref(), plan, row))
        });
        Ok(answers.collect())
    }
    .boxed()
}

/// Files the nested rows under the keys the child resolvers will load (when there is
/// somewhere to file them).
fn file(prefetched: Option<&Prefetched>, plan: &Plan, row: Row) -> model::Customer {
    let Some(prefetched) = prefetched else {
        return row.customer;
    };
    let Row {
        customer,
        enrollments,
        activities,
        pages,
        campaign_history,
        preferences,
        leads,
    } = row;
    let id = customer.id;
    if let Some(pairs) = enrollments {
        let rows = file_referenced(prefetched, pairs, |s: &ClubStage| StageKey(s.id));
        let current = rows
            .iter()
            .find(|e| e.status == EnrollmentStatus::Active)
            .cloned();
        prefetched.put([(CurrentEnrollmentKey(id), current)]);
        prefetched.put([(EnrollmentsKey(id), Some(rows))]);
    }
    file_page(prefetched, id, &plan.activities, activities);
    plan.pages.file(prefetched, id, pages);
    if let Some(pairs) = campaign_history {
        let rows = file_referenced(prefetched, pairs, |c: &Campaign| CampaignKey(c.id));
        file_page(prefetched, id, &plan.campaign_history, Some(Rows(rows)));
    }
    if let Some(Rows(rows)) = preferences {
        prefetched.put([(PreferencesOf(id), Some(rows))]);
    }
    if let Some(Rows(rows)) = leads {
        prefetched.put([(LeadsOfCustomer(id), Some(rows))]);
    }
    customer
}

/// Files the referenced rows of `pairs` under `key`; returns the referring rows.
fn file_referenced<A, B, K>(prefetched: &Prefetched, pairs: Pairs<A, B>, key: fn(&B) -> K) -> Vec<A>
where
    B: Send + 'static,
    K: std::hash::Hash + Eq + Send + 'static,
{
    let (rows, referenced): (Vec<_>, Vec<_>) = pairs.0.into_iter().unzip();
    prefetched.put(referenced.into_iter().flatten().map(|b| (key(&b), Some(b))));
    rows
}

fn file_page<F, T>(
    prefetched: &Prefetched,
    parent: Uuid,
    page: &Option<Page<F>>,
    rows: Option<Rows<T>>,
) where
    F: std::hash::Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
{
    if let (Some(page), Some(Rows(rows))) = (page, rows) {
        let key = ChildPage {
            parent,
            limit: page.limit,
            after: None,
            filter: page.filter.clone(),
        };
        prefetched.put([(key, Some(rows))]);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const FIRSTS: Firsts = Firsts {
        activities: 10,
        orders: 5,
        point_transactions: 4,
        redemptions: 3,
        communications: 2,
        campaign_history: 1,
    };

    /// The `$n` places a statement's text uses.
    fn places(text: &str) -> BTreeSet<usize> {
        crate::db::sql::placeholders(text)
            .filter_map(|(_, number)| number)
            .collect()
    }

    #[test]
    fn the_every_part_statement_reads_every_part_with_its_page_size() {
        let (text, limits) = every_part_statement(FIRSTS).unwrap();
        assert!(!text.contains("NULL AS"), "a part is left out: {text}");
        assert!(
            !text.contains("NULL::"),
            "a referenced row is left out: {text}"
        );
        let mut expected = BTreeSet::from([1, 2]);
        expected.extend(limits.iter().map(|(place, _)| *place));
        assert_eq!(places(&text), expected, "tenant, id and one place per page");
        let values: Vec<i64> = limits.iter().map(|(_, value)| *value).collect();
        assert_eq!(
            values,
            [11, 6, 5, 4, 3, 2],
            "first + 1 rows, to learn of a next page"
        );
    }

    #[test]
    fn the_every_part_statement_refuses_a_page_beyond_the_maximum() {
        let too_many = Firsts {
            orders: 101,
            ..FIRSTS
        };
        assert!(every_part_statement(too_many).is_err());
    }
}
