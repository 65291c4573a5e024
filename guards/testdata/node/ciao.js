// usage: node ciao.js [gateway] MODE
// MODE: rate-limit | throw-uv | throw-other
const os = require('os');
const mode = process.argv[process.argv.length - 1];
if (mode === 'rate-limit') {
  let now = 1_000_000_000_000;
  Date.now = () => now;
  const results = [];
  for (let i = 0; i < 3; i++) results.push(os.networkInterfaces());
  now += 5 * 60 * 1000 - 1;
  results.push(os.networkInterfaces());
  now += 1;
  results.push(os.networkInterfaces());
  console.log(JSON.stringify(results));
}
if (mode === 'throw-uv') {
  setTimeout(() => {
    const err = new Error('A system error occurred: uv_interface_addresses returned Unknown system error 97');
    err.code = 'ERR_SYSTEM_ERROR';
    throw err;
  }, 1);
  setTimeout(() => console.log('alive'), 50);
}
if (mode === 'throw-other') {
  setTimeout(() => { throw new Error('unrelated failure'); }, 1);
  setTimeout(() => console.log('alive'), 50);
}
