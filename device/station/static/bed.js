// One bed: its state, 24 h of trends with self-reports, scale scores and analgesia, the
// estimate's why, alarm events; refreshed every 5 s.
"use strict";
const device = document.getElementById("bed").dataset.device;
const role = document.body.dataset.role;
const mayAct = role === "nurse" || role === "admin";
let pendingText = null;

function range(points, lo, hi) {
  const vs = points.map(p => p[1]).filter(v => v !== null);
  return vs.length ? [Math.min(lo, ...vs), Math.max(hi, ...vs)] : [lo, hi];
}

const SCALE_NAMES = { painad: "PAINAD", cpot: "CPOT" };
function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }
function scaleText(s) {
  return `${SCALE_NAMES[s.scale] || String(s.scale).toUpperCase()} ${s.total}/${s.max_total} (${fmt(s.score_0_10, 1)}/10)`;
}
function doseText(d) { return [d.route, d.drug_class].filter(Boolean).join(" ") || "analgesia"; }
// The reassessment in words (its class colours it too, never alone).
function reassessText(d) {
  if (d.reassessment === "answered") return `reassessed ${clock(d.reassessed_unix_s)} (${d.reassessed_by})`;
  if (d.reassessment === "due") return `reassessment due ${clock(d.due_unix_s)}`;
  if (d.reassessment === "overdue") return `reassessment overdue since ${clock(d.due_unix_s)}`;
  if (d.reassessment === "discharged") return "not reassessed: discharged";
  return "";
}
// A label over a chart at time t (and value v on 0-10, else on the axis strip), kept inside.
function mark(cls, t, t0, t1, v, ...text) {
  const left = Math.min(100, Math.max(0, ((t - t0) / Math.max(t1 - t0, 1)) * 100));
  const node = el("span", { class: `mark ${cls}${left > 60 ? " end" : ""}` }, ...text);
  // Through the CSSOM: the Content-Security-Policy refuses style attributes.
  node.style.left = `${left.toFixed(2)}%`;
  if (v !== null) node.style.top = `${(100 - v * 10).toFixed(1)}%`;
  return node;
}

// Labels that would cover one another are moved a line at a time, once they are in the page
// (only then are their sizes known): down or up inside a chart, down in the dose strip, which
// grows to hold them. The newest (rightmost) label keeps its place; older ones move. A label
// with no free place inside its chart stays where its time puts it (the lists below hold all).
function declutter(container, grow) {
  if (grow) container.style.minHeight = "";
  const box = container.getBoundingClientRect();
  const marks = [...container.querySelectorAll(".mark")]
    .sort((a, b) => parseFloat(b.style.left) - parseFloat(a.style.left));
  const placed = [];
  const free = (r, dy) => (grow || dy === 0 || (r.top >= box.top && r.bottom <= box.bottom))
    && !placed.some(p => r.left < p.right && p.left < r.right && r.top < p.bottom && p.top < r.bottom);
  for (const node of marks) {
    const line = node.getBoundingClientRect().height;
    let found = false;
    for (let k = 0; k <= 2 * marks.length && !found; k++) {
      for (const dy of (k === 0 ? [0] : grow ? [k * line] : [k * line, -k * line])) {
        node.style.marginTop = `${dy}px`;
        if (free(node.getBoundingClientRect(), dy)) { found = true; break; }
      }
    }
    if (!found) node.style.marginTop = "0px";
    placed.push(node.getBoundingClientRect());
  }
  if (grow && placed.length) {
    const bottom = Math.max(...placed.map(r => r.bottom));
    container.style.minHeight = `${Math.ceil(bottom - box.top) + 2}px`;
  }
}

// Pain on 0-10: the minute means, self-reports (circles), scale scores (squares, labelled)
// and a dashed line at each dose.
function painChart(data, t0, t1) {
  const reports = data.self_reports.map(r => [r[0], r[1]]);
  const chart = lineChart(data.pain.map(p => [p[0], p[1]]), t0, t1, 0, 10, { dots: reports, label: "pain, 24 h" });
  const x = t => ((t - t0) / Math.max(t1 - t0, 1)) * 600, y = v => 100 - v * 10;
  for (const d of data.analgesia) chart.append(svg("line", { class: "dose", x1: x(d.t_unix_s), x2: x(d.t_unix_s), y1: 0, y2: 100 }));
  for (const s of data.scale_scores) {
    if (s.score_0_10 === null || s.score_0_10 === undefined) continue;
    const square = svg("rect", { class: `scale ${s.scale}`, x: x(s.t_unix_s) - 4, y: y(s.score_0_10) - 4, width: 8, height: 8 });
    const title = svg("title", {}); title.textContent = scaleText(s); square.append(title);
    chart.append(square);
  }
  const labels = data.scale_scores.filter(s => s.score_0_10 !== null && s.score_0_10 !== undefined)
    .map(s => mark(`scale ${s.scale}`, s.t_unix_s, t0, t1, s.score_0_10, `■ ${scaleText(s)}`));
  return [chart, ...labels];
}

