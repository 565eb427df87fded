-- Wine club and loyalty (004): club programs, stages, enrollments and their history,
-- point rules, the points ledger, rewards and redemptions.

CREATE TABLE club_programs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL UNIQUE REFERENCES tenants ON DELETE CASCADE,
    name text NOT NULL,
    description text,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE TRIGGER club_programs_updated_at BEFORE UPDATE ON club_programs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE club_stages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    program_id uuid NOT NULL,
    name text NOT NULL,
    stage_order integer NOT NULL CHECK (stage_order > 0),
    discount_percentage numeric(5,2) NOT NULL CHECK (discount_percentage BETWEEN 0 AND 100),
    duration_months integer NOT NULL CHECK (duration_months > 0),
    min_purchase_amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (min_purchase_amount >= 0),
    crm_discount_id text,
    sync_status text NOT NULL DEFAULT 'pending'
        CHECK (sync_status IN ('pending', 'synced', 'failed')),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, program_id, stage_order),
    FOREIGN KEY (tenant_id, program_id) REFERENCES club_programs (tenant_id, id) ON DELETE CASCADE
);
CREATE TRIGGER club_stages_updated_at BEFORE UPDATE ON club_stages
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE club_enrollments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    program_id uuid NOT NULL,
    stage_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'expired', 'upgraded', 'cancelled')),
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at timestamptz,
    qualifying_order_id uuid,
    sync_status text NOT NULL DEFAULT 'pending'
        CHECK (sync_status IN ('pending', 'synced', 'failed')),
    last_synced_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK (expires_at > enrolled_at),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, program_id) REFERENCES club_programs (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, stage_id) REFERENCES club_stages (tenant_id, id),
    FOREIGN KEY (tenant_id, qualifying_order_id) REFERENCES orders (tenant_id, id)
);
-- One active enrollment per customer per program, enforced by the database.
CREATE UNIQUE INDEX club_enrollments_one_active_key
    ON club_enrollments (tenant_id, customer_id, program_id) WHERE status = 'active';
CREATE INDEX club_enrollments_customer_idx ON club_enrollments (tenant_id, customer_id, enrolled_at);
CREATE INDEX club_enrollments_program_idx ON club_enrollments (tenant_id, program_id);
CREATE INDEX club_enrollments_stage_idx ON club_enrollments (tenant_id, stage_id);
CREATE INDEX club_enrollments_order_idx ON club_enrollments (tenant_id, qualifying_order_id);
CREATE INDEX club_enrollments_expiry_idx ON club_enrollments (tenant_id, expires_at)
    WHERE status = 'active';
CREATE TRIGGER club_enrollments_updated_at BEFORE UPDATE ON club_enrollments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE club_extensions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    enrollment_id uuid NOT NULL,
    extension_type text NOT NULL
        CHECK (extension_type IN ('enrolled', 'renewal', 'upgrade', 'expired', 'cancelled')),
    from_stage_id uuid,
    to_stage_id uuid,
    previous_expires_at timestamptz,
    new_expires_at timestamptz,
    qualifying_order_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, enrollment_id) REFERENCES club_enrollments (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, from_stage_id) REFERENCES club_stages (tenant_id, id),
    FOREIGN KEY (tenant_id, to_stage_id) REFERENCES club_stages (tenant_id, id),
    FOREIGN KEY (tenant_id, qualifying_order_id) REFERENCES orders (tenant_id, id)
);
CREATE INDEX club_extensions_enrollment_idx ON club_extensions (tenant_id, enrollment_id, created_at);
CREATE INDEX club_extensions_from_stage_idx ON club_extensions (tenant_id, from_stage_id);
CREATE INDEX club_extensions_to_stage_idx ON club_extensions (tenant_id, to_stage_id);
CREATE INDEX club_extensions_order_idx ON club_extensions (tenant_id, qualifying_order_id);

