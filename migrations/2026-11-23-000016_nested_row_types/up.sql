-- Composite types for the nested rows of the customer 360 (src/db/nested.rs): each lists
-- the columns of a model's selection, in the same order, with the table's column types
-- (numerics without their precision, so the cast is a relabelling, not a coercion).
--
-- `ROW(…)::<type>` takes its tuple descriptor from the type cache. An anonymous `ROW(…)`
-- builds and registers one on every execution, once per nested part: a measurable share
-- of the 360 statement's cost. A test checks each type against its table and model.

CREATE TYPE enrollment_row AS (
    id uuid,
    customer_id uuid,
    program_id uuid,
    stage_id uuid,
    status text,
    enrolled_at timestamptz,
    expires_at timestamptz,
    ended_at timestamptz,
    qualifying_order_id uuid,
    sync_status text,
    created_at timestamptz
);

CREATE TYPE club_stage_row AS (
    id uuid,
    program_id uuid,
    name text,
    stage_order integer,
    discount_percentage numeric,
    duration_months integer,
    min_purchase_amount numeric,
    sync_status text,
    is_active boolean
);

CREATE TYPE activity_row AS (
    id uuid,
    customer_id uuid,
    activity_type text,
    activity_description text,
    activity_data jsonb,
    created_at timestamptz
);

CREATE TYPE order_row AS (
    id uuid,
    customer_id uuid,
    crm_order_id text,
    order_number text,
    status text,
    subtotal numeric,
    discount_total numeric,
    order_total numeric,
    is_club_shipment boolean,
    line_items jsonb,
    ordered_at timestamptz,
    created_at timestamptz
);

CREATE TYPE point_transaction_row AS (
    id uuid,
    customer_id uuid,
    sequence bigint,
    transaction_type text,
    points bigint,
    balance_after bigint,
    order_id uuid,
    reward_id uuid,
    redemption_id uuid,
    description text,
    created_at timestamptz
);

CREATE TYPE redemption_row AS (
    id uuid,
    customer_id uuid,
    reward_id uuid,
    quantity integer,
    points_spent bigint,
    status text,
    fulfilled_at timestamptz,
    cancelled_at timestamptz,
    refunded_at timestamptz,
    created_at timestamptz
);

CREATE TYPE communication_row AS (
    id uuid,
    customer_id uuid,
    channel text,
    direction text,
    provider text,
    recipient text,
    subject text,
    status text,
    sent_at timestamptz,
    delivered_at timestamptz,
    opened_at timestamptz,
    clicked_at timestamptz,
    created_at timestamptz
);

CREATE TYPE campaign_recipient_row AS (
    id uuid,
    campaign_id uuid,
    execution_id uuid,
    customer_id uuid,
    email text,
    phone text,
    channel text,
    status text,
    sent_at timestamptz,
    delivered_at timestamptz,
    opened_at timestamptz,
    clicked_at timestamptz,
    failed_at timestamptz,
    created_at timestamptz
);

CREATE TYPE campaign_row AS (
    id uuid,
    name text,
    description text,
    status text,
    channel text,
    workflow_data jsonb,
    target_group_id uuid,
    target_segment text,
    scheduled_at timestamptz,
    started_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz
);

CREATE TYPE communication_preference_row AS (
    id uuid,
    customer_id uuid,
    channel text,
    communication_type text,
    opted_in boolean,
    unsubscribed_at timestamptz,
    unsubscribe_reason text,
    updated_at timestamptz
);

CREATE TYPE lead_row AS (
    id uuid,
    name text,
    email text,
    message text,
    ai_summary text,
    intent text,
    tone text,
    urgency text,
    confidence_score numeric,
    archived boolean,
    deleted boolean,
    current_tag text,
    language text,
    customer_id uuid,
    created_at timestamptz
);
