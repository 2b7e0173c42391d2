// cnnzoo studio: the one-page app. Plain JavaScript, no library, no network beyond this server.
// Each page reads the JSON API (/api/...) and draws with SVG; the address says which page is shown.
"use strict";

const $ = (sel) => document.querySelector(sel);
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { runs: [], compare: new Set(), poll: null, listPoll: null, runId: null, tryRun: null, weights: null,
  curves: null, learn: null, scrubEpoch: null, picture: null };

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

function el(tag, attrs = {}, text = null) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function human(n) {
  if (n === null || n === undefined) return "-";
  for (const [f, s] of [[1e9, "G"], [1e6, "M"], [1e3, "K"]]) if (Math.abs(n) >= f) return (n / f).toPrecision(3) + s;
  return String(n);
}
const pct = (x) => (x === null || x === undefined ? "-" : (100 * x).toFixed(2) + " %");
const shape = (s) => (s ? s.join("×") : "-");

// ---------------------------------------------------------------------------------------------
// pages and the address
// ---------------------------------------------------------------------------------------------
function go(path, push = true) {
  if (push && path !== location.pathname) history.pushState({}, "", path);
  route();
}

function route() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const tab = ["runs", "try", "side"].includes(parts[0]) ? parts[0] : "zoo";
  for (const name of ["zoo", "runs", "try", "side"]) {
    $(`#page-${name}`).hidden = name !== tab;
    $(`#tab-${name}`).classList.toggle("active", name === tab);
  }
  showError("");
  stopPolling();
  const pages = { zoo: () => showZoo(parts[1]), runs: () => showRuns(parts[1]), try: showTry, side: showSide };
  pages[tab]().catch((e) => showError(e.message));
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/']");
  if (!link || link.classList.contains("plain") || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  go(link.getAttribute("href"));
});
window.addEventListener("popstate", () => route());

// ---------------------------------------------------------------------------------------------
// the zoo
// ---------------------------------------------------------------------------------------------
async function showZoo(name) {
  const body = $("#models tbody");
  if (!body.children.length) {
    const models = await api("/api/models");
    for (const m of models) {
      const row = el("tr", { class: "clickable", "data-model": m.name });
      for (const [text, cls] of [[m.name, ""], [m.family, ""], [`${m.input_size}×${m.input_size}`, "num"],
        [human(m.params), "num"], [human(m.macs), "num"]]) row.appendChild(el("td", { class: cls }, text));
      row.addEventListener("click", () => go(`/zoo/${encodeURIComponent(m.name)}`));
      body.appendChild(row);
    }
    api("/api/inception-cost").then((rows) => {
      const costs = $("#costs tbody");
      for (const r of rows) {
        const row = el("tr");
        row.append(el("td", {}, r.block), el("td", { class: "num" }, `${(r.weights / 1e6).toFixed(2)}M`),
          el("td", { class: "num" }, `${(r.macs / 1e6).toFixed(1)}M`));
        costs.appendChild(row);
      }
    }).catch((e) => showError(e.message));
  }
  const chosen = name || (body.children[0] && body.children[0].dataset.model);
  for (const row of body.children) row.classList.toggle("selected", row.dataset.model === chosen);
  if (chosen) await showModel(chosen);
}

async function showModel(name) {
  const box = $("#model-detail");
  const m = await api(`/api/models/${encodeURIComponent(name)}`);
  box.replaceChildren(el("h2", {}, m.name), el("p", { class: "muted" }, m.description),
    el("p", {}, `input ${shape(m.input_shape)} · ${m.params.toLocaleString()} parameters · ` +
      `${human(m.macs)} MACs per image · accepts sides ${m.min_input_size}` +
      (m.max_input_size ? `-${m.max_input_size}` : " and up")));
  box.appendChild(bookTies(m.book));
  box.appendChild(traces(m.book.trace));
  box.appendChild(diagram(m));
  box.appendChild(el("p", { class: "scale", id: "diagram-legend" },
    "Boxes: the stages, top to bottom as the data flows, each with the shape it hands on (hover one for its layers). " +
    "Orange bars: each stage's multiply-accumulates (MACs) per image, against the costliest stage's."));
  box.appendChild(stageGraphs(m));
  const mine = (await loadWeights()).filter((w) => w.model === name);
  if (mine.length) {
    const p = el("p", { id: "model-weights" }, "Trained weights: ");
    mine.forEach((w, i) => {
      if (i) p.append(", ");
      p.append(el("a", { href: `/try?weight=${encodeURIComponent(w.name)}` }, w.name),
        ` (test accuracy ${pct(w.test_acc)}, ${w.input_size}×${w.input_size})`);
    });
    p.append(" · try it with a picture of yours.");
    box.insertBefore(p, box.querySelector("#diagram"));
  }
}

function whys(g, found = new Set()) {
  // What the book says each kind of block in a stage is for, once per kind.
  if (g.why) found.add(g.why);
  for (const b of g.blocks) whys(b, found);
  return found;
}

function bookTies(book) {
  const p = el("p", { id: "book-ties" });
  if (!book.section) {
    p.append("Not in the book: one of cnnzoo's own networks.");
    return p;
  }
  p.append(`The book: section ${book.section} of the Modern CNNs chapter.`);
  for (const f of book.figures) {
    p.append(" ", f.test_acc === null ? `The book shows ${f.network}'s training as a plot only (${f.setting}).`
      : `${f.source.startsWith("d2l") ? "The book printed" : "A d2l reader's variant reached"} a test accuracy of ` +
        `${f.test_acc.toFixed(3)} for ${f.network} (${f.setting}).`);
  }
  if (book.public) p.append(` The public Fashion-MNIST table: ${book.public.test_acc.toFixed(3)} (${book.public.architecture}).`);
  return p;
}

