DROP FUNCTION scheduler_tenant_ids();
DROP FUNCTION authenticate_widget_key(text);
DROP FUNCTION authenticate_api_key(bytea);
DROP POLICY system_key_lookup ON widget_configs;
DROP POLICY system_key_lookup ON tenants;
DROP POLICY system_key_lookup ON api_keys;

REVOKE UPDATE (last_active_at) ON tenants FROM growthgraph_app;
GRANT INSERT, UPDATE, DELETE ON tenants TO growthgraph_app;
DROP POLICY tenant_isolation ON tenants;
ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tenants DISABLE ROW LEVEL SECURITY;

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
    LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I', t.relname);
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t.relname);
    END LOOP;
END
$$;
