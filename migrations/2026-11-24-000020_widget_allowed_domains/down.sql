DROP FUNCTION authenticate_widget_key(text);

CREATE FUNCTION authenticate_widget_key(p_api_key text)
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

REVOKE ALL ON FUNCTION authenticate_widget_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION authenticate_widget_key(text) TO growthgraph_app;
