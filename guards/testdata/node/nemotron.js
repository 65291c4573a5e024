// usage: node nemotron.js PORT
// Sends chat completion requests through http.request and fetch; the server
// records what arrived.
const http = require('http');
const port = Number(process.argv[2]);
const base = `http://127.0.0.1:${port}`;

function viaRequest(path, body, chunks, withLength) {
  return new Promise((resolve, reject) => {
    const headers = { 'Content-Type': 'application/json', 'X-Case': path };
    if (withLength) headers['Content-Length'] = Buffer.byteLength(body);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    const step = Math.ceil(body.length / chunks);
    for (let i = 0; i < body.length; i += step) req.write(body.slice(i, i + step));
    req.end();
  });
}

(async () => {
  const nemotron = JSON.stringify({ model: 'nvidia/NVIDIA-Nemotron-Nano-9B-v2', messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { enable_thinking: false } });
  const llama = '{"model":"meta/llama-3.1-8b",  "messages":[]}';
  await viaRequest('/v1/chat/completions', nemotron, 3, true);
  await viaRequest('/v1/chat/completions?stream=false', nemotron, 1, false);
  await viaRequest('/v1/chat/completions', llama, 2, true);
  await viaRequest('/v1/chat/completions', 'not json {', 1, true);
  await viaRequest('/v1/completions', nemotron, 1, true);
  let r = await fetch(`${base}/fetch/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(nemotron)) }, body: nemotron });
  await r.text();
  r = await fetch(new Request(`${base}/request/v1/chat/completions`, { method: 'POST', body: nemotron }));
  await r.text();
  r = await fetch(`${base}/fetch/v1/chat/completions`, { method: 'POST', body: llama });
  await r.text();
  console.log('done');
})().catch((e) => { console.error(e); process.exit(3); });
