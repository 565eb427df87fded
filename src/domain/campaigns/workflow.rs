//! Campaign workflows (seed 003): the ReactFlow graph a campaign carries, run per
//! recipient. Node `type`s: `trigger` / `audience` (where runs start), `send` (`data:
//! { channel: "email" | "sms", templateId }`, through the delivery path), `wait` (`data:
//! { hours }` or `{ until }`), `condition` (`data: { check: "opened" | "clicked" |
//! "segment" | "club_member", segment }`; its edges leave by `sourceHandle` `yes` or `no`),
//! `end`. ReactFlow's own types (`default`, `input`, `output`, `group`, or none) pass
//! through. A run starts at the `trigger`/`audience`/`input` node, else at the first node
//! no edge enters.
//!
//! Progress is stored per recipient (`campaign_runs`): the node, whether its wait began,
//! when it is due, and the path taken. A run is advanced in the transaction that locks it,
//! up to its next wait or its end, so each step happens once and a restart resumes where
//! the run stood; a send uses an idempotency key per recipient and node besides.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use super::model::{CampaignStatus, RecipientStatus};
use crate::db::schema::{campaign_recipients, campaign_runs, campaigns, customers};
use crate::db::Tenant;
use crate::domain::comms::model::Channel;
use crate::domain::messages::ops::{deliver, deliver_many, Outgoing};
use crate::domain::{in_savepoint, OpResult, UserError, UserErrorCode};

/// What a node does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Start,
    Pass,
    Send {
        channel: Channel,
        template: Uuid,
    },
    Wait {
        hours: Option<i64>,
        until: Option<DateTime<Utc>>,
    },
    Condition {
        check: Check,
    },
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Opened,
    Clicked,
    Segment(String),
    ClubMember,
}

/// A parsed workflow.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    steps: HashMap<String, Step>,
    /// (source, target, the branch it takes out of a condition).
    edges: Vec<(String, String, bool)>,
    start: Option<String>,
}

fn invalid(path: &[&str], message: &str) -> UserError {
    let mut field = vec!["input", "workflow"];
    field.extend_from_slice(path);
    UserError::new(UserErrorCode::Invalid, &field, message)
}

