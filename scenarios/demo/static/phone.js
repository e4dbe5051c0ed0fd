// The browser phone: WebRTC in the page, the wire protocol (docs/protocol.md) to the signaling
// server, and no decisions of its own. Every frame it receives and every button press goes to
// its Phone on the demo server (the /phone-ws bridge), which answers with the frames to send;
// only the media (SDP, trickled candidates, audio) is done here.
"use strict";

const $ = (id) => document.getElementById(id);
const name = new URLSearchParams(location.search).get("name") || "erin";
const SCREENS = {
  off: () => "Switched off", idle: () => "Idle", ended: () => "Call ended",
  calling: (c) => `Calling ${c.peer}…`, ringing: (c) => `Ringing ${c.peer}…`,
  incoming: (c) => `${c.peer} is calling`, reconnecting: () => "Reconnecting…",
  in_call: (c) => `In call with ${c.peer}`,
};

// What tests and curious people can read: the card as the server labels it, and media stats.
window.phone = { name, card: null, stats: null, lastStats: null, registered: false, errors: [] };

let bridge = null;      // to the demo server: this phone's Phone
let sig = null;         // to the signaling server
let signalingUrl = null;
let pc = null;          // the peer connection of the call in progress
let pcCallId = null;    // its call id, once a frame naming it has been sent
let localQueue = [];    // our candidates, held until our offer or answer has gone out
let remoteQueue = [];   // theirs, held until their description is set
const offers = {};      // incoming offers by call id
let inbox = Promise.resolve();  // frames are handled one after the other, in order

const mic = navigator.mediaDevices.getUserMedia({ audio: true });  // the fake device in tests

function showError(message) {
  window.phone.errors.push(message);
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  setTimeout(() => { if (box.textContent === message) box.hidden = true; }, 6000);
}

function toBridge(message) {
  if (bridge && bridge.readyState === WebSocket.OPEN) bridge.send(JSON.stringify(message));
}

function connectBridge() {
  $("name").textContent = name;
  bridge = new WebSocket(`ws://${location.host}/phone-ws?name=${encodeURIComponent(name)}`);
  bridge.onmessage = (event) => {
    const message = JSON.parse(event.data);
    switch (message.op) {
      case "hello": signalingUrl = message.signaling_url; $("signaling").textContent = signalingUrl; connectSignaling(); break;
      case "send": sendFrame(message.text); break;
      case "state": draw(message.card, message.label_profile, message.now); break;
      case "error": showError(message.message); break;
      case "reset": location.reload(); break;  // the demo loaded another world
    }
  };
  bridge.onclose = (event) => {
    $("connection").textContent = event.code === 4001 ? "replaced by another page" : "disconnected";
    $("connection").className = "pill bad";
    if (sig) sig.close();
    closeCall();
    if (event.code !== 4001 && event.code !== 4000) setTimeout(connectBridge, 1000);
    if (event.code === 4000) showError(event.reason);
  };
}

function connectSignaling() {
  sig = new WebSocket(signalingUrl);
  sig.onopen = () => {
    $("connection").textContent = "connected"; $("connection").className = "pill ok";
    toBridge({ op: "link_up" });
  };
  sig.onmessage = (event) => { inbox = inbox.then(() => received(event.data)).catch((e) => showError(String(e))); };
  sig.onclose = () => {
    toBridge({ op: "link_down" });
    $("connection").textContent = "reconnecting…"; $("connection").className = "pill bad";
    if (bridge && bridge.readyState === WebSocket.OPEN) setTimeout(connectSignaling, 1000);
  };
}

async function received(text) {
  await mic;  // no frame is handled before the microphone is ready (browser-interop.md, pitfall 4)
  const frame = JSON.parse(text);
  toBridge({ op: "frame", text });  // the Phone decides; what follows is media only
  if (frame.type === "incoming") offers[frame.call_id] = frame.sdp;
  if (frame.type === "answer" && pc && frame.call_id === pcCallId && !pc.remoteDescription) {
    await pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
    await drainRemote();
  }
  if (frame.type === "candidate") {
    remoteQueue.push(frame);
    if (pc && pc.remoteDescription) await drainRemote(frame.call_id === pcCallId ? pcCallId : offersCall(frame.call_id));
  }
}

function offersCall(callId) {
  // A callee's PC has the offer set before its answer goes out (pcCallId still null then).
  return pc && !pcCallId && answering === callId ? callId : null;
}

let answering = null;  // the incoming call being answered, until our answer has gone out

function sendFrame(text) {
  if (!sig || sig.readyState !== WebSocket.OPEN) return;
  sig.send(text);
  const frame = JSON.parse(text);
  if ((frame.type === "offer" || frame.type === "answer") && pc) {
    pcCallId = frame.call_id;  // now the server knows the call: our candidates may follow
    for (const c of localQueue) sendCandidate(c);
    localQueue = [];
  }
}

