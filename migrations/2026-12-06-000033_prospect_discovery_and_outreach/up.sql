-- Prospect discovery and outreach end to end (seed 001 sections 4 and 5).

-- The automation need score (45–95) of a prospect from its signals: a contact form
-- found (+10); its latest form test (none yet +10, failed or timed out +20, completed
-- +(100 − response score) / 5); its autoresponder (none +10, robotic +8, human +3,
-- personalized 0, not tested +5); its industry's priority (priority / 10, 0–10).
CREATE FUNCTION prospect_need_score(form_found boolean, test_status text, response_score integer,
                                    autoresponder_tone text, industry_priority integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 45
        + CASE WHEN form_found THEN 10 ELSE 0 END
        + CASE test_status
              WHEN 'completed' THEN round((100 - least(100, greatest(0, coalesce(response_score, 0)))) / 5.0)::integer
              WHEN 'failed' THEN 20
              WHEN 'timeout' THEN 20
              ELSE 10
          END
        + CASE autoresponder_tone
              WHEN 'none' THEN 10
              WHEN 'robotic' THEN 8
              WHEN 'human' THEN 3
              WHEN 'personalized' THEN 0
              ELSE 5
          END
        + round(least(100, greatest(0, coalesce(industry_priority, 50))) / 10.0)::integer
$$;

-- One form test waits for its answer at a time per prospect.
CREATE UNIQUE INDEX prospect_form_tests_one_pending_idx
    ON prospect_form_tests (tenant_id, prospect_id) WHERE test_status = 'pending';
CREATE INDEX prospect_form_tests_pending_idx
    ON prospect_form_tests (tenant_id, test_submitted_at) WHERE test_status = 'pending';

-- Candidates are listed by score as well as by age.
CREATE INDEX prospect_candidates_industry_idx ON prospect_candidates (tenant_id, industry);

-- One email per prospect, campaign and step of its sequence (racing generations and
-- follow-up runs make one).
CREATE UNIQUE INDEX outreach_emails_step_idx
    ON outreach_emails (tenant_id, campaign_id, prospect_id, follow_up_sequence);

-- Each send's log row names the outreach email it records.
ALTER TABLE prospect_outreach_log ADD COLUMN email_id uuid;
ALTER TABLE prospect_outreach_log
    ADD CONSTRAINT prospect_outreach_log_email_fk FOREIGN KEY (tenant_id, email_id)
        REFERENCES outreach_emails (tenant_id, id) ON DELETE CASCADE;
CREATE UNIQUE INDEX prospect_outreach_log_email_idx ON prospect_outreach_log (tenant_id, email_id);

-- The funnel steps an email has counted in its campaign's metrics (and its industry's),
-- each once, whether recorded or implied by a later one (an open implies the send).
ALTER TABLE outreach_emails ADD COLUMN funnel_counted text[] NOT NULL DEFAULT '{}';