impl Graph {
    /// Parses a workflow whose structure is valid (ids, edges between existing nodes):
    /// node types and their data, and no cycle that does not pass a wait.
    pub fn parse(workflow: &Value) -> Result<Graph, UserError> {
        let empty = Vec::new();
        let nodes = workflow["nodes"].as_array().unwrap_or(&empty);
        let mut graph = Graph::default();
        let mut order = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let index = i.to_string();
            let id = node["id"].as_str().unwrap_or_default().to_owned();
            let data = &node["data"];
            let at = |field: &'static str| ["nodes", index.as_str(), "data", field];
            let step = match node["type"].as_str() {
                None | Some("default" | "input" | "output" | "group") => {
                    if node["type"] == "input" {
                        Step::Start
                    } else {
                        Step::Pass
                    }
                }
                Some("trigger" | "audience") => Step::Start,
                Some("end") => Step::End,
                Some("send") => {
                    let channel = match data["channel"].as_str() {
                        Some("email") | None => Channel::Email,
                        Some("sms") => Channel::Sms,
                        Some(_) => {
                            return Err(invalid(&at("channel"), "a send node sends email or sms"))
                        }
                    };
                    let template = data["templateId"]
                        .as_str()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| {
                            invalid(&at("templateId"), "a send node names its template")
                        })?;
                    Step::Send { channel, template }
                }
                Some("wait") => {
                    let hours = data["hours"].as_i64();
                    let until = data["until"]
                        .as_str()
                        .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
                        .map(|u| u.with_timezone(&Utc));
                    if hours.is_some_and(|h| !(0..=8760).contains(&h))
                        || (hours.is_none() && until.is_none())
                    {
                        return Err(invalid(
                            &at("hours"),
                            "a wait node waits 0 to 8760 hours, or until a time",
                        ));
                    }
                    Step::Wait { hours, until }
                }
                Some("condition") => {
                    let check = match data["check"].as_str() {
                        Some("opened") => Check::Opened,
                        Some("clicked") => Check::Clicked,
                        Some("club_member") => Check::ClubMember,
                        Some("segment") => Check::Segment(
                            data["segment"]
                                .as_str()
                                .filter(|s| !s.is_empty() && s.len() <= 100)
                                .ok_or_else(|| {
                                    invalid(&at("segment"), "a segment condition names its segment")
                                })?
                                .to_owned(),
                        ),
                        _ => {
                            return Err(invalid(
                                &at("check"),
                                "check is opened, clicked, segment or club_member",
                            ))
                        }
                    };
                    Step::Condition { check }
                }
                Some(_) => {
                    return Err(invalid(
                        &["nodes", &index, "type"],
                        "node types are trigger, audience, send, wait, condition and end",
                    ))
                }
            };
            if step == Step::Start && graph.start.is_none() {
                graph.start = Some(id.clone());
            }
            order.push(id.clone());
            graph.steps.insert(id, step);
        }
        let edges = workflow["edges"].as_array().unwrap_or(&empty);
        for edge in edges {
            let branch = !matches!(edge["sourceHandle"].as_str(), Some("no" | "false"));
            graph.edges.push((
                edge["source"].as_str().unwrap_or_default().to_owned(),
                edge["target"].as_str().unwrap_or_default().to_owned(),
                branch,
            ));
        }
        if graph.start.is_none() {
            let entered: HashSet<&str> = graph.edges.iter().map(|(_, t, _)| t.as_str()).collect();
            graph.start = order
                .iter()
                .find(|id| !entered.contains(id.as_str()))
                .cloned();
        }
        if let Some(edge) = graph.cycle_without_wait() {
            return Err(invalid(
                &["edges", &edge.to_string()],
                "this edge closes a cycle with no wait node on it",
            ));
        }
        Ok(graph)
    }

    /// The index of an edge closing a cycle that passes no wait node, if any.
    fn cycle_without_wait(&self) -> Option<usize> {
        let is_wait = |id: &str| matches!(self.steps.get(id), Some(Step::Wait { .. }));
        // Depth-first over the graph without its wait nodes: an edge back to a node on the
        // current path closes such a cycle. Iterative (a workflow has ≤ 500 nodes).
        let mut state: HashMap<&str, u8> = HashMap::new(); // 1 on the path, 2 done
        let ids: Vec<&str> = self.steps.keys().map(String::as_str).collect();
        for &root in &ids {
            if is_wait(root) || state.contains_key(root) {
                continue;
            }
            let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
            state.insert(root, 1);
            while let Some((node, next)) = stack.pop() {
                let outgoing: Vec<(usize, &str)> = self
                    .edges
                    .iter()
                    .enumerate()
                    .filter(|(_, (s, t, _))| s == node && !is_wait(t))
                    .map(|(i, (_, t, _))| (i, t.as_str()))
                    .collect();
                if let Some(&(edge, target)) = outgoing.get(next) {
                    stack.push((node, next + 1));
                    match state.get(target) {
                        Some(1) => return Some(edge),
                        Some(_) => {}
                        None => {
                            state.insert(target, 1);
                            stack.push((target, 0));
                        }
                    }
                } else {
                    state.insert(node, 2);
                }
            }
        }
        None
    }

    /// Whether the workflow does anything per recipient (sends, waits, branches).
    pub fn acts(&self) -> bool {
        self.steps.values().any(|s| {
            matches!(
                s,
                Step::Send { .. } | Step::Wait { .. } | Step::Condition { .. }
            )
        })
    }

    pub fn start(&self) -> Option<&str> {
        self.start.as_deref()
    }

    /// The templates the workflow's send nodes name.
    pub fn templates(&self) -> Vec<Uuid> {
        self.steps
            .values()
            .filter_map(|s| match s {
                Step::Send { template, .. } => Some(*template),
                _ => None,
            })
            .collect()
    }

    fn next(&self, node: &str, branch: bool) -> Option<&str> {
        self.edges
            .iter()
            .find(|(s, _, b)| s == node && *b == branch)
            .or_else(|| {
                self.edges
                    .iter()
                    .find(|(s, _, _)| s == node)
                    .filter(|_| branch)
            })
            .map(|(_, t, _)| t.as_str())
    }
}

