// guardchain: nemoclaw-slack-token-rewriter.js
// Sandboxes hold Slack tokens as placeholders (xoxb-OPENSHELL-RESOLVE-ENV-VAR);
// the Slack SDK rejects values that do not look like tokens, so the sandbox
// carries them in that shape and this guard turns them into the form the
// OpenShell proxy resolves (openshell:resolve:env:VAR) on the way out.
'use strict';
(function slackTokenRewriter() {
  var MARK = Symbol.for('guardchain.slack-token-rewriter');
  if (globalThis[MARK]) return;
  globalThis[MARK] = true;
  try {
    var http = require('http');
    var https = require('https');
    var PLACEHOLDER = /\b(?:xoxb|xapp)-OPENSHELL-RESOLVE-ENV-([A-Za-z_][A-Za-z0-9_]*)/g;
    var MARKER = 'OPENSHELL-RESOLVE-ENV-';
    // Bodies beyond this are streamed untouched: tokens live in small API calls.
    var MAX_BUFFER = 8 * 1024 * 1024;

    function rewrite(s) { return s.replace(PLACEHOLDER, 'openshell:resolve:env:$1'); }

    function rewriteValue(v) {
      if (typeof v === 'string') return rewrite(v);
      if (Array.isArray(v)) return v.map(function (x) { return typeof x === 'string' ? rewrite(x) : x; });
      return v;
    }

    function rewriteHeaders(h) {
      if (!h || typeof h !== 'object' || Array.isArray(h)) return h;
      var out = {};
      var keys = Object.keys(h);
      for (var i = 0; i < keys.length; i++) out[keys[i]] = rewriteValue(h[keys[i]]);
      return out;
    }

    function toBuffer(chunk, enc) {
      if (Buffer.isBuffer(chunk)) return chunk;
      if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      return Buffer.from(String(chunk), typeof enc === 'string' ? enc : 'utf8');
    }

    // Buffers the body so a placeholder split across writes is still found and
    // Content-Length can be fixed before the headers leave.
    function bufferBody(req) {
      var chunks = [], size = 0, streaming = false;
      var write = req.write, end = req.end, setHeader = req.setHeader;
      req.setHeader = function (name, value) { return setHeader.call(this, name, rewriteValue(value)); };
      function flush() {
        streaming = true;
        req.write = write;
        var body = Buffer.concat(chunks);
        chunks = [];
        return body.length ? write.call(req, body) : true;
      }
      req.write = function (chunk, enc, cb) {
        if (typeof enc === 'function') { cb = enc; enc = undefined; }
        if (chunk != null) { var b = toBuffer(chunk, enc); chunks.push(b); size += b.length; }
        if (typeof cb === 'function') process.nextTick(cb);
        if (size > MAX_BUFFER) return flush();
        return true;
      };
      req.end = function (chunk, enc, cb) {
        if (typeof chunk === 'function') { cb = chunk; chunk = undefined; }
        else if (typeof enc === 'function') { cb = enc; enc = undefined; }
        req.end = end;
        if (streaming) return chunk != null ? end.call(req, chunk, enc, cb) : end.call(req, cb);
        if (chunk != null) chunks.push(toBuffer(chunk, enc));
        req.write = write;
        var body = Buffer.concat(chunks);
        var out = body;
        try {
          if (!req.headersSent && body.indexOf(MARKER) !== -1) {
            var text = body.toString('utf8');
            var fixed = rewrite(text);
            if (fixed !== text) {
              out = Buffer.from(fixed, 'utf8');
              if (req.getHeader('content-length') !== undefined) req.setHeader('Content-Length', out.length);
            }
          }
        } catch (e) { out = body; }
        return out.length ? end.call(req, out, cb) : end.call(req, cb);
      };
    }

    function wrap(mod) {
      var original = mod.request;
      function request() {
        var args = Array.prototype.slice.call(arguments);
        try {
          for (var i = 0; i < args.length; i++) {
            if (args[i] && typeof args[i] === 'object' && !(args[i] instanceof URL) && args[i].headers) {
              args[i] = Object.assign({}, args[i], { headers: rewriteHeaders(args[i].headers) });
            }
          }
        } catch (e) { args = Array.prototype.slice.call(arguments); }
        var req = original.apply(this, args);
        try { bufferBody(req); } catch (e) { /* leave the request as it is */ }
        return req;
      }
      mod.request = request;
      mod.get = function get() {
        var req = request.apply(this, arguments);
        req.end();
        return req;
      };
    }
    wrap(http);
    wrap(https);
  } catch (e) { /* a guard never throws while loading */ }
})();
