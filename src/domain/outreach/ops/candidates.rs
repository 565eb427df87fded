//! Prospect candidates: imported in bulk (deduplicated on their normalised website),
//! tested through their contact forms, and scored by `prospect_need_score` (migration
//! 000033) whenever a signal behind the score changes.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::filter::FilterSome;
use crate::db::page::PageRequest;
use crate::db::schema::{prospect_candidates, prospect_form_tests, prospect_industry_performance};
use crate::db::Tenant;
use crate::domain::customers::ops::valid_email;
use crate::domain::leads::model::Language;
use crate::domain::outreach::model::{
    AutoresponderTone, FormTest, FormTestStatus, IndustryPerformance, ProspectCandidate,
};
use crate::domain::{
    check_https_url, check_text, events, user_error, OpResult, UserError, UserErrorCode,
};

/// At most this many candidates per import.
pub const MAX_IMPORT: usize = 1_000;
/// A form test unanswered this long has timed out.
pub const FORM_TEST_TIMEOUT_HOURS: i64 = 48;

/// The filter of the candidates' list; each part applies when given.
#[derive(Debug, Clone, Default)]
pub struct CandidateFilter {
    pub industry: Option<String>,
    pub region: Option<String>,
    pub language: Option<Language>,
    pub score_min: Option<i32>,
    pub score_max: Option<i32>,
    pub contacted: Option<bool>,
}

/// A page of the tenant's candidates, newest first.
pub async fn list_candidates(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: CandidateFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<ProspectCandidate>> {
    use prospect_candidates as c;
    let query = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select(ProspectCandidate::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(filter.industry, |v| c::industry.eq(v))
        .filter_some(filter.region, |v| c::region.eq(v))
        .filter_some(filter.language, |v| c::language.eq(v))
        .filter_some(filter.score_min, |v| c::automation_need_score.ge(v))
        .filter_some(filter.score_max, |v| c::automation_need_score.le(v))
        .filter_some(filter.contacted, |v| c::contacted.eq(v));
    crate::keyset!(query, page, c::created_at, c::id, desc)
        .load(conn)
        .await
}

pub async fn candidates_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<ProspectCandidate>> {
    prospect_candidates::table
        .filter(prospect_candidates::tenant_id.eq(scope.id()))
        .filter(prospect_candidates::id.eq_any(ids))
        .select(ProspectCandidate::as_select())
        .load(conn)
        .await
}

/// The form tests of candidates, newest first.
pub async fn form_tests_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    candidates: &[Uuid],
) -> QueryResult<Vec<FormTest>> {
    prospect_form_tests::table
        .filter(prospect_form_tests::tenant_id.eq(scope.id()))
        .filter(prospect_form_tests::prospect_id.eq_any(candidates))
        .select(FormTest::as_select())
        .order((
            prospect_form_tests::test_submitted_at.desc(),
            prospect_form_tests::id.desc(),
        ))
        .load(conn)
        .await
}

/// The tenant's industries, highest priority first.
pub async fn industry_performance(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<IndustryPerformance>> {
    use prospect_industry_performance as p;
    p::table
        .filter(p::tenant_id.eq(scope.id()))
        .select(IndustryPerformance::as_select())
        .order((p::priority_score.desc(), p::industry.asc()))
        .limit(1_000)
        .load(conn)
        .await
}

// ---- import -------------------------------------------------------------------------------

/// A candidate as a discovery source gives it.
#[derive(Debug, Clone, Default)]
pub struct CandidateInput {
    pub business_name: String,
    pub website: String,
    pub contact_email: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub language: Option<Language>,
    pub form_url: Option<String>,
    pub metadata: Option<Value>,
}

/// What an import did: the new candidates' ids (in input order) and a user error for
/// each row it did not import (its index in the path).
#[derive(Debug, Default)]
pub struct Imported {
    pub ids: Vec<Uuid>,
    pub refused: Vec<UserError>,
}

/// A website as the key that finds a business again: no scheme, no `www.`, the host in
/// lower case, no query, fragment or trailing `/` (`https://www.Cave.example/fr/` →
/// `cave.example/fr`). `None` when it is not an http(s) address of a named host.
pub fn normalise_website(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 2_000 || raw.contains(char::is_whitespace) {
        return None;
    }
    let with_scheme = match raw.contains("://") {
        true => raw.to_owned(),
        false => format!("https://{raw}"),
    };
    let url = reqwest::Url::parse(&with_scheme).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
        return None;
    }
    let host = url.host_str()?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    if !host.contains('.') || host.starts_with('.') || host.ends_with('.') {
        return None;
    }
    let path = url.path().trim_end_matches('/');
    let key = format!("{host}{path}");
    (key.len() <= 500).then_some(key)
}

fn row_error(row: usize, field: &str, code: UserErrorCode, message: &str) -> UserError {
    let row = row.to_string();
    UserError::new(code, &["input", &row, field], message)
}

/// One row's check: its error, or its normalised website.
fn check_row(row: usize, input: &CandidateInput) -> Result<String, UserError> {
    let invalid =
        |field: &str, message: &str| row_error(row, field, UserErrorCode::Invalid, message);
    let name = input.business_name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.contains('\0') {
        return Err(invalid(
            "businessName",
            "businessName must be 1 to 200 characters",
        ));
    }
    let website = normalise_website(&input.website).ok_or_else(|| {
        invalid(
            "website",
            "website must be an http(s) address of a named host",
        )
    })?;
    if let Some(email) = &input.contact_email {
        if !valid_email(email) {
            return Err(invalid(
                "contactEmail",
                "contactEmail is not an email address",
            ));
        }
    }
    for (field, value) in [("industry", &input.industry), ("region", &input.region)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(invalid(
                field,
                &format!("{field} must be 1 to 100 characters"),
            ));
        }
        if let Err(crate::domain::OpError::User(e)) = check_text(field, value.as_deref(), 100) {
            return Err(invalid(field, &e.message));
        }
    }
    if let Err(crate::domain::OpError::User(e)) =
        check_https_url("formUrl", input.form_url.as_deref(), 2_000)
    {
        return Err(invalid("formUrl", &e.message));
    }
    if let Some(metadata) = &input.metadata {
        if !metadata.is_object() || metadata.to_string().len() > 16 * 1024 {
            return Err(invalid(
                "metadata",
                "metadata must be a JSON object of at most 16 KiB",
            ));
        }
    }
    Ok(website)
}

