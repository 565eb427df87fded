-- Composite types for a `campaigns` page's relations read in one statement with the page
-- (src/db/nested.rs), as for leads' (the test of the 360's row types checks them too).

CREATE TYPE campaign_counters_row AS (
    campaign_id uuid,
    recipients bigint,
    sent bigint,
    delivered bigint,
    opened bigint,
    clicked bigint,
    failed bigint
);

CREATE TYPE campaign_execution_row AS (
    id uuid,
    campaign_id uuid,
    execution_type text,
    status text,
    execution_data jsonb,
    metrics jsonb,
    started_at timestamptz,
    completed_at timestamptz
);