function traces(t) {
  // The book's printed shape trace beside cnnzoo's, line by line (GET /api/models/NAME: book.trace).
  const d = el("details", { id: "book-trace" });
  const same = t.printed && t.printed.length === t.live.length && t.printed.every((line, i) => line === t.live[i]);
  d.appendChild(el("summary", {}, t.printed
    ? `The book's shape trace at ${t.side}×${t.side} beside cnnzoo's: ${same ? "the same, line for line" : "they differ"}`
    : `cnnzoo's shape trace at ${t.side}×${t.side}, as the book's loop prints it (the book prints none for this network)`));
  const table = el("table", { class: "table trace" });
  const head = el("tr");
  head.append(...(t.printed ? ["the book printed", "cnnzoo now"] : ["cnnzoo now"]).map((h) => el("th", {}, h)));
  table.appendChild(head);
  const rows = Math.max(t.live.length, t.printed ? t.printed.length : 0);
  for (let i = 0; i < rows; i++) {
    const tr = el("tr");
    if (t.printed) tr.appendChild(el("td", { class: "code" }, t.printed[i] ?? ""));
    const ok = !t.printed || t.printed[i] === t.live[i];
    tr.appendChild(el("td", { class: "code" + (ok ? "" : " differs") }, t.live[i] ?? ""));
    table.appendChild(tr);
  }
  d.appendChild(table);
  d.dataset.same = String(same);
  return d;
}

function stageGraphs(m) {
  // Each stage opens into its real graph: Inception's four paths, a residual block's main path and shortcut,
  // a dense block's concatenations, NiN's 1x1 convolutions (GET /api/models/NAME: stages[].graph).
  const box = el("div", { id: "stage-graphs" });
  box.appendChild(el("h3", {}, "Inside each stage"));
  box.appendChild(el("p", { class: "scale", id: "graph-legend" },
    "Open a stage to see its blocks, top to bottom as the data flows. Paths side by side take the same input: " +
    "⧺ concatenates their outputs along the channels (Inception's paths, DenseNet's connections), ⊕ adds them " +
    "(a residual block's shortcut, dashed). A NiN block is one convolution followed by two 1×1 convolutions."));
  for (const s of m.stages) {
    const d = el("details", { class: "stage-graph", "data-stage": s.name });
    d.appendChild(el("summary", {}, `${s.name} (${s.type}) → ${shape(s.output_shape)}`));
    for (const why of whys(s.graph)) d.appendChild(el("p", { class: "why" }, why));
    d.appendChild(renderBlock(s.graph));
    box.appendChild(d);
  }
  return box;
}

function renderBlock(g) {
  if (g.kind === "layer") return el("div", { class: "node" }, g.label);
  if (g.kind === "sequence") {
    const seq = el("div", { class: "seq" });
    g.blocks.forEach((b) => seq.appendChild(renderBlock(b)));
    return seq;
  }
  const block = el("div", { class: `block ${g.kind}` });
  block.appendChild(el("div", { class: "block-title" }, g.label));
  if (g.kind === "dense") {
    for (const step of g.paths[0]) {
      block.append(el("div", { class: "node" }, step), el("div", { class: "join concat" }, "⧺ its output concatenated to its input"));
    }
    return block;
  }
  const paths = el("div", { class: "paths" });
  g.paths.forEach((p, i) => {
    const col = el("div", { class: "path" + (g.kind === "residual" && i === 1 ? " shortcut" : "") });
    if (g.kind === "residual") col.appendChild(el("div", { class: "path-title" }, i === 0 ? "main path" : "shortcut"));
    p.forEach((label) => col.appendChild(el("div", { class: "node" }, label)));
    paths.appendChild(col);
  });
  block.appendChild(paths);
  if (g.join) {
    const add = g.kind === "residual";
    block.appendChild(el("div", { class: `join ${add ? "add" : "concat"}` }, `${add ? "⊕" : "⧺"} ${g.join}`));
  }
  return block;
}

function diagram(m) {
  // One box per stage, top to bottom, as the data flows; the orange bar is the stage's share of the MACs.
  const rowH = 44, width = 560, top = 8;
  const rows = [{ name: "input", type: "", output_shape: m.input_shape, params: 0, macs: 0 }, ...m.stages];
  const svg = el("svg:svg", { class: "diagram", viewBox: `0 0 ${width} ${top + rows.length * rowH}`, id: "diagram" });
  const most = Math.max(1, ...m.stages.map((s) => s.macs));
  rows.forEach((s, i) => {
    const y = top + i * rowH;
    const g = el("svg:g", { class: "stage-row" });
    g.appendChild(el("svg:rect", { class: "stage-box", x: 4, y, width: 250, height: rowH - 12, rx: 6 }));
    const inner = s.children && s.children.length ? ` · ${s.children.length} layers` : "";
    g.appendChild(el("svg:text", { x: 12, y: y + 14 }, s.type ? `${s.name} (${s.type})` : s.name));
    g.appendChild(el("svg:text", { x: 12, y: y + 27, class: "small" }, `→ ${shape(s.output_shape)}${inner}`));
    if (i > 0) {
      g.appendChild(el("svg:text", { x: 270, y: y + 14, class: "small" },
        `${human(s.params)} params · ${human(s.macs)} MACs`));
      g.appendChild(el("svg:rect", { class: "cost", x: 270, y: y + 19, height: 8, width: Math.max(1, 280 * s.macs / most) }));
      const title = el("svg:title", {}, (s.children || []).map((c) => `${c.name} ${c.type} → ${shape(c.output_shape)}`).join("\n"));
      g.appendChild(title);
    }
    svg.appendChild(g);
  });
  return svg;
}

