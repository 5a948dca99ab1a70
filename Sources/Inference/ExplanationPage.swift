/// The page `llm explain` writes: one self-contained HTML file (no network, no external scripts)
/// that draws the explanation's numbers, which sit in the `explain-data` script tag as JSON (see
/// `Explanation.html()`). Sections: tokens colored by surprise, attention (one layer and head as
/// a heatmap, all of them as small multiples, one token across layers), the logit lens, norms.
/// The address may pick the first view: `report.html#layer=3&head=1&token=5`.
/// The page marks what it has drawn (`data-drawn` on the heatmap, `data-ready` on the body) and
/// `explainCheck()` summarizes it, for the browser test.
let explanationPageTemplate = #"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>llm explain</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.note { color: #666; font-size: 0.92em; }
#tokens { line-height: 2.1; }
.tok { font-family: ui-monospace, monospace; padding: 2px 1px; margin: 0 1px; border: 1px solid #ccc; border-radius: 3px; cursor: pointer; white-space: pre; }
.tok.gen { border-style: dashed; }
.tok.chosen { outline: 2px solid #1565c0; }
#details { font-family: ui-monospace, monospace; background: #f6f6f6; padding: 0.5em 0.8em; min-height: 3em; white-space: pre-wrap; }
.controls label { margin-right: 1.2em; }
#heatmap { border: 1px solid #ccc; }
#hover { font-family: ui-monospace, monospace; height: 1.4em; }
#grid { display: grid; gap: 3px; margin-top: 0.5em; }
#grid canvas { width: 56px; height: 56px; image-rendering: pixelated; border: 1px solid #ddd; cursor: pointer; }
#grid canvas.chosen { border: 2px solid #1565c0; }
#grid .rowlabel, #grid .collabel { font-size: 0.8em; color: #666; align-self: center; text-align: center; }
table { border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 12px; }
td, th { border: 1px solid #e4e4e4; padding: 2px 4px; white-space: pre; text-align: left; }
th { background: #fafafa; font-weight: normal; color: #555; }
td.hit { font-weight: bold; }
.scroll { overflow-x: auto; max-width: 100%; }
.bar { display: inline-block; height: 9px; background: #5c6bc0; vertical-align: middle; margin-right: 4px; }
.bar.a { background: #26a69a; } .bar.m { background: #ef6c00; }
</style>
</head>
<body>
<h1>Inside the model</h1>
<div id="summary" class="note"></div>

<h2>Tokens and surprise</h2>
<p class="note">Each token is colored by its surprise, −log p of that token under the model at the position before it (white: expected, red: surprising; the first token has none). Dashed tokens are the model's own greedy continuation. Click a token to see what the model expected there and what it predicts next; the chosen token is also the query shown across layers below.</p>
<div id="tokens"></div>
<div id="details"></div>

<h2>Attention</h2>
<div class="controls">
<label>layer <select id="layer"></select></label>
<label>head <select id="head"></select></label>
</div>
<p class="note">Row = query (the token attending), column = key (the token attended to). Darker = more weight; each row sums to 1. Hover for values.</p>
<canvas id="heatmap"></canvas>
<div id="hover"></div>
<h3>All layers × heads</h3>
<p class="note">Every head's map in small: rows are layers, columns heads. Click one to show it above.</p>
<div id="grid"></div>
<h3>One token across layers</h3>
<div class="controls"><label>heads <select id="acrossHead"></select></label></div>
<p class="note" id="acrossNote"></p>
<div class="scroll"><table id="across"></table></div>

<h2>Logit lens</h2>
<p class="note">Each layer's residual stream read as if it were the last: through the final norm and the output head. A cell shows the top next token at that position after that layer, greener with higher probability; bold where it is the token that actually comes next. The last row is the model's own prediction.</p>
<div class="scroll"><table id="lens"></table></div>

<h2>Norms</h2>
<div class="controls"><label>at <select id="normAt"></select></label></div>
<p class="note">L2 norms: of the residual stream after each layer (the first row: the embeddings entering layer 0), and of what each layer's attention and MLP add to it.</p>
<table id="norms"></table>

<script type="application/json" id="explain-data">/*DATA*/</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("explain-data").textContent);
const T = D.ids.length, L = D.layers, H = D.heads;
const $ = id => document.getElementById(id);
const el = (tag, props = {}, text) => { const e = Object.assign(document.createElement(tag), props); if (text !== undefined) e.textContent = text; return e; };

// Attention weights: uint16 little-endian, p × 65535, layout (layer, head, query, key).
const bin = atob(D.attention);
const A = new Uint16Array(bin.length >> 1);
for (let i = 0; i < A.length; i++) A[i] = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
const att = (l, h, q, k) => A[((l * H + h) * T + q) * T + k] / 65535;

let chosen = T - 1;
const quote = s => `"${s}"`;
const show = s => s.length > 14 ? s.slice(0, 13) + "…" : s;
const fmt = p => p >= 0.995 ? p.toFixed(2) : p >= 0.01 ? p.toFixed(3) : p.toExponential(1);
const blue = p => { const v = Math.round(255 * (1 - p)); return [v, Math.round(255 - 150 * p), 255]; };

$("summary").textContent = `${D.model} · ${T} tokens (${D.promptTokens} prompt` + (T > D.promptTokens ? `, ${T - D.promptTokens} generated greedily` : "") + `) · ${L} layers × ${H} heads`;

// Tokens colored by surprise.
const maxSurprise = Math.max(1e-6, ...D.surprise);
function drawTokens() {
  const box = $("tokens"); box.textContent = "";
  D.pieces.forEach((piece, t) => {
    const s = t > 0 ? D.surprise[t - 1] : null;
    const span = el("span", { className: "tok" + (t >= D.promptTokens ? " gen" : "") + (t === chosen ? " chosen" : "") }, piece);
    if (s !== null) {
      const a = Math.min(1, s / maxSurprise);
      span.style.background = `rgba(229, 57, 53, ${(0.85 * a).toFixed(3)})`;
      span.title = `surprise ${s.toFixed(2)} nats (p = ${fmt(Math.exp(-s))})`;
    } else span.title = "the first token: no surprise";
    span.onclick = () => choose(t);
    box.append(span);
  });
}
function predictionList(t) { return D.top[t].map(([piece, p]) => `  ${quote(piece)} ${fmt(p)}`).join("\n"); }
function drawDetails() {
  const t = chosen, lines = [`token ${t}: ${quote(D.pieces[t])} (id ${D.ids[t]})`];
  if (t > 0) lines.push(`surprise ${D.surprise[t - 1].toFixed(3)} nats (p = ${fmt(Math.exp(-D.surprise[t - 1]))}); at the position before, the model expected:`, predictionList(t - 1));
  lines.push("after it, the model predicts:", predictionList(t));
  $("details").textContent = lines.join("\n");
}
function choose(t) { chosen = t; drawTokens(); drawDetails(); drawAcross(); drawNorms(); }

// One layer and head as a heatmap, with token labels.
for (let l = 0; l < L; l++) $("layer").append(el("option", { value: l }, `${l}` + (D.windows[l] ? ` (window ${D.windows[l]})` : "")));
for (let h = 0; h < H; h++) $("head").append(el("option", { value: h }, `${h}`));
const cell = Math.max(3, Math.min(28, Math.floor(640 / T)));
const labels = cell >= 8, margin = labels ? 110 : 4;
function drawHeatmap() {
  const l = +$("layer").value, h = +$("head").value, c = $("heatmap");
  c.width = margin + T * cell + 2; c.height = margin + T * cell + 2;
  const g = c.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  for (let q = 0; q < T; q++) for (let k = 0; k <= q; k++) {
    const [r, gr, b] = blue(att(l, h, q, k));
    g.fillStyle = `rgb(${r},${gr},${b})`;
    g.fillRect(margin + k * cell, margin + q * cell, cell, cell);
  }
  g.strokeStyle = "#ccc"; g.strokeRect(margin + 0.5, margin + 0.5, T * cell, T * cell);
  if (labels) {
    g.fillStyle = "#333"; g.font = `${Math.min(12, cell - 1)}px monospace`;
    g.textAlign = "right"; g.textBaseline = "middle";
    for (let t = 0; t < T; t++) g.fillText(show(D.pieces[t]), margin - 4, margin + t * cell + cell / 2);
    for (let t = 0; t < T; t++) {
      g.save(); g.translate(margin + t * cell + cell / 2, margin - 4); g.rotate(-Math.PI / 2);
      g.textAlign = "left"; g.fillText(show(D.pieces[t]), 0, 0); g.restore();
    }
  }
  c.dataset.drawn = `${l},${h}`;
  document.querySelectorAll("#grid canvas").forEach(m => m.classList.toggle("chosen", m.dataset.layer == l && m.dataset.head == h));
}
$("heatmap").onmousemove = e => {
  const r = e.target.getBoundingClientRect();
  const k = Math.floor((e.clientX - r.left - margin) / cell), q = Math.floor((e.clientY - r.top - margin) / cell);
  if (q < 0 || k < 0 || q >= T || k >= T) { $("hover").textContent = ""; return; }
  const p = att(+$("layer").value, +$("head").value, q, k);
  $("hover").textContent = `query ${q} ${quote(D.pieces[q])} → key ${k} ${quote(D.pieces[k])}: ${p.toFixed(4)}`;
};
$("layer").onchange = drawHeatmap; $("head").onchange = drawHeatmap;

// All layers × heads in small.
function drawGrid() {
  const grid = $("grid");
  grid.style.gridTemplateColumns = `3em repeat(${H}, 58px)`;
  grid.append(el("div"));
  for (let h = 0; h < H; h++) grid.append(el("div", { className: "collabel" }, `head ${h}`));
  for (let l = 0; l < L; l++) {
    grid.append(el("div", { className: "rowlabel" }, `L${l}`));
    for (let h = 0; h < H; h++) {
      const c = el("canvas", { width: T, height: T, title: `layer ${l}, head ${h}` });
      c.dataset.layer = l; c.dataset.head = h;
      const g = c.getContext("2d"), img = g.createImageData(T, T);
      for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) {
        const [r, gr, b] = k <= q ? blue(att(l, h, q, k)) : [255, 255, 255], i = 4 * (q * T + k);
        img.data[i] = r; img.data[i + 1] = gr; img.data[i + 2] = b; img.data[i + 3] = 255;
      }
      g.putImageData(img, 0, 0);
      c.onclick = () => { $("layer").value = l; $("head").value = h; drawHeatmap(); };
      grid.append(c);
    }
  }
}

// The chosen token's attention in every layer.
$("acrossHead").append(el("option", { value: "mean" }, "mean of all heads"));
for (let h = 0; h < H; h++) $("acrossHead").append(el("option", { value: h }, `head ${h}`));
$("acrossHead").onchange = () => drawAcross();
function drawAcross() {
  const q = chosen, which = $("acrossHead").value, table = $("across");
  $("acrossNote").textContent = `What token ${q} ${quote(D.pieces[q])} attends to, layer by layer (click a token above to choose another).`;
  table.textContent = "";
  const head = el("tr"); head.append(el("th", {}, "layer"));
  for (let k = 0; k <= q; k++) head.append(el("th", {}, show(D.pieces[k])));
  table.append(head);
  for (let l = 0; l < L; l++) {
    const row = el("tr"); row.append(el("th", {}, `${l}`));
    for (let k = 0; k <= q; k++) {
      let p = 0;
      if (which === "mean") { for (let h = 0; h < H; h++) p += att(l, h, q, k); p /= H; } else p = att(l, +which, q, k);
      const [r, g, b] = blue(p);
      const td = el("td", { title: `layer ${l}: ${p.toFixed(4)}` }, p >= 0.005 ? p.toFixed(2) : "");
      td.style.background = `rgb(${r},${g},${b})`; if (p > 0.6) td.style.color = "#fff";
      row.append(td);
    }
    table.append(row);
  }
}

// The logit lens.
function drawLens() {
  const table = $("lens");
  const head = el("tr"); head.append(el("th", {}, "after layer"));
  for (let t = 0; t < T; t++) head.append(el("th", { title: `position ${t}` }, show(D.pieces[t])));
  table.append(head);
  for (let l = 0; l < L; l++) {
    const row = el("tr"); row.append(el("th", {}, `${l}`));
    for (let t = 0; t < T; t++) {
      const p = D.lens.probabilities[l][t], piece = D.lens.pieces[l][t];
      const td = el("td", { title: `after layer ${l}, position ${t}: ${quote(piece)} p = ${fmt(p)}` }, show(piece));
      td.style.background = `rgba(67, 160, 71, ${(0.85 * p).toFixed(3)})`;
      if (t + 1 < T && D.lens.ids[l][t] === D.ids[t + 1]) td.className = "hit";
      row.append(td);
    }
    table.append(row);
  }
}

// Norms per layer, at the chosen token or averaged over tokens.
$("normAt").append(el("option", { value: "chosen" }, "the chosen token"), el("option", { value: "mean" }, "mean over tokens"));
$("normAt").onchange = () => drawNorms();
function drawNorms() {
  const mean = $("normAt").value === "mean", at = xs => mean ? xs.reduce((a, b) => a + b, 0) / xs.length : xs[chosen];
  const rows = [["embeddings", at(D.norms.residual[0]), null, null]];
  for (let l = 0; l < L; l++) rows.push([`layer ${l}`, at(D.norms.residual[l + 1]), at(D.norms.attention[l]), at(D.norms.mlp[l])]);
  const maxR = Math.max(...rows.map(r => r[1])), maxC = Math.max(1e-9, ...rows.slice(1).flatMap(r => [r[2], r[3]]));
  const table = $("norms"); table.textContent = "";
  const head = el("tr"); ["", "residual stream", "attention adds", "MLP adds"].forEach(s => head.append(el("th", {}, s))); table.append(head);
  for (const [name, r, a, m] of rows) {
    const row = el("tr"); row.append(el("th", {}, name));
    [[r, maxR, ""], [a, maxC, " a"], [m, maxC, " m"]].forEach(([v, max, kind]) => {
      const td = el("td");
      if (v !== null) { const bar = el("span", { className: "bar" + kind }); bar.style.width = `${Math.round(120 * v / max)}px`; td.append(bar, v.toFixed(2)); }
      row.append(td);
    });
    table.append(row);
  }
}

// For the browser test: what is drawn.
window.explainCheck = () => {
  const c = $("heatmap"), px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let colored = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i] < 250 && px[i + 2] > 200) colored++;
  return { layers: $("layer").options.length, heads: $("head").options.length, drawn: c.dataset.drawn, coloredPixels: colored,
           gridMaps: document.querySelectorAll("#grid canvas").length, lensRows: $("lens").rows.length - 1,
           lensCells: $("lens").querySelectorAll("td").length, normRows: $("norms").rows.length - 1,
           acrossRows: $("across").rows.length - 1, tokens: document.querySelectorAll("#tokens .tok").length };
};

// A view to start from, from the address: report.html#layer=23&head=4&token=4.
const start = new URLSearchParams(location.hash.slice(1));
const pick = (key, n, fallback) => { const v = parseInt(start.get(key), 10); return Number.isInteger(v) && v >= 0 && v < n ? v : fallback; };
$("layer").value = pick("layer", L, 0); $("head").value = pick("head", H, 0);

drawGrid(); drawHeatmap(); drawLens(); choose(pick("token", T, T - 1));
document.body.dataset.ready = "yes";
</script>
</body>
</html>
"""#
