// usage: node nemotron.js PORT CASE_JSON
// Sends one chat completion request, described by CASE_JSON, to the test
// server on 127.0.0.1:PORT; the server records what arrived.
// CASE_JSON: {transport, host, path, method, headers, body, chunks, length}
//   transport: request (http.request, the body written in `chunks` pieces),
//              get (http.get), fetch (fetch with an init), fetch-request
//              (fetch of a Request).
//   host: the host name the client aims at; inference.local resolves to
//         127.0.0.1 here.
//   length: send a Content-Length header.
const dns = require('dns');
const http = require('http');

const lookup = dns.lookup;
dns.lookup = function (host, opts, cb) {
  return lookup.call(this, host === 'inference.local' ? '127.0.0.1' : host, opts, cb);
};

const port = Number(process.argv[2]);
const c = JSON.parse(process.argv[3]);
const host = c.host || '127.0.0.1';
const headers = Object.assign({ 'Content-Type': 'application/json' }, c.headers || {});
if (c.length) headers['Content-Length'] = String(Buffer.byteLength(c.body || ''));

function viaRequest() {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method: c.method || 'POST', path: c.path, headers }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    const body = c.body || '';
    const step = Math.max(1, Math.ceil(body.length / (c.chunks || 1)));
    for (let i = 0; i < body.length; i += step) req.write(body.slice(i, i + step));
    req.end();
  });
}

function viaGet() {
  return new Promise((resolve, reject) => {
    http.get({ host, port, path: c.path, headers }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });
}

async function viaFetch() {
  const url = `http://${host}:${port}${c.path}`;
  const init = { method: c.method || 'POST', headers, body: c.body };
  const r = c.transport === 'fetch-request' ? await fetch(new Request(url, init)) : await fetch(url, init);
  await r.text();
}

const send = { request: viaRequest, get: viaGet, fetch: viaFetch, 'fetch-request': viaFetch }[c.transport];
send().then(() => console.log('done'), (e) => { console.error(e); process.exit(3); });
