// guardchain: nemoclaw-slack-channel-guard.js
// A Slack provider that fails to start (bad or unresolved token) rejects a
// promise deep inside @slack/*; without this the whole gateway dies with it.
// Only Slack-shaped failures are swallowed; every other event passes on.
'use strict';
(function slackChannelGuard() {
  if (process.__guardchainSlackChannelGuard) return;
  try {
    Object.defineProperty(process, '__guardchainSlackChannelGuard', { value: true });
    var AUTH = /\b(invalid_auth|not_authed|account_inactive|token_revoked|token_expired|no_permission|missing_scope|not_allowed_token_type)\b/;

    function slackish(err) {
      if (err == null) return false;
      var code = String(err.code || '');
      var msg = String(err.message !== undefined ? err.message : err);
      var stack = String(err.stack || '');
      var data = err.data && typeof err.data === 'object' ? String(err.data.error || '') : '';
      if (/^slack_/.test(code) || code === 'slackbot_error') return true;
      if (AUTH.test(msg) || AUTH.test(data)) return true;
      if (stack.indexOf('@slack/') !== -1) return true;
      return msg.indexOf('slack.com') !== -1;
    }

    var emit = process.emit;
    process.emit = function (event, err) {
      if ((event === 'unhandledRejection' || event === 'uncaughtException') && slackish(err)) {
        try {
          var msg = err && err.message !== undefined ? err.message : String(err);
          process.stderr.write('[channels] [slack] provider failed to start: ' + msg + '\n');
        } catch (e) { /* logging must not throw */ }
        return true;
      }
      return emit.apply(this, arguments);
    };
  } catch (e) { /* a guard never throws while loading */ }
})();
