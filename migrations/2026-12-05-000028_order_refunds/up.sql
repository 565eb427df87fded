-- Refunds of orders (seed 004: a returned order must not keep the points it earned).
-- Each refund reverses its share of the points the order earned (a `refunded` ledger
-- entry, never taking the balance below zero: what could not be taken back is kept as
-- the refund's shortfall).
CREATE TABLE order_refunds (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    order_id uuid NOT NULL,
    amount numeric(12,2) NOT NULL CHECK (amount > 0),
    points_reversed bigint NOT NULL CHECK (points_reversed >= 0),
    points_shortfall bigint NOT NULL CHECK (points_shortfall >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX order_refunds_order_idx ON order_refunds (tenant_id, order_id, created_at);
ALTER TABLE order_refunds ENABLE ROW LEVEL SECURITY;
ALTER TABLE order_refunds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON order_refunds
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
