// chatobs trace viewer. Trace content is user input: everything is rendered with textContent / DOM properties,
// never as HTML, and the page's Content-Security-Policy forbids inline scripts on top of that.
"use strict";

const main = document.getElementById("main");
const footer = document.getElementById("footer");
const sinceSelect = document.getElementById("since");

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "title") node.title = String(v);
    else if (k === "href") node.href = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const fmt = {
  time(ns) { return ns ? new Date(ns / 1e6).toLocaleString() : "-"; },
  ms(v) {
    if (v === null || v === undefined) return "-";
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 1 : 2) + " s";
    return (v < 100 ? v.toFixed(1) : v.toFixed(0)) + " ms";
  },
  cost(v) { return v ? "$" + (v < 1 ? v.toFixed(4) : v.toFixed(2)) : "-"; },
  int(v) { return v === null || v === undefined ? "-" : Number(v).toLocaleString(); },
  text(v) { return v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v, null, 2); },
};

async function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v) q.set(k, v);
  const url = "api/" + path + (q.toString() ? "?" + q : "");
  const res = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(res.status + " " + (await res.text()));
  const body = await res.json();
  footer.textContent = body.missing ? "No trace store yet at " + body.store + " — run your app with chatobs first." : "Store: " + body.store;
  return body.data;
}

// replaceChildren() would turn arrays and nulls into text: flatten and drop them first.
function render(...nodes) { main.replaceChildren(...nodes.flat(Infinity).filter(n => n !== null && n !== undefined && n !== false)); }

function since() { return sinceSelect.value; }
function idLink(kind, id) { return "#/" + kind + "/" + encodeURIComponent(id); }
function go(hash) { location.hash = hash; }
function empty(text) { return el("div", { class: "empty" }, text); }
function badge(status) { return el("span", { class: "badge " + (status === "error" ? "error" : "ok") }, status || "ok"); }
// A trace's ratings as small chips: thumbs (👍/👎), a category, a number; negative ones marked, comment on hover.
function ratings(list) {
  if (!list || !list.length) return "-";
  return el("span", { class: "ratings" }, list.map(r => el("span", {
    class: "rating" + (r.negative ? " negative" : ""), dataset: { name: r.name },
    title: r.name + (r.user_id ? " by " + r.user_id : "") + (r.comment ? ": " + r.comment : ""),
  }, r.kind === "boolean" ? (r.negative ? "👎" : "👍") : r.kind === "numeric" ? r.name + " " + r.value : r.label)));
}
function feedbackList(list) {
  return (list || []).map(r => el("div", { class: "feedback-item" + (r.negative ? " negative" : "") },
    ratings([r]), " ", el("span", { class: "muted" }, r.name + " · " + fmt.time(r.created_ns) + (r.user_id ? " · " + r.user_id : "")),
    r.comment ? el("div", { class: "comment" }, r.comment) : null));
}
function typeTag(t) { return el("span", { class: "type t-" + (t || "other") }, t || "other"); }

function grid(headers, rows, onRow) {
  const head = el("tr", {}, headers.map(h => el("th", { class: h.num ? "num" : "" }, h.label)));
  const body = rows.map(r => el("tr", { class: onRow ? "link" : "", onclick: onRow ? () => onRow(r) : undefined },
    headers.map(h => { const v = h.get(r); return el("td", { class: h.num ? "num" : "", title: typeof v === "string" ? v : undefined }, v); })));
  return el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, body));
}

// --- conversations -------------------------------------------------------------------------------------------------
async function viewConversations() {
  const rows = await api("conversations", { since: since() });
  render(el("h1", {}, "Conversations"),
    rows.length ? grid([
      { label: "Conversation", get: r => r.conversation_id },
      { label: "User", get: r => r.user_id || "-" },
      { label: "Turns", num: true, get: r => fmt.int(r.turns) },
      { label: "Last activity", get: r => fmt.time(r.last_ns) },
      { label: "Tokens", num: true, get: r => fmt.int((r.input_tokens || 0) + (r.output_tokens || 0)) },
      { label: "Cost", num: true, get: r => fmt.cost(r.cost_usd) },
      { label: "Errors", num: true, get: r => fmt.int(r.errors) },
      { label: "Feedback", num: true, get: r => r.feedback ? el("span", { class: r.negative_feedback ? "rating negative" : "rating" }, r.feedback + (r.negative_feedback ? " (" + r.negative_feedback + " negative)" : "")) : "-" },
    ], rows, r => go(idLink("c", r.conversation_id))) : empty("No conversations in this window. Traces without a conversation ID are under Traces."));
}

