-- Rollups: partial aggregates of customers, orders and campaign recipients, so the
-- analysts' aggregates read a few thousand rows instead of millions (src/db/aggregate.rs
-- uses them when a query's filter, groups and numbers fit; anything else reads the rows).
--
-- Statement triggers keep them in the same transaction as every change by appending
-- delta rows (+1 per new row, -1 per old one, with the numbers): a write never updates a
-- shared row, so concurrent writers never wait on each other. compact_rollups() (run by
-- the scheduler) folds a tenant's new deltas into one row per key. Every answer sums all
-- rows of a key, compacted or not, so it is exact whenever it runs.

CREATE TABLE customer_rollups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    segment text,
    churn_risk text CHECK (churn_risk IN ('low', 'medium', 'high')),
    is_club_member boolean NOT NULL,
    n bigint NOT NULL,
    ltv numeric NOT NULL,
    compacted boolean NOT NULL DEFAULT false
);
CREATE INDEX customer_rollups_tenant ON customer_rollups (tenant_id);
CREATE INDEX customer_rollups_fresh ON customer_rollups (tenant_id) WHERE NOT compacted;

-- `bucket`: the quarter hour `ordered_at` falls in (every time zone's hours and days
-- start on a quarter hour, so series of any zone sum whole buckets).
CREATE TABLE order_rollups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    bucket timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'paid', 'fulfilled', 'cancelled', 'refunded')),
    is_club_shipment boolean NOT NULL,
    n bigint NOT NULL,
    order_total numeric NOT NULL,
    subtotal numeric NOT NULL,
    discount_total numeric NOT NULL,
    compacted boolean NOT NULL DEFAULT false
);
CREATE INDEX order_rollups_tenant_bucket ON order_rollups (tenant_id, bucket);
-- Orders by time: the quarter hours a range cuts through are read from the rows.
CREATE INDEX orders_tenant_ordered_idx ON orders (tenant_id, ordered_at);
CREATE INDEX order_rollups_fresh ON order_rollups (tenant_id) WHERE NOT compacted;

-- The funnel steps as counts of recipients that reached them.
CREATE TABLE recipient_rollups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'sent', 'delivered', 'opened', 'clicked', 'failed')),
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'phone', 'push')),
    n bigint NOT NULL,
    sent bigint NOT NULL,
    delivered bigint NOT NULL,
    opened bigint NOT NULL,
    clicked bigint NOT NULL,
    failed bigint NOT NULL,
    compacted boolean NOT NULL DEFAULT false
);
CREATE INDEX recipient_rollups_campaign ON recipient_rollups (tenant_id, campaign_id);
CREATE INDEX recipient_rollups_fresh ON recipient_rollups (tenant_id) WHERE NOT compacted;

-- The deltas of one statement (an update that changes none of a rollup's keys and numbers
-- adds nothing; PostgreSQL allows neither a column list nor a condition on triggers with
-- transition tables).
-- Rows of a tenant being deleted (its rows cascading away) add nothing either: its
-- rollups cascade away too.
CREATE FUNCTION customer_rollup_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv)
        SELECT tenant_id, segment, churn_risk, is_club_member, count(*), sum(ltv)
        FROM new_rows WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = new_rows.tenant_id)
        GROUP BY 1, 2, 3, 4;
    ELSE
        INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv)
        SELECT tenant_id, segment, churn_risk, is_club_member, -count(*), -sum(ltv)
        FROM old_rows WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = old_rows.tenant_id)
        GROUP BY 1, 2, 3, 4;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_rollups_insert AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION customer_rollup_deltas();
-- Customers change one at a time (an order, a redemption, an enrollment), most often in
-- nothing a rollup keeps (a redemption moves points only): a row trigger whose condition
-- PostgreSQL checks without calling a function costs those updates nothing.
CREATE FUNCTION customer_rollup_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.tenant_id, NEW.segment, NEW.churn_risk, NEW.is_club_member)
        IS NOT DISTINCT FROM (OLD.tenant_id, OLD.segment, OLD.churn_risk, OLD.is_club_member) THEN
        INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv)
        VALUES (NEW.tenant_id, NEW.segment, NEW.churn_risk, NEW.is_club_member, 0, NEW.ltv - OLD.ltv);
    ELSE
        INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv)
        VALUES (NEW.tenant_id, NEW.segment, NEW.churn_risk, NEW.is_club_member, 1, NEW.ltv),
               (OLD.tenant_id, OLD.segment, OLD.churn_risk, OLD.is_club_member, -1, -OLD.ltv);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER customer_rollups_update AFTER UPDATE ON customers FOR EACH ROW
    WHEN ((NEW.segment, NEW.churn_risk, NEW.is_club_member, NEW.ltv, NEW.tenant_id)
          IS DISTINCT FROM (OLD.segment, OLD.churn_risk, OLD.is_club_member, OLD.ltv, OLD.tenant_id))
    EXECUTE FUNCTION customer_rollup_change();
