// The test sandbox image's own "slack-channel-guard" preload. It only records that it ran,
// so a test can tell the image's preloads from guardchain's embedded ones.
'use strict';
(function () {
  const seen = (globalThis.__imagePreloads = globalThis.__imagePreloads || []);
  if (seen.includes('slack-channel-guard')) return;
  seen.push('slack-channel-guard');
  process.stderr.write('[image-preload] slack-channel-guard loaded\n');
})();
