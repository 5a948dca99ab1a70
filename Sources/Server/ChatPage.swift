/// The chat page served at `GET /`: one self-contained HTML file (styles and script inside, no
/// network but this server's own API). It streams replies from /v1/chat/completions with
/// `logprobs`, so each generated token can be shown with its probability and the alternatives
/// the model weighed: where it hesitated is where the colors pale.
enum ChatPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llm chat</title>
<style>
  :root { --bg: #fafaf7; --fg: #1d1d1b; --muted: #6b6b66; --line: #deded8; --accent: #2f5d8a; --user: #e9eef4; --bot: #ffffff; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); display: grid; grid-template-columns: 280px 1fr 300px; height: 100vh; }
  aside, main, #inspector { overflow: auto; }
  aside { border-right: 1px solid var(--line); padding: 14px; }
  #inspector { border-left: 1px solid var(--line); padding: 14px; }
  h1 { font-size: 17px; margin: 0 0 4px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 18px 0 6px; }
  label { display: block; font-size: 13px; color: var(--muted); margin: 8px 0 2px; }
  input, textarea, button { font: inherit; }
  input[type=number], input[type=password], textarea { width: 100%; padding: 5px 7px; border: 1px solid var(--line); border-radius: 5px; background: #fff; }
  textarea { resize: vertical; }
  main { display: flex; flex-direction: column; }
  #log { flex: 1; overflow: auto; padding: 18px; }
  .msg { max-width: 760px; margin: 0 auto 12px; padding: 10px 13px; border-radius: 8px; white-space: break-spaces; word-wrap: break-word; }
  .user { background: var(--user); }
  .assistant { background: var(--bot); border: 1px solid var(--line); }
  .error { background: #fbeaea; color: #8a1f1f; }
  .meta { font-size: 12px; color: var(--muted); margin-top: 6px; }
  .tok { border-radius: 3px; cursor: pointer; }
  .tok:hover, .tok.sel { outline: 1px solid var(--accent); }
  form { display: flex; gap: 8px; padding: 12px 18px; border-top: 1px solid var(--line); background: #fff; }
  form textarea { flex: 1; min-height: 44px; max-height: 200px; }
  button { border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 6px; padding: 0 16px; cursor: pointer; }
  button.secondary { background: #fff; color: var(--accent); }
  button:disabled { opacity: .45; cursor: default; }
  #status { font-size: 12px; color: var(--muted); }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  td { padding: 3px 4px; border-bottom: 1px solid var(--line); }
  td.p { text-align: right; font-variant-numeric: tabular-nums; width: 64px; }
  .bar { height: 6px; background: var(--accent); border-radius: 3px; }
  code { background: #f0f0ea; padding: 0 3px; border-radius: 3px; white-space: pre; }
  .legend { font-size: 12px; color: var(--muted); }
</style>
</head>
<body>
<aside>
  <h1>llm chat</h1>
  <div id="status">connecting…</div>
  <h2>System prompt</h2>
  <textarea id="system" rows="4" placeholder="(the model's default)"></textarea>
  <h2>Sampling</h2>
  <label for="temperature">temperature (0: greedy)</label><input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7">
  <label for="top_p">top_p</label><input id="top_p" type="number" min="0.01" max="1" step="0.05" value="0.95">
  <label for="top_k">top_k (0: off)</label><input id="top_k" type="number" min="0" step="1" value="40">
  <label for="max_tokens">max_tokens</label><input id="max_tokens" type="number" min="1" step="1" value="256">
  <label for="seed">seed (empty: random)</label><input id="seed" type="number" step="1" value="">
  <h2>Server</h2>
  <label for="key">API key (if the server wants one)</label><input id="key" type="password" autocomplete="off">
  <p class="legend">Replies stream from <code>/v1/chat/completions</code>. Each token is shaded by the probability the model gave it: pale tokens are where it hesitated. Click one to see the alternatives.</p>
  <button id="clear" class="secondary" type="button">New conversation</button>
</aside>
<main>
  <div id="log"></div>
  <form id="form">
    <textarea id="input" placeholder="Write a message… (Enter sends, Shift+Enter is a new line)" autofocus></textarea>
    <button id="send" type="submit">Send</button>
    <button id="stop" type="button" class="secondary" disabled>Stop</button>
  </form>
</main>
<section id="inspector">
  <h2>Token</h2>
  <div id="detail" class="legend">Click a generated token.</div>
</section>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const log = $("log");
let history = [];          // {role, content}
let controller = null;     // the running request's AbortController

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function health() {
  try {
    const r = await fetch("health");
    const j = await r.json();
    $("status").textContent = `${j.model} · ${j.slots_processing} running, ${j.queue} waiting`;
  } catch (e) { $("status").textContent = "server unreachable"; }
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

// A probability as a background: white (unsure) to blue (sure).
function shade(p) {
  const a = 0.08 + 0.5 * p;
  return `rgba(47, 93, 138, ${a.toFixed(3)})`;
}

function showToken(span, entry) {
  document.querySelectorAll(".tok.sel").forEach((s) => s.classList.remove("sel"));
  span.classList.add("sel");
  const rows = (entry.top_logprobs || []).map((t) => {
    const p = Math.exp(t.logprob);
    const chosen = t.token === entry.token ? " (chosen)" : "";
    return `<tr><td><code>${escapeHTML(JSON.stringify(t.token))}</code>${chosen}</td><td class="p">${(100 * p).toFixed(1)}%</td><td style="width:80px"><div class="bar" style="width:${Math.max(1, 80 * p)}px"></div></td></tr>`;
  }).join("");
  $("detail").innerHTML = `<p><code>${escapeHTML(JSON.stringify(entry.token))}</code> had probability <b>${(100 * Math.exp(entry.logprob)).toFixed(2)}%</b> (log-probability ${entry.logprob.toFixed(3)}).</p><p class="legend">What the model weighed at this position:</p><table>${rows}</table>`;
}

// Generated text as the reply shows it. Characters that draw nothing would leave a token with
// a zero-size box that cannot be clicked, and would hide what the model wrote: a line break
// shows as ↵ before the break, other control characters as their Unicode pictures (form feed
// ␌, carriage return ␍), invisible format characters (zero-width space, BOM) as ⟨U+XXXX⟩.
// A piece that starts with a combining mark (its base came in the token before) shows the mark
// on a dotted circle ◌, as Unicode draws a mark alone. Spaces keep their width at the end of a
// line through the bubble's `white-space: break-spaces`.
function visibleText(piece) {
  return piece.replace(/^\p{M}/u, "\u25cc$&").replace(/[\p{Cc}\p{Cf}]/gu, (c) => {
    const code = c.codePointAt(0);
    if (c === "\n") return "\u21b5\n";
    if (c === "\t") return c;
    if (code < 0x20) return String.fromCodePoint(0x2400 + code);
    if (code === 0x7f) return "\u2421";
    return `\u27e8U+${code.toString(16).toUpperCase().padStart(4, "0")}\u27e9`;
  });
}

function escapeHTML(s) {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

async function send(text) {
  history.push({ role: "user", content: text });
  bubble("user", text);
  const reply = bubble("assistant", "");
  const meta = document.createElement("div");
  meta.className = "meta";
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...history);
  const body = { messages, stream: true, stream_options: { include_usage: true }, logprobs: true, top_logprobs: 5 };
  for (const k of ["temperature", "top_p", "top_k", "max_tokens", "seed"]) {
    const v = numberOrNull(k);
    if (v !== null) body[k] = v;
  }
  controller = new AbortController();
  $("send").disabled = true; $("stop").disabled = false;
  const started = performance.now();
  let first = null, count = 0, content = "", finish = null, usage = null;
  try {
    const r = await fetch("v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error((j.error && j.error.message) || `HTTP ${r.status}`);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices || []) {
          const entries = (choice.logprobs && choice.logprobs.content) || [];
          count += entries.length;
          if (entries.length && first === null) first = performance.now();
          const piece = (choice.delta && choice.delta.content) || "";
          content += piece;
          if (entries.length && piece) {
            // The text this chunk released, shaded by its token's probability (a token whose
            // text is still held back, such as part of a character, shows with the next one).
            const span = document.createElement("span");
            span.className = "tok";
            span.textContent = visibleText(piece);
            const entry = entries[entries.length - 1];
            span.style.background = shade(Math.exp(entry.logprob));
            span.title = `${(100 * Math.exp(entry.logprob)).toFixed(1)}%`;
            span.addEventListener("click", () => showToken(span, entry));
            reply.appendChild(span);
          } else if (piece) {
            reply.appendChild(document.createTextNode(visibleText(piece)));
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        log.scrollTop = log.scrollHeight;
      }
    }
  } catch (e) {
    if (e.name === "AbortError") { finish = "stopped"; }
    else { reply.classList.add("error"); reply.textContent = content + (content ? "\n" : "") + "error: " + e.message; }
  }
  const seconds = ((first !== null ? performance.now() - first : 0) / 1000);
  const ttft = first !== null ? ((first - started) / 1000).toFixed(2) + " s to first token" : "";
  const rate = count > 1 && seconds > 0 ? `${((count - 1) / seconds).toFixed(1)} tokens/s` : "";
  meta.textContent = [`${count} tokens`, rate, ttft, finish ? `finish: ${finish}` : "", usage ? `prompt ${usage.prompt_tokens} tokens` : ""].filter(Boolean).join(" · ");
  reply.appendChild(meta);
  reply.dataset.done = "1";
  history.push({ role: "assistant", content });
  controller = null;
  $("send").disabled = false; $("stop").disabled = true;
  health();
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("clear").addEventListener("click", () => { history = []; log.innerHTML = ""; $("detail").textContent = "Click a generated token."; });
health();
</script>
</body>
</html>
"""#
}
