DROP TABLE point_transactions;
DROP TABLE reward_redemptions;
DROP TABLE loyalty_rewards;
DROP TABLE loyalty_point_rules;
DROP TABLE club_extensions;
DROP TABLE club_enrollments;
DROP TABLE club_stages;
DROP TABLE club_programs;
