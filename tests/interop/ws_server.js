// Node ws as echo servers for the wsx clients: one WebSocketServer on its own port per case.
// stdin: one case a line, "ID<TAB>SPEC" (SPEC as in messages.js: the server's options), then
// END. Prints "PORT<TAB>ID<TAB>port" for each, then "READY", and exits when stdin closes (or
// after 5 minutes at most).
// On each connection the server first sends the text "HELLO\n<offer>\n<answer>" (the
// Sec-WebSocket-Extensions headers of the request and of its 101, "" when absent), then echoes
// every message with compress: true.
// Server options: snct -> serverNoContextTakeover: true; cnct -> clientNoContextTakeover: true;
// smwb=N -> serverMaxWindowBits; cmwb=N -> clientMaxWindowBits.
// With `--cert FILE --key FILE` each server is an https.createServer with that certificate and
// the WebSocketServer runs on it (wss://).
'use strict';
const https = require('https');
const { WebSocketServer } = require('ws');
const { parseSpec, readCases, tlsArgs } = require('./messages.js');

const tls = tlsArgs();

function options(spec) {
  const p = parseSpec(spec);
  if (p === null) return false;
  const o = { threshold: 0 };
  if (p.snct) o.serverNoContextTakeover = true;
  if (p.cnct) o.clientNoContextTakeover = true;
  if (typeof p.smwb === 'number') o.serverMaxWindowBits = p.smwb;
  if (typeof p.cmwb === 'number') o.clientMaxWindowBits = p.cmwb;
  return o;
}

function listen(spec) {
  return new Promise((resolve) => {
    const o = { perMessageDeflate: options(spec), maxPayload: 64 << 20 };
    let wss;
    if (tls.cert) {
      const server = https.createServer({ cert: tls.cert, key: tls.key });
      wss = new WebSocketServer({ server, ...o });
      server.listen(0, '127.0.0.1', () => resolve(server.address().port));
    } else {
      wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...o });
      wss.on('listening', () => resolve(wss.address().port));
    }
    const answers = new WeakMap();
    wss.on('headers', (headers, req) => {
      const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
      answers.set(req, line ? line.slice(line.indexOf(':') + 1).trim() : '');
    });
    wss.on('connection', (ws, req) => {
      const offer = req.headers['sec-websocket-extensions'] || '';
      ws.send(`HELLO\n${offer}\n${answers.get(req) || ''}`);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary, compress: true }));
    });
  });
}

readCases(async (lines) => {
  for (const line of lines) {
    const [id, spec] = line.split('\t');
    const port = await listen(spec);
    console.log(['PORT', id, port].join('\t'));
  }
  console.log('READY');
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  setTimeout(() => process.exit(0), 300000);
});
