ALTER TABLE products DROP CONSTRAINT products_title_length;
DROP INDEX products_tenant_sku_key;