async function viewConversation(cid) {
  const data = await api("conversations/" + encodeURIComponent(cid));
  const turns = data ? data.turns : [];
  render(el("h1", {}, "Conversation ", el("span", { class: "mono" }, cid)),
    turns.length ? turns.map((t, i) => el("div", { class: "turn" },
      el("div", { class: "meta" },
        el("span", {}, "Turn " + (i + 1)), el("span", {}, fmt.time(t.start_ns)), el("span", {}, fmt.ms(t.duration_ms)),
        el("span", {}, fmt.int((t.input_tokens || 0) + (t.output_tokens || 0)) + " tokens"), el("span", {}, fmt.cost(t.cost_usd)),
        badge(t.status), ratings(t.feedback), el("a", { href: idLink("t", t.trace_id) }, "open trace →")),
      t.input !== null && t.input !== undefined && t.input !== "" ? el("div", { class: "bubble user" }, fmt.text(t.input)) : null,
      t.output !== null && t.output !== undefined && t.output !== "" ? el("div", { class: "bubble assistant" }, fmt.text(t.output)) : null,
      (t.feedback || []).some(r => r.comment) ? feedbackList(t.feedback.filter(r => r.comment)) : null,
    )) : empty("No turns stored for this conversation."));
}

// --- traces --------------------------------------------------------------------------------------------------------
async function viewTraces(params) {
  const filters = { since: since(), user: params.get("user"), conversation: params.get("conversation"), model: params.get("model"), tool: params.get("tool"), status: params.get("status"), feedback: params.get("feedback") };
  const rows = await api("traces", filters);
  const status = el("select", { id: "status-filter" }, ["", "ok", "error"].map(s => { const o = el("option", { value: s }, s || "any status"); o.selected = s === (filters.status || ""); return o; }));
  status.addEventListener("change", () => { const p = new URLSearchParams(params); status.value ? p.set("status", status.value) : p.delete("status"); go("#/traces?" + p); });
  const rated = el("select", { id: "feedback-filter" }, [["", "any feedback or none"], ["any", "with feedback"], ["negative", "negative feedback"], ["positive", "only positive feedback"], ["none", "no feedback"]]
    .map(([v, label]) => { const o = el("option", { value: v }, label); o.selected = v === (filters.feedback || ""); return o; }));
  rated.addEventListener("change", () => { const p = new URLSearchParams(params); rated.value ? p.set("feedback", rated.value) : p.delete("feedback"); go("#/traces?" + p); });
  render(el("h1", {}, "Traces"), el("div", { class: "filters" }, status, rated),
    rows.length ? grid([
      { label: "Time", get: r => fmt.time(r.start_ns) },
      { label: "Route", get: r => r.route || r.name },
      { label: "Conversation", get: r => r.conversation_id || "-" },
      { label: "User", get: r => r.user_id || "-" },
      { label: "Duration", num: true, get: r => fmt.ms(r.duration_ms) },
      { label: "Spans", num: true, get: r => fmt.int(r.span_count) },
      { label: "LLM", num: true, get: r => fmt.int(r.llm_calls) },
      { label: "Tools", num: true, get: r => fmt.int(r.tool_calls) },
      { label: "Tokens", num: true, get: r => fmt.int((r.input_tokens || 0) + (r.output_tokens || 0)) },
      { label: "Cost", num: true, get: r => fmt.cost(r.cost_usd) },
      { label: "Status", get: r => badge(r.status) },
      { label: "Feedback", get: r => ratings(r.feedback) },
    ], rows, r => go(idLink("t", r.trace_id))) : empty("No traces in this window."));
}

