// guardchain: nemoclaw-ciao-network-guard.js
// The sandbox's network namespace makes uv_interface_addresses fail, and
// os.networkInterfaces() then throws; ciao (mDNS) calls it on a timer and
// crash-loops the gateway. An empty interface list only disables mDNS.
'use strict';
(function ciaoNetworkGuard() {
  var MARK = Symbol.for('guardchain.ciao-network-guard');
  if (globalThis[MARK]) return;
  globalThis[MARK] = true;
  try {
    var os = require('os');
    var path = require('path');
    var INTERVAL_MS = 5 * 60 * 1000;

    function gatewayFlavor() {
      var argv = process.argv || [];
      if (argv[2] === 'gateway') return 'gateway';
      var names = [process.argv0, process.title, argv[1], argv[0]];
      for (var i = 0; i < names.length; i++) {
        if (typeof names[i] === 'string' && path.basename(names[i]) === 'openclaw-gateway') return 'gateway';
      }
      return '';
    }

    var original = os.networkInterfaces;
    var lastLog = 0;
    var suppressed = 0;
    var failures = 0;

    function guardedNetworkInterfaces() {
      try {
        return original.apply(this, arguments);
      } catch (err) {
        var now = Date.now();
        var msg = (err && err.message) ? err.message : String(err);
        if (failures === 0 || now - lastLog >= INTERVAL_MS) {
          var extra = suppressed > 0 ? ' (' + suppressed + ' repeats suppressed)' : '';
          process.stderr.write('[guard] os.networkInterfaces() failed: ' + msg +
            ' - returning empty (mDNS disabled)' + extra + '\n');
          lastLog = now;
          suppressed = 0;
        } else {
          suppressed++;
        }
        failures++;
        return {};
      }
    }
    os.networkInterfaces = guardedNetworkInterfaces;

    var flavor = gatewayFlavor() || 'process';
    if (flavor === 'gateway') {
      var swallow = function (err) {
        if (!err) return false;
        var msg = String(err.message || '');
        var stack = String(err.stack || '');
        if (err.code === 'ERR_SYSTEM_ERROR' && (msg + stack).indexOf('uv_interface_addresses') !== -1) return true;
        return /ciao/i.test(stack) && msg.indexOf('networkInterfaces') !== -1;
      };
      process.on('uncaughtException', function ciaoFallback(err, origin) {
        if (swallow(err)) {
          process.stderr.write('[guard] swallowed ' + (origin || 'uncaughtException') + ': ' + err.message + '\n');
          return;
        }
        // Our listener must not turn other crashes into silent survival: when
        // nobody else handles the error, fail as Node itself would.
        if (process.listenerCount('uncaughtException') <= 1) {
          process.stderr.write((err && err.stack ? err.stack : String(err)) + '\n');
          process.exit(1);
        }
      });
    }
    process.stderr.write('[guard] ciao-network-guard loaded (' + flavor + ')\n');
  } catch (e) { /* a guard never throws while loading */ }
})();
