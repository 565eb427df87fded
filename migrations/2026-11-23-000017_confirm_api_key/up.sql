-- A request whose key the server has seen recently starts from what the database said
-- about it then, and has the database confirm it in the request's own snapshot instead
-- of looking it up first: the confirmation is sent with the request's first statement
-- (one round trip for both). It scopes the transaction to the key's tenant as the lookup
-- does, and fails unless the key still exists, unrevoked, with that id, tenant and role;
-- the failure aborts the snapshot, so nothing after it runs, and the server then answers
-- from a fresh lookup (401 for a revoked key). Revoked keys still stop working at once.

CREATE FUNCTION confirm_api_key(p_key_hash bytea, p_key_id uuid, p_tenant_id uuid, p_role text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
BEGIN
    PERFORM 1
    FROM api_keys a
    WHERE a.key_hash = p_key_hash AND a.revoked_at IS NULL
      AND a.id = p_key_id AND a.tenant_id = p_tenant_id AND a.role = p_role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'API key not confirmed' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    PERFORM set_config('app.tenant_id', p_tenant_id::text, true);
END
$$;

REVOKE ALL ON FUNCTION confirm_api_key(bytea, uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION confirm_api_key(bytea, uuid, uuid, text) TO growthgraph_app;
