// Simulates the sandbox's network namespace, where uv_interface_addresses fails.
const os = require('os');
os.networkInterfaces = function networkInterfaces() {
  const err = new Error('A system error occurred: uv_interface_addresses returned Unknown system error 97 (Unknown system error 97)');
  err.code = 'ERR_SYSTEM_ERROR';
  throw err;
};
