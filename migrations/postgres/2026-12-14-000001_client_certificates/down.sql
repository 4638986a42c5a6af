DROP TABLE client_cas;
DROP TABLE client_certs;
