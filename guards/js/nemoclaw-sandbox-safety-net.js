// guardchain: nemoclaw-sandbox-safety-net.js
// Keeps a sandboxed OpenClaw gateway alive when one library throws or rejects
// asynchronously: the gateway is shared by every channel, so one provider's bug
// must not take the others down. Inactive outside a sandbox gateway process.
'use strict';
(function sandboxSafetyNet() {
  var MARK = Symbol.for('guardchain.sandbox-safety-net');
  if (globalThis[MARK]) return;
  globalThis[MARK] = true;
  try {
    var path = require('path');

    function gatewayFlavor() {
      var argv = process.argv || [];
      if (argv[2] === 'gateway') return 'argv[2]=gateway';
      var named = [
        ['argv0', process.argv0],
        ['title', process.title],
        ['argv[1]', argv[1]],
        ['argv[0]', argv[0]],
      ];
      for (var i = 0; i < named.length; i++) {
        var v = named[i][1];
        if (typeof v === 'string' && path.basename(v) === 'openclaw-gateway') {
          return named[i][0] + '=openclaw-gateway';
        }
      }
      return '';
    }

    if (!process.env.OPENSHELL_SANDBOX) return;
    var flavor = gatewayFlavor();
    if (!flavor) return;

    function describe(err) {
      if (err instanceof Error) return err.message;
      try { return String(err); } catch (e) { return '<unprintable>'; }
    }

    // Known benign: mDNS (ciao) probing cancelled on shutdown or any other
    // failure raised inside the ciao library (the sandbox has no multicast),
    // and the interface enumeration that the sandbox network namespace forbids.
    function benign(err) {
      var msg = describe(err);
      var stack = (err && typeof err.stack === 'string') ? err.stack : '';
      if (msg.indexOf('CIAO PROBING CANCELLED') !== -1) return 'ciao probing cancelled';
      if (stack.indexOf('@homebridge/ciao') !== -1 || stack.indexOf('/ciao/') !== -1) return 'ciao/mDNS';
      if (msg.indexOf('uv_interface_addresses') !== -1) return 'uv_interface_addresses';
      if (err && err.code === 'ERR_SYSTEM_ERROR' &&
          (msg.indexOf('networkInterfaces') !== -1 || stack.indexOf('networkInterfaces') !== -1)) {
        return 'networkInterfaces system error';
      }
      return '';
    }

    function report(kind, err) {
      try {
        var known = benign(err);
        if (known) {
          process.stderr.write('[sandbox-safety-net] ignored ' + kind + ' (' + known + '): ' + describe(err) + '\n');
          return;
        }
        var stack = (err && err.stack) ? String(err.stack) : describe(err);
        process.stderr.write('[sandbox-safety-net] UNKNOWN PATTERN ' + kind + ': ' + describe(err) +
          ' - gateway continues\n' + stack + '\n');
      } catch (e) { /* logging must never throw from a handler */ }
    }

    process.on('uncaughtException', function (err) { report('uncaughtException', err); });
    process.on('unhandledRejection', function (reason) { report('unhandledRejection', reason); });
    process.stderr.write('[sandbox-safety-net] loaded (' + flavor + ')\n');
  } catch (e) { /* a guard never throws while loading */ }
})();
