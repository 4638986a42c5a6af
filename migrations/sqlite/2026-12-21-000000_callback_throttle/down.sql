DROP TABLE callback_rates;
DELETE FROM throttle_usage WHERE scope = 'callback';