CREATE TABLE loyalty_point_rules (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL UNIQUE REFERENCES tenants ON DELETE CASCADE,
    points_per_dollar numeric(8,2) NOT NULL DEFAULT 1 CHECK (points_per_dollar >= 0),
    bonus_percentage numeric(5,2) NOT NULL DEFAULT 0 CHECK (bonus_percentage BETWEEN 0 AND 100),
    min_membership_days integer NOT NULL DEFAULT 365 CHECK (min_membership_days >= 0),
    point_dollar_value numeric(12,2) NOT NULL DEFAULT 0.01 CHECK (point_dollar_value >= 0),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER loyalty_point_rules_updated_at BEFORE UPDATE ON loyalty_point_rules
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE loyalty_rewards (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name text NOT NULL,
    description text,
    reward_type text NOT NULL
        CHECK (reward_type IN ('merchandise', 'event', 'tasting', 'wine_point_sale')),
    points_cost integer NOT NULL CHECK (points_cost > 0),
    -- NULL inventory means unlimited.
    inventory integer CHECK (inventory >= 0),
    available_from timestamptz,
    available_until timestamptz,
    product_id uuid,
    sale_details jsonb NOT NULL DEFAULT '{}',
    image_url text,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK (available_until IS NULL OR available_from IS NULL OR available_until > available_from),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);
CREATE INDEX loyalty_rewards_tenant_created_idx ON loyalty_rewards (tenant_id, created_at, id);
CREATE INDEX loyalty_rewards_product_idx ON loyalty_rewards (tenant_id, product_id);
CREATE TRIGGER loyalty_rewards_updated_at BEFORE UPDATE ON loyalty_rewards
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE reward_redemptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    reward_id uuid NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    points_spent bigint NOT NULL CHECK (points_spent > 0),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'fulfilled', 'cancelled', 'refunded')),
    fulfillment_notes text,
    fulfilled_at timestamptz,
    cancelled_at timestamptz,
    refunded_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, reward_id) REFERENCES loyalty_rewards (tenant_id, id)
);
CREATE INDEX reward_redemptions_customer_idx
    ON reward_redemptions (tenant_id, customer_id, created_at DESC, id DESC);
CREATE INDEX reward_redemptions_reward_idx ON reward_redemptions (tenant_id, reward_id);
CREATE TRIGGER reward_redemptions_updated_at BEFORE UPDATE ON reward_redemptions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The points ledger: append-only, each row carries the running balance after it and its
-- position in the customer's ledger. The rules live in src/domain/loyalty/ops.rs
-- (append_ledger); the database enforces them again below.
CREATE TABLE point_transactions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    sequence bigint NOT NULL CHECK (sequence > 0),
    transaction_type text NOT NULL
        CHECK (transaction_type IN ('earned', 'redeemed', 'bonus', 'adjusted', 'refunded')),
    points bigint NOT NULL CHECK (points <> 0),
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    order_id uuid,
    reward_id uuid,
    redemption_id uuid,
    description text,
    -- clock_timestamp: entries of one transaction keep their order in time.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id),
    FOREIGN KEY (tenant_id, reward_id) REFERENCES loyalty_rewards (tenant_id, id),
    FOREIGN KEY (tenant_id, redemption_id) REFERENCES reward_redemptions (tenant_id, id)
);
CREATE UNIQUE INDEX point_transactions_customer_sequence_key
    ON point_transactions (tenant_id, customer_id, sequence);
CREATE INDEX point_transactions_customer_idx
    ON point_transactions (tenant_id, customer_id, created_at DESC, id DESC);
CREATE INDEX point_transactions_order_idx ON point_transactions (tenant_id, order_id);
CREATE INDEX point_transactions_reward_idx ON point_transactions (tenant_id, reward_id);
CREATE INDEX point_transactions_redemption_idx ON point_transactions (tenant_id, redemption_id);

-- Ledger continuity: each entry follows the previous one of its customer (sequence + 1,
-- balance_after = previous balance_after + points). With balance_after >= 0 and the
-- unique sequence this makes the balance exact and never negative under any concurrency.
CREATE FUNCTION point_transactions_check_continuity() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    previous record;
BEGIN
    SELECT sequence, balance_after INTO previous
    FROM point_transactions
    WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.customer_id
    ORDER BY sequence DESC LIMIT 1;
    IF NEW.sequence <> coalesce(previous.sequence, 0) + 1
       OR NEW.balance_after <> coalesce(previous.balance_after, 0) + NEW.points THEN
        RAISE EXCEPTION 'points ledger out of sequence' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER point_transactions_continuity BEFORE INSERT ON point_transactions
    FOR EACH ROW EXECUTE FUNCTION point_transactions_check_continuity();

-- At commit, the customer's cached balance equals the last ledger entry.
CREATE FUNCTION point_transactions_check_balance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT points_balance FROM customers WHERE tenant_id = NEW.tenant_id AND id = NEW.customer_id)
       IS DISTINCT FROM (SELECT balance_after FROM point_transactions
                         WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.customer_id
                         ORDER BY sequence DESC LIMIT 1) THEN
        RAISE EXCEPTION 'customer points balance does not match the ledger' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER point_transactions_balance AFTER INSERT ON point_transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION point_transactions_check_balance();

-- Append-only for the server's role.
REVOKE UPDATE, DELETE ON point_transactions FROM growthgraph_app;