/// Imports up to [`MAX_IMPORT`] candidates in one statement. A row that is invalid,
/// names a website an earlier row of the import names, or one the tenant already has,
/// is refused on its own (a user error with its index); the others are imported,
/// scored, and announced by one `prospects.imported` event. Racing imports of one
/// website make one candidate (the table's unique key).
pub async fn import_candidates(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    rows: Vec<CandidateInput>,
) -> OpResult<Imported> {
    if rows.len() > MAX_IMPORT {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            &format!("at most {MAX_IMPORT} candidates per import"),
        ));
    }
    let mut imported = Imported::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut valid: Vec<(usize, String, CandidateInput)> = Vec::with_capacity(rows.len());
    for (row, input) in rows.into_iter().enumerate() {
        match check_row(row, &input) {
            Err(refusal) => imported.refused.push(refusal),
            Ok(website) => match seen.get(&website) {
                Some(first) => imported.refused.push(row_error(
                    row,
                    "website",
                    UserErrorCode::Conflict,
                    &format!("the same website as row {first} of this import"),
                )),
                None => {
                    seen.insert(website.clone(), row);
                    valid.push((row, website, input));
                }
            },
        }
    }
    if valid.is_empty() {
        return Ok(imported);
    }
    use prospect_candidates as c;
    // In the order of their keys, so that racing imports of overlapping sets wait for
    // each other instead of deadlocking.
    let mut ordered: Vec<&(usize, String, CandidateInput)> = valid.iter().collect();
    ordered.sort_by(|a, b| a.1.cmp(&b.1));
    let values: Vec<_> = ordered
        .into_iter()
        .map(|(_, website, input)| {
            (
                c::tenant_id.eq(scope.id()),
                c::business_name.eq(input.business_name.trim()),
                c::website.eq(website),
                c::contact_email.eq(input.contact_email.as_deref()),
                c::industry.eq(input.industry.as_deref().map(str::trim)),
                c::region.eq(input.region.as_deref().map(str::trim)),
                c::language.eq(input.language.unwrap_or(Language::En)),
                c::form_url.eq(input.form_url.as_deref()),
                c::metadata.eq(input.metadata.clone().unwrap_or_else(|| json!({}))),
            )
        })
        .collect();
    let inserted: HashMap<String, Uuid> = diesel::insert_into(c::table)
        .values(values)
        .on_conflict((c::tenant_id, c::website))
        .do_nothing()
        .returning((c::website, c::id))
        .load::<(String, Uuid)>(conn)
        .await?
        .into_iter()
        .collect();
    for (row, website, _) in &valid {
        match inserted.get(website) {
            Some(id) => imported.ids.push(*id),
            None => imported.refused.push(row_error(
                *row,
                "website",
                UserErrorCode::Conflict,
                "a candidate of this website is already known",
            )),
        }
    }
    imported.refused.sort_by_key(|e| {
        e.field
            .as_ref()
            .and_then(|f| f.get(1))
            .and_then(|i| i.parse::<usize>().ok())
    });
    if !imported.ids.is_empty() {
        rescore(conn, scope, Rescore::Candidates(&imported.ids)).await?;
        events::record(
            conn,
            scope,
            "prospects.imported",
            imported.ids[0],
            json!({ "imported": imported.ids.len(), "refused": imported.refused.len() }),
        )
        .await?;
    }
    Ok(imported)
}

