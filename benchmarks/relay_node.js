// The signaling relay one would write in an afternoon with Node and the `ws` package.
//
// The Node baseline of benchmarks/throughput.py, the same protocol subset as
// relay_python.py: register, offer -> incoming, ringing, answer, decline, busy,
// hangup -> call_ended, candidate. No tokens, blocks, timers, notices, durability, limits
// or logs. `ws` comes from `npm install --prefix DIR ws` (the benchmark does it; run with
// NODE_PATH=DIR/node_modules).
//
//   node benchmarks/relay_node.js [PORT]     # prints ws://127.0.0.1:PORT, Ctrl-C stops
'use strict';
const { WebSocketServer } = require('ws');

const phones = new Map();
const calls = new Map();

function send(name, message) {
  const ws = phones.get(name);
  if (ws !== undefined) ws.send(JSON.stringify(message));
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] || 0) });
wss.on('listening', () => {
  console.log(`bare Node ws relay listening on ws://127.0.0.1:${wss.address().port}`);
});
wss.on('connection', (ws) => {
  let me = null;
  ws.on('message', (data) => {
    const m = JSON.parse(data);
    const callId = m.call_id;
    const call = callId === undefined ? undefined : calls.get(callId);
    if (m.type === 'register') {
      me = m.name;
      phones.set(me, ws);
      ws.send(JSON.stringify({ type: 'registered', name: me, blocks: [], calls: [] }));
    } else if (m.type === 'offer') {
      calls.set(callId, { caller: me, callee: m.to, answered: false });
      send(m.to, { type: 'incoming', call_id: callId, from: me, kind: m.kind, sdp: m.sdp,
                   placed_at: performance.now() / 1000 });
    } else if (call === undefined) {
      return;
    } else if (m.type === 'ringing' || m.type === 'answer') {
      call.answered = call.answered || m.type === 'answer';
      send(call.caller, m);
    } else if (m.type === 'candidate') {
      send(me === call.caller ? call.callee : call.caller, m);
    } else if (m.type === 'decline' || m.type === 'busy' || m.type === 'hangup') {
      calls.delete(callId);
      let other, reason;
      if (me === call.callee) {
        other = call.caller;
        reason = m.type === 'busy' ? 'busy' : call.answered ? 'hung_up' : 'declined';
      } else {
        other = call.callee;
        reason = call.answered ? 'hung_up' : (m.reason || 'canceled');
      }
      send(other, { type: 'call_ended', call_id: callId, reason });
    }
  });
  ws.on('close', () => {
    if (me !== null && phones.get(me) === ws) phones.delete(me);
  });
});
process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
