ALTER TYPE club_stage_row DROP ATTRIBUTE crm_discount_id;
