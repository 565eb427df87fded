-- Profile embeddings (seed 001 §8): prospects carry an embedding of their own and its
-- similarity to the tenant's profile (the highest cosine over the profile's chunks),
-- kept by the statements that change either side.
ALTER TABLE prospect_candidates
    ADD COLUMN embedding real[] CHECK (embedding IS NULL OR array_length(embedding, 1) = 1536),
    ADD COLUMN profile_similarity double precision
        CHECK (profile_similarity IS NULL OR profile_similarity BETWEEN -1 AND 1);
CREATE INDEX prospect_candidates_similarity_idx
    ON prospect_candidates (tenant_id, profile_similarity DESC NULLS LAST, id)
    WHERE profile_similarity IS NOT NULL;

-- The cosine similarity of two vectors of one length (NULL when either is all zeros).
CREATE FUNCTION cosine_similarity(a real[], b real[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN sum(x * x) = 0 OR sum(y * y) = 0 THEN NULL
                ELSE least(1, greatest(-1, sum(x::double precision * y) / (sqrt(sum(x::double precision * x)) * sqrt(sum(y::double precision * y)))))
           END
    FROM unnest(a, b) AS t(x, y)
$$;
