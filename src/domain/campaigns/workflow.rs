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
use crate::domain::{OpResult, UserError, UserErrorCode};

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

/// Advances the due runs of active campaigns (at most `limit`) to their next wait or
/// end, then completes the executions with no run left waiting. Returns how many runs
/// were due and the steps taken.
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
    let mut graphs: HashMap<Uuid, Graph> = HashMap::new();
    let mut steps = 0;
    let mut ended_in: HashSet<(Uuid, Uuid)> = HashSet::new();
    for run in due {
        if let std::collections::hash_map::Entry::Vacant(slot) = graphs.entry(run.campaign_id) {
            let workflow: Value = campaigns::table
                .filter(campaigns::tenant_id.eq(scope.id()))
                .filter(campaigns::id.eq(run.campaign_id))
                .select(campaigns::workflow_data)
                .first(conn)
                .await?;
            slot.insert(Graph::parse(&workflow).unwrap_or_default());
        }
        let graph = &graphs[&run.campaign_id];
        let (taken, ended) = advance(conn, scope, graph, run.clone(), now).await?;
        steps += taken;
        if ended {
            ended_in.insert((run.campaign_id, run.execution_id));
        }
    }
    for (campaign, execution) in ended_in {
        complete_if_done(conn, scope, campaign, execution).await?;
    }
    Ok((runs, steps))
}

/// Takes one run through its nodes up to a wait or its end; returns the steps taken and
/// whether it ended.
async fn advance(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    graph: &Graph,
    mut run: Run,
    now: DateTime<Utc>,
) -> OpResult<(i64, bool)> {
    let mut path = run.path.as_array().cloned().unwrap_or_default();
    let mut taken = 0;
    let mut ended = false;
    let mut due_at = None;
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
                let outcome = send(conn, scope, &run, *channel, *template).await?;
                taken += 1;
                path.push(json!({ "node": run.node_id, "at": now, "sent": outcome }));
            }
            Step::Condition { check } => {
                branch = holds(conn, scope, run.recipient_id, check).await?;
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
    diesel::update(
        campaign_runs::table
            .filter(campaign_runs::tenant_id.eq(scope.id()))
            .filter(campaign_runs::recipient_id.eq(run.recipient_id)),
    )
    .set((
        campaign_runs::node_id.eq(&run.node_id),
        campaign_runs::waited.eq(run.waited),
        campaign_runs::status.eq(if ended { "ended" } else { "waiting" }),
        campaign_runs::due_at.eq(if ended { None } else { due_at.or(Some(now)) }),
        campaign_runs::path.eq(Value::Array(path)),
    ))
    .execute(conn)
    .await?;
    Ok((taken, ended))
}

/// Queues a send node's message for the recipient (once per recipient and node); what
/// happened, for the run's path.
async fn send(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    run: &Run,
    channel: Channel,
    template: Uuid,
) -> OpResult<String> {
    use crate::domain::messages::ops::{deliver, Outgoing};
    let (customer, email, phone): (Option<Uuid>, Option<String>, Option<String>) =
        campaign_recipients::table
            .filter(campaign_recipients::tenant_id.eq(scope.id()))
            .filter(campaign_recipients::id.eq(run.recipient_id))
            .select((
                campaign_recipients::customer_id,
                campaign_recipients::email,
                campaign_recipients::phone,
            ))
            .first(conn)
            .await?;
    let to = match channel {
        Channel::Email => email,
        _ => phone,
    };
    let outgoing = Outgoing {
        customer_id: customer,
        to,
        communication_type: Some(crate::domain::messages::model::CommunicationType::Marketing),
        idempotency_key: Some(format!("campaign/{}/{}", run.recipient_id, run.node_id)),
        campaign_recipient_id: Some(run.recipient_id),
        ..Outgoing::of_template(channel, template, json!({ "campaignId": run.campaign_id }))
    };
    Ok(
        match crate::domain::in_savepoint(conn, async |conn| deliver(conn, scope, outgoing).await)
            .await?
        {
            Ok(id) => format!("queued {id}"),
            Err(e) => format!("not sent: {}", e.message),
        },
    )
}

async fn holds(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    recipient: Uuid,
    check: &Check,
) -> QueryResult<bool> {
    let (status, customer): (RecipientStatus, Option<Uuid>) = campaign_recipients::table
        .filter(campaign_recipients::tenant_id.eq(scope.id()))
        .filter(campaign_recipients::id.eq(recipient))
        .select((
            campaign_recipients::status,
            campaign_recipients::customer_id,
        ))
        .first(conn)
        .await?;
    let profile = |customer: Option<Uuid>| async move {
        match customer {
            None => Ok::<_, diesel::result::Error>(None),
            Some(id) => customers::table
                .filter(customers::tenant_id.eq(scope.id()))
                .filter(customers::id.eq(id))
                .select((customers::segment, customers::is_club_member))
                .first::<(Option<String>, bool)>(conn)
                .await
                .optional(),
        }
    };
    Ok(match check {
        Check::Opened => {
            status != RecipientStatus::Failed && status.rank() >= RecipientStatus::Opened.rank()
        }
        Check::Clicked => status == RecipientStatus::Clicked,
        Check::Segment(segment) => {
            profile(customer).await?.and_then(|p| p.0).as_deref() == Some(segment)
        }
        Check::ClubMember => profile(customer).await?.is_some_and(|p| p.1),
    })
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
