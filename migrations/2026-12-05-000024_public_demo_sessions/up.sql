-- Public demo sessions (seed 000): a visitor starts one on a tenant's page without a key,
-- naming the tenant by its slug; the session's token (shown once, stored as its SHA-256
-- in hex) then names it for shares and the conversion. These two functions are the only
-- ways from a slug or a token to a tenant.
CREATE FUNCTION demo_tenant(p_slug text)
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT t.id FROM tenants t WHERE t.slug = p_slug
$$;
REVOKE ALL ON FUNCTION demo_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demo_tenant(text) TO growthgraph_app;

CREATE FUNCTION demo_session_tenant(p_token_hash text)
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT d.tenant_id FROM demo_sessions d WHERE d.session_token = p_token_hash
$$;
REVOKE ALL ON FUNCTION demo_session_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demo_session_tenant(text) TO growthgraph_app;

-- The sessions one visitor (IP hash) started lately, for the per-visitor limit.
CREATE INDEX demo_sessions_visitor_idx ON demo_sessions (tenant_id, ip_hash, created_at);

-- `/metrics`: rows purged by the retention task so far, per kind, over every tenant.
CREATE FUNCTION retention_metrics()
RETURNS TABLE (kind text, purged bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT e.key, sum((e.value #>> '{}')::numeric)::bigint
    FROM scheduled_runs r, jsonb_each(r.result) e
    WHERE r.task = 'retention' AND jsonb_typeof(e.value) = 'number'
    GROUP BY e.key
    ORDER BY 1
$$;
REVOKE ALL ON FUNCTION retention_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION retention_metrics() TO growthgraph_app;
