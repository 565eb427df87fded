-- Platform: tenants, API keys, the event outbox, idempotency keys, the job queue,
-- the server's unprivileged role and the shared updated_at trigger.

-- The server runs its queries as this role (SET ROLE after connecting). It is not a
-- superuser, cannot bypass row-level security and owns nothing. Roles are cluster-wide,
-- so down.sql leaves the role itself in place and only revokes what this database granted.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'growthgraph_app') THEN
        CREATE ROLE growthgraph_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    EXECUTE format('GRANT growthgraph_app TO %I', current_user);
END
$$;

GRANT USAGE ON SCHEMA public TO growthgraph_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO growthgraph_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO growthgraph_app;

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END
$$;

-- The tenant of the current unit of work, or NULL. set_config(..., true) leaves '' behind
-- after commit, so '' means "no tenant" as well: policies fail closed.
CREATE FUNCTION current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.tenant_id', true), '')::uuid
$$;

-- 001 clients + 004 clients + 000 companies: one row per paying business.
CREATE TABLE tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email text,
    language text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr')),
    email_tone text NOT NULL DEFAULT 'Professional'
        CHECK (email_tone IN ('Professional', 'Friendly', 'Formal', 'Energetic')),
    ai_personalized_reply boolean NOT NULL DEFAULT false,
    booking_link text,
    industry text,
    last_connection timestamptz,
    is_test boolean NOT NULL DEFAULT false,
    is_internal boolean NOT NULL DEFAULT false,
    tenant_shop text,
    crm_type text CHECK (crm_type IN ('commerce7', 'shopify')),
    org_name text,
    org_contact text,
    email_preferences jsonb NOT NULL
        DEFAULT '{"marketing": true, "sequences": true, "weekly_digest": true}',
    last_active_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER tenants_updated_at BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role text NOT NULL CHECK (role IN ('admin', 'analyst', 'partner')),
    key_hash bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    key_prefix text NOT NULL,
    last_used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at, id);
CREATE TRIGGER api_keys_updated_at BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The transactional outbox: written in the same transaction as the change it describes.
CREATE TABLE domain_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    event_type text NOT NULL CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    subject_id uuid NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX domain_events_tenant_id_idx ON domain_events (tenant_id, id);
CREATE INDEX domain_events_tenant_type_idx ON domain_events (tenant_id, event_type, id);

CREATE TABLE idempotency_keys (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    operation text NOT NULL,
    request_hash bytea NOT NULL,
    response jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX idempotency_keys_tenant_expires_idx ON idempotency_keys (tenant_id, expires_at);

-- 001 queue_jobs + 004 crm_sync_queue: one queue, job_type tells them apart.
CREATE TABLE queue_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    job_type text NOT NULL CHECK (job_type IN (
        'daily_prospect_queue', 'bulk_email', 'intelligence_analysis',
        'crm_sync', 'webhook_delivery', 'growth_insights_refresh')),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    payload jsonb NOT NULL DEFAULT '{}',
    result jsonb,
    error text,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 8 CHECK (max_attempts > 0),
    run_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_jobs_tenant_status_idx ON queue_jobs (tenant_id, status, run_at);
CREATE INDEX queue_jobs_due_idx ON queue_jobs (run_at) WHERE status = 'pending';
CREATE TRIGGER queue_jobs_updated_at BEFORE UPDATE ON queue_jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