// ---------------------------------------------------------------------------------------------
// charts
// ---------------------------------------------------------------------------------------------
function lineChart(svg, series, opts = {}) {
  // series: [{label, color, points: [[x, y], ...], dashed, axis}]; axis "acc" puts a series on the right-hand
  // accuracy scale (its own range), anything else on the left-hand one (losses). Each point's value shows on hover.
  // Returns the number of points drawn.
  svg.replaceChildren();
  const box = svg.getBoundingClientRect();
  const W = Math.max(320, box.width || 640), H = Math.max(200, box.height || 260);
  const twoAxes = series.some((s) => s.axis === "acc") && series.some((s) => s.axis !== "acc");
  const pad = { l: 46, r: twoAxes ? 46 : 12, t: 10, b: 30 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const finite = (s) => s.points.filter((p) => p[1] !== null && Number.isFinite(p[1]));
  const xmax = Math.max(opts.xmax || 1, ...series.flatMap(finite).map((p) => p[0]));
  const X = (x) => pad.l + (W - pad.l - pad.r) * (x / xmax);
  const scale = (list) => {  // [low, high] of a y axis: losses from 0, accuracies from a little below their lowest
    const ys = list.flatMap(finite).map((p) => p[1]);
    if (!ys.length) return [0, 1];
    if (list.every((s) => s.axis === "acc")) return [Math.max(0, Math.floor(Math.min(...ys) * 20) / 20 - 0.05), 1];
    return [0, Math.max(1e-6, ...ys) * 1.05];
  };
  const left = scale(series.filter((s) => !twoAxes || s.axis !== "acc"));
  const right = twoAxes ? scale(series.filter((s) => s.axis === "acc")) : left;
  const Y = ([lo, hi], y) => H - pad.b - (H - pad.t - pad.b) * ((y - lo) / (hi - lo));
  for (let i = 0; i <= 4; i++) {
    const v = left[0] + ((left[1] - left[0]) * i) / 4;
    svg.appendChild(el("svg:line", { x1: pad.l, x2: W - pad.r, y1: Y(left, v), y2: Y(left, v), stroke: "#e4e8ee" }));
    svg.appendChild(el("svg:text", { x: 4, y: Y(left, v) + 4 }, v.toFixed(2)));
    if (twoAxes) {
      const a = right[0] + ((right[1] - right[0]) * i) / 4;
      svg.appendChild(el("svg:text", { x: W - pad.r + 4, y: Y(right, a) + 4, class: "axis-acc" }, a.toFixed(2)));
    }
  }
  if (twoAxes) {
    svg.appendChild(el("svg:text", { x: 4, y: pad.t + 2, class: "axis-name" }, "loss"));
    svg.appendChild(el("svg:text", { x: W - pad.r + 4, y: pad.t + 2, class: "axis-name" }, "accuracy"));
  }
  const step = Math.max(1, Math.ceil(xmax / 10));
  for (let e = 0; e <= xmax; e += step) svg.appendChild(el("svg:text", { x: X(e) - 3, y: H - 12 }, String(e)));
  svg.appendChild(el("svg:text", { x: W / 2, y: H - 1 }, opts.xlabel || "epoch"));
  if (opts.marker !== null && opts.marker !== undefined) {  // the epoch the scrubber shows
    svg.appendChild(el("svg:line", { class: "marker", x1: X(opts.marker), x2: X(opts.marker), y1: pad.t, y2: H - pad.b,
      "data-epoch": String(opts.marker) }));
  }
  let drawn = 0, reach = 0;
  for (const s of series) {
    const pts = finite(s);
    if (!pts.length) continue;
    const range = twoAxes && s.axis === "acc" ? right : left;
    const d = pts.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(range, p[1]).toFixed(1)}`).join(" ");
    svg.appendChild(el("svg:path", { d, fill: "none", stroke: s.color, "stroke-width": 2,
      "stroke-dasharray": s.dashed ? "5 4" : "none", class: "series", "data-label": s.label }));
    for (const p of s.dashed ? [] : pts) {
      const dot = el("svg:circle", { cx: X(p[0]), cy: Y(range, p[1]), r: 3.2, fill: s.color, class: "point" });
      dot.appendChild(el("svg:title", {}, `${s.label}, epoch ${p[0]}: ${p[1].toFixed(4)}`));  // the hover value
      svg.appendChild(dot);
    }
    drawn += s.dashed ? Math.max(0, pts.length - (s.joined ? 1 : 0)) : pts.length;
    reach = Math.max(reach, ...pts.map((p) => p[0]));
  }
  svg.dataset.points = String(drawn);
  svg.dataset.progress = String(reach);
  return drawn;
}

function topkRows(top) {
  // One row a ranked class: "1. Sneaker", a bar as long as its probability, the probability.
  return top.map((t) => {
    const row = el("div", { class: "topk-row" });
    const bar = el("div");
    bar.appendChild(el("div", { class: "bar", style: `width: ${(100 * t.probability).toFixed(1)}%` }));
    row.append(el("span", { class: "topk-class" }, `${t.rank}. ${t.class}`), bar, el("span", {}, t.probability.toFixed(3)));
    return row;
  });
}

function legend(box, series) {
  box.replaceChildren(...series.filter((s) => !s.hideLegend).map((s) => {
    const item = el("span", { style: `--swatch: ${s.color}` }, s.label);
    return item;
  }));
}

// ---------------------------------------------------------------------------------------------
// runs
// ---------------------------------------------------------------------------------------------
async function loadRuns() {
  state.runs = await api("/api/runs");
  const health = await api("/api/health");
  $("#root").textContent = health.root;
  return state.runs;
}

async function showRuns(runId) {
  await loadRuns();
  drawRunList(runId);
  await drawCompare();
  const chosen = runId || (state.runs[0] && state.runs[0].id);
  $("#run-detail").hidden = !chosen;
  if (chosen) await showRun(chosen);
  // The list follows the root while the page is open: new runs appear, and every row's status and epochs agree
  // with the run's own page.
  state.listPoll = setInterval(() => refreshRunList(chosen).catch((e) => showError(e.message)), RUN_LIST_MS);
}

const RUN_LIST_MS = 3000;

async function refreshRunList(runId) {
  await loadRuns();
  drawRunList(runId);
}

function drawRunList(runId) {
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const r of state.runs) {
    const row = el("tr", { class: "clickable", "data-run": r.id });
    const tick = el("input", { type: "checkbox", title: "compare" });
    tick.checked = state.compare.has(r.id);
    tick.addEventListener("click", (e) => e.stopPropagation());
    tick.addEventListener("change", () => {
      if (tick.checked) state.compare.add(r.id); else state.compare.delete(r.id);
      drawCompare().catch((e) => showError(e.message));
    });
    const cell = el("td");
    cell.appendChild(tick);
    row.appendChild(cell);
    row.append(el("td", {}, r.id), el("td", {}, r.model), el("td", { class: `status-${r.status}` }, r.status),
      el("td", { class: "num" }, `${r.epochs_done}/${r.epochs ?? "?"}`), el("td", { class: "num" }, pct(r.test_acc)),
      el("td", { class: "num" }, pct(r.best_val_acc)));
    row.classList.toggle("selected", r.id === runId);
    row.addEventListener("click", () => go(`/runs/${encodeURIComponent(r.id)}`));
    body.appendChild(row);
  }
  if (!state.runs.length) body.appendChild(el("tr", {}, "")).appendChild(el("td", { colspan: 7 }, "No runs here yet: train one with cnnzoo train."));
}

async function drawCompare() {
  const ids = [...state.compare];
  $("#compare").hidden = ids.length < 1;
  if (!ids.length) return;
  const all = await Promise.all(ids.map((id) => api(`/api/runs/${encodeURIComponent(id)}/metrics`)));
  const acc = [], loss = [];
  all.forEach((m, i) => {
    const color = COLORS[i % COLORS.length];
    acc.push({ label: m.run, color, points: m.epochs.map((r) => [r.epoch, r.test_acc]) });
    loss.push({ label: m.run, color, points: m.epochs.map((r) => [r.epoch, r.train_loss]) });
  });
  lineChart($("#compare-acc"), acc);
  lineChart($("#compare-loss"), loss);
  legend($("#compare-legend"), acc);
}

function showImage(name, detail, id) {
  const has = detail.files.includes(name);
  $(`#${id}-box`).hidden = !has;
  if (has) $(`#${id}`).src = `/api/runs/${encodeURIComponent(detail.id)}/files/${name}?t=${Date.now()}`;
}

// The confusion matrix as a table whose cells open their pictures (GET /api/confusion/...: the run's final model
// classifies its test set once; a finished run only, so the numbers match its confusion.png).
async function drawConfusionTable(runId, detail) {
  const box = $("#confusion-cells-box");
  box.hidden = detail.status !== "finished";
  $("#cell-images").replaceChildren();
  if (box.hidden) return;
  const c = await api(`/api/confusion/${encodeURIComponent(runId)}`);
  const table = $("#confusion-table");
  const most = Math.max(1, ...c.matrix.flat());
  const head = el("tr");
  head.append(el("th", {}, "true \\ predicted"), ...c.classes.map((name) => el("th", { class: "num" }, name)));
  const rows = c.matrix.map((counts, i) => {
    const row = el("tr");
    row.append(el("th", {}, c.classes[i]), ...counts.map((n, j) => {
      const cell = el("td", { class: `num cell${i === j ? " diagonal" : ""}`, "data-true": i, "data-predicted": j,
        style: `--share: ${(n / most).toFixed(3)}`, title: `${n} ${c.classes[i]} taken for ${c.classes[j]}` }, String(n));
      if (n) cell.addEventListener("click", () => showCell(runId, i, j).catch((e) => showError(e.message)));
      return cell;
    }));
    return row;
  });
  table.replaceChildren(head, ...rows);
}

async function showCell(runId, i, j) {
  const cell = await api(`/api/confusion/${encodeURIComponent(runId)}/${i}/${j}`);
  const box = $("#cell-images");
  const title = el("p", {}, `${cell.count} test pictures of ${cell.true} taken for ${cell.predicted}` +
    (cell.count > cell.images.length ? ` (the ${cell.images.length} most confident)` : ""));
  box.replaceChildren(title, ...cell.images.map((im) => {
    const fig = el("figure", { class: "thumb" });
    fig.append(el("img", { src: im.image, alt: `test picture ${im.index}` }),
      el("figcaption", {}, `#${im.index} · ${im.probability.toFixed(2)}`));
    return fig;
  }));
}

async function showRun(runId) {
  state.runId = runId;
  const detail = await api(`/api/runs/${encodeURIComponent(runId)}`);
  $("#run-title").textContent = `${detail.id}: ${detail.model}`;
  state.runDetail = detail;
  showStatus(detail.status, detail.epochs_done);
  showImage("confusion.png", detail, "confusion");
  drawConfusionTable(runId, detail).catch((e) => showError(e.message));
  showImage("top_losses.png", detail, "top-losses");
  showImage("explained.png", detail, "explained");
  const perClass = $("#per-class tbody");
  perClass.replaceChildren();
  $("#per-class-box").hidden = !detail.per_class.length;
  for (const r of detail.per_class) {
    const row = el("tr");
    const bar = el("td");
    bar.appendChild(el("div", { class: "bar", style: `width: ${Math.round(100 * (r.accuracy || 0))}%` }));
    row.append(el("td", {}, r.class), el("td", { class: "num" }, pct(r.accuracy)), bar,
      el("td", {}, r.most_confused_with ? `${r.most_confused_with} (${r.confused_count})` : ""));
    perClass.appendChild(row);
  }
  const links = detail.files.map((f) => `<a class="plain" href="/api/runs/${encodeURIComponent(detail.id)}/files/${f}">${f}</a>`);
  $("#run-files").innerHTML = "files: " + links.join(" · ");
  await showLearning(runId);
  await drawCurves(runId);
}

function showStatus(status, epochsDone) {
  const d = state.runDetail;
  const c = d.config;
  $("#run-status").textContent = `${status} · ${epochsDone}/${d.epochs ?? "?"} epochs · ` +
    `${d.dataset ?? "?"} · batch ${c.batch_size ?? "?"} · lr ${c.lr ?? "?"} · ${c.optimizer ?? ""} ${c.schedule ?? ""}`;
}

async function drawCurves(runId) {
  const m = await api(`/api/runs/${encodeURIComponent(runId)}/metrics`);
  if (state.runId !== runId) return;
  const rows = m.epochs;
  if (m.training) showStatus("training", rows.length);
  // losses on the left-hand axis, accuracies on the right-hand one (each with its own range)
  const has = (key) => rows.some((r) => r[key] !== null && r[key] !== undefined);
  const series = [
    { label: "train loss", color: COLORS[0], points: rows.map((r) => [r.epoch, r.train_loss]) },
    { label: "train acc", color: COLORS[1], axis: "acc", points: rows.map((r) => [r.epoch, r.train_acc]) },
  ];
  if (has("val_loss")) series.push({ label: "val loss", color: COLORS[4], points: rows.map((r) => [r.epoch, r.val_loss]) });
  if (has("test_loss")) series.push({ label: "test loss", color: COLORS[5], points: rows.map((r) => [r.epoch, r.test_loss]) });
  if (has("val_acc")) {
    series.push({ label: "val acc", color: COLORS[2], axis: "acc", points: rows.map((r) => [r.epoch, r.val_acc]) });
  }
  series.push({ label: "test acc", color: COLORS[3], axis: "acc", points: rows.map((r) => [r.epoch, r.test_acc]) });
  if (m.live.length) {
    const last = rows[rows.length - 1];
    for (const [key, color, axis] of [["train_loss", COLORS[0], "loss"], ["train_acc", COLORS[1], "acc"]]) {
      const pts = m.live.map((r) => [r.epoch - 1 + r.fraction, r[key]]);
      series.push({ label: key, color, axis, dashed: true, hideLegend: true, joined: !!last,
        points: last ? [[last.epoch, last[key]], ...pts] : pts });
    }
  }
  const epochs = (await runEpochs(runId)) || rows.length || 1;
  state.curves = { series, opts: { xmax: epochs } };
  redrawCurves();
  legend($("#curves-legend"), series);
  if (m.training) {
    $("#run-status").classList.add("status-training");
    state.poll = setTimeout(() => drawCurves(runId).catch((e) => showError(e.message)), 1000);
  } else {
    $("#run-status").classList.remove("status-training");
    // The run just ended while we watched: show its final state (report, confusion matrix, top losses).
    if (state.runDetail && state.runDetail.status === "training") await showRun(runId);
  }
}

function redrawCurves() {
  if (state.curves) lineChart($("#curves"), state.curves.series, { ...state.curves.opts, marker: state.scrubEpoch });
}

async function runEpochs(runId) {
  const r = state.runs.find((x) => x.id === runId);
  return r ? r.epochs : null;
}

function stopPolling() {
  if (state.poll) clearTimeout(state.poll);
  if (state.listPoll) clearInterval(state.listPoll);
  state.poll = null;
  state.listPoll = null;
  state.runId = null;
}

// ---------------------------------------------------------------------------------------------
// watch it learn: the epoch scrubber (GET /api/runs/ID/snapshots; POST /api/predict with epoch)
// ---------------------------------------------------------------------------------------------
async function showLearning(runId) {
  const s = await api(`/api/runs/${encodeURIComponent(runId)}/snapshots`);
  if (state.runId !== runId) return;
  const snaps = s.snapshots;
  $("#learn-box").hidden = !snaps.length;
  state.learn = snaps.length ? { runId, snaps, classes: s.classes, filters: new Map(), seq: 0 } : null;
  state.scrubEpoch = null;
  if (!snaps.length) return;
  const scrub = $("#scrub");
  scrub.max = String(snaps.length - 1);
  scrub.value = scrub.max;
  const kept = snaps.length === (s.epochs || 0) ? `all ${snaps.length} epochs` :
    `${snaps.length} of its epochs (${snaps.map((x) => x.epoch).join(", ")})`;
  state.learn.kept = kept;
  learnNote();
  await scrubTo();
}

function learnNote() {
  const L = state.learn;
  if (!L) return;
  $("#learn-note").textContent = `This run kept ${L.kept}. ` + (state.picture ? `Your picture: ${state.picture.name}.` :
    "Choose a picture (or classify one on Try it) to see what the network makes of it at each epoch.");
}

let scrubBusy = false, scrubAgain = false;
async function scrubTo() {
  // The slider may move faster than the answers come: one epoch at a time, then the newest position.
  if (scrubBusy) { scrubAgain = true; return; }
  scrubBusy = true;
  try {
    do { scrubAgain = false; await showEpoch(); } while (scrubAgain);
  } finally { scrubBusy = false; }
}

async function showEpoch() {
  const L = state.learn;
  if (!L) return;
  const snap = L.snaps[Number($("#scrub").value)];
  const box = $("#learn-box");
  state.scrubEpoch = snap.epoch;
  box.dataset.epoch = String(snap.epoch);
  $("#scrub").setAttribute("aria-valuetext", `epoch ${snap.epoch}`);
  $("#scrub-label").textContent = `${snap.epoch} of ${L.snaps[L.snaps.length - 1].epoch} · test accuracy ${pct(snap.test_accuracy)}`;
  redrawCurves();
  $("#learn-per-class tbody").replaceChildren(...(snap.per_class || []).map((a, i) => {
    const bar = el("td");
    bar.appendChild(el("div", { class: "bar", style: `width: ${Math.round(100 * a)}%` }));
    const row = el("tr");
    row.append(el("td", {}, L.classes[i] ?? String(i)), el("td", { class: "num" }, pct(a)), bar);
    return row;
  }));
  const url = `/api/runs/${encodeURIComponent(L.runId)}/snapshots/${snap.epoch}/filters`;
  const filters = L.filters.get(snap.epoch) || await api(url);
  L.filters.set(snap.epoch, filters);
  if (state.learn !== L) return;
  $("#learn-filters").src = filters.image;
  $("#learn-filters-caption").textContent = `the first layer's filters (${filters.layer}: ${shape(filters.shape)}), ` +
    `weights ${filters.values.map((v) => v.toPrecision(3)).join(" to ")}, each from its own lowest (dark) to highest (bright)`;
  if (state.picture) await showPictureAt(L, snap.epoch);
  box.dataset.shown = String(snap.epoch);  // everything on the card is this epoch's
}

async function showPictureAt(L, epoch) {
  const form = new FormData();
  form.append("file", state.picture.blob, state.picture.name);
  form.append("run", L.runId);
  form.append("epoch", String(epoch));
  form.append("top_k", "3");
  const r = await api("/api/predict", { method: "POST", body: form });
  if (state.learn !== L) return;
  $("#learn-picture").hidden = false;
  $("#learn-top").textContent = `${r.top[0].class} (${r.top[0].probability.toFixed(3)})`;
  $("#learn-topk").replaceChildren(...topkRows(r.top));
  $("#learn-cam").src = r.cam ? r.cam.overlay : r.input;
  $("#learn-cam-caption").textContent = r.cam ? `where it looked at epoch ${epoch} (Grad-CAM, ${r.cam.class})` :
    `what the model sees (${r.note || "no Grad-CAM"})`;
}

$("#scrub").addEventListener("input", () => scrubTo().catch((e) => showError(e.message)));
$("#learn-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  state.picture = { blob: file, name: file.name };
  learnNote();
  scrubTo().catch((err) => showError(err.message));
});

