-- A request's read snapshot begins with its key lookup (one round trip for both). The
-- lookup functions therefore also scope the calling transaction to the key's tenant:
-- `app.tenant_id` is set transaction-locally (row-level security reads it) when a key is
-- found. Called outside a transaction block, the setting ends with the statement.
-- VOLATILE: they now change a setting.

CREATE OR REPLACE FUNCTION authenticate_api_key(p_key_hash bytea)
RETURNS TABLE (key_id uuid, tenant_id uuid, role text, key_name text, last_used_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    k record;
BEGIN
    SELECT a.id, a.tenant_id, a.role, a.name, a.last_used_at INTO k
    FROM api_keys a
    WHERE a.key_hash = p_key_hash AND a.revoked_at IS NULL;
    IF FOUND THEN
        PERFORM set_config('app.tenant_id', k.tenant_id::text, true);
        RETURN QUERY SELECT k.id, k.tenant_id, k.role, k.name, k.last_used_at;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION authenticate_widget_key(p_api_key text)
RETURNS TABLE (widget_id uuid, tenant_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    w record;
BEGIN
    SELECT c.id, c.tenant_id INTO w
    FROM widget_configs c
    WHERE c.api_key = p_api_key AND c.is_active;
    IF FOUND THEN
        PERFORM set_config('app.tenant_id', w.tenant_id::text, true);
        RETURN QUERY SELECT w.id, w.tenant_id;
    END IF;
END
$$;
