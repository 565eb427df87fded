DROP FUNCTION confirm_api_key(bytea, uuid, uuid, text);
