DROP FUNCTION cosine_similarity(real[], real[]);
DROP INDEX prospect_candidates_similarity_idx;
ALTER TABLE prospect_candidates DROP COLUMN profile_similarity, DROP COLUMN embedding;
