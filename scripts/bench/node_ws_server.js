// Node ws echo server for the deflate memory comparison: node node_ws_server.js PORT [--deflate]
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2]);
const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: deflate });
wss.on('connection', (ws) => ws.on('message', (d, b) => ws.send(d, { binary: b })));