function sendCandidate(c) {
  const frame = c
    ? { type: "candidate", call_id: pcCallId, candidate: c.candidate, sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex }
    : { type: "candidate", call_id: pcCallId, candidate: "", sdp_mid: null, sdp_mline_index: null };
  if (sig && sig.readyState === WebSocket.OPEN) sig.send(JSON.stringify(frame));
}

async function drainRemote(callId = pcCallId) {
  const ready = remoteQueue.filter((f) => f.call_id === callId);
  remoteQueue = remoteQueue.filter((f) => f.call_id !== callId);
  for (const f of ready) {
    await pc.addIceCandidate(f.candidate ? { candidate: f.candidate, sdpMid: f.sdp_mid, sdpMLineIndex: f.sdp_mline_index } : null);
  }
}

async function newCall() {
  closeCall();
  const stream = await mic;
  pc = new RTCPeerConnection({ iceServers: [] });  // never a STUN or TURN server
  const mine = pc;
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.onicecandidate = (event) => {
    if (pc !== mine) return;
    const c = event.candidate && event.candidate.candidate ? event.candidate : null;
    if (pcCallId) sendCandidate(c); else localQueue.push(c);
  };
  pc.ontrack = (event) => { $("remote").srcObject = new MediaStream([event.track]); };
  return pc;
}

function closeCall() {
  if (pc) { pc.close(); }
  pc = null; pcCallId = null; localQueue = []; answering = null;
}

async function call() {
  const to = $("to").value.trim();
  if (!to) { showError("whom to call?"); return; }
  const mine = await newCall();
  await mine.setLocalDescription(await mine.createOffer());
  toBridge({ op: "call", to, sdp: mine.localDescription.sdp });
}

async function answer() {
  const card = window.phone.card;
  if (!card || card.screen !== "incoming") { showError("nothing is ringing"); return; }
  const callId = card.call_id;
  const mine = await newCall();
  answering = callId;
  await mine.setRemoteDescription({ type: "offer", sdp: offers[callId] });
  await mine.setLocalDescription(await mine.createAnswer());
  pcCallId = null;  // until our answer has gone out
  remoteQueue = remoteQueue.filter((f) => f.call_id === callId);
  toBridge({ op: "answer", sdp: mine.localDescription.sdp });
  await drainRemote(callId);  // their candidates that came while it rang
}

$("call").onclick = () => call().catch((e) => showError(String(e)));
$("answer").onclick = () => answer().catch((e) => showError(String(e)));
$("decline").onclick = () => toBridge({ op: "decline" });
$("hangup").onclick = () => toBridge({ op: "hangup" });
$("block").onclick = () => toBridge({ op: "block", name: $("to").value.trim() });
$("unblock").onclick = () => toBridge({ op: "unblock", name: $("to").value.trim() });

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

let offset = 0;
function draw(card, labelProfile, now) {
  window.phone.card = card;
  window.phone.registered = card.registered;
  $("label-profile").textContent = labelProfile;
  const screen = $("screen");
  screen.className = `screen ${card.screen}`;
  screen.dataset.screen = card.screen;
  $("screen-text").textContent = (SCREENS[card.screen] || ((s) => s))(card);
  $("timer").dataset.since = card.in_call_since ?? "";
  offset = performance.now() / 1000 - now;
  const log = $("log");
  log.replaceChildren(...card.log.slice().reverse().map((e) => {
    const li = document.createElement("li");
    li.dataset.label = e.key ?? "in_progress";
    const arrow = e.direction === "outgoing" ? "→" : "←";
    li.textContent = `${e.text ?? "in progress…"} (${e.key ?? "…"}) ${arrow} ${e.with}` +
      (e.duration !== null ? ` · ${clock(e.duration)}` : "");
    return li;
  }));
  // The Phone says which call is live; media follows it (a call that ended closes its PC).
  if (pc && pcCallId && card.call_id !== pcCallId) closeCall();
}

async function sample() {
  if (!pc) return;
  const stats = { connectionState: pc.connectionState, call_id: pcCallId };
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      stats.packetsReceived = r.packetsReceived; stats.bytesReceived = r.bytesReceived;
      stats.totalAudioEnergy = r.totalAudioEnergy;
    }
    if (r.type === "outbound-rtp" && r.kind === "audio") { stats.packetsSent = r.packetsSent; stats.bytesSent = r.bytesSent; }
  });
  window.phone.stats = stats;
  window.phone.lastStats = stats;
  $("media").textContent = `media ${stats.connectionState} · packets received ${stats.packetsReceived ?? 0} · sent ${stats.packetsSent ?? 0}`;
}
setInterval(() => { sample().catch(() => {}); }, 500);
setInterval(() => {
  const since = $("timer").dataset.since;
  $("timer").textContent = since === "" ? "" : clock(performance.now() / 1000 - offset - Number(since));
}, 250);

connectBridge();
