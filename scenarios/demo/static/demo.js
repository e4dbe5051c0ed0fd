// The demo page: draws what the controller publishes, sends what the person presses.
// No framework and no build step: plain DOM, one websocket to /ws on the same host.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { phones: [], rows: [], participants: [], generation: null, offset: 0, player: null };
let ws = null;
const chosen = {};

const SCREENS = {
  off: () => "Switched off", idle: () => "Idle", ended: () => "Call ended",
  calling: (c) => `Calling ${c.peer}…`, ringing: (c) => `Ringing ${c.peer}…`,
  incoming: (c) => `${c.peer} is calling`, reconnecting: () => "Reconnecting…",
  in_call: (c) => `In call with ${c.peer}`,
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function send(command) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(command));
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  if (message) setTimeout(() => { if (box.textContent === message) box.hidden = true; }, 6000);
}

function connect() {
  ws = new WebSocket(`ws://${location.host}/ws`);
  ws.onopen = () => { $("connection").textContent = "live"; $("connection").className = "pill ok"; };
  ws.onclose = () => {
    $("connection").textContent = "disconnected"; $("connection").className = "pill bad";
    setTimeout(connect, 1000);
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.kind === "hello") hello(message);
    else if (message.kind === "state") update(message);
    else if (message.kind === "ladder") addRows(message);
    else if (message.kind === "error") showError(message.message);
  };
}

function hello(message) {
  $("signaling").textContent = message.signaling_url;
  const labels = $("label-profile");
  labels.replaceChildren(...message.profiles.map((p) => el("option", { value: p }, p)));
  const menu = $("scenario");
  const chosen = menu.value;
  menu.replaceChildren(el("option", { value: "" }, "free play (no scenario)"),
    ...message.scenarios.map((s) => el("option", { value: s.file, title: s.about }, `${s.file.replace(/\.yaml$/, "")}: ${s.name}`)));
  menu.value = chosen;
  state.generation = message.generation;
  state.rows = [];
  state.participants = [];
  update(message);
  addRows({ generation: message.generation, rows: message.ladder });
}

function update(message) {
  state.phones = message.phones;
  state.offset = performance.now() / 1000 - message.now;
  state.player = message.player;
  $("profile").textContent = message.profile;
  $("label-profile").value = message.label_profile;
  drawPhones();
  drawPlayer();
  if (participantsOf().join() !== state.participants.join()) drawLadder();
}

// --- Phone cards -------------------------------------------------------------------------------

function drawPhones() {
  const box = $("phones");
  box.replaceChildren(...state.phones.map(card));
  tick();
}

function card(phone) {
  // Whom to call: the world's phones, and any other phone seen on the wire (a terminal
  // phone, say, registered on the same server).
  const known = [...state.phones.map((p) => p.name), ...state.participants];
  const others = [...new Set(known)].filter((n) => n !== phone.name && n !== "server");
  const target = el("select", { class: "target", "aria-label": "whom",
    onchange: () => { chosen[phone.name] = target.value; } },
    ...others.map((n) => el("option", { value: n }, n)));
  // Cards are redrawn on every update: keep each card's choice of whom to call.
  if (others.includes(chosen[phone.name])) target.value = chosen[phone.name];
  const act = (op, extra = {}) => () => send({ op, phone: phone.name, ...extra });
  const button = (op, text, extra, disabled) =>
    el("button", { "data-op": op, onclick: act(op, extra), disabled }, text);
  const sim = phone.kind === "simulated";
  const buttons = [];
  if (phone.kind === "browser") {
    buttons.push(el("a", { href: `/phone?name=${phone.name}`, target: "_blank" }, "open its page"));
  } else {
    buttons.push(
      el("button", { "data-op": "call", onclick: () => send({ op: "call", phone: phone.name, to: target.value }) }, "call"),
      target,
      button("answer", "answer", {}, phone.screen !== "incoming"),
      button("decline", "decline", {}, phone.screen !== "incoming"),
      button("hangup", "hang up", {}, !phone.call_id),
      el("button", { "data-op": "block", onclick: () => send({ op: phone.blocks.includes(target.value) ? "unblock" : "block", phone: phone.name, name: target.value }) }, "block/unblock"),
    );
    if (sim) {
      buttons.push(
        button("power", phone.power ? "power off" : "power on", { on: !phone.power }),
        button("airplane", phone.online ? "airplane on" : "airplane off", { on: phone.online }),
        button("signal", phone.signal ? "cut signal" : "give signal", { on: !phone.signal }),
      );
    }
  }
  const screen = el("div", { class: `screen ${phone.screen}`, "data-screen": phone.screen },
    el("div", { class: "big" }, (SCREENS[phone.screen] || ((s) => s))(phone)),
    el("div", { class: "timer", "data-since": phone.in_call_since ?? "" }));
  const radio = [phone.registered ? "registered" : "not registered"];
  if (sim) radio.push(phone.signal ? "signal" : "NO SIGNAL", phone.online ? "" : "AIRPLANE");
  if (phone.blocks.length) radio.push(`blocks ${phone.blocks.join(", ")}`);
  if (phone.audio_frames !== undefined) radio.push(`audio frames received: ${phone.audio_frames}`);
  if (phone.kind === "browser") radio.push(phone.attached ? "page open" : "page closed");
  const log = el("ol", { class: "log" }, ...phone.log.slice().reverse().map(entry));
  return el("div", { class: "card", "data-phone": phone.name },
    el("h3", {}, phone.name, el("span", { class: "kind" }, phone.kind)),
    screen, el("div", { class: "radio" }, radio.filter(Boolean).join(" · ")),
    el("div", { class: "buttons" }, buttons), el("div", { class: "muted" }, "call log"), log);
}

