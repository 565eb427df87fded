-- Customers and commerce: 004 customers merged with 003 customer_360, 003
-- customer_activities, 004 products, orders, discounts and platform_sessions.

CREATE TABLE customers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    -- 003 customer_360.customer_id: the caller's own identifier.
    external_id text CHECK (length(external_id) BETWEEN 1 AND 200),
    crm_customer_id text,
    email text CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    name text,
    first_name text,
    last_name text,
    phone text,
    segment text,
    churn_risk text CHECK (churn_risk IN ('low', 'medium', 'high')),
    ltv numeric(12,2) NOT NULL DEFAULT 0,
    total_deposit numeric(12,2) NOT NULL DEFAULT 0,
    total_withdraw numeric(12,2) NOT NULL DEFAULT 0,
    last_activity_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}',
    is_club_member boolean NOT NULL DEFAULT false,
    points_balance bigint NOT NULL DEFAULT 0 CHECK (points_balance >= 0),
    points_lifetime bigint NOT NULL DEFAULT 0 CHECK (points_lifetime >= 0),
    cumulative_days integer NOT NULL DEFAULT 0 CHECK (cumulative_days >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    CHECK (email IS NOT NULL OR external_id IS NOT NULL)
);
CREATE UNIQUE INDEX customers_tenant_external_id_key ON customers (tenant_id, external_id);
CREATE UNIQUE INDEX customers_tenant_email_key ON customers (tenant_id, lower(email));
CREATE INDEX customers_tenant_created_idx ON customers (tenant_id, created_at, id);
CREATE INDEX customers_tenant_ltv_idx ON customers (tenant_id, ltv, id);
CREATE INDEX customers_tenant_last_activity_idx ON customers (tenant_id, last_activity_at, id);
CREATE INDEX customers_tenant_name_idx ON customers (tenant_id, name, id);
CREATE INDEX customers_tenant_segment_idx ON customers (tenant_id, segment);
CREATE TRIGGER customers_updated_at BEFORE UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE customer_activities (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    activity_type text NOT NULL CHECK (activity_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    activity_description text,
    activity_data jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX customer_activities_customer_idx
    ON customer_activities (tenant_id, customer_id, created_at DESC, id DESC);

CREATE TABLE products (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    crm_product_id text,
    sku text,
    title text NOT NULL,
    wine_type text CHECK (wine_type IN
        ('red', 'white', 'rose', 'sparkling', 'dessert', 'fortified', 'orange', 'other')),
    vintage integer CHECK (vintage BETWEEN 1800 AND 2200),
    varietal text,
    price numeric(12,2) NOT NULL DEFAULT 0 CHECK (price >= 0),
    inventory integer CHECK (inventory >= 0),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX products_tenant_crm_id_key ON products (tenant_id, crm_product_id);
CREATE TRIGGER products_updated_at BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    crm_order_id text,
    order_number text,
    status text NOT NULL DEFAULT 'paid'
        CHECK (status IN ('pending', 'paid', 'fulfilled', 'cancelled', 'refunded')),
    subtotal numeric(12,2) NOT NULL DEFAULT 0 CHECK (subtotal >= 0),
    discount_total numeric(12,2) NOT NULL DEFAULT 0 CHECK (discount_total >= 0),
    order_total numeric(12,2) NOT NULL CHECK (order_total >= 0),
    is_club_shipment boolean NOT NULL DEFAULT false,
    line_items jsonb NOT NULL DEFAULT '[]',
    ordered_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX orders_customer_idx ON orders (tenant_id, customer_id, ordered_at DESC, id DESC);
CREATE UNIQUE INDEX orders_tenant_crm_id_key ON orders (tenant_id, crm_order_id);
CREATE TRIGGER orders_updated_at BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE discounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    crm_discount_id text,
    code text NOT NULL,
    title text,
    discount_type text NOT NULL CHECK (discount_type IN ('percentage', 'fixed_amount')),
    value numeric(12,2) NOT NULL CHECK (value >= 0),
    starts_at timestamptz,
    ends_at timestamptz,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, code),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at)
);
CREATE TRIGGER discounts_updated_at BEFORE UPDATE ON discounts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- 004 platform_sessions: OAuth tokens for the tenant's commerce platform, encrypted at rest.
CREATE TABLE platform_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    platform text NOT NULL CHECK (platform IN ('commerce7', 'shopify')),
    shop text NOT NULL,
    access_token_encrypted bytea NOT NULL,
    refresh_token_encrypted bytea,
    scope text,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, platform, shop)
);
CREATE TRIGGER platform_sessions_updated_at BEFORE UPDATE ON platform_sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
