// The test sandbox image's own "ciao-network-guard" preload. It only records that it ran,
// so a test can tell the image's preloads from guardchain's embedded ones.
'use strict';
(function () {
  const seen = (globalThis.__imagePreloads = globalThis.__imagePreloads || []);
  if (seen.includes('ciao-network-guard')) return;
  seen.push('ciao-network-guard');
  process.stderr.write('[image-preload] ciao-network-guard loaded\n');
})();
