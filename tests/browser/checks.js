'use strict';
// The checks of tests/browsers.rs, run inside a real browser against `wsx serve`, an echo server.
//
// Configuration comes in the query string: `ws` (the server's URL), `deflate` (1 when the server
// runs with --deflate, so permessage-deflate must be negotiated), `seed` (the PRNG seed: the same
// seed sends the same bytes) and `step_ms` (the bound on every wait).
//
// Each step runs on its own socket and reports one console line, `WSX STEP <name> ok <ms>ms
// <detail>` or `WSX STEP <name> FAIL <why>`, naming the message (index, kind, size) whose echo
// was wrong or missing; `WSX DONE` follows the last step. `window.wsxProgress` always says what
// the page is waiting for, so a driver that gives up can name the step that hung.

const params = new URLSearchParams(location.search);
const WS_URL = params.get('ws');
const DEFLATE = params.get('deflate') === '1';
const SEED = Number(params.get('seed')) >>> 0 || 1;
const STEP_MS = Number(params.get('step_ms')) || 60000;

window.wsxProgress = 'loading';
function progress(what) {
  window.wsxProgress = what;
}
function say(line) {
  console.log('WSX ' + line);
}

class StepFailure extends Error {}
function fail(why) {
  throw new StepFailure(why);
}

// xorshift32: small, fast and reproducible from its seed.
function prng(seed) {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
function below(r, n) {
  return r() % n;
}

// ---- payloads ---------------------------------------------------------------------------------

// Incompressible bytes.
function noise(r, n) {
  const out = new Uint8Array(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = r();
    out[i] = v;
    out[i + 1] = v >>> 8;
    out[i + 2] = v >>> 16;
    out[i + 3] = v >>> 24;
  }
  for (; i < n; i++) out[i] = r();
  return out;
}
// A random 16-byte pattern, repeated.
function pattern(r, n) {
  const p = noise(r, 16);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = p[i & 15];
  return out;
}
// Alternating 4 KiB blocks of noise and of a repeating 16-byte pattern (the message that once broke compressed echoes in both browsers).
function noiseAndPattern(r, n) {
  const p = noise(r, 16);
  const out = new Uint8Array(n);
  for (let block = 0; block * 4096 < n; block++) {
    const start = block * 4096;
    const end = Math.min(n, start + 4096);
    if (block % 2 === 0) {
      out.set(noise(r, end - start), start);
    } else {
      for (let i = start; i < end; i++) out[i] = p[i & 15];
    }
  }
  return out;
}
const WORDS = ['alpha', 'bravo', 'wsx', 'frame', 'deflate', 'socket', 'message', 'echo', 'browser',
  'zlib', 'window', 'context', 'takeover', 'inflate', 'mask', 'opcode'];
// English-like words: compresses well. Exactly n bytes (ASCII).
function words(r, n) {
  const parts = [];
  let len = 0;
  while (len < n) {
    const w = WORDS[below(r, WORDS.length)] + (below(r, 8) ? ' ' : '\n');
    parts.push(w);
    len += w.length;
  }
  return parts.join('').slice(0, n);
}
// Random printable ASCII: compresses a little. Exactly n bytes.
function printable(r, n) {
  const codes = new Array(n);
  for (let i = 0; i < n; i++) codes[i] = 0x20 + below(r, 0x5f);
  const parts = [];
  for (let i = 0; i < n; i += 8192) parts.push(String.fromCharCode.apply(null, codes.slice(i, i + 8192)));
  return parts.join('');
}
const SYMBOLS = ['AAPL', 'MSFT', 'GOOG', 'AMZN', 'NVDA', 'TSLA', 'META', 'ORCL'];
// Market-data-like JSON records. Exactly n bytes (ASCII).
function json(r, n) {
  const parts = ['['];
  let len = 1;
  let seq = below(r, 1000000);
  while (len < n) {
    const bid = below(r, 100000);
    const rec = `{"seq":${seq},"sym":"${SYMBOLS[below(r, SYMBOLS.length)]}","bid":${(bid / 100).toFixed(2)},` +
      `"ask":${((bid + 1 + below(r, 20)) / 100).toFixed(2)},"qty":${below(r, 10000)},"ts":${1700000000000 + seq * 7}},`;
    parts.push(rec);
    len += rec.length;
    seq++;
  }
  return parts.join('').slice(0, n);
}
// One random code point whose UTF-8 form is `bytes` long (1 to 4), never a surrogate.
function codePoint(r, bytes) {
  switch (bytes) {
    case 1: return 0x20 + below(r, 0x5f);
    case 2: return 0x80 + below(r, 0x780);
    case 3: {
      let cp;
      do cp = 0x800 + below(r, 0xf800); while (cp >= 0xd800 && cp <= 0xdfff);
      return cp;
    }
    default: return 0x10000 + below(r, 0x100000);
  }
}
// Mixed 2-, 3- and 4-byte UTF-8 text of at least `minBytes` bytes: words from a small vocabulary
// of multibyte words (compressible, like real text) interleaved with runs of random code points.
function multibyte(r, minBytes, widths = [2, 3, 4]) {
  const vocab = [];
  for (let i = 0; i < 48; i++) {
    const cps = [];
    const n = 2 + below(r, 6);
    for (let j = 0; j < n; j++) cps.push(codePoint(r, widths[below(r, widths.length)]));
    vocab.push(String.fromCodePoint(...cps));
  }
  const parts = [];
  let bytes = 0;
  while (bytes < minBytes) {
    if (below(r, 4)) {
      const w = vocab[below(r, vocab.length)];
      parts.push(w, ' ');
      bytes += utf8Length(w) + 1;
    } else {
      const width = widths[below(r, widths.length)];
      parts.push(String.fromCodePoint(codePoint(r, width)));
      bytes += width;
    }
  }
  return parts.join('');
}
const encoder = new TextEncoder();
function utf8Length(s) {
  return encoder.encode(s).length;
}
function size(data) {
  return typeof data === 'string' ? utf8Length(data) : data.length;
}

// ---- sockets ----------------------------------------------------------------------------------

// Opens a socket and checks that permessage-deflate was negotiated exactly when expected.
function openSocket(what) {
  return new Promise((resolve, reject) => {
    progress(`${what}: opening ${WS_URL}`);
    const ws = new WebSocket(WS_URL);
    ws.binaryType = 'arraybuffer';
    const timer = setTimeout(() => {
      ws.close();
      reject(new StepFailure(`${what}: not open after ${STEP_MS} ms`));
    }, STEP_MS);
    ws.onopen = () => {
      clearTimeout(timer);
      ws.onclose = null;
      const deflate = ws.extensions.includes('permessage-deflate');
      if (deflate !== DEFLATE) {
        ws.close();
        reject(new StepFailure(`${what}: extensions "${ws.extensions}", expected permessage-deflate ${DEFLATE ? 'on' : 'off'}`));
      } else {
        resolve(ws);
      }
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      clearTimeout(timer);
      reject(new StepFailure(`${what}: closed before it opened (code ${ev.code})`));
    };
  });
}

// Resolves with the close event, or fails after STEP_MS.
function closed(ws, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new StepFailure(`${what}: no close event after ${STEP_MS} ms`)), STEP_MS);
    ws.onclose = (ev) => {
      clearTimeout(timer);
      resolve(ev);
    };
  });
}

