-- Translation system and support tables (001 sections 6 and 8). intent_translations and
-- translation_dictionary are reference data shared by every tenant: no tenant_id, and
-- read-only for the server's role.

CREATE TABLE intent_translations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    intent_en text NOT NULL UNIQUE,
    intent_fr text NOT NULL UNIQUE,
    category text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE translation_dictionary (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source_text text NOT NULL,
    source_language text NOT NULL CHECK (source_language IN ('en', 'fr')),
    target_language text NOT NULL CHECK (target_language IN ('en', 'fr')),
    translated_text text NOT NULL,
    context text,
    category text,
    verified boolean NOT NULL DEFAULT false,
    usage_count integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    confidence numeric(3,2) CHECK (confidence BETWEEN 0 AND 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_text, source_language, target_language),
    CHECK (source_language <> target_language)
);
CREATE TRIGGER translation_dictionary_updated_at BEFORE UPDATE ON translation_dictionary
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
REVOKE INSERT, UPDATE, DELETE ON intent_translations, translation_dictionary FROM growthgraph_app;

CREATE TABLE translation_cache (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    source_text text NOT NULL,
    source_language text NOT NULL CHECK (source_language IN ('en', 'fr')),
    target_language text NOT NULL CHECK (target_language IN ('en', 'fr')),
    translated_text text NOT NULL,
    context_type text NOT NULL CHECK (context_type IN ('lead_summary', 'intent', 'tone', 'ui_text')),
    quality_score numeric(3,2) CHECK (quality_score BETWEEN 0 AND 1),
    verified boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '90 days',
    CHECK (source_language <> target_language)
);
CREATE UNIQUE INDEX translation_cache_lookup_key ON translation_cache
    (tenant_id, source_language, target_language, context_type, md5(source_text));
CREATE INDEX translation_cache_expires_idx ON translation_cache (tenant_id, expires_at);

CREATE TABLE integration_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    -- Display prefix of the key used, never the key itself.
    api_key text,
    endpoint text NOT NULL,
    method text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
    request_body jsonb,
    response_status integer CHECK (response_status BETWEEN 100 AND 599),
    response_body jsonb,
    ip_address inet,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integration_logs_tenant_created_idx ON integration_logs (tenant_id, created_at);

-- 1536-dimension embeddings, kept as real[] so the server needs no extension.
CREATE TABLE avenir_profile_embeddings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    chunk_text text NOT NULL,
    embedding real[] NOT NULL CHECK (array_length(embedding, 1) = 1536),
    embedding_model text NOT NULL DEFAULT 'text-embedding-ada-002',
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX avenir_profile_embeddings_tenant_idx ON avenir_profile_embeddings (tenant_id, created_at);