/// Starts a run for every recipient of `execution` at the workflow's start node.
pub async fn start_runs(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    campaign: Uuid,
    execution: Uuid,
    start: &str,
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO campaign_runs (tenant_id, recipient_id, campaign_id, execution_id, node_id, due_at)
         SELECT tenant_id, id, campaign_id, execution_id, $3, now()
         FROM campaign_recipients WHERE tenant_id = $1 AND execution_id = $2 AND campaign_id = $4",
    )
    .bind::<diesel::sql_types::Uuid, _>(scope.id())
    .bind::<diesel::sql_types::Uuid, _>(execution)
    .bind::<diesel::sql_types::Text, _>(start)
    .bind::<diesel::sql_types::Uuid, _>(campaign)
    .execute(conn)
    .await
}

/// A recipient's run, as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = campaign_runs, check_for_backend(diesel::pg::Pg))]
pub struct Run {
    pub recipient_id: Uuid,
    pub campaign_id: Uuid,
    pub execution_id: Uuid,
    pub node_id: String,
    pub status: String,
    pub waited: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub path: Value,
}

/// One recipient's run (support's view of their path).
pub async fn run_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    recipient: Uuid,
) -> QueryResult<Option<Run>> {
    campaign_runs::table
        .filter(campaign_runs::tenant_id.eq(scope.id()))
        .filter(campaign_runs::recipient_id.eq(recipient))
        .select(Run::as_select())
        .first(conn)
        .await
        .optional()
}

/// Advances up to `limit` runs that are due at `now` (locked: `FOR UPDATE SKIP LOCKED`,
/// so concurrent schedulers take different runs), each up to its next wait or its end;
/// returns the runs taken and the steps (sends and conditions) done. The batch reads what
/// its runs need in a few statements, walks every run in memory, queues all their sends
/// at once ([`deliver_many`]) and stores every run in one statement.
pub async fn run_steps(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
    limit: i64,
) -> OpResult<(usize, i64)> {
    use campaign_runs as r;
    let active = campaigns::table
        .filter(campaigns::tenant_id.eq(scope.id()))
        .filter(campaigns::status.eq(CampaignStatus::Active))
        .select(campaigns::id);
    let due: Vec<Run> = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .filter(r::status.eq("waiting"))
        .filter(r::due_at.le(now))
        .filter(r::campaign_id.eq_any(active))
        .select(Run::as_select())
        .order(r::due_at)
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let runs = due.len();
    if runs == 0 {
        return Ok((0, 0));
    }
    let mut graphs: HashMap<Uuid, Graph> = HashMap::new();
    for run in &due {
        if let std::collections::hash_map::Entry::Vacant(slot) = graphs.entry(run.campaign_id) {
            let workflow: Value = campaigns::table
                .filter(campaigns::tenant_id.eq(scope.id()))
                .filter(campaigns::id.eq(run.campaign_id))
                .select(campaigns::workflow_data)
                .first(conn)
                .await?;
            slot.insert(Graph::parse(&workflow).unwrap_or_default());
        }
    }
    let facts = Facts::load(conn, scope, &due, graphs.values()).await?;
    let mut walks: Vec<Walk> = due
        .into_iter()
        .map(|run| walk(&graphs[&run.campaign_id], &facts, run, now))
        .collect();
    // Each send's place (its walk, its step in the path) and its message.
    let (places, outgoing): (Vec<(usize, usize)>, Vec<Outgoing>) = walks
        .iter_mut()
        .enumerate()
        .flat_map(|(w, walk)| {
            let sends = std::mem::take(&mut walk.sends);
            sends.into_iter().map(move |(at, o)| ((w, at), o))
        })
        .unzip();
    let outcomes = queue_sends(conn, scope, outgoing).await?;
    for ((w, at), outcome) in places.into_iter().zip(outcomes) {
        let outcome = match outcome {
            Ok(id) => format!("queued {id}"),
            Err(refusal) => format!("not sent: {}", refusal.message),
        };
        walks[w].path[at]["sent"] = json!(outcome);
    }
    let steps = walks.iter().map(|w| w.taken).sum();
    let ended_in: HashSet<(Uuid, Uuid)> = walks
        .iter()
        .filter(|w| w.ended)
        .map(|w| (w.run.campaign_id, w.run.execution_id))
        .collect();
    store(conn, scope, walks, now).await?;
    for (campaign, execution) in ended_in {
        complete_if_done(conn, scope, campaign, execution).await?;
    }
    Ok((runs, steps))
}

