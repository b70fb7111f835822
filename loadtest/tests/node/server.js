// A Node `ws` server for the load generator's tests (loadtest/tests/peers.rs).
//
// Echoes every message as it came (text or binary); a text message `B<payload>` sends
// `<payload>` as text to every open client, the sender included (the publish rule of
// `wsx serve --broadcast B`). Listens on 127.0.0.1, an ephemeral port, and prints
// `listening on PORT` as its first line. It exits when its stdin closes, or after
// LIFETIME_MS at the latest, so it never outlives the test that started it.
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

const LIFETIME_MS = 180 * 1000;
const PREFIX = 'B';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text.startsWith(PREFIX)) {
        const payload = text.slice(PREFIX.length);
        for (const client of wss.clients) {
          if (client.readyState === WebSocket.OPEN) {
            client.send(payload, { binary: false });
          }
        }
        return;
      }
      ws.send(text, { binary: false });
      return;
    }
    ws.send(data, { binary: true });
  });
});

wss.on('listening', () => {
  process.stdout.write(`listening on ${wss.address().port}\n`);
});

wss.on('error', (e) => {
  process.stderr.write(`server.js: ${e}\n`);
  process.exit(1);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), LIFETIME_MS).unref();
