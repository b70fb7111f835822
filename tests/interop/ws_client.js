// Node ws as a client of a wsx server, one connection per case, cases run one after another.
// stdin: one case a line, "ID<TAB>URL<TAB>SPEC" (SPEC as in messages.js: the offer), then END.
// For each case it sends every message of messages.js at once, checks each echo byte for byte
// and in order, closes with 1000 and prints one line:
//   RESULT<TAB>ID<TAB>ok<TAB>EXTENSIONS<TAB>PAYLOAD_BYTES     or     RESULT<TAB>ID<TAB>fail<TAB>WHY
// where EXTENSIONS is the Sec-WebSocket-Extensions header of the server's 101 ("" when none).
// Offer options: snct -> serverNoContextTakeover; cnct -> clientNoContextTakeover: true;
// cnct=0 -> clientNoContextTakeover: false (ws then refuses an answer that carries it);
// smwb=N -> serverMaxWindowBits; cmwb -> bare client_max_window_bits (ws's default);
// cmwb=N -> clientMaxWindowBits: N; cmwb=0 -> not offered.
// With `--ca FILE` a wss:// URL is verified against that CA alone (the `ca` option of tls).
'use strict';
const WebSocket = require('ws');
const { messages, totalBytes, parseSpec, readCases, tlsArgs } = require('./messages.js');

const tls = tlsArgs();

const list = messages();
const total = totalBytes(list);

function options(spec) {
  const p = parseSpec(spec);
  if (p === null) return false;
  const o = { threshold: 0 };
  if (p.snct) o.serverNoContextTakeover = true;
  if (p.cnct === true) o.clientNoContextTakeover = true;
  if (p.cnct === 0) o.clientNoContextTakeover = false;
  if (typeof p.smwb === 'number') o.serverMaxWindowBits = p.smwb;
  if (p.cmwb === 0) o.clientMaxWindowBits = false;
  else if (typeof p.cmwb === 'number') o.clientMaxWindowBits = p.cmwb;
  return o;
}

function runCase(url, spec) {
  return new Promise((resolve) => {
    let extensions = '';
    let next = 0;
    let settled = false;
    const o = { perMessageDeflate: options(spec), maxPayload: 64 << 20 };
    if (tls.ca) o.ca = tls.ca;
    const ws = new WebSocket(url, o);
    const finish = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const fail = (why) => {
      finish({ ok: false, why });
      ws.terminate();
    };
    const timer = setTimeout(() => fail(`timeout after ${next} echoes`), 30000);
    ws.on('upgrade', (res) => {
      extensions = res.headers['sec-websocket-extensions'] || '';
    });
    ws.on('open', () => {
      for (const m of list) ws.send(m.data, { binary: !m.text, compress: true });
    });
    ws.on('message', (data, isBinary) => {
      const want = list[next];
      if (want === undefined) return fail(`unexpected message ${next + 1}`);
      next += 1;
      if (isBinary === want.text) return fail(`message ${next}: wrong kind`);
      const same = isBinary ? data.equals(want.data) : data.toString() === want.data;
      if (!same) return fail(`message ${next}: content differs (${data.length} bytes)`);
      if (next === list.length) ws.close(1000, 'done');
    });
    ws.on('close', (code) => {
      if (next !== list.length) return fail(`closed with ${code} after ${next} echoes`);
      finish({ ok: true, extensions });
    });
    ws.on('error', (e) => fail(`${e.message} (extensions: ${extensions})`));
  });
}

readCases(async (lines) => {
  for (const line of lines) {
    const [id, url, spec] = line.split('\t');
    const r = await runCase(url, spec);
    const clean = (s) => s.replace(/[\t\n]/g, ' ');
    if (r.ok) console.log(['RESULT', id, 'ok', clean(r.extensions), total].join('\t'));
    else console.log(['RESULT', id, 'fail', clean(r.why)].join('\t'));
  }
  process.exit(0);
});