const CONTENT_KEYS = ["chatobs.input", "gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.tool.call.arguments",
  "gen_ai.output.messages", "gen_ai.tool.call.result", "chatobs.output", "exception.message"];

function spanDetails(s) {
  const a = s.attributes || {};
  const facts = [["Type", s.span_type], ["Name", s.name], ["Status", s.status + (s.status_message ? ": " + s.status_message : "")],
    ["Duration", fmt.ms(s.duration_ms)], ["Started", fmt.time(s.start_ns)], ["Model", s.model], ["Provider", s.provider],
    ["Tool", s.tool_name], ["MCP server", s.mcp_server], ["Input tokens", s.input_tokens], ["Output tokens", s.output_tokens],
    ["Cost", s.cost_usd ? fmt.cost(s.cost_usd) : null], ["Time to first token", s.ttft_ms !== null ? fmt.ms(s.ttft_ms) : null],
    ["Span ID", s.span_id]].filter(([, v]) => v !== null && v !== undefined && v !== "");
  const content = CONTENT_KEYS.filter(k => a[k] !== undefined).map(k => [el("h2", {}, k), el("pre", { class: "content", dataset: { key: k } }, fmt.text(a[k]))]);
  const rest = Object.keys(a).filter(k => !CONTENT_KEYS.includes(k)).sort();
  const events = (s.events || []).map(e => el("div", { class: "mono" }, fmt.time(e.time_ns) + "  " + e.name + "  " + JSON.stringify(e.attributes || {})));
  return el("div", { class: "details", id: "span-details" },
    el("h1", {}, typeTag(s.span_type), s.name),
    el("div", { class: "kv" }, facts.map(([k, v]) => [el("div", {}, k), el("div", {}, String(v))])),
    content,
    events.length ? [el("h2", {}, "Events"), events] : null,
    el("h2", {}, "Attributes"),
    el("div", { class: "kv mono" }, rest.map(k => [el("div", { title: k }, k), el("div", {}, fmt.text(a[k]))])));
}

async function viewTrace(tid) {
  const t = await api("traces/" + encodeURIComponent(tid));
  if (!t) { render(empty("No trace " + tid + " in the store.")); return; }
  const total = Math.max(1, t.end_ns - t.start_ns);
  let selected = null;
  const detailsHolder = el("div", {});
  const rows = t.spans.map(s => {
    const bar = el("div", { class: "bar" });
    bar.style.left = ((s.start_ns - t.start_ns) / total * 100).toFixed(3) + "%";
    bar.style.width = Math.max(0.3, (s.end_ns - s.start_ns) / total * 100).toFixed(3) + "%";
    const name = el("div", { class: "name", title: s.name }, typeTag(s.span_type), s.name);
    name.style.paddingLeft = (s.depth * 16) + "px";
    const row = el("div", { class: "span-row t-" + s.span_type + (s.status === "error" ? " error" : ""), dataset: { type: s.span_type, spanId: s.span_id } },
      name, el("div", { class: "track" }, bar), el("div", { class: "dur" }, fmt.ms(s.duration_ms)));
    row.addEventListener("click", () => {
      if (selected) selected.classList.remove("selected");
      selected = row; row.classList.add("selected");
      detailsHolder.replaceChildren(spanDetails(s));
    });
    return row;
  });
  const ids = [["conversation", t.conversation_id, "c"], ["user", t.user_id], ["tenant", t.tenant_id], ["message", t.message_id]].filter(x => x[1]);
  render(
    el("h1", {}, "Trace ", el("span", { class: "mono" }, t.trace_id), " ", badge(t.status)),
    el("div", { class: "cards" },
      [["Duration", fmt.ms(t.duration_ms)], ["Spans", t.span_count], ["LLM calls", t.llm_calls], ["Tool calls", t.tool_calls],
       ["Tokens in / out", fmt.int(t.input_tokens || 0) + " / " + fmt.int(t.output_tokens || 0)], ["Cost", fmt.cost(t.cost_usd)]]
        .map(([k, v]) => el("div", { class: "card" }, el("div", { class: "v" }, String(v)), el("div", { class: "k" }, k)))),
    el("div", { class: "legend" }, ids.map(([k, v, link]) => el("span", {}, k + ": ", link ? el("a", { href: idLink(link, v) }, v) : v))),
    t.feedback && t.feedback.length ? el("div", { class: "feedback", id: "trace-feedback" }, el("h2", {}, "Feedback"), feedbackList(t.feedback)) : null,
    el("div", { class: "legend" }, ["request", "llm", "tool", "mcp", "agent", "other"].map(x => el("span", {}, typeTag(x)))),
    el("div", { class: "trace-layout" }, el("div", { class: "timeline", id: "timeline" }, rows), detailsHolder));
  const first = t.spans.findIndex(s => s.span_type === "llm");
  if (rows.length) rows[first >= 0 ? first : 0].click();
}

