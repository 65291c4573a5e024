// guardchain: nemoclaw-http-proxy-fix.js
// With NODE_USE_ENV_PROXY=1 some clients send https:// URLs to the sandbox proxy
// in forward mode (plain HTTP with an absolute URL), which the proxy refuses for
// TLS targets. Such requests are reissued as direct https requests, which
// Node's env proxy support (NODE_USE_ENV_PROXY=1) routes through the proxy with
// CONNECT. Without it a reissued request would bypass the proxy, so the guard
// does nothing then. Everything else is untouched.
'use strict';
(function httpProxyFix() {
  var MARK = Symbol.for('guardchain.http-proxy-fix');
  if (globalThis[MARK]) return;
  globalThis[MARK] = true;
  if (process.env.NODE_USE_ENV_PROXY !== '1') return;
  try {
    var http = require('http');
    var https = require('https');
    var URLCtor = require('url').URL;

    var HOP_BY_HOP = {
      'host': 1, 'connection': 1, 'proxy-connection': 1, 'keep-alive': 1,
      'proxy-authorization': 1, 'proxy-authenticate': 1, 'te': 1, 'trailer': 1,
      'transfer-encoding': 1, 'upgrade': 1,
    };
    // Options that only make sense for the hop to the proxy: its address,
    // agent and credentials, and the TLS name, source address and DNS hints
    // chosen to reach it. TLS material, timeouts and signals are kept.
    var PROXY_ONLY = {
      'agent': 1, 'auth': 1, 'host': 1, 'hostname': 1, 'port': 1, 'path': 1,
      'protocol': 1, 'socketPath': 1, 'defaultPort': 1, 'createConnection': 1,
      'headers': 1, 'setHost': 1, '_defaultAgent': 1, 'servername': 1,
      'checkServerIdentity': 1, 'localAddress': 1, 'lookup': 1, 'family': 1, 'hints': 1,
    };

    function stripBrackets(h) {
      h = String(h || '').toLowerCase();
      return (h.charAt(0) === '[' && h.charAt(h.length - 1) === ']') ? h.slice(1, -1) : h;
    }

    function proxies() {
      var out = [];
      var names = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'];
      for (var i = 0; i < names.length; i++) {
        var v = process.env[names[i]];
        if (!v) continue;
        try {
          var u = new URLCtor(v);
          out.push({ host: stripBrackets(u.hostname), port: String(u.port || (u.protocol === 'https:' ? 443 : 80)) });
        } catch (e) { /* an unparsable proxy variable is not ours to fix */ }
      }
      return out;
    }

    // Normalises the (url, options, cb) | (options, cb) forms of http.request.
    function normalise(args) {
      var url = null, options = {}, cb, i = 0;
      if (typeof args[0] === 'string' || args[0] instanceof URLCtor) {
        try { url = new URLCtor(String(args[0])); } catch (e) { return null; }
        i = 1;
      }
      if (args[i] && typeof args[i] === 'object') { options = args[i]; i++; }
      if (typeof args[i] === 'function') cb = args[i];
      var host = options.hostname || options.host || (url && url.hostname) || 'localhost';
      var port = options.port || (url && url.port) || 80;
      var path = options.path || (url && (url.pathname + url.search)) || '/';
      return { url: url, options: options, cb: cb, host: stripBrackets(String(host).replace(/:\d+$/, '')), port: String(port), path: String(path) };
    }

    function aimedAtProxy(n) {
      if (!/^https:\/\//i.test(n.path)) return false;
      var list = proxies();
      for (var i = 0; i < list.length; i++) {
        if (list[i].host === n.host && list[i].port === n.port) return true;
      }
      return false;
    }

    function direct(n) {
      var target = new URLCtor(n.path);
      var opts = {};
      var keys = Object.keys(n.options);
      for (var i = 0; i < keys.length; i++) {
        if (!PROXY_ONLY[keys[i]]) opts[keys[i]] = n.options[keys[i]];
      }
      var headers = {};
      var src = n.options.headers || {};
      var hk = Object.keys(src);
      // A header that Connection names is hop-by-hop too (RFC 9110 7.6.1).
      var listed = {};
      for (var c = 0; c < hk.length; c++) {
        if (hk[c].toLowerCase() !== 'connection') continue;
        String([].concat(src[hk[c]]).join(',')).split(',').forEach(function (t) {
          t = t.trim().toLowerCase();
          if (t) listed[t] = 1;
        });
      }
      for (var j = 0; j < hk.length; j++) {
        var lower = hk[j].toLowerCase();
        if (!HOP_BY_HOP[lower] && !listed[lower]) headers[hk[j]] = src[hk[j]];
      }
      opts.headers = headers;
      if (!opts.method) opts.method = 'GET';
      return https.request(target, opts, n.cb);
    }

    var originalRequest = http.request;
    function request() {
      var n = normalise(arguments);
      if (n && aimedAtProxy(n)) return direct(n);
      return originalRequest.apply(this, arguments);
    }
    http.request = request;
    http.get = function get() {
      var req = request.apply(this, arguments);
      req.end();
      return req;
    };
  } catch (e) { /* a guard never throws while loading */ }
})();
