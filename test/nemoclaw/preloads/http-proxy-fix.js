// The test sandbox image's own "http-proxy-fix" preload. It only records that it ran,
// so a test can tell the image's preloads from guardchain's embedded ones.
'use strict';
(function () {
  const seen = (globalThis.__imagePreloads = globalThis.__imagePreloads || []);
  if (seen.includes('http-proxy-fix')) return;
  seen.push('http-proxy-fix');
  process.stderr.write('[image-preload] http-proxy-fix loaded\n');
})();