// ---------------------------------------------------------------------------------------------
// try it
// ---------------------------------------------------------------------------------------------
// The model to try: a run under the studio's root (the option's value is its id), or a trained weight that
// ships with cnnzoo (value "weight:NAME"), so a fresh install with no runs has models to try.
async function loadWeights() {
  if (!state.weights) state.weights = (await api("/api/weights")).filter((w) => w.available);
  return state.weights;
}

async function showTry() {
  const runs = (await loadRuns()).filter((r) => r.has_checkpoint);
  const weights = await loadWeights();
  const select = $("#try-run");
  const previous = select.value;
  const wanted = new URLSearchParams(location.search).get("weight");
  const runGroup = el("optgroup", { label: "your runs" });
  runGroup.append(...runs.map((r) => el("option", { value: r.id }, `${r.id} (${r.model})`)));
  const weightGroup = el("optgroup", { label: "trained weights (shipped)" });
  weightGroup.append(...weights.map((w) => el("option", { value: `weight:${w.name}` },
    `${w.name} (test ${pct(w.test_acc)})`)));
  select.replaceChildren(...(runs.length ? [runGroup] : []), ...(weights.length ? [weightGroup] : []));
  if (!runs.length && !weights.length) showError("No trained run under the studio's root and no trained weight: train one with cnnzoo train.");
  if (wanted && weights.some((w) => w.name === wanted)) select.value = `weight:${wanted}`;
  else if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  else select.value = defaultModel(runs, weights);
  await fillTargets();
}

