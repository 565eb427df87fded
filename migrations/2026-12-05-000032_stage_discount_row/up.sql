-- A stage's CRM discount (the customer tag its members get) travels with the stage in the
-- one-statement customer 360.
ALTER TYPE club_stage_row ADD ATTRIBUTE crm_discount_id text;