// --- stats ---------------------------------------------------------------------------------------------------------
function hbars(title, rows, label, value, show) {
  const max = Math.max(1e-12, ...rows.map(value));
  return el("div", { class: "chart" }, el("h3", {}, title), rows.length ? rows.slice(0, 12).map(r => {
    const fill = el("div", { class: "fill" }); fill.style.width = (value(r) / max * 100).toFixed(1) + "%";
    return el("div", { class: "hbar" }, el("div", { class: "label", title: String(label(r)) }, label(r)), fill, el("div", { class: "val" }, show(r)));
  }) : el("div", { class: "muted" }, "no data"));
}

function latency(title, rows) {
  const max = Math.max(1e-9, ...rows.map(r => r.p99_ms || 0));
  return el("div", { class: "chart" }, el("h3", {}, title),
    el("div", { class: "legend" }, el("span", {}, "P50"), el("span", {}, "P95"), el("span", {}, "P99")),
    rows.length ? rows.slice(0, 10).map(r => el("div", { class: "hbar wide" }, el("div", { class: "label", title: String(r.key) }, r.key),
      el("div", { class: "stack" }, ["p50", "p95", "p99"].map(p => { const f = el("div", { class: "fill " + p }); f.style.width = ((r[p + "_ms"] || 0) / max * 100).toFixed(1) + "%"; return f; })),
      el("div", { class: "val" }, fmt.ms(r.p50_ms) + " / " + fmt.ms(r.p95_ms) + " / " + fmt.ms(r.p99_ms)))) : el("div", { class: "muted" }, "no data"));
}