// Closes a socket an echo step used, waiting (bounded) for the handshake; not itself a check.
async function release(ws) {
  if (ws.readyState === WebSocket.CLOSED) return;
  const done = closed(ws, 'release').catch(() => {});
  ws.close(1000);
  await done;
}

// Where `expected` and `got` differ, or null when they are the same message byte for byte.
function compare(expected, got) {
  if (typeof expected === 'string') {
    if (typeof got !== 'string') return `expected a text message, got binary of ${got.byteLength} bytes`;
    if (got === expected) return null;
    let i = 0;
    while (i < got.length && i < expected.length && got.charCodeAt(i) === expected.charCodeAt(i)) i++;
    return `text of ${utf8Length(got)} bytes (${got.length} UTF-16 units), expected ${utf8Length(expected)} ` +
      `bytes (${expected.length} units); first difference at unit ${i}`;
  }
  if (typeof got === 'string') return `expected a binary message, got text of ${utf8Length(got)} bytes`;
  if (!(got instanceof ArrayBuffer)) return `expected an ArrayBuffer, got ${Object.prototype.toString.call(got)}`;
  const g = new Uint8Array(got);
  let i = 0;
  const n = Math.min(g.length, expected.length);
  while (i < n && g[i] === expected[i]) i++;
  if (i === n && g.length === expected.length) return null;
  return `${g.length} bytes, expected ${expected.length}; first difference at byte ${i}`;
}

