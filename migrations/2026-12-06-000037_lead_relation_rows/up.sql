-- Composite types for a `leads` page's relations read in one statement with the page
-- (src/db/nested.rs): each lists the columns of its model's selection, in the same order,
-- with the table's column types. The test of the 360's row types checks them too.

CREATE TYPE lead_action_row AS (
    id uuid,
    lead_id uuid,
    action_type text,
    tag text,
    "timestamp" timestamptz,
    conversion_outcome boolean,
    reversion_reason text,
    performed_by text
);

CREATE TYPE lead_note_row AS (
    id uuid,
    lead_id uuid,
    note text,
    performed_by text,
    created_at timestamptz,
    updated_at timestamptz
);
