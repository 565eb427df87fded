-- Every server instance hears of an API key that stops being what it was (revoked, given
-- another role, deleted) as its change commits, on the connection it listens on for
-- events: it forgets the key, so the key's next request is looked up on the primary
-- instead of being confirmed on a read replica that may not have replayed the change yet.
-- The payload is the key's id.

CREATE FUNCTION notify_api_key_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
BEGIN
    PERFORM pg_notify('gg_api_keys_changed', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_key_changed
    AFTER UPDATE OF revoked_at, role, key_hash, tenant_id ON api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION notify_api_key_change();

CREATE TRIGGER api_key_deleted
    AFTER DELETE ON api_keys
    FOR EACH ROW
    EXECUTE FUNCTION notify_api_key_change();