// Sends `count` messages made by `make(i)` (on demand: `{kind, data}`), at most `window` of them
// unanswered at a time, and checks each echo against the oldest unanswered message, byte for byte
// and in order. Resolves with the bytes sent.
function echoRun(ws, what, count, make, window) {
  return new Promise((resolve, reject) => {
    const pending = [];
    let sent = 0;
    let echoed = 0;
    let bytes = 0;
    let done = false;
    const waitingFor = () => (pending.length ? pending[0].desc : 'nothing (no message outstanding)');
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.onmessage = null;
      ws.onclose = null;
      if (err) reject(new StepFailure(err));
      else resolve(bytes);
    };
    const timer = setTimeout(() => finish(`${what}: timed out after ${STEP_MS} ms with ${echoed} of ${count} ` +
      `echoed, waiting for the echo of ${waitingFor()}`), STEP_MS);
    const pump = () => {
      while (sent < count && pending.length < window) {
        const m = make(sent);
        m.bytes = size(m.data);
        m.desc = `message ${sent} of ${count} (${m.kind}, ${m.bytes} bytes)`;
        pending.push(m);
        bytes += m.bytes;
        ws.send(m.data);
        sent++;
      }
      progress(`${what}: ${echoed} of ${count} echoed, waiting for the echo of ${waitingFor()}`);
    };
    ws.onmessage = (ev) => {
      const m = pending.shift();
      if (!m) return finish(`${what}: a message nobody sent arrived after ${echoed} echoes`);
      const diff = compare(m.data, ev.data);
      if (diff) return finish(`${what}: the echo of ${m.desc} differs: ${diff}`);
      echoed++;
      if (echoed === count) return finish(null);
      pump();
    };
    ws.onclose = (ev) => finish(`${what}: socket closed (code ${ev.code}, reason "${ev.reason}", wasClean ` +
      `${ev.wasClean}) after ${echoed} of ${count} echoes, waiting for the echo of ${waitingFor()}`);
    ws.onerror = () => {};
    pump();
  });
}

// Opens a socket, runs echoRun on it, closes it.
async function echoStep(what, count, make, window) {
  const ws = await openSocket(what);
  try {
    const bytes = await echoRun(ws, what, count, make, window);
    return `${count} messages, ${bytes} bytes each way` + (ws.extensions ? `, extensions "${ws.extensions}"` : '');
  } finally {
    await release(ws);
  }
}

// ---- the steps --------------------------------------------------------------------------------

const SIZES = [0, 125, 126, 65535, 65536, 1 << 20];

async function sizes(r) {
  return echoStep('sizes', SIZES.length * 2, (i) => {
    const n = SIZES[i >> 1];
    return i & 1 ? { kind: 'binary noise', data: noise(r, n) } : { kind: 'text', data: words(r, n) };
  }, 2);
}

async function multibyteText(r) {
  const messages = [
    { kind: 'multibyte text', data: multibyte(r, 130000) },
    { kind: 'one 2-byte character', data: String.fromCodePoint(codePoint(r, 2)) },
    { kind: 'one 3-byte character', data: String.fromCodePoint(codePoint(r, 3)) },
    { kind: 'one 4-byte character', data: String.fromCodePoint(codePoint(r, 4)) },
    { kind: '4-byte-only text', data: multibyte(r, 65536, [4]) },
  ];
  return echoStep('multibyte', messages.length, (i) => messages[i], 1);
}

const LONG_RUN = 322;
const MAX_RANDOM = 256 * 1024;

// Random sizes from 0 to 256 KiB, log-uniform so that small, medium and large all occur, with the
// two ends forced now and then.
function randomSize(r, i) {
  if (i % 64 === 10) return MAX_RANDOM;
  if (i % 64 === 20) return 0;
  return Math.floor(Math.pow(MAX_RANDOM + 1, r() / 4294967296)) - 1;
}
const KINDS = [
  ['binary noise', (r, n) => noise(r, n)],
  ['binary pattern', (r, n) => pattern(r, n)],
  ['binary noise/pattern blocks', (r, n) => noiseAndPattern(r, n)],
  ['json text', (r, n) => json(r, n)],
  ['words text', (r, n) => words(r, n)],
  ['printable text', (r, n) => printable(r, n)],
  ['multibyte text', (r, n) => multibyte(r, n)],
];

