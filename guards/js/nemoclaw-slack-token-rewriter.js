// guardchain: nemoclaw-slack-token-rewriter.js (retired; inert)
// This guard once rewrote Slack token placeholders (xoxb-/xapp-OPENSHELL-
// RESOLVE-ENV-VAR) on the way out. OpenShell now resolves those placeholders
// itself, and NemoClaw fails a sandbox whose NODE_OPTIONS still names this
// file, so guardchain no longer requires it. The file stays, doing nothing,
// because a NODE_OPTIONS written by an earlier release may still name it, and
// a --require of a missing file stops every Node process.
'use strict';
(function retiredSlackTokenRewriter() {
  var MARK = Symbol.for('guardchain.slack-token-rewriter');
  if (globalThis[MARK]) return;
  globalThis[MARK] = true;
  try {
    process.stderr.write('[guard] slack-token-rewriter is retired and does nothing; remove ' +
      __filename + ' from NODE_OPTIONS\n');
  } catch (e) { /* a guard never throws while loading */ }
})();
