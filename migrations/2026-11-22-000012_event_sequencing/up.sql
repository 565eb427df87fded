-- Event positions: the cursor partners resume from. Ids are assigned at insert, but
-- transactions commit in another order, so a reader paging by id could skip an event
-- that commits late. Positions are assigned only to committed events, by one sequencer
-- at a time (an advisory lock), in id order: a reader paging by position never skips.
-- Every server instance runs the sequencer every few milliseconds (src/events.rs); when
-- it numbers new events it notifies 'gg_events_sequenced' so every instance fans out.
ALTER TABLE domain_events ADD COLUMN position bigint UNIQUE;
CREATE INDEX domain_events_tenant_position_idx ON domain_events (tenant_id, position) WHERE position IS NOT NULL;
CREATE INDEX domain_events_unsequenced_idx ON domain_events (id) WHERE position IS NULL;

-- Reviewed SECURITY DEFINER: sequencing crosses tenants (it reads and numbers every
-- tenant's new events) but returns only the highest position, never event data.
CREATE POLICY system_sequencer ON domain_events FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);

CREATE FUNCTION sequence_domain_events() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    base bigint;
    last bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7152289435) THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(max(position), 0) INTO base FROM domain_events;
    WITH ordered AS (
        SELECT id, row_number() OVER (ORDER BY id) AS rn
        FROM domain_events WHERE position IS NULL
    )
    UPDATE domain_events e SET position = base + o.rn
    FROM ordered o WHERE e.id = o.id;
    SELECT coalesce(max(position), 0) INTO last FROM domain_events;
    IF last > base THEN
        PERFORM pg_notify('gg_events_sequenced', last::text);
    END IF;
    RETURN last;
END
$$;
REVOKE ALL ON FUNCTION sequence_domain_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sequence_domain_events() TO growthgraph_app;
