// usage: node safety-net.js [gateway] -- MODE
// MODE: reject-unknown | throw-unknown | throw-ciao | reject-ciao-stack
const mode = process.argv[process.argv.length - 1];
if (mode === 'reject-unknown') Promise.reject(new Error('boom from a library'));
if (mode === 'throw-unknown') setTimeout(() => { throw new Error('kaboom'); }, 1);
if (mode === 'throw-ciao') setTimeout(() => { throw new Error('CIAO PROBING CANCELLED'); }, 1);
if (mode === 'reject-ciao-stack') {
  const err = new Error('socket closed');
  err.stack = 'Error: socket closed\n    at MDNSServer.send (/app/node_modules/@homebridge/ciao/lib/MDNSServer.js:1:1)';
  Promise.reject(err);
}
setTimeout(() => { console.log('alive'); }, 50);