CREATE TRIGGER customer_rollups_delete AFTER DELETE ON customers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION customer_rollup_deltas();

-- The quarter hour holding `at`.
CREATE FUNCTION quarter_hour(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_timestamp(floor(extract(epoch FROM at) / 900) * 900) $$;

CREATE FUNCTION order_rollup_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO order_rollups (tenant_id, bucket, status, is_club_shipment, n, order_total, subtotal, discount_total)
        SELECT tenant_id, quarter_hour(ordered_at), status, is_club_shipment, count(*), sum(order_total), sum(subtotal), sum(discount_total)
        FROM new_rows WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = new_rows.tenant_id)
        GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO order_rollups (tenant_id, bucket, status, is_club_shipment, n, order_total, subtotal, discount_total)
        SELECT tenant_id, bucket, status, is_club_shipment, sum(n), sum(order_total), sum(subtotal), sum(discount_total)
        FROM (SELECT tenant_id, quarter_hour(ordered_at) AS bucket, status, is_club_shipment, 1 AS n, order_total, subtotal, discount_total FROM new_rows
              UNION ALL
              SELECT tenant_id, quarter_hour(ordered_at), status, is_club_shipment, -1, -order_total, -subtotal, -discount_total FROM old_rows) d
        WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = d.tenant_id)
        GROUP BY 1, 2, 3, 4
        HAVING sum(n) <> 0 OR sum(order_total) <> 0 OR sum(subtotal) <> 0 OR sum(discount_total) <> 0;
    ELSE
        INSERT INTO order_rollups (tenant_id, bucket, status, is_club_shipment, n, order_total, subtotal, discount_total)
        SELECT tenant_id, quarter_hour(ordered_at), status, is_club_shipment, -count(*), -sum(order_total), -sum(subtotal), -sum(discount_total)
        FROM old_rows WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = old_rows.tenant_id)
        GROUP BY 1, 2, 3, 4;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER order_rollups_insert AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION order_rollup_deltas();
CREATE TRIGGER order_rollups_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION order_rollup_deltas();
CREATE TRIGGER order_rollups_delete AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION order_rollup_deltas();

CREATE FUNCTION recipient_rollup_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO recipient_rollups (tenant_id, campaign_id, status, channel, n, sent, delivered, opened, clicked, failed)
        SELECT tenant_id, campaign_id, status, channel, count(*), count(sent_at), count(delivered_at), count(opened_at), count(clicked_at), count(failed_at)
        FROM new_rows WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = new_rows.tenant_id)
        GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO recipient_rollups (tenant_id, campaign_id, status, channel, n, sent, delivered, opened, clicked, failed)
        SELECT tenant_id, campaign_id, status, channel, sum(n), sum(sent), sum(delivered), sum(opened), sum(clicked), sum(failed)
        FROM (SELECT tenant_id, campaign_id, status, channel, 1 AS n, (sent_at IS NOT NULL)::int AS sent, (delivered_at IS NOT NULL)::int AS delivered,
                     (opened_at IS NOT NULL)::int AS opened, (clicked_at IS NOT NULL)::int AS clicked, (failed_at IS NOT NULL)::int AS failed FROM new_rows
              UNION ALL
              SELECT tenant_id, campaign_id, status, channel, -1, -(sent_at IS NOT NULL)::int, -(delivered_at IS NOT NULL)::int,
                     -(opened_at IS NOT NULL)::int, -(clicked_at IS NOT NULL)::int, -(failed_at IS NOT NULL)::int FROM old_rows) d
        WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = d.tenant_id)
        GROUP BY 1, 2, 3, 4
        HAVING sum(n) <> 0 OR sum(sent) <> 0 OR sum(delivered) <> 0 OR sum(opened) <> 0 OR sum(clicked) <> 0 OR sum(failed) <> 0;
    ELSE
        INSERT INTO recipient_rollups (tenant_id, campaign_id, status, channel, n, sent, delivered, opened, clicked, failed)
        SELECT tenant_id, campaign_id, status, channel, -count(*), -count(sent_at), -count(delivered_at), -count(opened_at), -count(clicked_at), -count(failed_at)
        FROM old_rows WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = old_rows.tenant_id)
        GROUP BY 1, 2, 3, 4;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER recipient_rollups_insert AFTER INSERT ON campaign_recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recipient_rollup_deltas();
CREATE TRIGGER recipient_rollups_update AFTER UPDATE ON campaign_recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recipient_rollup_deltas();
CREATE TRIGGER recipient_rollups_delete AFTER DELETE ON campaign_recipients
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION recipient_rollup_deltas();

