// Node ws as a client of a wsx server: sends messages with permessage-deflate and checks the
// echoes. Usage: node ws_client.js URL ; prints "ok <n>" and exits 0 on success.
const WebSocket = require('ws');
const url = process.argv[2];
const ws = new WebSocket(url, { perMessageDeflate: { threshold: 0 } });
const messages = [];
for (const n of [1, 100, 1023, 1024, 5000, 100000]) {
  messages.push({ text: true, data: 'wsx and ws interop '.repeat(Math.ceil(n / 19)).slice(0, n) });
  messages.push({ text: false, data: Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) % 251)) });
}
let next = 0;
const fail = (why) => { console.error('FAIL ' + why); process.exit(1); };
setTimeout(() => fail('timeout'), 10000);
ws.on('open', () => {
  if (!/permessage-deflate/.test(ws.extensions)) fail('no permessage-deflate negotiated: ' + ws.extensions);
  for (const m of messages) ws.send(m.data, { binary: !m.text, compress: true });
});
ws.on('message', (data, isBinary) => {
  const want = messages[next++];
  if (isBinary === want.text) fail('kind of message ' + next);
  const got = isBinary ? data : data.toString();
  if (isBinary ? !got.equals(want.data) : got !== want.data) fail('content of message ' + next);
  if (next === messages.length) ws.close(1000, 'done');
});
ws.on('close', (code) => {
  if (next !== messages.length) fail('closed early with ' + code);
  console.log('ok ' + next);
  process.exit(0);
});
ws.on('error', (e) => fail(String(e)));
