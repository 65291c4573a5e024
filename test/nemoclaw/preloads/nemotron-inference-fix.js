// The test sandbox image's own "nemotron-inference-fix" preload. It only records that it ran,
// so a test can tell the image's preloads from guardchain's embedded ones.
'use strict';
(function () {
  const seen = (globalThis.__imagePreloads = globalThis.__imagePreloads || []);
  if (seen.includes('nemotron-inference-fix')) return;
  seen.push('nemotron-inference-fix');
  process.stderr.write('[image-preload] nemotron-inference-fix loaded\n');
})();