-- Folds the current tenant's new deltas into one row per key (keys summing to nothing
-- vanish). Each delta row is deleted once and its numbers inserted once: compactions
-- running at once, or writes committing meanwhile, never count a row twice. Returns the
-- rows folded.
CREATE FUNCTION compact_rollups() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    folded bigint := 0;
    step bigint;
BEGIN
    WITH fresh AS (
        SELECT DISTINCT segment, churn_risk, is_club_member FROM customer_rollups
        WHERE tenant_id = current_tenant_id() AND NOT compacted
    ), gone AS (
        DELETE FROM customer_rollups r USING fresh f
        WHERE r.tenant_id = current_tenant_id() AND r.segment IS NOT DISTINCT FROM f.segment
          AND r.churn_risk IS NOT DISTINCT FROM f.churn_risk AND r.is_club_member = f.is_club_member
        RETURNING r.*
    ), kept AS (
        INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv, compacted)
        SELECT tenant_id, segment, churn_risk, is_club_member, sum(n), sum(ltv), true FROM gone
        GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 OR sum(ltv) <> 0
        RETURNING 1
    )
    SELECT count(*) INTO step FROM gone;
    folded := folded + step;

    WITH fresh AS (
        SELECT DISTINCT bucket, status, is_club_shipment FROM order_rollups
        WHERE tenant_id = current_tenant_id() AND NOT compacted
    ), gone AS (
        DELETE FROM order_rollups r USING fresh f
        WHERE r.tenant_id = current_tenant_id() AND r.bucket = f.bucket AND r.status = f.status
          AND r.is_club_shipment = f.is_club_shipment
        RETURNING r.*
    ), kept AS (
        INSERT INTO order_rollups (tenant_id, bucket, status, is_club_shipment, n, order_total, subtotal, discount_total, compacted)
        SELECT tenant_id, bucket, status, is_club_shipment, sum(n), sum(order_total), sum(subtotal), sum(discount_total), true
        FROM gone GROUP BY 1, 2, 3, 4
        HAVING sum(n) <> 0 OR sum(order_total) <> 0 OR sum(subtotal) <> 0 OR sum(discount_total) <> 0
        RETURNING 1
    )
    SELECT count(*) INTO step FROM gone;
    folded := folded + step;

    WITH fresh AS (
        SELECT DISTINCT campaign_id, status, channel FROM recipient_rollups
        WHERE tenant_id = current_tenant_id() AND NOT compacted
    ), gone AS (
        DELETE FROM recipient_rollups r USING fresh f
        WHERE r.tenant_id = current_tenant_id() AND r.campaign_id = f.campaign_id
          AND r.status = f.status AND r.channel = f.channel
        RETURNING r.*
    ), kept AS (
        INSERT INTO recipient_rollups (tenant_id, campaign_id, status, channel, n, sent, delivered, opened, clicked, failed, compacted)
        SELECT tenant_id, campaign_id, status, channel, sum(n), sum(sent), sum(delivered), sum(opened), sum(clicked), sum(failed), true
        FROM gone GROUP BY 1, 2, 3, 4
        HAVING sum(n) <> 0 OR sum(sent) <> 0 OR sum(delivered) <> 0 OR sum(opened) <> 0 OR sum(clicked) <> 0 OR sum(failed) <> 0
        RETURNING 1
    )
    SELECT count(*) INTO step FROM gone;
    RETURN folded + step;
END
$$;

-- The rows already there, compacted.
INSERT INTO customer_rollups (tenant_id, segment, churn_risk, is_club_member, n, ltv, compacted)
SELECT tenant_id, segment, churn_risk, is_club_member, count(*), sum(ltv), true
FROM customers GROUP BY 1, 2, 3, 4;
INSERT INTO order_rollups (tenant_id, bucket, status, is_club_shipment, n, order_total, subtotal, discount_total, compacted)
SELECT tenant_id, quarter_hour(ordered_at), status, is_club_shipment, count(*), sum(order_total), sum(subtotal), sum(discount_total), true
FROM orders GROUP BY 1, 2, 3, 4;
INSERT INTO recipient_rollups (tenant_id, campaign_id, status, channel, n, sent, delivered, opened, clicked, failed, compacted)
SELECT tenant_id, campaign_id, status, channel, count(*), count(sent_at), count(delivered_at), count(opened_at), count(clicked_at), count(failed_at), true
FROM campaign_recipients GROUP BY 1, 2, 3, 4;

-- Row-level security, once the rows already there are in.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customer_rollups', 'order_rollups', 'recipient_rollups'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_tenant_id()) '
            'WITH CHECK (tenant_id = current_tenant_id())', t);
    END LOOP;
END
$$;
