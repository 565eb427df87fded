-- A recipient follows at most one open (active or paused) sequence per segment: starting
-- a second one while the first is open is a conflict, also when two starts race.
CREATE UNIQUE INDEX email_sequences_one_open_idx
    ON email_sequences (tenant_id, lower(recipient_email), segment)
    WHERE status IN ('active', 'paused');