// ---- the score ----------------------------------------------------------------------------

/// Whose score to compute again.
#[derive(Debug, Clone, Copy)]
pub enum Rescore<'a> {
    Candidates(&'a [Uuid]),
    Industry(&'a str),
}

/// Computes the automation need score of candidates again from their signals (one
/// statement; rows whose score does not change are not written).
pub async fn rescore(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    whose: Rescore<'_>,
) -> QueryResult<usize> {
    let (ids, industry): (&[Uuid], Option<&str>) = match whose {
        Rescore::Candidates(ids) => (ids, None),
        Rescore::Industry(industry) => (&[], Some(industry)),
    };
    diesel::sql_query(
        "UPDATE prospect_candidates c SET automation_need_score = s.score
         FROM (SELECT p.id, prospect_need_score(p.form_url IS NOT NULL, t.test_status,
                          p.response_score, t.autoresponder_tone, i.priority_score) AS score
               FROM prospect_candidates p
               LEFT JOIN LATERAL (
                   SELECT f.test_status, f.autoresponder_tone FROM prospect_form_tests f
                   WHERE f.tenant_id = p.tenant_id AND f.prospect_id = p.id
                     AND f.test_status <> 'pending'
                   ORDER BY f.test_submitted_at DESC, f.id DESC LIMIT 1) t ON true
               LEFT JOIN prospect_industry_performance i
                   ON i.tenant_id = p.tenant_id AND i.industry = p.industry
               WHERE p.tenant_id = $1 AND (p.id = ANY($2) OR p.industry = $3)) s
         WHERE c.tenant_id = $1 AND c.id = s.id
           AND c.automation_need_score IS DISTINCT FROM s.score",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Nullable<Text>, _>(industry)
    .execute(conn)
    .await
}

/// A completed form test's score (0–100): how fast the answer came (within 5 minutes
/// 60, an hour 45, four hours 30, a day 15, later 5) plus how it reads (personalized 40,
/// human 30, robotic 10, no autoresponder 0).
pub fn form_test_score(response_minutes: i64, tone: AutoresponderTone) -> i32 {
    let speed = match response_minutes {
        ..=5 => 60,
        6..=60 => 45,
        61..=240 => 30,
        241..=1_440 => 15,
        _ => 5,
    };
    let reading = match tone {
        AutoresponderTone::Personalized => 40,
        AutoresponderTone::Human => 30,
        AutoresponderTone::Robotic => 10,
        AutoresponderTone::None => 0,
    };
    speed + reading
}

// ---- form tests ---------------------------------------------------------------------------

/// Starts a form test of a candidate (`pending`); one waits at a time per candidate.
pub async fn start_form_test(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    prospect: Uuid,
    submitted_at: DateTime<Utc>,
) -> OpResult<Uuid> {
    let _: Uuid = crate::tenant_row!(
        locked conn,
        scope,
        prospect_candidates,
        prospect,
        prospect_candidates::id,
        &["input", "prospectId"],
        "no such prospect candidate"
    )?;
    use prospect_form_tests as f;
    let pending: i64 = f::table
        .filter(f::tenant_id.eq(scope.id()))
        .filter(f::prospect_id.eq(prospect))
        .filter(f::test_status.eq(FormTestStatus::Pending))
        .count()
        .get_result(conn)
        .await?;
    if pending > 0 {
        return Err(user_error(
            UserErrorCode::Conflict,
            &["input", "prospectId"],
            "a form test of this candidate is already waiting for its answer",
        ));
    }
    let id = diesel::insert_into(f::table)
        .values((
            f::tenant_id.eq(scope.id()),
            f::prospect_id.eq(prospect),
            f::test_submitted_at.eq(submitted_at),
        ))
        .returning(f::id)
        .get_result(conn)
        .await?;
    Ok(id)
}

/// How a form test ended.
#[derive(Debug, Clone)]
pub struct FormTestResult {
    pub status: FormTestStatus,
    pub response_received_at: Option<DateTime<Utc>>,
    pub has_autoresponder: bool,
    pub autoresponder_tone: Option<AutoresponderTone>,
    pub autoresponder_content: Option<String>,
}

/// Records how a pending form test ended (`completed`, `failed` or `timeout`, once),
/// gives its candidate the test's score as its response score and scores it again.
pub async fn finish_form_test(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    test: Uuid,
    result: FormTestResult,
    now: DateTime<Utc>,
) -> OpResult<Uuid> {
    let invalid =
        |field: &str, message: &str| user_error(UserErrorCode::Invalid, &["input", field], message);
    let (prospect, submitted, status): (Uuid, DateTime<Utc>, FormTestStatus) = crate::tenant_row!(
        locked conn,
        scope,
        prospect_form_tests,
        test,
        (
            prospect_form_tests::prospect_id,
            prospect_form_tests::test_submitted_at,
            prospect_form_tests::test_status
        ),
        &["input", "testId"],
        "no such form test"
    )?;
    if status != FormTestStatus::Pending {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "status"],
            &format!("this form test has already ended ({})", status.as_str()),
        ));
    }
    check_text(
        "autoresponderContent",
        result.autoresponder_content.as_deref(),
        10_000,
    )?;
    let tone = match (result.has_autoresponder, result.autoresponder_tone) {
        (false, None | Some(AutoresponderTone::None)) => AutoresponderTone::None,
        (false, Some(_)) => {
            return Err(invalid(
                "autoresponderTone",
                "a tone needs hasAutoresponder",
            ))
        }
        (true, None | Some(AutoresponderTone::None)) => {
            return Err(invalid("autoresponderTone", "an autoresponder has a tone"))
        }
        (true, Some(tone)) => tone,
    };
    let (received, minutes, score) = match result.status {
        FormTestStatus::Pending => {
            return Err(invalid(
                "status",
                "a form test ends completed, failed or timeout",
            ))
        }
        FormTestStatus::Completed => {
            let received = result.response_received_at.ok_or_else(|| {
                invalid(
                    "responseReceivedAt",
                    "a completed test has the time its answer came",
                )
            })?;
            if received < submitted || received > now + Duration::minutes(5) {
                return Err(invalid(
                    "responseReceivedAt",
                    "the answer came after the test was submitted, and not in the future",
                ));
            }
            let minutes = (received - submitted).num_minutes();
            (
                Some(received),
                Some(minutes),
                form_test_score(minutes, tone),
            )
        }
        FormTestStatus::Failed | FormTestStatus::Timeout => {
            if result.response_received_at.is_some() {
                return Err(invalid(
                    "responseReceivedAt",
                    "only a completed test had an answer",
                ));
            }
            (None, None, 0)
        }
    };
    use prospect_form_tests as f;
    diesel::update(
        f::table
            .filter(f::tenant_id.eq(scope.id()))
            .filter(f::id.eq(test)),
    )
    .set((
        f::test_status.eq(result.status),
        f::response_received_at.eq(received),
        f::response_time_minutes.eq(minutes.map(|m| m.min(i32::MAX as i64) as i32)),
        f::has_autoresponder.eq(result.has_autoresponder),
        f::autoresponder_tone.eq(tone),
        f::autoresponder_content.eq(result.autoresponder_content),
        f::score.eq(score),
    ))
    .execute(conn)
    .await?;
    tested(conn, scope, &[(prospect, score)], received.unwrap_or(now)).await?;
    events::record(
        conn,
        scope,
        "prospect.form_tested",
        prospect,
        json!({ "testId": test, "status": result.status, "score": score }),
    )
    .await?;
    Ok(test)
}

