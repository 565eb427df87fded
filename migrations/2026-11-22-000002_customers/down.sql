DROP TABLE platform_sessions;
DROP TABLE discounts;
DROP TABLE orders;
DROP TABLE products;
DROP TABLE customer_activities;
DROP TABLE customers;
