#!/usr/bin/env node
// node-soap (npm `soap`, pinned in tests/toolkits/node/package-lock.json) conformance check.
//
// Usage: node tests/toolkits/node-soap.js WSDL
//
// * copies WSDL + wsdl/*.xsd into a temp dir (relative schemaLocations resolve there)
// * soap.createClientAsync(wsdl); describe() must list every portType operation on
//   every service port
// * for every port: client.addSoapHeader(<header element>) and one call through
//   client[Service][Port][Op] against a throw-away HTTP server on 127.0.0.1 that
//   answers with a canned SOAP fault; the request the server received (and
//   client.lastRequest) must carry the header element (PartnerAuth / CallbackAuth) in
//   soap:Header, and the canned fault must come back as a parsed SOAP fault.
//   A WSDL that binds no soap:header on any input (the enrollment contract) gets no
//   addSoapHeader and its request must carry no header entry (no or an empty soap:Header).
//   SOAP 1.2 ports are called with { forceSoap12Headers: true } (node-soap does not
//   pick the SOAP version from the binding).
// * with PG_LIVE_ENDPOINT set (tests/toolkits.rs does) and a WSDL with the PartnerAuth
//   header: GetAccount through every port against that gateway; the error's parsed fault must
//   carry the typed detail: a wrong key -> AccessDeniedFault authentication-failed, an unknown
//   account -> NotFoundFault account, the throttled partner -> ThrottledFault with
//   RetryAfterSeconds. Prints "LIVE-OK soap11|soap12 <port> ..." per port.
// Anything node-soap writes through console.warn/console.error or process warnings is
// reprinted as "TOOLKIT-WARNING [node-soap]: ..."; any error exits non-zero.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { execFileSync } = require('child_process');

const TOOL = 'node-soap';
const HERE = __dirname;
const ROOT = path.resolve(HERE, '..', '..');
const SOAP11_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
const SOAP12_ENV = 'http://www.w3.org/2003/05/soap-envelope';

const warnings = [];
const origWarn = console.warn;
const origError = console.error;
console.warn = (...a) => { warnings.push(a.join(' ')); };
console.error = (...a) => { warnings.push(a.join(' ')); };
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

function fail(msg) {
  const e = new Error(msg);
  e.harness = true;
  throw e;
}

{
  const [maj, min] = process.versions.node.split('.').map(Number);
  if (maj < 20 || (maj === 20 && min < 19)) {
    origError(`TOOLKIT-ERROR [${TOOL}]: node ${process.version} is too old: the pinned soap needs node >= 20.19 (install a newer nodejs, then run \`sudo .ci/setup\`)`);
    process.exit(1);
  }
}

let soap;
try {
  soap = require(path.join(HERE, 'node', 'node_modules', 'soap'));
} catch (e) {
  origError(`TOOLKIT-ERROR [${TOOL}]: soap not installed (${e.code || e.message}): run \`sudo .ci/setup\` (npm ci in tests/toolkits/node)`);
  process.exit(1);
}
const soapVersion = require(path.join(HERE, 'node', 'node_modules', 'soap', 'package.json')).version;

function contractFacts(wsdl) {
  const out = execFileSync(path.join(HERE, 'contract-facts.sh'), [wsdl], { encoding: 'utf8' });
  const facts = { ops: new Set(), headers: [], headerNs: {}, ports: [] };
  for (const line of out.split('\n')) {
    const [kind, ...rest] = line.trim().split(/\s+/);
    if (kind === 'operation') facts.ops.add(rest[0]);
    else if (kind === 'header') facts.headers.push(rest[0]);
    else if (kind === 'header-ns') facts.headerNs[rest[0]] = rest[1] || '';
    else if (kind === 'port') facts.ports.push({ name: rest[0], binding: rest[1], version: rest[2] });
  }
  return facts;
}

