DROP TABLE throttle_usage;
