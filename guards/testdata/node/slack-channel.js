// usage: node slack-channel.js MODE
// MODE: reject-slack | throw-slack | reject-slackbot | reject-token-type | reject-other
const mode = process.argv[2];
if (mode === 'reject-slackbot') {
  const err = new Error('bolt app failed');
  err.code = 'slackbot_error';
  Promise.reject(err);
}
if (mode === 'reject-token-type') Promise.reject(new Error('An API error occurred: not_allowed_token_type'));
if (mode === 'reject-slack') {
  const err = new Error('An API error occurred: invalid_auth');
  err.code = 'slack_webapi_platform_error';
  Promise.reject(err);
}
if (mode === 'throw-slack') {
  setTimeout(() => {
    const err = new Error('socket mode failed');
    err.stack = 'Error: socket mode failed\n    at SocketModeClient.start (/app/node_modules/@slack/socket-mode/dist/src/SocketModeClient.js:1:1)';
    throw err;
  }, 1);
}
if (mode === 'reject-other') Promise.reject(new Error('database unavailable'));
process.on('exit', () => {});
setTimeout(() => { console.log('alive'); }, 50);