function stage(src) {
  if (!fs.existsSync(src)) fail(`no such WSDL: ${src}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-toolkit-node.'));
  const dirs = [process.env.PARTNERGATE_XSD_DIR || path.join(ROOT, 'wsdl'), path.dirname(path.resolve(src))];
  for (const d of dirs) {
    if (!fs.existsSync(d)) continue;
    for (const f of fs.readdirSync(d).sort()) {
      if (f.endsWith('.xsd')) fs.copyFileSync(path.join(d, f), path.join(tmp, f));
    }
  }
  const wsdl = path.join(tmp, path.basename(src));
  fs.copyFileSync(src, wsdl);
  return { tmp, wsdl };
}

// Throw-away SOAP endpoint: records each request, answers with a canned fault.
function startServer() {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      requests.push({ headers: req.headers, body });
      const soap12 = body.includes(SOAP12_ENV);
      const fault = soap12
        ? `<env:Envelope xmlns:env="${SOAP12_ENV}"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value></env:Code><env:Reason><env:Text xml:lang="en">canned test fault</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>`
        : `<env:Envelope xmlns:env="${SOAP11_ENV}"><env:Body><env:Fault><faultcode>env:Client</faultcode><faultstring>canned test fault</faultstring></env:Fault></env:Body></env:Envelope>`;
      res.writeHead(500, { 'Content-Type': soap12 ? 'application/soap+xml; charset=utf-8' : 'text/xml; charset=utf-8' });
      res.end(fault);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, requests })));
}

// A header value shaped after the schema node-soap parsed (children get placeholder text).
function headerValue(client, name, ns) {
  try {
    const schema = client.wsdl.definitions.schemas[ns];
    const el = schema && schema.elements && schema.elements[name];
    let desc = el && el.description(client.wsdl.definitions);
    if (desc && typeof desc === 'object' && desc[name] && typeof desc[name] === 'object') desc = desc[name];
    if (desc && typeof desc === 'object') {
      const v = {};
      for (const k of Object.keys(desc)) if (!k.startsWith('targetN')) v[k] = 'PLACEHOLDER';
      if (Object.keys(v).length) return v;
    }
  } catch (e) { /* fall through */ }
  return { Placeholder: 'x' };
}

function headerSection(xml) {
  const m = xml.match(/<(?:([A-Za-z_][\w.-]*):)?Header\b[^>]*>([\s\S]*?)<\/(?:[A-Za-z_][\w.-]*:)?Header>/);
  return m ? m[2] : null;
}

async function checkPort(wsdl, facts, port, service) {
  const soap12 = port.version === 'soap12';
  const client = await soap.createClientAsync(wsdl, { forceSoap12Headers: soap12 });
  const { server, requests } = await startServer();
  try {
    client.setEndpoint(`http://127.0.0.1:${server.address().port}/partner`);
    for (const h of facts.headers) {
      const ns = facts.headerNs[h];
      // partner recipe: addSoapHeader({ PartnerAuth: {...} }, name, nsPrefix, nsURI)
      client.addSoapHeader({ [h]: headerValue(client, h, ns) }, h, 'pg', ns);
    }
    const op = [...facts.ops].sort()[0];
    const method = client[service] && client[service][port.name] && client[service][port.name][op];
    if (typeof method !== 'function') fail(`${service}.${port.name}.${op} is not a client method`);
    let err = null;
    await new Promise((resolve) => method.call(client, {}, (e) => { err = e; resolve(); }));
    if (!err) fail(`${port.name}.${op}: canned fault was not reported as an error`);
    const fault = err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
    if (!fault) fail(`${port.name}.${op}: expected a parsed SOAP fault, got: ${err.message || err}`);
    if (requests.length !== 1) fail(`${port.name}.${op}: server saw ${requests.length} requests`);
    const sent = requests[0].body;
    if (client.lastRequest !== sent) fail(`${port.name}.${op}: client.lastRequest differs from what was sent`);
    const envNs = soap12 ? SOAP12_ENV : SOAP11_ENV;
    if (!sent.includes(`"${envNs}"`)) fail(`${port.name}.${op}: envelope is not ${envNs}:\n${sent}`);
    const ct = requests[0].headers['content-type'] || '';
    if (soap12 ? !ct.startsWith('application/soap+xml') : !ct.startsWith('text/xml')) {
      fail(`${port.name}.${op}: Content-Type ${ct} does not match ${port.version}`);
    }
    const hdr = headerSection(sent);
    if (!facts.headers.length && hdr !== null && hdr.trim() !== '') {
      fail(`${port.name}.${op}: the WSDL binds no soap:header, but the request has header entries:\n${sent}`);
    }
    if (facts.headers.length && hdr === null) fail(`${port.name}.${op}: no soap:Header in request:\n${sent}`);
    for (const h of facts.headers) {
      if (!new RegExp(`<(?:[A-Za-z_][\\w.-]*:)?${h}[\\s>/]`).test(hdr)) {
        fail(`${port.name}.${op}: header ${h} missing from soap:Header:\n${sent}`);
      }
      if (facts.headerNs[h] && !hdr.includes(`"${facts.headerNs[h]}"`) && !sent.includes(`"${facts.headerNs[h]}"`)) {
        fail(`${port.name}.${op}: header ${h} not in namespace ${facts.headerNs[h]}:\n${sent}`);
      }
    }
    console.log(`[${TOOL}] ${service}.${port.name} (${port.version}): ${facts.ops.size} operations; ` +
      `${op} sent header(s) ${facts.headers.join(',') || 'none'}; canned fault parsed`);
    if (process.env.PG_VERBOSE) console.log(sent);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

// The typed detail of a fault node-soap reports: [element local name, its parsed children].
function typedFault(err, what) {
  const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
  if (!fault) fail(`${what}: no parsed SOAP fault: ${(err && err.message) || err}`);
  const detail = fault.Detail || fault.detail;
  if (!detail || typeof detail !== 'object') fail(`${what}: a fault without a detail: ${JSON.stringify(fault)}`);
  const names = Object.keys(detail).filter((k) => k !== 'attributes' && !k.startsWith('$'));
  if (names.length !== 1) fail(`${what}: detail entries ${names.join(', ')}`);
  return [names[0], detail[names[0]]];
}

async function live(wsdl, facts, port, service) {
  const soap12 = port.version === 'soap12';
  const ns = facts.headerNs.PartnerAuth;
  const client = await soap.createClientAsync(wsdl, { forceSoap12Headers: soap12 });
  client.setEndpoint(process.env.PG_LIVE_ENDPOINT);
  const method = client[service][port.name].GetAccount;
  const call = async (partner, key, what) => {
    client.clearSoapHeaders();
    client.addSoapHeader({ PartnerAuth: { PartnerId: partner, ApiKey: key } }, 'PartnerAuth', 'cmn', ns);
    let err = null;
    await new Promise((resolve) => method.call(client, { AccountNumber: 'ACC-9999999999' }, (e) => { err = e; resolve(); }));
    if (!err) fail(`${port.name} ${what}: GetAccount returned no fault`);
    return typedFault(err, `${port.name} ${what}`);
  };
  const key = process.env.PG_LIVE_KEY;
  const wrong = key.slice(0, -1) + (key.endsWith('x') ? 'y' : 'x');
  let [name, value] = await call(process.env.PG_LIVE_PARTNER, wrong, 'wrong key');
  if (name !== 'AccessDeniedFault' || value.Reason !== 'authentication-failed') fail(`${port.name} wrong key: ${name} ${JSON.stringify(value)}`);
  [name, value] = await call(process.env.PG_LIVE_PARTNER, key, 'unknown account');
  if (name !== 'NotFoundFault' || value.Entity !== 'account') fail(`${port.name} unknown account: ${name} ${JSON.stringify(value)}`);
  let retry = null;
  for (let i = 0; i < 5 && retry === null; i++) {
    [name, value] = await call(process.env.PG_LIVE_THROTTLED_PARTNER, process.env.PG_LIVE_THROTTLED_KEY, 'throttled');
    if (name === 'ThrottledFault') retry = Number(value.RetryAfterSeconds);
    else if (name !== 'NotFoundFault') fail(`${port.name} throttled partner: ${name} ${JSON.stringify(value)}`);
  }
  if (retry === null) fail(`${port.name}: five quick calls at 1/s were never throttled`);
  if (!(retry >= 1)) fail(`${port.name}: RetryAfterSeconds ${retry}`);
  console.log(`LIVE-OK ${port.version} ${port.name}: AccessDeniedFault authentication-failed, NotFoundFault account, ` +
    `ThrottledFault RetryAfterSeconds=${retry} (the callback's error, root.Envelope.Body.Fault with the detail)`);
}

async function main() {
  const src = process.argv[2];
  if (!src || process.argv.length !== 3) {
    origError(`usage: ${process.argv[1]} WSDL`);
    process.exit(2);
  }
  const facts = contractFacts(src);
  if (!facts.ops.size) fail('contract-facts found no portType operations');
  // no header bound anywhere (the anonymous enrollment contract) is allowed: checkPort then
  // requires a request without header entries
  const { tmp, wsdl } = stage(src);
  try {
    const client = await soap.createClientAsync(wsdl);
    const desc = client.describe();
    const seen = new Map();
    for (const [svc, ports] of Object.entries(desc)) {
      for (const [portName, ops] of Object.entries(ports)) {
        seen.set(portName, svc);
        const got = new Set(Object.keys(ops));
        const missing = [...facts.ops].filter((o) => !got.has(o));
        const extra = [...got].filter((o) => !facts.ops.has(o));
        if (missing.length) fail(`describe(): ${svc}.${portName} lacks operations ${missing.join(', ')}`);
        if (extra.length) fail(`describe(): ${svc}.${portName} has unexpected operations ${extra.join(', ')}`);
      }
    }
    for (const p of facts.ports) {
      if (!seen.has(p.name)) fail(`describe() does not list port ${p.name}`);
    }
    console.log(`[${TOOL}] describe(): ${seen.size} port(s) x ${facts.ops.size} operations`);
    for (const p of facts.ports) await checkPort(wsdl, facts, p, seen.get(p.name));
    if (process.env.PG_LIVE_ENDPOINT && facts.headers.includes('PartnerAuth')) {
      for (const p of facts.ports) await live(wsdl, facts, p, seen.get(p.name));
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`[${TOOL}] soap ${soapVersion}: OK ${src}`);
}

main().then(
  () => {
    for (const w of warnings) console.log(`TOOLKIT-WARNING [${TOOL}]: ${w}`);
    process.exit(0);
  },
  (e) => {
    for (const w of warnings) console.log(`TOOLKIT-WARNING [${TOOL}]: ${w}`);
    origError(`TOOLKIT-ERROR [${TOOL}]: ${e.harness ? e.message : (e.stack || e)}`);
    process.exit(1);
  },
);
