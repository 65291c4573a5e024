// guardchain: nemoclaw-nemotron-inference-fix.js
// Model-specific fixes for OpenAI-compatible chat completions, applied on the
// way out (http.request, https.request and fetch) to a POST whose path ends in
// /v1/chat/completions:
// - a Nemotron model (any id containing "nemotron") gets
//   chat_template_kwargs.force_nonempty_content = true: its chat template can
//   otherwise return an empty turn, which the gateway reports as failed;
// - deepseek-ai/deepseek-v4-pro and moonshotai/kimi-k2.6 get
//   chat_template_kwargs.thinking = false, the shape NVIDIA Build serves them
//   with (otherwise simple prompts take the slow thinking path);
// - nvidia/nemotron-3-* on the managed route (host inference.local, upstream
//   provider nvidia-prod) lose a top-level "thinking" field, which that
//   endpoint rejects with HTTP 400;
// - nvidia/nemotron-3-ultra-550b* without a system message and without a tool
//   that can write files or run commands gets a short system message, without
//   which it drops intermediate steps from its answer.
// Other kwargs are kept; every other body passes through byte for byte.
// The header x-nemoclaw-upstream-provider names the provider the managed route
// currently uses (else NEMOCLAW_UPSTREAM_PROVIDER does); it is sandbox-internal
// and removed from every request.
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
    var PROVIDER_HEADER = 'x-nemoclaw-upstream-provider';
    var MANAGED_HOST = 'inference.local';
    var MANAGED_PROVIDER = 'nvidia-prod';

    // Each rule sets these chat_template_kwargs when its pattern matches the
    // model; later rules win on the same key.
    var KWARG_RULES = [
      { model: /nemotron/i, kwargs: { force_nonempty_content: true } },
      { model: /^deepseek-ai\/deepseek-v4-pro$/i, kwargs: { thinking: false } },
      { model: /^moonshotai\/kimi-k2\.6$/i, kwargs: { thinking: false } },
    ];
    var STRIP_THINKING_MODEL = /^nvidia\/nemotron-3-/i;
    var TOOL_LESS_MODEL = /^nvidia\/nemotron-3-ultra-550b/i;
    var TOOL_LESS_SYSTEM = 'You cannot write files or run commands yourself. When asked to do either, ' +
      'answer with every command and the full code the user needs to do it by hand, step by step, ' +
      'leaving nothing out.';
    // Tools that let the model write files or run commands: with one of them
    // the model should call it, so no system message is added. Tools that only
    // read or search do not count.
    var EXECUTION_TOOLS = {};
    ['bash', 'bash_execute', 'exec', 'execute', 'execute_command', 'shell', 'shell_execute',
      'run_command', 'run_shell', 'write', 'write_file', 'file_write', 'edit', 'edit_file',
      'file_edit', 'notebook_edit', 'patch_file', 'file_patch', 'create_file', 'file_create',
      'apply_patch', 'str_replace_editor', 'computer', 'tool_call'].forEach(function (n) {
      EXECUTION_TOOLS[n] = true;
    });

    function pathMatches(p) {
      if (typeof p !== 'string') return false;
      var q = p.search(/[?#]/);
      if (q !== -1) p = p.slice(0, q);
      return p.length >= SUFFIX.length && p.slice(-SUFFIX.length) === SUFFIX;
    }

    function isObject(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

    function hostName(h) {
      h = String(h || '').toLowerCase();
      if (h.charAt(0) === '[') return h.slice(1, h.indexOf(']'));
      var colon = h.lastIndexOf(':');
      return colon !== -1 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
    }

    // The managed route: inference.local, with the provider from the request's
    // header when it has one, else from the environment.
    function managedBuild(host, provider) {
      if (provider === undefined) provider = process.env.NEMOCLAW_UPSTREAM_PROVIDER;
      return provider === MANAGED_PROVIDER && hostName(host) === MANAGED_HOST;
    }

    function applyKwargs(obj) {
      var changed = false;
      for (var i = 0; i < KWARG_RULES.length; i++) {
        var rule = KWARG_RULES[i];
        if (!rule.model.test(obj.model)) continue;
        if (!isObject(obj.chat_template_kwargs)) {
          obj.chat_template_kwargs = {};
          changed = true;
        }
        var keys = Object.keys(rule.kwargs);
        for (var k = 0; k < keys.length; k++) {
          if (obj.chat_template_kwargs[keys[k]] !== rule.kwargs[keys[k]]) {
            obj.chat_template_kwargs[keys[k]] = rule.kwargs[keys[k]];
            changed = true;
          }
        }
      }
      return changed;
    }

    function stripThinking(obj, managed) {
      if (!managed || !STRIP_THINKING_MODEL.test(obj.model)) return false;
      if (!Object.prototype.hasOwnProperty.call(obj, 'thinking')) return false;
      delete obj.thinking;
      return true;
    }

    function toolName(t) {
      if (!isObject(t)) return '';
      if (typeof t.name === 'string') return t.name;
      if (isObject(t.function) && typeof t.function.name === 'string') return t.function.name;
      return '';
    }

    function addToolLessSystem(obj) {
      if (!TOOL_LESS_MODEL.test(obj.model)) return false;
      if (!Array.isArray(obj.messages) || obj.messages.length === 0) return false;
      for (var i = 0; i < obj.messages.length; i++) {
        if (isObject(obj.messages[i]) && obj.messages[i].role === 'system') return false;
      }
      if (Array.isArray(obj.tools)) {
        for (var j = 0; j < obj.tools.length; j++) {
          if (EXECUTION_TOOLS[toolName(obj.tools[j]).toLowerCase()] === true) return false;
        }
      }
      obj.messages.unshift({ role: 'system', content: TOOL_LESS_SYSTEM });
      return true;
    }

    // Returns the rewritten body, or the same Buffer when nothing changes.
    function fixBody(buf, managed) {
      var obj;
      try { obj = JSON.parse(buf.toString('utf8')); } catch (e) { return buf; }
      if (!isObject(obj) || typeof obj.model !== 'string') return buf;
      var changed = applyKwargs(obj);
      if (stripThinking(obj, managed)) changed = true;
      if (addToolLessSystem(obj)) changed = true;
      return changed ? Buffer.from(JSON.stringify(obj), 'utf8') : buf;
    }

    function toBuffer(chunk, enc) {
      if (Buffer.isBuffer(chunk)) return chunk;
      if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      return Buffer.from(String(chunk), typeof enc === 'string' ? enc : 'utf8');
    }

    // Holds the body until end() so the whole JSON can be rewritten and
    // Content-Length set to match before the headers leave.
    function bufferBody(req, managed) {
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
          if (!req.headersSent) out = fixBody(body, managed());
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
      if (args[i] && typeof args[i] === 'object') options = args[i];
      var method = String(options.method || 'GET').toUpperCase();
      var path = options.path || (url && url.pathname + url.search) || '/';
      var host = options.hostname || options.host || (url && url.hostname) || 'localhost';
      // Forward mode through a proxy: the path is the absolute URL, and its
      // host is the one the request is for.
      if (/^https?:\/\//i.test(path)) {
        try { host = new URLCtor(path).host; } catch (e) { /* keep the host we have */ }
      }
      return { method: method, path: path, host: host };
    }

    // Takes the provider header off a request, wherever it is set, and
    // remembers its value.
    function takeProviderHeader(req) {
      var state = { provider: undefined };
      var v = req.getHeader(PROVIDER_HEADER);
      if (v !== undefined) {
        state.provider = String(v);
        req.removeHeader(PROVIDER_HEADER);
      }
      var setHeader = req.setHeader;
      req.setHeader = function (name, value) {
        if (String(name).toLowerCase() === PROVIDER_HEADER) {
          state.provider = String(value);
          return this;
        }
        return setHeader.apply(this, arguments);
      };
      return state;
    }

    function wrap(mod) {
      var original = mod.request;
      function request() {
        var req = original.apply(this, arguments);
        try {
          var state = takeProviderHeader(req);
          var info = requestInfo(arguments);
          if (info && info.method === 'POST' && pathMatches(info.path)) {
            bufferBody(req, function () { return managedBuild(info.host, state.provider); });
          }
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

    function simpleBody(b) {
      if (typeof b === 'string') return Buffer.from(b, 'utf8');
      if (b instanceof ArrayBuffer) return Buffer.from(b);
      if (ArrayBuffer.isView(b)) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      return null;
    }

    var originalFetch = globalThis.fetch;
    if (typeof originalFetch === 'function') {
      globalThis.fetch = function fetch(input, init) {
        var self = this;
        try {
          var isRequest = typeof Request === 'function' && input instanceof Request;
          var url = new URLCtor(isRequest ? input.url : String(input));
          var headers = new Headers((init && init.headers) || (isRequest ? input.headers : undefined));
          var provider;
          if (headers.has(PROVIDER_HEADER)) {
            provider = headers.get(PROVIDER_HEADER);
            headers.delete(PROVIDER_HEADER);
            init = Object.assign({}, init, { headers: headers });
          }
          var method = String((init && init.method) || (isRequest ? input.method : 'GET')).toUpperCase();
          if (method === 'POST' && pathMatches(url.pathname)) {
            var managed = managedBuild(url.host, provider);
            var buf = init && init.body != null ? simpleBody(init.body) : null;
            if (buf) {
              var out = fixBody(buf, managed);
              if (out !== buf) {
                headers.delete('content-length');
                init = Object.assign({}, init, { body: out.toString('utf8'), headers: headers });
              }
            } else if (isRequest && (!init || init.body == null) && input.body != null) {
              var req = input;
              var reqInit = init;
              return req.clone().text().then(function (text) {
                var original = Buffer.from(text, 'utf8');
                var fixed = fixBody(original, managed);
                if (fixed === original) return originalFetch.call(self, req, reqInit);
                headers.delete('content-length');
                return originalFetch.call(self, new Request(req, Object.assign({}, reqInit, { body: fixed.toString('utf8'), headers: headers })));
              });
            }
          }
        } catch (e) { /* fall through to the call as it is */ }
        return originalFetch.call(self, input, init);
      };
    }
  } catch (e) { /* a guard never throws while loading */ }
})();