/// What the runs of a batch are checked against: each recipient's customer, addresses
/// and funnel status, and (when a workflow asks) their customer's segment and club
/// membership.
#[derive(Default)]
struct Facts {
    recipients: HashMap<Uuid, Recipient>,
    profiles: HashMap<Uuid, (Option<String>, bool)>,
}

struct Recipient {
    customer: Option<Uuid>,
    email: Option<String>,
    phone: Option<String>,
    status: RecipientStatus,
}

impl Facts {
    async fn load(
        conn: &mut AsyncPgConnection,
        scope: Tenant,
        runs: &[Run],
        mut graphs: impl Iterator<Item = &Graph>,
    ) -> QueryResult<Facts> {
        use campaign_recipients as c;
        let ids: Vec<Uuid> = runs.iter().map(|r| r.recipient_id).collect();
        type Row = (
            Uuid,
            Option<Uuid>,
            Option<String>,
            Option<String>,
            RecipientStatus,
        );
        let rows: Vec<Row> = c::table
            .filter(c::tenant_id.eq(scope.id()))
            .filter(c::id.eq_any(&ids))
            .select((c::id, c::customer_id, c::email, c::phone, c::status))
            .load(conn)
            .await?;
        let recipients: HashMap<Uuid, Recipient> = rows
            .into_iter()
            .map(|(id, customer, email, phone, status)| {
                let recipient = Recipient {
                    customer,
                    email,
                    phone,
                    status,
                };
                (id, recipient)
            })
            .collect();
        let profiled = graphs.any(|g| {
            g.steps.values().any(|s| {
                matches!(
                    s,
                    Step::Condition {
                        check: Check::Segment(_) | Check::ClubMember
                    }
                )
            })
        });
        let customers: Vec<Uuid> = recipients.values().filter_map(|r| r.customer).collect();
        let profiles = match profiled && !customers.is_empty() {
            false => HashMap::new(),
            true => customers::table
                .filter(customers::tenant_id.eq(scope.id()))
                .filter(customers::id.eq_any(&customers))
                .select((
                    customers::id,
                    (customers::segment, customers::is_club_member),
                ))
                .load::<(Uuid, (Option<String>, bool))>(conn)
                .await?
                .into_iter()
                .collect(),
        };
        Ok(Facts {
            recipients,
            profiles,
        })
    }

    fn holds(&self, recipient: Uuid, check: &Check) -> bool {
        let Some(r) = self.recipients.get(&recipient) else {
            return false;
        };
        let profile = r.customer.and_then(|c| self.profiles.get(&c));
        match check {
            Check::Opened => {
                r.status != RecipientStatus::Failed
                    && r.status.rank() >= RecipientStatus::Opened.rank()
            }
            Check::Clicked => r.status == RecipientStatus::Clicked,
            Check::Segment(segment) => profile.and_then(|p| p.0.as_deref()) == Some(segment),
            Check::ClubMember => profile.is_some_and(|p| p.1),
        }
    }
}

/// One run taken through its nodes in memory: where it stands after, the path it took,
/// and the messages its send nodes queue, each with the step of the path its outcome
/// goes into.
struct Walk {
    run: Run,
    path: Vec<Value>,
    ended: bool,
    due_at: Option<DateTime<Utc>>,
    taken: i64,
    sends: Vec<(usize, Outgoing)>,
}

