-- The widget key lookup also returns the widget's allowed domains: the server refuses a
-- widget key used from a web page (its `Origin`) of a site the widget does not allow.
-- Still the presented key's own row only.
DROP FUNCTION authenticate_widget_key(text);

CREATE FUNCTION authenticate_widget_key(p_api_key text)
RETURNS TABLE (widget_id uuid, tenant_id uuid, allowed_domains text[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    w record;
BEGIN
    SELECT c.id, c.tenant_id, c.allowed_domains INTO w
    FROM widget_configs c
    WHERE c.api_key = p_api_key AND c.is_active;
    IF FOUND THEN
        PERFORM set_config('app.tenant_id', w.tenant_id::text, true);
        RETURN QUERY SELECT w.id, w.tenant_id, w.allowed_domains;
    END IF;
END
$$;

REVOKE ALL ON FUNCTION authenticate_widget_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION authenticate_widget_key(text) TO growthgraph_app;
