-- Restores the lookups of migration 000014 (they do not scope the transaction).

CREATE OR REPLACE FUNCTION authenticate_api_key(p_key_hash bytea)
RETURNS TABLE (key_id uuid, tenant_id uuid, role text, key_name text, last_used_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT k.id, k.tenant_id, k.role, k.name, k.last_used_at
    FROM api_keys k
    WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
END
$$;

CREATE OR REPLACE FUNCTION authenticate_widget_key(p_api_key text)
RETURNS TABLE (widget_id uuid, tenant_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT w.id, w.tenant_id
    FROM widget_configs w
    WHERE w.api_key = p_api_key AND w.is_active;
END
$$;