// What Try it starts with: the run with the best validation accuracy (the test set chooses nothing), else the
// shipped weight with the best test accuracy (its card's figure, chosen by cnnzoo's maintainers on validation).
function defaultModel(runs, weights) {
  const score = (r) => (r.best_val_acc ?? -1);
  const best = [...runs].sort((a, b) => score(b) - score(a))[0];
  if (best && score(best) >= 0) return best.id;
  const top = [...weights].sort((a, b) => b.test_acc - a.test_acc)[0];
  if (top) return `weight:${top.name}`;
  return best ? best.id : "";
}

async function fillTargets() {
  const chosen = $("#try-run").value;
  if (!chosen) return;
  const classes = chosen.startsWith("weight:")
    ? (await loadWeights()).find((w) => `weight:${w.name}` === chosen).classes
    : (await api(`/api/runs/${encodeURIComponent(chosen)}`)).classes;
  $("#try-target").replaceChildren(el("option", { value: "" }, "the top class"),
    ...classes.map((c, i) => el("option", { value: String(i) }, c)));
}

async function classify(blob, name) {
  state.picture = { blob, name };  // the scrubber on a run's page shows this picture too
  const form = new FormData();
  form.append("file", blob, name);
  const chosen = $("#try-run").value;
  if (chosen.startsWith("weight:")) form.append("weight", chosen.slice("weight:".length));
  else form.append("run", chosen);
  form.append("top_k", $("#try-topk").value || "3");
  if ($("#try-target").value) form.append("target", $("#try-target").value);
  showError("");
  $("#result").dataset.state = "busy";
  try {
    const r = await api("/api/predict", { method: "POST", body: form });
    showResult(r);
    await explainValue();
  } catch (e) {
    $("#result").dataset.state = "error";
    showError(e.message);
  }
}

