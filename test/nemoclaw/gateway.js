// The test sandbox's "gateway": prints, from its first line, which preloads
// ran (files and the image markers) and its NODE_OPTIONS, then stays up.
'use strict';
const loaded = Object.keys(require.cache).filter((k) => k !== __filename);
console.log(JSON.stringify({ loaded, image: globalThis.__imagePreloads || [], nodeOptions: process.env.NODE_OPTIONS || '' }));
if (process.argv.includes('--once')) process.exit(0);
setInterval(() => {}, 1 << 30);