/// Takes one run through its nodes up to a wait or its end.
fn walk(graph: &Graph, facts: &Facts, mut run: Run, now: DateTime<Utc>) -> Walk {
    let mut path = run.path.as_array().cloned().unwrap_or_default();
    let (mut taken, mut ended, mut due_at) = (0, false, None);
    let mut sends = Vec::new();
    // A workflow without cycles (or with waits on them) ends a pass within its node count.
    for _ in 0..=graph.steps.len() + 1 {
        let Some(step) = graph.steps.get(&run.node_id) else {
            ended = true;
            break;
        };
        let mut branch = true;
        match step {
            Step::Wait { hours, until } if !run.waited => {
                let at = until.unwrap_or(now + Duration::hours(hours.unwrap_or(0)));
                run.waited = true;
                if at > now {
                    due_at = Some(at);
                    path.push(json!({ "node": run.node_id, "at": now, "waitUntil": at }));
                    break;
                }
            }
            Step::Wait { .. } => {}
            Step::Send { channel, template } => {
                sends.push((path.len(), outgoing(facts, &run, *channel, *template)));
                taken += 1;
                path.push(json!({ "node": run.node_id, "at": now, "sent": null }));
            }
            Step::Condition { check } => {
                branch = facts.holds(run.recipient_id, check);
                taken += 1;
                path.push(json!({ "node": run.node_id, "at": now, "condition": branch }));
            }
            Step::End => {
                ended = true;
                break;
            }
            Step::Start | Step::Pass => {}
        }
        match graph.next(&run.node_id, branch) {
            Some(next) => {
                run.node_id = next.to_owned();
                run.waited = false;
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    if ended {
        path.push(json!({ "node": run.node_id, "at": now, "ended": true }));
    }
    Walk {
        run,
        path,
        ended,
        due_at,
        taken,
        sends,
    }
}

/// A send node's message for the run's recipient (once per recipient and node: its
/// idempotency key).
fn outgoing(facts: &Facts, run: &Run, channel: Channel, template: Uuid) -> Outgoing {
    let recipient = facts.recipients.get(&run.recipient_id);
    let to = recipient.and_then(|r| match channel {
        Channel::Email => r.email.clone(),
        _ => r.phone.clone(),
    });
    Outgoing {
        customer_id: recipient.and_then(|r| r.customer),
        to,
        communication_type: Some(crate::domain::messages::model::CommunicationType::Marketing),
        idempotency_key: Some(format!("campaign/{}/{}", run.recipient_id, run.node_id)),
        campaign_recipient_id: Some(run.recipient_id),
        ..Outgoing::of_template(channel, template, json!({ "campaignId": run.campaign_id }))
    }
}

/// Queues the batch's messages together; should that fail (a row the database refuses),
/// each alone, so that one bad message does not hold the others back: it is recorded as
/// not sent and logged.
async fn queue_sends(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    outgoing: Vec<Outgoing>,
) -> OpResult<Vec<Result<Uuid, UserError>>> {
    if outgoing.is_empty() {
        return Ok(Vec::new());
    }
    let together = in_savepoint(conn, async |conn| {
        deliver_many(conn, scope, outgoing.clone()).await
    })
    .await;
    match together {
        Ok(Ok(answers)) => return Ok(answers),
        Ok(Err(refusal)) => tracing::warn!(?refusal, "a workflow batch was refused whole"),
        Err(error) => tracing::warn!(?error, "a workflow batch's sends were queued one by one"),
    }
    let mut answers = Vec::with_capacity(outgoing.len());
    for one in outgoing {
        let key = one.idempotency_key.clone();
        answers.push(
            match in_savepoint(conn, async |conn| deliver(conn, scope, one).await).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(?error, ?key, "a workflow message could not be queued");
                    Err(UserError::new(
                        UserErrorCode::Invalid,
                        &[],
                        "could not be queued (see the server log)",
                    ))
                }
            },
        );
    }
    Ok(answers)
}

/// Stores where every run of the batch stands, in one statement.
async fn store(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    walks: Vec<Walk>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::sql_types::{Array, Bool, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    let mut recipients = Vec::with_capacity(walks.len());
    let mut nodes = Vec::with_capacity(walks.len());
    let mut waited = Vec::with_capacity(walks.len());
    let mut statuses = Vec::with_capacity(walks.len());
    let mut due = Vec::with_capacity(walks.len());
    let mut paths = Vec::with_capacity(walks.len());
    for w in walks {
        recipients.push(w.run.recipient_id);
        nodes.push(w.run.node_id);
        waited.push(w.run.waited);
        statuses.push(if w.ended { "ended" } else { "waiting" });
        due.push(match w.ended {
            true => None,
            false => Some(w.due_at.unwrap_or(now)),
        });
        paths.push(Value::Array(w.path));
    }
    diesel::sql_query(
        "UPDATE campaign_runs r
            SET node_id = u.node_id, waited = u.waited, status = u.status, due_at = u.due_at,
                path = u.path
           FROM unnest($2::uuid[], $3::text[], $4::bool[], $5::text[], $6::timestamptz[],
                       $7::jsonb[]) AS u(recipient_id, node_id, waited, status, due_at, path)
          WHERE r.tenant_id = $1 AND r.recipient_id = u.recipient_id",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<Array<SqlUuid>, _>(recipients)
    .bind::<Array<Text>, _>(nodes)
    .bind::<Array<Bool>, _>(waited)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Nullable<Timestamptz>>, _>(due)
    .bind::<Array<Jsonb>, _>(paths)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Completes an execution (and its campaign) once none of its runs is waiting: the
/// execution keeps the campaign's metrics as they stand.
async fn complete_if_done(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    campaign: Uuid,
    execution: Uuid,
) -> OpResult<()> {
    use crate::db::schema::campaign_executions as x;
    // Batches ending runs of one execution at once take turns here: the last to commit
    // sees every other's runs ended (without the lock, each could see the other's runs
    // still waiting, and none would complete the execution).
    let running: Option<Uuid> = x::table
        .filter(x::tenant_id.eq(scope.id()))
        .filter(x::id.eq(execution))
        .filter(x::status.eq("running"))
        .select(x::id)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if running.is_none() {
        return Ok(());
    }
    let waiting: i64 = campaign_runs::table
        .filter(campaign_runs::tenant_id.eq(scope.id()))
        .filter(campaign_runs::execution_id.eq(execution))
        .filter(campaign_runs::status.eq("waiting"))
        .count()
        .get_result(conn)
        .await?;
    if waiting > 0 {
        return Ok(());
    }
    let metrics = super::ops::counters_of(conn, scope, &[campaign]).await?;
    let metrics = <[_]>::first(&metrics)
        .map(|c| {
            json!({
                "recipients": c.recipients, "sent": c.sent, "delivered": c.delivered,
                "opened": c.opened, "clicked": c.clicked, "failed": c.failed,
            })
        })
        .unwrap_or_else(|| json!({}));
    diesel::update(
        x::table
            .filter(x::tenant_id.eq(scope.id()))
            .filter(x::id.eq(execution))
            .filter(x::status.eq("running")),
    )
    .set((
        x::status.eq("completed"),
        x::completed_at.eq(Utc::now()),
        x::metrics.eq(metrics),
    ))
    .execute(conn)
    .await?;
    let active: Option<CampaignStatus> = campaigns::table
        .filter(campaigns::tenant_id.eq(scope.id()))
        .filter(campaigns::id.eq(campaign))
        .select(campaigns::status)
        .first(conn)
        .await
        .optional()?;
    if active == Some(CampaignStatus::Active) {
        super::ops::change_status(conn, scope, campaign, super::ops::StatusChange::Complete)
            .await?;
    }
    Ok(())
}

/// Launches the tenant's draft campaigns whose `scheduled_at` has come; returns the
/// campaigns launched and those that could not be (no audience: they stay drafts).
pub async fn launch_scheduled(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> OpResult<(Vec<Uuid>, Vec<Uuid>)> {
    let due: Vec<Uuid> = campaigns::table
        .filter(campaigns::tenant_id.eq(scope.id()))
        .filter(campaigns::status.eq(CampaignStatus::Draft))
        .filter(campaigns::scheduled_at.le(now))
        .select(campaigns::id)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let (mut launched, mut refused) = (Vec::new(), Vec::new());
    for id in due {
        // One campaign that cannot launch never holds the others (nor the tenant's
        // other tasks) back: it stays a draft, and says so in the tick's result.
        match crate::domain::in_savepoint(conn, async |conn| {
            super::ops::launch(conn, scope, id).await
        })
        .await
        {
            Ok(Ok(_)) => launched.push(id),
            Ok(Err(_)) => refused.push(id),
            Err(error) => {
                tracing::warn!(?error, campaign = %id, "a scheduled campaign did not launch");
                refused.push(id);
            }
        }
    }
    Ok((launched, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        let node =
            |id: &str, kind: &str, data: Value| json!({ "id": id, "type": kind, "data": data });
        let edge = |from: &str, to: &str, handle: Option<&str>| json!({ "id": format!("{from}-{to}"), "source": from, "target": to, "sourceHandle": handle });
        let template = Uuid::nil().to_string();
        Graph::parse(&json!({
            "nodes": [
                node("start", "trigger", json!({})),
                node("vip", "condition", json!({ "check": "segment", "segment": "vip" })),
                node("offer", "send", json!({ "channel": "email", "templateId": template })),
                node("club", "condition", json!({ "check": "club_member" })),
                node("members", "send", json!({ "channel": "sms", "templateId": template })),
                node("pause", "wait", json!({ "hours": 24 })),
                node("done", "end", json!({})),
            ],
            "edges": [
                edge("start", "vip", None),
                edge("vip", "offer", Some("yes")), edge("vip", "club", Some("no")),
                edge("offer", "done", None),
                edge("club", "members", Some("yes")), edge("club", "done", Some("no")),
                edge("members", "pause", None), edge("pause", "done", None),
            ],
        }))
        .unwrap()
    }

    fn run(recipient: Uuid, node: &str) -> Run {
        Run {
            recipient_id: recipient,
            campaign_id: Uuid::nil(),
            execution_id: Uuid::nil(),
            node_id: node.to_owned(),
            status: "waiting".to_owned(),
            waited: false,
            due_at: None,
            path: json!([]),
        }
    }

    /// Each branch as the batch's facts say, sends keyed per recipient and node, a wait
    /// stopping the walk until its time, a missing recipient failing its conditions.
    #[test]
    fn runs_walk_their_branches_from_the_batchs_facts() {
        let graph = graph();
        let now = Utc::now();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let mut facts = Facts::default();
        for (i, (segment, club)) in [("vip", false), ("wine", true), ("wine", false)]
            .into_iter()
            .enumerate()
        {
            let customer = Uuid::new_v4();
            facts.recipients.insert(
                ids[i],
                Recipient {
                    customer: Some(customer),
                    email: Some(format!("r{i}@example.com")),
                    phone: Some(format!("+3361234567{i}")),
                    status: RecipientStatus::Pending,
                },
            );
            facts
                .profiles
                .insert(customer, (Some(segment.to_owned()), club));
        }
        let walks: Vec<Walk> = ids
            .iter()
            .map(|id| walk(&graph, &facts, run(*id, "start"), now))
            .collect();
        let nodes = |w: &Walk| -> Vec<String> {
            w.path
                .iter()
                .map(|p| p["node"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(nodes(&walks[0]), ["vip", "offer", "done"]);
        assert!(walks[0].ended);
        assert_eq!(walks[0].taken, 2);
        let (at, offer) = &walks[0].sends[0];
        assert_eq!((*at, offer.to.as_deref()), (1, Some("r0@example.com")));
        assert_eq!(
            offer.idempotency_key,
            Some(format!("campaign/{}/offer", ids[0]))
        );

        assert_eq!(nodes(&walks[1]), ["vip", "club", "members", "pause"]);
        assert!(!walks[1].ended && walks[1].run.waited);
        assert_eq!(walks[1].due_at, Some(now + Duration::hours(24)));
        assert_eq!(walks[1].sends[0].1.to.as_deref(), Some("+33612345671"));
        // Due again, the run leaves its wait and ends.
        let mut resumed = walks[1].run.clone();
        resumed.path = Value::Array(walks[1].path.clone());
        let later = walk(&graph, &facts, resumed, now + Duration::hours(24));
        assert!(later.ended && later.sends.is_empty());
        assert_eq!(&nodes(&later)[4..], ["done"]);

        assert_eq!(nodes(&walks[2]), ["vip", "club", "done"]);
        assert!(walks[2].sends.is_empty());
        assert_eq!(
            nodes(&walks[3]),
            ["vip", "club", "done"],
            "no recipient: no condition holds"
        );
    }
}