function showResult(r) {
  const box = $("#result");
  box.hidden = false;
  $("#top-class").textContent = r.top[0].class;
  $("#topk").replaceChildren(...topkRows(r.top));
  $("#result-warning").hidden = !r.warning;
  $("#result-warning").textContent = r.warning ? `Careful: ${r.warning}.` : "";
  $("#seen").src = r.input;
  $("#cam").src = r.cam ? r.cam.overlay : "";
  $("#cam-class").textContent = r.cam ? `${r.cam.class}, layer ${r.cam.layer}, a ${shape(r.cam.grid)} map` +
    (r.cam.note ? ` · ${r.cam.note}` : "") : "unavailable";
  $("#result-note").textContent = `${r.filename}: ${r.size.join("×")} ${r.mode}` +
    (r.inverted ? ", inverted to a light object on dark" : "") + (r.note ? ` · ${r.note}` : "");
  const list = $("#stage-list");
  list.replaceChildren(...r.stages.map((s) => {
    const row = el("div", { class: "stage" });
    const range = s.values ? `, values ${s.values.map((v) => v.toPrecision(3)).join(" to ")}` : "";
    row.appendChild(el("div", {}, `${s.name} → ${shape(s.shape)}` + (s.channels_shown ? ` (first ${s.channels_shown} channels${range})` : "")));
    const cell = el("div");
    if (s.image) cell.appendChild(el("img", { src: s.image, alt: `feature maps of ${s.name}` }));
    row.appendChild(cell);
    return row;
  }));
  $("#stages").hidden = !r.stages.length;
  $("#try-side").setAttribute("href", `/side?with=${encodeURIComponent($("#try-run").value)}`);
  box.dataset.state = "done";
}

// ---------------------------------------------------------------------------------------------
// how one value is computed (POST /api/arithmetic): the chosen layer's maps, a click, the arithmetic
// ---------------------------------------------------------------------------------------------
const num = (v) => (v === null || v === undefined ? "-" : Number(v).toPrecision(4));

