// A partner's BSS written with node-soap against the WSDL the gateway publishes: one successful
// call and one refused call (wrong key), which must surface as a SOAP fault with its typed detail.
// usage: node node_call.js BASE_URL PARTNER_ID API_KEY   (NODE_PATH=tests/toolkits/node/node_modules)
'use strict';
const soap = require('soap');

const [base, pid, key] = process.argv.slice(2);
const NS = 'urn:partnergate:partner:common:v1';

function fail(what, extra) {
  console.log(JSON.stringify({ failed: what, extra: String(extra) }));
  process.exit(1);
}

(async () => {
  const client = await soap.createClientAsync(`${base}/soap/partner/v1?wsdl`);
  const header = (apiKey) => ({ PartnerId: pid, ApiKey: apiKey });
  client.addSoapHeader({ PartnerAuth: header(key) }, 'PartnerAuth', 'cmn', NS);
  const [created] = await client.CreateAccountAsync({
    CustomerReference: 'NODE-1',
    AccountType: 'RESIDENTIAL',
    Contact: { FirstName: 'Ada', LastName: 'Lovelace' },
    Address: { Street: 'Main Street 2', PostalCode: '10117', City: 'Berlin', Country: 'DE' },
  });
  const number = created && created.Account && created.Account.AccountNumber;
  if (!/^ACC-\d{10}$/.test(number || '')) fail('create account', JSON.stringify(created));

  client.clearSoapHeaders();
  client.addSoapHeader({ PartnerAuth: header('pgk_' + '0'.repeat(64)) }, 'PartnerAuth', 'cmn', NS);
  try {
    await client.GetAccountAsync({ AccountNumber: number });
    fail('a wrong key was accepted', '');
  } catch (err) {
    const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
    if (!fault) fail('no SOAP fault', err);
    const text = fault.faultstring || (fault.Reason && fault.Reason.Text) || '';
    const detail = JSON.stringify(fault.detail || fault.Detail || {});
    if (!/Access Denied/.test(text) || !/authentication-failed/.test(detail)) fail('fault content', text + ' ' + detail);
    console.log(JSON.stringify({ ok: true, account: number, refused: text }));
  }
})().catch((err) => fail('unexpected error', err && err.stack ? err.stack : err));
