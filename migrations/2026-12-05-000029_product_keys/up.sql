-- A product is known by its CRM id (already unique per tenant), else its SKU: each names
-- one product per tenant (upsertProduct matches on them, racing upserts make one row).
CREATE UNIQUE INDEX products_tenant_sku_key ON products (tenant_id, sku) WHERE sku IS NOT NULL;
ALTER TABLE products ADD CONSTRAINT products_title_length CHECK (length(title) BETWEEN 1 AND 200);