function modelForm(extra) {
  const form = new FormData();
  form.append("file", state.picture.blob, state.picture.name);
  const chosen = $("#try-run").value;
  if (chosen.startsWith("weight:")) form.append("weight", chosen.slice("weight:".length));
  else form.append("run", chosen);
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined) form.append(k, String(v));
  return form;
}

async function explainValue(at = {}) {
  if (!state.picture) return;
  const box = $("#arith");
  box.dataset.state = "busy";
  const r = await api("/api/arithmetic", { method: "POST", body: modelForm({ layer: $("#arith-layer").value || null, ...at }) });
  const select = $("#arith-layer");
  if (select.dataset.model !== $("#try-run").value || select.options.length !== r.layers.length) {
    select.replaceChildren(...r.layers.map((u) => el("option", { value: u.name }, `${u.label} → ${shape(u.shape)}`)));
    select.dataset.model = $("#try-run").value;
  }
  select.value = r.layer.name;
  box.hidden = false;
  const maps = $("#arith-maps");
  maps.src = r.layer.image;
  maps.dataset.layout = JSON.stringify(r.layer.layout);
  const L = r.layer.layout;
  $("#arith-maps-caption").textContent = `${r.layer.name}: ${shape(r.layer.shape)}, the first ${L.count} channels, ` +
    `each from its own lowest (dark) to highest (bright): click a pixel`;
  drawArithmetic(r.arithmetic);
  box.dataset.state = "done";
}

const short = (v) => {  // a matrix cell: 3 significant digits, tiny values in exponent form
  const x = Number(v);
  return x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(1) : x.toPrecision(3);
};

function mini(matrix, caption, pad) {
  const t = el("table", { class: "mini" });
  t.appendChild(el("caption", {}, caption));
  matrix.forEach((row, i) => {
    const tr = el("tr");
    row.forEach((v, j) => tr.appendChild(el("td", pad && pad[i][j] ? { class: "pad", title: "padding" } : { title: num(v) }, short(v))));
    t.appendChild(tr);
  });
  return t;
}

function equation(text, cls = "equation") { return el("p", { class: cls }, text); }

function drawArithmetic(a) {
  const box = $("#arith-steps");
  const at = a.at;
  $("#arith-at").textContent = `channel ${at.channel}, row ${at.y}, column ${at.x}`;
  const parts = [el("h3", {}, `${a.layer} (${a.label}), channel ${at.channel}, row ${at.y}, column ${at.x}`)];
  if (a.kind === "conv") {
    const w = a.window;
    const padded = w.padding.some((p) => p > 0) ? `, zero padding ${w.padding.join("×")}: grey cells are padding` : "";
    const each = a.in_channels === 1 ? "in its one input channel" : `in each of its ${a.in_channels} input channels`;
    parts.push(equation(`The window: rows ${w.rows[0]} to ${w.rows[1]}, columns ${w.cols[0]} to ${w.cols[1]} of the ` +
      `layer's input as it receives it (stride ${w.stride.join("×")}${padded}), ${each}.`));
    for (const c of a.channels) {
      const terms = el("div", { class: "arith-terms" });
      terms.append(mini(c.window, `input channel ${c.in_channel}`, c.padding), el("span", { class: "op" }, "×"),
        mini(c.kernel, "kernel"), el("span", { class: "op" }, "="), mini(c.products, "products"),
        el("span", { class: "op" }, `Σ = ${num(c.sum)}`));
      parts.push(terms);
    }
    if (a.others.count) parts.push(equation(`The other ${a.others.count} input channels, each summed the same way, add ${num(a.others.sum)}.`));
    if (a.in_channels > 1) parts.push(equation(`Sum of the products over all ${a.in_channels} channels: ${num(a.products_sum)}`));
    parts.push(equation(`+ bias ${num(a.bias ?? 0)} = ${num(a.z)} (the convolution's output: ${num(a.conv_output)})`));
    if (a.batchnorm) {
      const b = a.batchnorm;
      parts.push(equation(`BatchNorm with its running statistics: (${num(a.z)} − ${num(b.mean)}) / √(${num(b.var)} + ${b.eps}) × ` +
        `${num(b.gamma)} + ${num(b.beta)} = ${num(b.result)} (the norm layer's output: ${num(b.forward)})`));
    }
  } else if (a.kind === "pool") {
    parts.push(equation(`The window: rows ${a.window.rows[0]} to ${a.window.rows[1]}, columns ${a.window.cols[0]} to ${a.window.cols[1]} of input channel ${at.channel}.`));
    parts.push(mini(a.values, `its ${a.counted} values`, a.padding));
    parts.push(equation(a.op === "max" ? `The largest of them: ${num(a.total)}` : `Their mean: sum / ${a.counted} = ${num(a.total)}`));
  } else {
    parts.push(equation(`Main path (${a.main.layer}): ${num(a.main.value)}`));
    parts.push(equation(`+ shortcut (${a.shortcut.layer}): ${num(a.shortcut.value)} = ${num(a.sum)}`));
  }
  if (a.activation) parts.push(equation(`${a.activation.name}(${num(a.activation.input)}) = ${num(a.activation.result)}`));
  parts.push(equation(`= ${num(a.total)}; the forward pass computed ${num(a.value)} (they differ by ${a.error.toExponential(1)}, float rounding)`, "equation result"));
  box.replaceChildren(...parts);
  markPixel(at);
  box.dataset.total = String(a.total);
  box.dataset.value = String(a.value);
}

function markPixel(at) {
  // a square around the value written out, on the maps as drawn (they may be shown smaller than their pixels)
  const img = $("#arith-maps"), mark = $("#arith-mark");
  const L = JSON.parse(img.dataset.layout || "null");
  if (!L || at.channel >= L.count) { mark.hidden = true; return; }
  const scale = img.clientWidth / img.naturalWidth;
  const row = Math.floor(at.channel / L.cols), col = at.channel % L.cols;
  const left = (col * (L.width * L.factor + L.gap) + at.x * L.factor) * scale;
  const top = (row * (L.height * L.factor + L.gap) + at.y * L.factor) * scale;
  Object.assign(mark.style, { left: `${img.offsetLeft + left - 2}px`, top: `${img.offsetTop + top - 2}px`,
    width: `${L.factor * scale + 4}px`, height: `${L.factor * scale + 4}px` });
  mark.hidden = false;
}

