// One bed: its state, 24 h of trends, the estimate's why, alarm events; refreshed every 5 s.
"use strict";
const device = document.getElementById("bed").dataset.device;
const role = document.body.dataset.role;
const mayAct = role === "nurse" || role === "admin";
let pendingText = null;

function range(points, lo, hi) {
  const vs = points.map(p => p[1]).filter(v => v !== null);
  return vs.length ? [Math.min(lo, ...vs), Math.max(hi, ...vs)] : [lo, hi];
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
  const reports = data.self_reports.map(r => [r[0], r[1]]);
  document.getElementById("chart-pain").replaceChildren(lineChart(data.pain.map(p => [p[0], p[1]]), t0, t1, 0, 10, { dots: reports, label: "pain, 24 h" }));
  const [h0, h1] = range(data.hr_bpm, 50, 110);
  document.getElementById("chart-hr").replaceChildren(lineChart(data.hr_bpm, t0, t1, h0, h1, { label: "heart rate, 24 h" }));
  const [e0, e1] = range(data.eda_us, 0, 5);
  document.getElementById("chart-eda").replaceChildren(lineChart(data.eda_us, t0, t1, e0, e1, { label: "skin conductance, 24 h" }));
  const ul = document.getElementById("bed-reports"); ul.replaceChildren();
  for (const [t, nrs, src] of data.self_reports) ul.append(el("li", {}, `${new Date(t * 1000).toLocaleString()}: NRS ${nrs} (${src})`));
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
const form = document.getElementById("self-report");
if (form) form.addEventListener("submit", ev => { ev.preventDefault(); send("self_report", { nrs: Number(document.getElementById("nrs").value) }); });
refresh(); setInterval(refresh, 5000);
