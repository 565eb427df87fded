ALTER TABLE outreach_emails DROP COLUMN funnel_counted;
DROP INDEX prospect_outreach_log_email_idx;
ALTER TABLE prospect_outreach_log DROP CONSTRAINT prospect_outreach_log_email_fk;
ALTER TABLE prospect_outreach_log DROP COLUMN email_id;
DROP INDEX outreach_emails_step_idx;
DROP INDEX prospect_candidates_industry_idx;
DROP INDEX prospect_form_tests_pending_idx;
DROP INDEX prospect_form_tests_one_pending_idx;
DROP FUNCTION prospect_need_score(boolean, text, integer, text, integer);