$("#arith-maps").addEventListener("click", (e) => {
  const img = e.currentTarget;
  const L = JSON.parse(img.dataset.layout || "null");
  if (!L) return;
  const px = (e.offsetX * img.naturalWidth) / img.clientWidth, py = (e.offsetY * img.naturalHeight) / img.clientHeight;
  const tw = L.width * L.factor, th = L.height * L.factor;
  const col = Math.floor(px / (tw + L.gap)), row = Math.floor(py / (th + L.gap));
  const x = Math.floor((px - col * (tw + L.gap)) / L.factor), y = Math.floor((py - row * (th + L.gap)) / L.factor);
  const channel = row * L.cols + col;
  if (col >= L.cols || channel >= L.count || x < 0 || x >= L.width || y < 0 || y >= L.height) return;  // a gap
  explainValue({ channel, y, x }).catch((err) => showError(err.message));
});
$("#arith-layer").addEventListener("change", () => explainValue().catch((e) => showError(e.message)));

// ---------------------------------------------------------------------------------------------
// side by side: one picture, several models (POST /api/predict each); the choice lives in the address
// (/side?with=RUN&with=weight:NAME)
// ---------------------------------------------------------------------------------------------
const sideChosen = () => new URLSearchParams(location.search).getAll("with");

async function showSide() {
  const runs = (await loadRuns()).filter((r) => r.has_checkpoint);
  const weights = await loadWeights();
  const chosen = new Set(sideChosen());
  const options = [...runs.map((r) => [r.id, `${r.id} (${r.model})`]),
    ...weights.map((w) => [`weight:${w.name}`, `${w.name} (test ${pct(w.test_acc)})`])];
  $("#side-choices").replaceChildren(...options.map(([value, label]) => {
    const box = el("input", { type: "checkbox", value, "data-model": value });
    box.checked = chosen.has(value);
    box.addEventListener("change", sideChanged);
    const item = el("label");
    item.append(box, ` ${label}`);
    return item;
  }));
  $("#side-picture").textContent = state.picture ? `the picture: ${state.picture.name}` : "choose a picture (or use one on Try it)";
  await drawSide();
}

function sideChanged() {
  const params = new URLSearchParams();
  for (const box of document.querySelectorAll("#side-choices input:checked")) params.append("with", box.value);
  history.replaceState({}, "", `/side${params.toString() ? "?" + params : ""}`);
  drawSide().catch((e) => showError(e.message));
}

async function drawSide() {
  const box = $("#side-results");
  const models = sideChosen();
  box.dataset.state = "busy";
  if (!state.picture || !models.length) {
    box.replaceChildren(el("p", { class: "muted" }, models.length ? "Give a picture." : "Tick two or more models."));
    box.dataset.state = "done";
    return;
  }
  const cards = models.map((m) => el("div", { class: "card side-card", "data-model": m }, ""));
  box.replaceChildren(...cards);
  await Promise.all(models.map(async (m, i) => {
    const form = new FormData();
    form.append("file", state.picture.blob, state.picture.name);
    form.append(m.startsWith("weight:") ? "weight" : "run", m.startsWith("weight:") ? m.slice(7) : m);
    form.append("top_k", "3");
    const card = cards[i];
    card.append(el("h3", {}, m.replace(/^weight:/, "")));
    try {
      const r = await api("/api/predict", { method: "POST", body: form });
      const top = r.top[0];
      card.append(el("p", { class: "side-top" }, `${top.class}: ${(100 * top.probability).toFixed(1)} % sure`));
      card.append(...topkRows(r.top));
      const img = el("img", { class: "pixel", src: r.cam ? r.cam.overlay : r.input,
        alt: r.cam ? `where ${m} looked (Grad-CAM)` : `what ${m} sees` });
      card.append(img, el("p", { class: "muted" }, r.cam ? `Grad-CAM of ${r.cam.class}, layer ${r.cam.layer}` : (r.note || "")));
      if (r.warning) card.append(el("p", { class: "warning" }, `Careful: ${r.warning}.`));
      card.dataset.top = top.class;
    } catch (e) {
      card.append(el("p", { class: "error" }, e.message));
      card.dataset.top = "";
    }
  }));
  box.dataset.state = "done";
}

$("#side-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  state.picture = { blob: file, name: file.name };
  $("#side-picture").textContent = `the picture: ${file.name}`;
  drawSide().catch((err) => showError(err.message));
});

function setUpPad() {
  const pad = $("#pad");
  const ctx = pad.getContext("2d");
  const clear = () => {
    const dark = $("#pad-invert").checked;
    ctx.fillStyle = dark ? "#fff" : "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    pad.style.background = ctx.fillStyle;
  };
  let drawing = false;
  const at = (e) => {
    const b = pad.getBoundingClientRect();
    return [(e.clientX - b.left) * (pad.width / b.width), (e.clientY - b.top) * (pad.height / b.height)];
  };
  pad.addEventListener("pointerdown", (e) => {
    drawing = true;
    pad.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(...at(e));
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    ctx.strokeStyle = $("#pad-invert").checked ? "#000" : "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineTo(...at(e));
    ctx.stroke();
  });
  pad.addEventListener("pointerup", () => { drawing = false; });
  $("#pad-clear").addEventListener("click", clear);
  $("#pad-invert").addEventListener("change", clear);
  $("#pad-classify").addEventListener("click", () => pad.toBlob((blob) => classify(blob, "drawing.png"), "image/png"));
  clear();
}

$("#try-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) classify(file, file.name);
});
$("#try-run").addEventListener("change", () => {
  $("#arith").hidden = true;
  $("#arith-layer").replaceChildren();
  fillTargets().catch((e) => showError(e.message));
});
setUpPad();
route();
