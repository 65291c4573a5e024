// usage: node proxy-fix.js PROXY_PORT TARGET_PORT
// Sends three requests through http.request and prints one JSON line each.
const http = require('http');
const [proxyPort, targetPort] = process.argv.slice(2).map(Number);

function send(opts, body) {
  return new Promise((resolve) => {
    const req = http.request(opts, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', (e) => resolve({ error: e.message }));
    if (body) req.write(body);
    req.end();
  });
}

(async () => {
  const out = {};
  // Forward mode with an https:// target: must go straight to the target.
  out.forwardHttps = await send({
    host: '127.0.0.1', port: proxyPort, method: 'POST',
    path: `https://127.0.0.1:${targetPort}/hello?x=1`,
    headers: {
      Host: `127.0.0.1:${targetPort}`, 'Proxy-Authorization': 'Basic c2VjcmV0',
      Connection: 'keep-alive, X-Hop', 'X-Hop': 'for the proxy only',
      'X-Keep': 'yes', 'Content-Type': 'text/plain',
    },
    auth: 'user:pass',
    // The TLS name for the proxy hop: kept, it would fail the target's
    // certificate check.
    servername: 'proxy.invalid',
  }, 'payload');
  // Forward mode with an http:// target: the proxy's business, untouched.
  out.forwardHttp = await send({ host: '127.0.0.1', port: proxyPort, path: 'http://example.invalid/plain' });
  // An ordinary request to the proxy host: untouched.
  out.direct = await send(`http://127.0.0.1:${proxyPort}/direct`);
  console.log(JSON.stringify(out));
})();
