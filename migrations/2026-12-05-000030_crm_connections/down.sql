DROP TABLE crm_webhook_receipts;
DROP FUNCTION crm_hook_target(bytea);
DROP TABLE crm_connections;
