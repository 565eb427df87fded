DROP TABLE widget_configs;
DROP TABLE email_events;
DROP TABLE email_sequences;
DROP TABLE demo_sessions;
DROP TABLE testimonials;
DROP TABLE contacts;
