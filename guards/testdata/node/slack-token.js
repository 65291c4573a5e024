// usage: node slack-token.js PORT
// Sends requests that carry Slack token placeholders to 127.0.0.1:PORT.
const http = require('http');
const port = Number(process.argv[2]);

function send(path, headers, parts, after) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    if (after) after(req);
    for (const p of parts) req.write(p);
    req.end();
  });
}

(async () => {
  const body = 'token=xapp-OPENSHELL-RESOLVE-ENV-SLACK_APP_TOKEN&channel=C1';
  // The placeholder is split across two writes.
  await send('/api/auth.test', {
    Authorization: 'Bearer xoxb-OPENSHELL-RESOLVE-ENV-SLACK_BOT_TOKEN',
    'Content-Type': 'application/x-www-form-urlencoded',
    'Content-Length': Buffer.byteLength(body),
  }, [body.slice(0, 12), body.slice(12)]);
  await send('/api/set-header', { 'Content-Type': 'text/plain' }, ['plain body'], (req) => {
    req.setHeader('Authorization', 'Bearer xoxb-OPENSHELL-RESOLVE-ENV-OTHER_TOKEN');
  });
  const untouched = 'xoxb-123-real-token and OPENSHELL-RESOLVE-ENV-NOPREFIX';
  await send('/api/untouched', { 'Content-Length': Buffer.byteLength(untouched) }, [untouched]);
  console.log('done');
})().catch((e) => { console.error(e); process.exit(3); });