async function viewStats() {
  const s = await api("stats", { since: since() });
  if (!s) { render(empty("No trace store yet.")); return; }
  const t = s.totals;
  const peak = Math.max(1, ...s.hourly_traffic.map(h => h.traces));
  const cols = el("div", { class: "columns" }, s.hourly_traffic.map(h => {
    const err = el("div", { class: "err" });
    err.style.height = (h.traces ? h.errors / h.traces * 100 : 0).toFixed(1) + "%";
    const c = el("div", { class: "col", title: h.hour + ": " + h.traces + " traces (" + h.turns + " chat turns), " + h.errors + " with errors" }, err);
    c.style.height = (h.traces / peak * 100).toFixed(1) + "%"; return c;
  }));
  render(el("h1", {}, "Stats"),
    el("div", { class: "cards" }, [["Chat turns", t.turns], ["Other traces", t.other_traces], ["Conversations", t.conversations], ["Users", t.users], ["LLM calls", t.llm_calls],
      ["Tool calls", t.tool_calls], ["Tokens", fmt.int(t.input_tokens + t.output_tokens)], ["Cost", fmt.cost(t.cost_usd)], ["Traces with errors", t.error_traces]]
      .map(([k, v]) => el("div", { class: "card" }, el("div", { class: "v" }, String(v)), el("div", { class: "k" }, k)))),
    el("div", { class: "charts" },
      el("div", { class: "chart" }, el("h3", {}, "Hourly traffic (UTC)"), el("div", { class: "legend" }, el("span", {}, "traces"), el("span", { class: "errtext" }, "with errors")), s.hourly_traffic.length ? cols : el("div", { class: "muted" }, "no data"),
        el("div", { class: "legend" }, s.hourly_traffic.length ? s.hourly_traffic[0].hour + " … " + s.hourly_traffic[s.hourly_traffic.length - 1].hour : "")),
      latency("Latency by route", s.latency_by_route),
      latency("Latency by model", s.latency_by_model),
      latency("Latency by tool", s.latency_by_tool),
      hbars("Cost by model", s.usage_by_model, r => r.key, r => r.cost_usd || (r.input_tokens + r.output_tokens) * 1e-9, r => fmt.cost(r.cost_usd) + " · " + fmt.int(r.input_tokens + r.output_tokens) + " tok"),
      hbars("Tokens by user", s.usage_by_user, r => r.key, r => r.input_tokens + r.output_tokens, r => fmt.int(r.input_tokens + r.output_tokens)),
      hbars("Tokens by conversation", s.usage_by_conversation, r => r.key, r => r.input_tokens + r.output_tokens, r => fmt.int(r.input_tokens + r.output_tokens)),
      hbars("Cost by day", s.usage_by_day, r => r.key, r => r.cost_usd || 0, r => fmt.cost(r.cost_usd)),
      hbars("Tool calls (success %)", s.tools_by_server, r => r.tool + " @ " + r.server, r => r.calls, r => r.calls + " · " + r.success_pct + "%"),
      hbars("LLM error rate by provider", s.llm_errors_by_provider, r => r.provider, r => r.error_pct || 0, r => r.errors + "/" + r.calls + " (" + r.error_pct + "%)"),
      hbars("Most active conversations", s.active_conversations, r => r.key, r => r.turns, r => r.turns + " turns"),
      hbars("Most active users", s.active_users, r => r.key, r => r.turns, r => r.turns + " turns"),
    ),
    el("h2", {}, "By model and prompt version"),
    s.by_prompt_version && s.by_prompt_version.length ? grid([
      { label: "Model", get: r => r.model }, { label: "Prompt", get: r => r.prompt }, { label: "Version", get: r => r.version },
      { label: "Turns", num: true, get: r => fmt.int(r.turns) }, { label: "Feedback", num: true, get: r => fmt.int(r.feedback) },
      { label: "Negative", num: true, get: r => fmt.int(r.negative) }, { label: "Mean score", num: true, get: r => r.mean_score === null ? "-" : String(r.mean_score) },
      { label: "Cost", num: true, get: r => fmt.cost(r.cost_usd) }, { label: "P50", num: true, get: r => fmt.ms(r.p50_ms) },
      { label: "P95", num: true, get: r => fmt.ms(r.p95_ms) }], s.by_prompt_version) : empty("No LLM calls."),
    el("h2", {}, "Slowest tool calls"),
    s.slowest_tool_calls.length ? grid([
      { label: "Tool", get: r => r.tool }, { label: "Server", get: r => r.server }, { label: "Duration", num: true, get: r => fmt.ms(r.duration_ms) },
      { label: "Status", get: r => badge(r.status) }, { label: "Trace", get: r => r.trace_id }], s.slowest_tool_calls, r => go(idLink("t", r.trace_id))) : empty("No tool calls."),
    s.tool_errors.length ? [el("h2", {}, "Tool errors"), grid([
      { label: "Time", get: r => fmt.time(r.start_ns) }, { label: "Tool", get: r => r.tool }, { label: "Server", get: r => r.server },
      { label: "Error", get: r => r.error || "-" }], s.tool_errors, r => go(idLink("t", r.trace_id)))] : null);
}

// --- router --------------------------------------------------------------------------------------------------------
async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const section = parts[0] === "t" || parts[0] === "traces" ? "traces" : parts[0] === "stats" ? "stats" : "conversations";
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.nav === section));
  try {
    if (parts[0] === "c" && parts[1]) await viewConversation(parts.slice(1).join("/"));
    else if (parts[0] === "t" && parts[1]) await viewTrace(parts[1]);
    else if (parts[0] === "traces") await viewTraces(new URLSearchParams(query || ""));
    else if (parts[0] === "stats") await viewStats();
    else await viewConversations();
  } catch (err) {
    render(empty("Could not load: " + err.message));
  }
}

sinceSelect.addEventListener("change", route);
window.addEventListener("hashchange", route);
route();
