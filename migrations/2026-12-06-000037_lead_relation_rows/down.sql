DROP TYPE lead_note_row;
DROP TYPE lead_action_row;
