// The test sandbox image's own "sandbox-safety-net" preload. It only records that it ran,
// so a test can tell the image's preloads from guardchain's embedded ones.
'use strict';
(function () {
  const seen = (globalThis.__imagePreloads = globalThis.__imagePreloads || []);
  if (seen.includes('sandbox-safety-net')) return;
  seen.push('sandbox-safety-net');
  process.stderr.write('[image-preload] sandbox-safety-net loaded\n');
})();
