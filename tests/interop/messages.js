// The messages every interop case sends, in order, on one connection; the same list as
// `messages()` in tests/support/interop.rs and messages.py (same sizes and bytes).
'use strict';

function xorshift(seed, n) {
  const out = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function json(n) {
  let s = '';
  for (let i = 0; s.length < n; i++) {
    s += `{"seq":${i},"sym":"BTC-USD","side":"buy","qty":${i % 97}}\n`;
  }
  return s.slice(0, n);
}

function messages() {
  const big = Buffer.alloc((1 << 20) + 4096);
  for (let i = 0; i < big.length; i++) big[i] = (((i % 61) * 7) + (i >> 12)) & 0xff;
  const mixed = Buffer.alloc(65535);
  const noise = xorshift(12345, 65535);
  for (let i = 0; i < mixed.length; i++) {
    mixed[i] = ((i >> 12) & 1) === 0 ? noise[i] : '0123456789abcdef'.charCodeAt(i % 16);
  }
  const small = Buffer.alloc(125);
  for (let i = 0; i < small.length; i++) small[i] = i % 5;
  let letters = '';
  for (let i = 0; i < 126; i++) letters += String.fromCharCode(97 + (i % 26));
  return [
    { text: true, data: 'hello, wsx' },
    { text: true, data: json(65536) },
    { text: false, data: big },
    { text: true, data: 'héllo wörld, 日本語のテキスト, emoji 🎉🚀 '.repeat(2000) },
    { text: false, data: xorshift(0x9e3779b9, 256 * 1024) },
    { text: false, data: mixed },
    { text: true, data: json(65536) },
    { text: false, data: small },
    { text: true, data: letters },
    // Last, so that every other message is checked first.
    { text: false, data: Buffer.alloc(0) },
  ];
}

// Total payload bytes of `messages()`.
function totalBytes(list) {
  return list.reduce((n, m) => n + (m.text ? Buffer.byteLength(m.data) : m.data.length), 0);
}

// Parses a case's deflate spec: "off", "on" (the defaults), or tokens joined by commas: snct, cnct, cnct=0, smwb=N,
// cmwb (bare), cmwb=N, cmwb=0 (not offered).
function parseSpec(spec) {
  if (spec === 'off') return null;
  if (spec === 'on') return {};
  const out = {};
  for (const token of spec.split(',').filter((t) => t.length > 0)) {
    const [key, value] = token.split('=');
    out[key] = value === undefined ? true : Number(value);
  }
  return out;
}

// Reads stdin lines up to "END" (or EOF); calls `done(lines)`.
function readCases(done) {
  let buffered = '';
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    done(buffered.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && l !== 'END'));
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => {
    buffered += chunk;
    if (/(^|\n)END\n/.test(buffered)) {
      buffered = buffered.slice(0, buffered.search(/(^|\n)END\n/));
      finish();
    }
  });
  process.stdin.on('end', finish);
}

// The TLS files named on the command line: `--ca FILE` (what a client trusts), `--cert FILE`
// and `--key FILE` (what a server presents), each read into a Buffer; absent ones are undefined.
function tlsArgs() {
  const fs = require('fs');
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!['ca', 'cert', 'key'].includes(name)) throw new Error(`unknown argument ${argv[i]}`);
    out[name] = fs.readFileSync(argv[i + 1]);
  }
  return out;
}

module.exports = { messages, totalBytes, parseSpec, readCases, tlsArgs };
