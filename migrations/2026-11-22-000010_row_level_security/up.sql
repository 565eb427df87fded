-- Row-level security: the database's half of tenant isolation (the application scopes
-- every statement through its tenant handle; this catches anything that slips past it).
--
-- Every table with a tenant_id column gets RLS enabled and forced (so even the owner is
-- subject to it) and one fail-closed policy: with no tenant set, or '' left behind by a
-- committed set_config(..., true), current_tenant_id() is NULL and no row matches.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind = 'r'
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id()) '
            'WITH CHECK (tenant_id = current_tenant_id())', t.relname);
    END LOOP;
END
$$;

-- A tenant sees its own tenants row and cannot change or create tenants.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants USING (id = current_tenant_id());
REVOKE INSERT, UPDATE, DELETE ON tenants FROM growthgraph_app;
GRANT UPDATE (last_active_at) ON tenants TO growthgraph_app;

-- System paths that must cross tenants (resolving a bearer key to its tenant before any
-- tenant is known) go through these two functions. Reviewed SECURITY DEFINER: pinned
-- search_path, read-only, return only the matching key's own row, callable by the app role.
-- The migrating role keeps a SELECT policy on the two tables so the functions work when it
-- is not a superuser.
CREATE POLICY system_key_lookup ON api_keys FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY system_key_lookup ON tenants FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY system_key_lookup ON widget_configs FOR SELECT TO CURRENT_USER USING (true);

CREATE FUNCTION authenticate_api_key(p_key_hash bytea)
RETURNS TABLE (key_id uuid, tenant_id uuid, role text, key_name text, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT k.id, k.tenant_id, k.role, k.name, k.last_used_at
    FROM api_keys k
    WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
$$;

CREATE FUNCTION authenticate_widget_key(p_api_key text)
RETURNS TABLE (widget_id uuid, tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT w.id, w.tenant_id
    FROM widget_configs w
    WHERE w.api_key = p_api_key AND w.is_active
$$;

-- The in-server scheduler and job runner visit tenants one by one (each visit is an
-- ordinary tenant-scoped unit of work); this only tells them which tenants exist.
CREATE FUNCTION scheduler_tenant_ids()
RETURNS TABLE (tenant_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT t.id FROM tenants t ORDER BY t.id
$$;

REVOKE ALL ON FUNCTION scheduler_tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION scheduler_tenant_ids() TO growthgraph_app;
REVOKE ALL ON FUNCTION authenticate_api_key(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION authenticate_widget_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION authenticate_api_key(bytea) TO growthgraph_app;
GRANT EXECUTE ON FUNCTION authenticate_widget_key(text) TO growthgraph_app;
