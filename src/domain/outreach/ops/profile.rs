//! The tenant's profile as embeddings (seed 001 §8) and the prospects most like it: each
//! candidate with an embedding keeps its similarity to the profile — the highest cosine
//! over the profile's chunks, computed in SQL (`cosine_similarity`, migration 000035) by
//! the statement that changes either side. Changes of one tenant's profile and of its
//! candidates' embeddings run one at a time (an advisory lock), so no similarity is
//! computed against a profile being replaced.

use diesel::prelude::*;
use diesel::sql_types::{Array, Float4, Nullable, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::schema::{avenir_profile_embeddings, prospect_candidates};
use crate::db::sql::lock_key;
use crate::db::Tenant;
use crate::domain::outreach::model::{ProfileChunk, ProspectCandidate};
use crate::domain::{events, user_error, OpResult, UserErrorCode};

/// The length of every embedding (OpenAI's `text-embedding-ada-002`).
pub const DIMENSIONS: usize = 1536;
/// At most this many chunks in a profile.
pub const MAX_CHUNKS: usize = 100;

/// A chunk of the profile as given.
#[derive(Debug, Clone)]
pub struct ChunkInput {
    pub text: String,
    pub embedding: Vec<f64>,
    pub model: Option<String>,
    pub metadata: Option<Value>,
}

/// An embedding's check: [`DIMENSIONS`] finite numbers, not all zero.
fn vector(field: &[&str], values: &[f64]) -> OpResult<Vec<f32>> {
    if values.len() != DIMENSIONS {
        return Err(user_error(
            UserErrorCode::Invalid,
            field,
            &format!(
                "an embedding has {DIMENSIONS} numbers (this one has {})",
                values.len()
            ),
        ));
    }
    if values
        .iter()
        .any(|v| !v.is_finite() || v.abs() > f32::MAX as f64)
        || values.iter().all(|v| *v == 0.0)
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            field,
            "an embedding's numbers are finite and not all zero",
        ));
    }
    Ok(values.iter().map(|v| *v as f32).collect())
}

async fn lock_profile(conn: &mut AsyncPgConnection, scope: Tenant) -> diesel::QueryResult<()> {
    lock_key(conn, &format!("profile/{}", scope.id())).await
}

/// The tenant's profile chunks, in the order they were given.
pub async fn profile_chunks(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<ProfileChunk>> {
    avenir_profile_embeddings::table
        .filter(avenir_profile_embeddings::tenant_id.eq(scope.id()))
        .select(ProfileChunk::as_select())
        .order((
            avenir_profile_embeddings::created_at,
            avenir_profile_embeddings::id,
        ))
        .limit(MAX_CHUNKS as i64)
        .load(conn)
        .await
}

/// Replaces the tenant's profile with `chunks` (at most [`MAX_CHUNKS`]; none clears it)
/// and computes every candidate's similarity to it again.
pub async fn replace_profile(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    chunks: Vec<ChunkInput>,
) -> OpResult<usize> {
    if chunks.len() > MAX_CHUNKS {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "chunks"],
            &format!("a profile has at most {MAX_CHUNKS} chunks"),
        ));
    }
    let mut rows = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.into_iter().enumerate() {
        let i = i.to_string();
        let text = chunk.text.trim();
        if text.is_empty() || text.chars().count() > 10_000 || text.contains('\0') {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "chunks", &i, "text"],
                "a chunk's text is 1 to 10 000 characters",
            ));
        }
        let embedding = vector(&["input", "chunks", &i, "embedding"], &chunk.embedding)?;
        let model = chunk
            .model
            .unwrap_or_else(|| "text-embedding-ada-002".to_owned());
        if model.trim().is_empty() || model.chars().count() > 100 || model.contains('\0') {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "chunks", &i, "model"],
                "a model's name is 1 to 100 characters",
            ));
        }
        let metadata = chunk.metadata.unwrap_or_else(|| json!({}));
        if !metadata.is_object() || metadata.to_string().len() > 16 * 1024 {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "chunks", &i, "metadata"],
                "metadata is a JSON object of at most 16 KiB",
            ));
        }
        rows.push((text.to_owned(), embedding, model, metadata));
    }
    lock_profile(conn, scope).await?;
    use avenir_profile_embeddings as e;
    diesel::delete(e::table.filter(e::tenant_id.eq(scope.id())))
        .execute(conn)
        .await?;
    if !rows.is_empty() {
        // In the order given (a microsecond apart: one statement's rows share now()).
        let base = chrono::Utc::now();
        let values: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, (text, embedding, model, metadata))| {
                (
                    e::tenant_id.eq(scope.id()),
                    e::created_at.eq(base + chrono::TimeDelta::microseconds(i as i64)),
                    e::chunk_text.eq(text),
                    e::embedding.eq(embedding.iter().map(|v| Some(*v)).collect::<Vec<_>>()),
                    e::embedding_model.eq(model),
                    e::metadata.eq(metadata),
                )
            })
            .collect();
        diesel::insert_into(e::table)
            .values(values)
            .execute(conn)
            .await?;
    }
    diesel::sql_query(
        "UPDATE prospect_candidates c SET profile_similarity = (
             SELECT max(cosine_similarity(c.embedding, e.embedding))
             FROM avenir_profile_embeddings e WHERE e.tenant_id = c.tenant_id)
         WHERE c.tenant_id = $1 AND c.embedding IS NOT NULL",
    )
    .bind::<SqlUuid, _>(scope.id())
    .execute(conn)
    .await?;
    events::record(
        conn,
        scope,
        "profile.replaced",
        scope.id(),
        json!({ "chunks": rows.len() }),
    )
    .await?;
    Ok(rows.len())
}

/// Gives a candidate its embedding (or takes it away) and its similarity to the profile.
pub async fn set_candidate_embedding(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    candidate: Uuid,
    embedding: Option<Vec<f64>>,
) -> OpResult<Uuid> {
    let embedding = embedding
        .map(|e| vector(&["input", "embedding"], &e))
        .transpose()?;
    lock_profile(conn, scope).await?;
    let _: Uuid = crate::tenant_row!(
        locked conn,
        scope,
        prospect_candidates,
        candidate,
        prospect_candidates::id,
        &["input", "prospectId"],
        "no such prospect candidate"
    )?;
    let embedding: Option<Vec<Option<f32>>> = embedding.map(|e| e.into_iter().map(Some).collect());
    diesel::sql_query(
        "UPDATE prospect_candidates c SET embedding = $3, profile_similarity = (
             SELECT max(cosine_similarity($3, e.embedding))
             FROM avenir_profile_embeddings e WHERE e.tenant_id = c.tenant_id)
         WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind::<SqlUuid, _>(scope.id())
    .bind::<SqlUuid, _>(candidate)
    .bind::<Nullable<Array<Nullable<Float4>>>, _>(embedding)
    .execute(conn)
    .await?;
    Ok(candidate)
}

/// The candidates most like the profile, most similar first (ties by id).
pub async fn similar_prospects(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    first: i64,
) -> QueryResult<Vec<ProspectCandidate>> {
    use prospect_candidates as c;
    c::table
        .filter(c::tenant_id.eq(scope.id()))
        .filter(c::profile_similarity.is_not_null())
        .select(ProspectCandidate::as_select())
        .order((c::profile_similarity.desc(), c::id))
        .limit(first)
        .load(conn)
        .await
}
