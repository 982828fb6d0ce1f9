// The chatobs demo chat page. Each message starts its trace here, in the browser: a fresh W3C traceparent, so the
// trace ID shown next to the reply is the one that runs through the backend, the LLM call and the MCP tool.
"use strict";

const $ = (id) => document.getElementById(id);
// tokens: trace ID -> the feedback token chatobs sent beside it (X-Feedback-Token); rated: trace ID -> the verdict.
const state = { user: "", conversationId: null, config: {}, messages: [], busy: false, editing: false, tokens: {}, rated: {} };

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

function newTraceparent() {
  let traceId = randomHex(16);
  while (/^0+$/.test(traceId)) traceId = randomHex(16);
  return { traceId, header: `00-${traceId}-${randomHex(8)}-01` };
}

function headers(extra) {
  return Object.assign({ "x-user-id": state.user }, extra || {});
}

function traceUrl(traceId) {
  return state.config.trace_url ? state.config.trace_url.replace("{trace_id}", traceId) : null;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; // never innerHTML: messages are user input
  return e;
}

// --- conversations --------------------------------------------------------------------------------------------------
async function loadConversations() {
  const r = await fetch("/api/conversations", { headers: headers() });
  const list = r.ok ? (await r.json()).conversations : [];
  const ul = $("conversations");
  ul.replaceChildren();
  for (const c of list) {
    const li = el("li", c.id === state.conversationId ? "active" : "", c.title);
    li.title = c.title;
    li.dataset.id = c.id;
    li.onclick = () => openConversation(c.id);
    ul.append(li);
  }
}

async function openConversation(id) {
  state.conversationId = id;
  state.editing = false;
  const r = await fetch(`/api/conversations/${encodeURIComponent(id)}`, { headers: headers() });
  state.messages = r.ok ? (await r.json()).messages : [];
  render();
  loadConversations();
}

function newConversation() {
  state.conversationId = randomHex(16);
  state.messages = [];
  state.editing = false;
  render();
  loadConversations();
  $("input").focus();
}

// --- rendering ------------------------------------------------------------------------------------------------------
function toolChip(t) {
  const args = JSON.stringify(t.arguments);
  const chip = el("div", "tool" + (t.is_error ? " error" : ""), `tool ${t.name}(${args}) → ${t.result}`);
  chip.title = `${t.duration_ms} ms`;
  return chip;
}

function traceMeta(meta, traceId) {
  if (!traceId) return;
  const url = traceUrl(traceId);
  const link = el(url ? "a" : "span", "trace", `trace ${traceId.slice(0, 8)}…`);
  link.dataset.traceId = traceId;
  if (url) { link.href = url; link.target = "_blank"; link.title = "Open this turn's trace in the chatobs viewer"; }
  else link.title = `Trace ID ${traceId} (sent to the configured backend)`;
  meta.append(link);
}

// Thumbs up/down with an optional comment, posted to chatobs's feedback route with the turn's token.
function feedbackControls(meta, traceId) {
  const token = state.tokens[traceId];
  if (!traceId || !token || !state.config.feedback_url) return;
  const box = el("span", "feedback");
  const done = state.rated[traceId];
  const comment = el("input", "feedback-comment");
  comment.placeholder = "comment (optional)";
  comment.maxLength = 500;
  const thumb = (value, label, title) => {
    const b = el("button", "thumb" + (done !== undefined && done === value ? " chosen" : ""), label);
    b.type = "button";
    b.title = title;
    b.dataset.value = String(value);
    b.disabled = done !== undefined;
    b.onclick = async () => {
      const body = { trace_id: traceId, value, token };
      if (comment.value.trim()) body.comment = comment.value.trim();
      const r = await fetch(state.config.feedback_url, { method: "POST", headers: headers({ "content-type": "application/json" }), body: JSON.stringify(body) });
      const answer = await r.json();
      if (r.ok) { state.rated[traceId] = value; box.replaceWith(feedbackDone(value)); }
      else box.title = answer.error || `HTTP ${r.status}`;
    };
    return b;
  };
  if (done !== undefined) { meta.append(feedbackDone(done)); return; }
  box.append(thumb(true, "👍", "Good answer"), thumb(false, "👎", "Bad answer"), comment);
  meta.append(box);
}

function feedbackDone(value) {
  return el("span", "feedback sent", value ? "👍 thanks" : "👎 thanks, noted");
}

function renderMessage(m, isLastUser, isLastAssistant) {
  const div = el("div", `msg ${m.role}` + (m.error ? " failed" : ""));
  div.dataset.messageId = m.id;
  for (const t of m.tools || []) div.append(toolChip(t));
  div.append(el("span", "text", m.error ? `⚠ ${m.error}` : m.content));
  const meta = el("div", "meta");
  if (m.role === "assistant") {
    traceMeta(meta, m.trace_id);
    if (!m.error && m.id !== "pending") feedbackControls(meta, m.trace_id);
    if (isLastAssistant) {
      const b = el("button", "regenerate", "Regenerate");
      b.type = "button";
      b.onclick = () => send("regenerate", "");
      meta.append(b);
    }
  } else if (isLastUser) {
    const b = el("button", "edit", "Edit");
    b.type = "button";
    b.onclick = () => { state.editing = true; $("input").value = m.content; $("send").textContent = "Save & resend"; $("input").focus(); };
    meta.append(b);
  }
  if (meta.childElementCount) div.append(meta);
  return div;
}

