// usage: node safety-net.js [gateway] -- MODE
// MODE: reject-unknown | throw-unknown | throw-ciao
const mode = process.argv[process.argv.length - 1];
if (mode === 'reject-unknown') Promise.reject(new Error('boom from a library'));
if (mode === 'throw-unknown') setTimeout(() => { throw new Error('kaboom'); }, 1);
if (mode === 'throw-ciao') setTimeout(() => { throw new Error('CIAO PROBING CANCELLED'); }, 1);
setTimeout(() => { console.log('alive'); }, 50);
