DELETE FROM meta WHERE key = 'provisioning';
DROP TABLE prov_idempotency;
DROP TABLE prov_features;
DROP TABLE prov_devices;
DROP TABLE prov_services;
DROP TABLE prov_accounts;