/// Gives candidates the score of their latest test and scores them again.
async fn tested(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    scores: &[(Uuid, i32)],
    at: DateTime<Utc>,
) -> QueryResult<()> {
    let (ids, values): (Vec<Uuid>, Vec<i32>) = scores.iter().copied().unzip();
    diesel::sql_query(
        "UPDATE prospect_candidates c SET response_score = s.score, last_tested = $4
         FROM unnest($2, $3) AS s(id, score)
         WHERE c.tenant_id = $1 AND c.id = s.id",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Integer>, _>(&values)
    .bind::<diesel::sql_types::Timestamptz, _>(at)
    .execute(conn)
    .await?;
    rescore(conn, scope, Rescore::Candidates(&ids)).await?;
    Ok(())
}

/// Ends the form tests unanswered for [`FORM_TEST_TIMEOUT_HOURS`] as `timeout` (score 0)
/// and scores their candidates again: the scheduler's task.
pub async fn time_out_form_tests(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    use prospect_form_tests as f;
    let late = now - Duration::hours(FORM_TEST_TIMEOUT_HOURS);
    let prospects: Vec<Uuid> = diesel::update(
        f::table
            .filter(f::tenant_id.eq(scope.id()))
            .filter(f::test_status.eq(FormTestStatus::Pending))
            .filter(f::test_submitted_at.le(late)),
    )
    .set((f::test_status.eq(FormTestStatus::Timeout), f::score.eq(0)))
    .returning(f::prospect_id)
    .load(conn)
    .await?;
    if !prospects.is_empty() {
        let scores: Vec<(Uuid, i32)> = prospects.iter().map(|p| (*p, 0)).collect();
        tested(conn, scope, &scores, now).await?;
    }
    Ok(prospects.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websites_are_found_again_whatever_their_spelling() {
        for (raw, key) in [
            ("https://www.Cave-Lyon.example/", Some("cave-lyon.example")),
            ("http://cave-lyon.example", Some("cave-lyon.example")),
            (
                "cave-lyon.example/fr/?utm=x#top",
                Some("cave-lyon.example/fr"),
            ),
            ("  WWW.cave-lyon.example  ", Some("cave-lyon.example")),
            ("ftp://cave-lyon.example", None),
            ("https://localhost", None),
            ("https://user@cave.example", None),
            ("not a site", None),
            ("", None),
        ] {
            assert_eq!(normalise_website(raw).as_deref(), key, "{raw}");
        }
    }

    #[test]
    fn a_form_tests_score_reads_its_speed_and_tone() {
        assert_eq!(form_test_score(3, AutoresponderTone::Personalized), 100);
        assert_eq!(form_test_score(95, AutoresponderTone::Robotic), 40);
        assert_eq!(form_test_score(60, AutoresponderTone::Human), 75);
        assert_eq!(form_test_score(3_000, AutoresponderTone::None), 5);
    }
}
