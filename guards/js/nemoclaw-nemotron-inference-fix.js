// guardchain: nemoclaw-nemotron-inference-fix.js
// Nemotron chat templates can return an empty message unless asked not to; the
// gateway then reports a failed turn. For chat completions aimed at a Nemotron
// model this sets chat_template_kwargs.force_nonempty_content = true. Every other
// body passes through byte for byte.
'use strict';
(function nemotronInferenceFix() {
  var MARK = Symbol.for('guardchain.nemotron-inference-fix');
  if (globalThis[MARK]) return;
  globalThis[MARK] = true;
  try {
    var http = require('http');
    var https = require('https');
    var URLCtor = require('url').URL;
    var SUFFIX = '/v1/chat/completions';

    function pathMatches(p) {
      if (typeof p !== 'string') return false;
      var q = p.search(/[?#]/);
      if (q !== -1) p = p.slice(0, q);
      return p.length >= SUFFIX.length && p.slice(-SUFFIX.length) === SUFFIX;
    }

    // Returns the rewritten body, or the same Buffer when nothing changes.
    function fixBody(buf) {
      var obj;
      try { obj = JSON.parse(buf.toString('utf8')); } catch (e) { return buf; }
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return buf;
      if (typeof obj.model !== 'string' || !/nemotron/i.test(obj.model)) return buf;
      var kw = obj.chat_template_kwargs;
      if (!kw || typeof kw !== 'object' || Array.isArray(kw)) kw = {};
      if (kw.force_nonempty_content === true) return buf;
      kw.force_nonempty_content = true;
      obj.chat_template_kwargs = kw;
      return Buffer.from(JSON.stringify(obj), 'utf8');
    }

    function toBuffer(chunk, enc) {
      if (Buffer.isBuffer(chunk)) return chunk;
      if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      return Buffer.from(String(chunk), typeof enc === 'string' ? enc : 'utf8');
    }

    // Holds the body until end() so the whole JSON can be rewritten and
    // Content-Length set to match before the headers leave.
    function bufferBody(req) {
      var chunks = [];
      var write = req.write, end = req.end;
      req.write = function (chunk, enc, cb) {
        if (typeof enc === 'function') { cb = enc; enc = undefined; }
        if (chunk != null) chunks.push(toBuffer(chunk, enc));
        if (typeof cb === 'function') process.nextTick(cb);
        return true;
      };
      req.end = function (chunk, enc, cb) {
        if (typeof chunk === 'function') { cb = chunk; chunk = undefined; }
        else if (typeof enc === 'function') { cb = enc; enc = undefined; }
        if (chunk != null) chunks.push(toBuffer(chunk, enc));
        req.write = write;
        req.end = end;
        var body = Buffer.concat(chunks);
        var out = body;
        try {
          if (!req.headersSent) out = fixBody(body);
          if (out !== body && req.getHeader('content-length') !== undefined) req.setHeader('Content-Length', out.length);
        } catch (e) { out = body; }
        return out.length ? end.call(req, out, cb) : end.call(req, cb);
      };
    }

    function requestInfo(args) {
      var url = null, options = {}, i = 0;
      if (typeof args[0] === 'string' || args[0] instanceof URLCtor) {
        try { url = new URLCtor(String(args[0])); } catch (e) { return null; }
        i = 1;
      }
      if (args[i] && typeof args[i] === 'object' && typeof args[i] !== 'function') options = args[i];
      var method = String(options.method || 'GET').toUpperCase();
      var path = options.path || (url && url.pathname + url.search) || '/';
      return { method: method, path: path };
    }

    function wrap(mod) {
      var original = mod.request;
      function request() {
        var req = original.apply(this, arguments);
        try {
          var info = requestInfo(arguments);
          if (info && info.method === 'POST' && pathMatches(info.path)) bufferBody(req);
        } catch (e) { /* never break a request we do not understand */ }
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

    var originalFetch = globalThis.fetch;
    if (typeof originalFetch === 'function') {
      globalThis.fetch = function fetch(input, init) {
        var self = this;
        try {
          var isRequest = typeof Request === 'function' && input instanceof Request;
          var url = isRequest ? input.url : String(input);
          var method = String((init && init.method) || (isRequest ? input.method : 'GET')).toUpperCase();
          if (method === 'POST' && pathMatches(new URLCtor(url).pathname)) {
            if (init && init.body != null) {
              var b = init.body;
              var buf = typeof b === 'string' ? Buffer.from(b, 'utf8')
                : (b instanceof ArrayBuffer) ? Buffer.from(b)
                : ArrayBuffer.isView(b) ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : null;
              if (buf) {
                var out = fixBody(buf);
                if (out !== buf) {
                  var headers = new Headers(init.headers || (isRequest ? input.headers : undefined));
                  headers.delete('content-length');
                  init = Object.assign({}, init, { body: out.toString('utf8'), headers: headers });
                }
              }
            } else if (isRequest && !init && input.body != null) {
              return input.clone().text().then(function (text) {
                var original = Buffer.from(text, 'utf8');
                var fixed = fixBody(original);
                if (fixed === original) return originalFetch.call(self, input);
                return originalFetch.call(self, new Request(input, { body: fixed.toString('utf8') }));
              });
            }
          }
        } catch (e) { /* fall through to the untouched call */ }
        return originalFetch.call(self, input, init);
      };
    }
  } catch (e) { /* a guard never throws while loading */ }
})();