function draw(data) {
  const t0 = data.since_unix_s, t1 = data.now_unix_s;
  document.getElementById("bed-state").textContent = data.availability;
  document.getElementById("bed-state").className = `avail ${data.availability}`;
  document.getElementById("bed-score").textContent = data.score === null ? "--" : `${fmt(data.score, 1)} /10`;
  const level = document.getElementById("bed-level");
  level.textContent = data.level || "no estimate"; level.className = `level ${data.level || ""}`;
  document.getElementById("bed-confidence").textContent = `confidence ${data.confidence === null ? "--" : Math.round(data.confidence * 100) + "%"}`;
  const alarms = document.getElementById("bed-alarms"); alarms.replaceChildren();
  for (const a of data.alarms) {
    const row = el("div", { class: `alarm ${a.category} ${a.priority}` }, el("strong", {}, a.kind),
      el("span", { class: "state" }, `${a.priority} · ${a.state}`), el("span", { class: "muted" }, a.message));
    if (mayAct && a.state === "raised") row.append(el("button", { type: "button", onclick: () => send("acknowledge", { alarm_id: a.alarm_id }) }, "Acknowledge"));
    alarms.append(row);
  }
  const why = document.querySelector("#bed-why tbody"); why.replaceChildren();
  for (const [m, f, w] of data.top_contributions) why.append(el("tr", {}, el("td", {}, m), el("td", {}, f), el("td", {}, fmt(w, 2))));
  const pain = document.getElementById("chart-pain");
  pain.replaceChildren(...painChart(data, t0, t1));
  const doseStrip = document.getElementById("chart-doses");
  doseStrip.replaceChildren(...data.analgesia.map(d =>
    mark(`dose ${d.reassessment || ""}`, d.t_unix_s, t0, t1, null, `▲ ${doseText(d)}`, el("br"), el("small", {}, reassessText(d)))));
  declutter(pain, false);
  declutter(doseStrip, true);
  const [h0, h1] = range(data.hr_bpm, 50, 110);
  document.getElementById("chart-hr").replaceChildren(lineChart(data.hr_bpm, t0, t1, h0, h1, { label: "heart rate, 24 h" }));
  const [e0, e1] = range(data.eda_us, 0, 5);
  document.getElementById("chart-eda").replaceChildren(lineChart(data.eda_us, t0, t1, e0, e1, { label: "skin conductance, 24 h" }));
  const ul = document.getElementById("bed-reports"); ul.replaceChildren();
  for (const [t, nrs, src] of data.self_reports) ul.append(el("li", {}, `${new Date(t * 1000).toLocaleString()}: NRS ${nrs} (${src})`));
  const scales = document.getElementById("bed-scales"); scales.replaceChildren();
  for (const s of data.scale_scores) scales.append(el("li", {}, `${new Date(s.t_unix_s * 1000).toLocaleString()}: ${scaleText(s)}`));
  const doses = document.getElementById("bed-doses"); doses.replaceChildren();
  for (const d of data.analgesia) {
    const given = `${new Date(d.t_unix_s * 1000).toLocaleString()}: ${doseText(d)}`;
    const known = v => v !== null && v !== undefined;
    const estimate = known(d.score_before) || known(d.score_after)
      ? `; estimate ${fmt(d.score_before, 1)} at the dose` + (known(d.score_after) ? `, ${fmt(d.score_after, 1)} at the reassessment` : "") : "";
    doses.append(el("li", { class: `dose ${d.reassessment || ""}` }, given, " — ", el("strong", {}, reassessText(d)), estimate));
  }
  const events = document.querySelector("#bed-events tbody"); events.replaceChildren();
  for (const e of data.alarm_events) events.append(el("tr", {}, el("td", {}, new Date(e.t_unix_s * 1000).toLocaleString() + (e.late ? " (late)" : "")),
    el("td", {}, e.event), el("td", {}, `${e.kind} ${e.alarm_id}`), el("td", {}, e.priority), el("td", {}, e.by || "")));
  const [text, cls] = commandText(data.commands[0]);
  const status = document.getElementById("bed-command");
  status.textContent = text; status.className = `command ${cls}`;
}

async function send(name, body) {
  const status = document.getElementById("bed-command");
  try { await post(`/api/bed/${encodeURIComponent(device)}/${name}`, body); status.textContent = `${name} sent, waiting for the bed…`; refresh(); }
  catch (e) { status.textContent = `not sent: ${e.message}`; status.className = "command refused"; }
}

async function refresh() {
  const r = await fetch(`/api/bed/${encodeURIComponent(device)}`, { credentials: "same-origin" });
  if (r.ok) draw(await r.json());
}
// A scale score or a dose: every field given, as a number where the schema says so; a field
// left at "not given" is not sent. The station checks it as the device would before sending.
for (const f of document.querySelectorAll("form.bedside")) {
  f.addEventListener("submit", ev => {
    ev.preventDefault();
    const body = {};
    for (const c of f.querySelectorAll("select, input")) {
      if (c.value === "") continue;
      body[c.name] = c.dataset.kind === "text" ? c.value : Number(c.value);
    }
    send(f.dataset.command, body);
  });
}
const form = document.getElementById("self-report");
if (form) form.addEventListener("submit", ev => { ev.preventDefault(); send("self_report", { nrs: Number(document.getElementById("nrs").value) }); });
refresh(); setInterval(refresh, 5000);