function entry(e) {
  const arrow = e.direction === "outgoing" ? "→" : "←";
  const bad = ["missed", "canceled", "no_answer", "busy", "declined", "dropped"].includes(e.key);
  const details = [e.reached ? "reached" : "not reached"];
  if (e.duration !== null) details.push(clock(e.duration));
  return el("li", { "data-label": e.key ?? "in_progress" },
    el("span", { class: `label ${bad ? "bad" : ""}` }, e.text ?? "in progress…"), " ",
    el("span", { class: "key" }, `(${e.key ?? "…"})`), ` ${arrow} ${e.with} · ${details.join(", ")}`);
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function tick() {
  const now = performance.now() / 1000 - state.offset;
  for (const timer of document.querySelectorAll(".timer")) {
    const since = timer.dataset.since;
    timer.textContent = since === "" ? "" : clock(now - Number(since));
  }
}
setInterval(tick, 250);

// --- The player ----------------------------------------------------------------------------------

function drawPlayer() {
  const p = state.player;
  for (const id of ["play", "pause", "step"]) $(id).disabled = !p || p.state === "done";
  $("pause").disabled = !p || p.state !== "playing";
  $("play").disabled = !p || p.state === "playing" || p.state === "done";
  if (!p) {
    $("player-state").textContent = "free play: press the buttons on the phones";
    $("steps").replaceChildren();
    $("about").textContent = "";
    return;
  }
  $("speed").value = String(p.speed);
  let text = `${p.scenario}: ${p.state}`;
  if (p.waiting_for) text += ` · waiting for “${p.waiting_for}”`;
  if (p.failure) text += ` · ${p.failure}`;
  $("player-state").textContent = text;
  $("player-state").dataset.state = p.state;
  $("steps").replaceChildren(...p.steps.map((s, i) =>
    el("li", { class: i < p.next ? "done" : i === p.next && p.state !== "done" ? "next" : "" }, s)));
  const expect = Object.entries(p.expect).map(([n, e]) => `${n}: ${e.join(", ") || "nothing"}`).join(" · ");
  $("about").textContent = `${p.about}${expect ? ` Expected: ${expect}.` : ""}`;
}

$("load").onclick = () => {
  const file = $("scenario").value;
  send(file ? { op: "load", file } : { op: "free" });
};
$("play").onclick = () => send({ op: "play" });
$("pause").onclick = () => send({ op: "pause" });
$("step").onclick = () => send({ op: "step" });
$("speed").onchange = () => send({ op: "speed", value: Number($("speed").value) });
$("restart").onclick = () => send({ op: "server", crash: false });
$("crash").onclick = () => send({ op: "server", crash: true });
$("label-profile").onchange = () => send({ op: "labels", profile: $("label-profile").value });

// --- The ladder ----------------------------------------------------------------------------------

function participantsOf() {
  const names = state.phones.map((p) => p.name);
  const order = names.length ? [names[0], "server", ...names.slice(1)] : ["server"];
  for (const row of state.rows) {
    for (const n of row.kind === "arrow" ? [row.from, row.to] : row.over) {
      if (!order.includes(n)) order.push(n);
    }
  }
  return order;
}

function addRows(message) {
  if (message.generation !== state.generation) return;
  state.rows.push(...message.rows);
  if (state.rows.length > 600) state.rows.splice(0, state.rows.length - 600);
  if (participantsOf().join() !== state.participants.join()) drawLadder();
  else { const box = $("ladder"); for (const r of message.rows) box.append(rowOf(r)); scrollDown(); }
}

function x(name) {
  const n = state.participants.length;
  const i = state.participants.indexOf(name);
  return 6 + ((i + 0.5) / n) * 94;  // percent; the left 6% holds the time
}

function drawLadder() {
  state.participants = participantsOf();
  $("ladder-head").replaceChildren(...state.participants.map((n) =>
    el("div", { style: `position:absolute;left:${x(n)}%;transform:translateX(-50%)` }, n)));
  $("ladder-head").style.height = "1.6em";
  $("ladder").replaceChildren(...state.rows.map(rowOf));
  scrollDown();
}

function rowOf(r) {
  const lines = state.participants.map((n) => el("div", { class: "life", style: `left:${x(n)}%` }));
  const row = el("div", { class: "row", "data-kind": r.kind, "data-type": r.type ?? "" },
    el("span", { class: "t" }, `${Number(r.t).toFixed(2)}s`), ...lines);
  if (r.kind === "arrow") {
    const a = x(r.from), b = x(r.to);
    const cls = `arrow ${b > a ? "right" : "left"} ${r.from === "server" ? "from-server" : ""} ${r.type === "candidate" ? "candidate" : ""}`;
    const id = r.call_id ? ` ${String(r.call_id).slice(0, 4)}` : "";
    row.append(el("div", { class: cls, style: `left:${Math.min(a, b)}%;width:${Math.abs(b - a)}%` },
      el("span", {}, `${r.type}${id}`)));
  } else {
    const over = r.over.length ? r.over : state.participants;
    const mid = over.map(x).reduce((s, v) => s + v, 0) / over.length;
    row.append(el("div", { class: `note ${r.over.length ? "" : "wide"}`, style: `left:${mid}%` }, r.text));
  }
  return row;
}

function scrollDown() { const box = $("ladder"); box.scrollTop = box.scrollHeight; }

connect();