async function longRun(r) {
  return echoStep('long run', LONG_RUN, (i) => {
    // First the sequence that once broke both browsers with --deflate: a ~130 KB multibyte text, then 65,535 bytes of alternating
    // 4 KiB noise / 16-byte pattern blocks. Then random kinds and sizes.
    if (i === 0) return { kind: 'multibyte text', data: multibyte(r, 130000) };
    if (i === 1) return { kind: 'binary noise/pattern blocks', data: noiseAndPattern(r, 65535) };
    const [kind, make] = KINDS[below(r, KINDS.length)];
    return { kind, data: make(r, randomSize(r, i)) };
  }, 4);
}

const BURST = 1000;

async function burst(r) {
  return echoStep('burst', BURST, (i) => {
    if (i % 3 === 2) return { kind: 'small binary', data: noise(r, 1 + below(r, 32)) };
    return { kind: 'small text', data: `burst ${i} ${words(r, below(r, 32))}` };
  }, BURST);
}

// The page closes with `code` and `reason`; the server must answer with the same code. RFC 6455
// §5.5.1 lets the server's reason differ, so the reason seen must be either the one sent or empty.
async function closeFromPage(what, code, reason) {
  const ws = await openSocket(what);
  const ev = closed(ws, what);
  ws.close(code, reason);
  const e = await ev;
  if (e.code !== code) fail(`${what}: close event code ${e.code}, expected ${code} (reason "${e.reason}")`);
  if (e.reason !== reason && e.reason !== '') fail(`${what}: close event reason "${e.reason}", sent "${reason}"`);
  if (!e.wasClean) fail(`${what}: wasClean false (code ${e.code})`);
  return `code ${e.code}, reason "${e.reason}", wasClean ${e.wasClean}`;
}

// Asks the test (over HTTP) to send SIGTERM to `wsx serve`, which closes every client with 1001.
async function serverClose(r) {
  const what = 'server close';
  const ws = await openSocket(what);
  await echoRun(ws, what, 1, () => ({ kind: 'text', data: words(r, 100) }), 1);
  const ev = closed(ws, what);
  progress(`${what}: asking the test to stop the server`);
  const res = await fetch('/terminate', { method: 'POST' });
  if (!res.ok) fail(`${what}: POST /terminate answered ${res.status}`);
  progress(`${what}: waiting for the server's close frame`);
  const e = await ev;
  if (e.code !== 1001) fail(`${what}: close event code ${e.code}, expected 1001 (reason "${e.reason}", wasClean ${e.wasClean})`);
  if (!e.wasClean) fail(`${what}: wasClean false (code ${e.code})`);
  return `code ${e.code}, reason "${e.reason}", wasClean ${e.wasClean}`;
}

const STEPS = [
  ['sizes', sizes],
  ['multibyte', multibyteText],
  ['long-run', longRun],
  ['burst', burst],
  ['close-1000', () => closeFromPage('close 1000', 1000, 'bye')],
  ['close-4000', () => closeFromPage('close 4000', 4000, 'application reason: ünïcödé ✓ 😀')],
  ['server-close', serverClose],
];

async function main() {
  say(`START seed ${SEED} deflate ${DEFLATE} ${navigator.userAgent}`);
  for (let s = 0; s < STEPS.length; s++) {
    const [name, run] = STEPS[s];
    const r = prng(SEED + Math.imul(s + 1, 0x9e3779b9));
    const t0 = performance.now();
    progress(name);
    try {
      const detail = await run(r);
      say(`STEP ${name} ok ${Math.round(performance.now() - t0)}ms ${detail}`);
    } catch (e) {
      say(`STEP ${name} FAIL ${e instanceof StepFailure ? e.message : `${name}: ${e && e.stack || e}`}`);
    }
  }
  progress('done');
  say('DONE');
}

window.addEventListener('error', (e) => say(`PAGEERROR ${e.message}`));
main();
