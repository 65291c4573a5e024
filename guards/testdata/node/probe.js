// Prints, from its first line, which preloads ran and in what order.
const loaded = Object.keys(require.cache).filter((k) => k !== __filename);
console.log(JSON.stringify({ loaded, nodeOptions: process.env.NODE_OPTIONS || '' }));