function render() {
  const box = $("messages");
  box.replaceChildren();
  if (!state.messages.length) box.append(el("div", "empty", "Say hello, or try one of the examples on the left."));
  const lastUser = state.messages.map((m) => m.role).lastIndexOf("user");
  const lastAssistant = state.messages.map((m) => m.role).lastIndexOf("assistant");
  state.messages.forEach((m, i) => box.append(renderMessage(m, i === lastUser && !state.busy, i === lastAssistant && !state.busy)));
  box.scrollTop = box.scrollHeight;
  $("send").textContent = state.editing ? "Save & resend" : "Send";
}

// --- sending --------------------------------------------------------------------------------------------------------
function parseSSE(buffer, onEvent) {
  let idx;
  while ((idx = buffer.indexOf("\n\n")) >= 0) {
    const frame = buffer.slice(0, idx);
    buffer = buffer.slice(idx + 2);
    const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    if (data) onEvent(JSON.parse(data));
  }
  return buffer;
}

async function send(action, text) {
  if (state.busy) return;
  if (!state.conversationId) state.conversationId = randomHex(16);
  const last = (role) => { for (let i = state.messages.length - 1; i >= 0; i--) if (state.messages[i].role === role) return i; return -1; };
  const lastUser = last("user");
  const parent = action === "send" ? null : (state.messages[lastUser] || {}).id;
  // Show the turn right away: the user's message and an empty reply that fills as the answer streams in.
  if (action === "edit") state.messages = state.messages.slice(0, lastUser);
  if (action === "regenerate") state.messages = state.messages.slice(0, lastUser + 1);
  const messageId = randomHex(16);
  if (action !== "regenerate") state.messages.push({ id: messageId, role: "user", content: text });
  const reply = { id: "pending", role: "assistant", content: "", tools: [], trace_id: null };
  state.messages.push(reply);
  state.busy = true;
  state.editing = false;
  $("send").disabled = true;
  render();
  const bubble = () => $("messages").lastElementChild;
  bubble().querySelector(".text").classList.add("typing");

  const tp = newTraceparent();
  reply.trace_id = tp.traceId;
  const body = { conversation_id: state.conversationId, message: text, message_id: messageId, action };
  if (parent) body.parent_message_id = parent;
  const stream = $("stream").checked;
  try {
    const r = await fetch(stream ? "/api/chat/stream" : "/api/chat", {
      method: "POST", headers: headers({ "content-type": "application/json", traceparent: tp.header }), body: JSON.stringify(body),
    });
    reply.trace_id = r.headers.get("x-trace-id") || tp.traceId;
    const token = r.headers.get("x-feedback-token");
    if (token) state.tokens[reply.trace_id] = token;
    const ctype = r.headers.get("content-type") || "";
    if (stream && r.ok && ctype.startsWith("text/event-stream")) {
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = parseSSE(buffer + decoder.decode(value, { stream: true }), (ev) => {
          if (ev.type === "delta") reply.content += ev.text;
          else if (ev.type === "tool") reply.tools.push(ev);
          else if (ev.type === "error") reply.error = ev.error;
          if (ev.trace_id) reply.trace_id = ev.trace_id;
          const b = bubble();
          b.replaceWith(renderMessage(reply, false, false));
          bubble().querySelector(".text").classList.toggle("typing", ev.type !== "done" && ev.type !== "error");
          $("messages").scrollTop = $("messages").scrollHeight;
        });
      }
    } else {
      const data = await r.json();
      if (data.trace_id) reply.trace_id = data.trace_id;
      if (!r.ok) reply.error = data.error || `HTTP ${r.status}`;
      else { reply.content = data.reply; reply.tools = data.tools || []; }
    }
  } catch (err) {
    reply.error = `request failed: ${err}`;
  }
  state.busy = false;
  $("send").disabled = false;
  // The server's view of the conversation is the truth (IDs, history after an edit or regeneration).
  const r = await fetch(`/api/conversations/${encodeURIComponent(state.conversationId)}`, { headers: headers() });
  if (r.ok) {
    state.messages = (await r.json()).messages;
    const lastA = state.messages[state.messages.length - 1];
    if (lastA && lastA.role === "assistant" && !lastA.trace_id) lastA.trace_id = reply.trace_id;
  } else {
    reply.id = "local";
  }
  render();
  loadConversations();
}

// --- start ----------------------------------------------------------------------------------------------------------
async function start() {
  state.user = localStorage.getItem("chatobs-demo-user") || "alice";
  $("user").value = state.user;
  $("user").onchange = () => {
    state.user = $("user").value.trim() || "anonymous";
    localStorage.setItem("chatobs-demo-user", state.user);
    newConversation();
  };
  try { state.config = await (await fetch("/api/config")).json(); } catch (e) { state.config = {}; }
  $("backend").textContent = `${state.config.framework || ""} · model ${state.config.model || "?"} · ${state.config.provider || ""}`;
  if (state.config.viewer_url) { $("viewer-link").hidden = false; $("viewer-link").href = state.config.viewer_url + "/"; }
  $("new-conversation").onclick = newConversation;
  $("composer").onsubmit = (e) => {
    e.preventDefault();
    const text = $("input").value;
    if (!text.trim()) return;
    $("input").value = "";
    send(state.editing ? "edit" : "send", text);
  };
  $("input").onkeydown = (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
    if (e.key === "Escape" && state.editing) { state.editing = false; $("input").value = ""; render(); }
  };
  for (const c of document.querySelectorAll(".hints code")) c.onclick = () => { $("input").value = c.textContent; $("input").focus(); };
  newConversation();
}

start();
