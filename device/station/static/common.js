// Shared by the station's pages: DOM building without innerHTML (no markup from the wire),
// CSRF-protected posts, and the small SVG charts.
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
async function post(url, body) {
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const r = await fetch(url, { method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": token }, body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}
// A line over [t0, t1] x [ymin, ymax]; points are [t, y]; gaps (null) break the line.
function lineChart(points, t0, t1, ymin, ymax, opts) {
  const w = (opts && opts.w) || 600, h = (opts && opts.h) || 100;
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", class: (opts && opts.cls) || "",
                            role: "img", "aria-label": (opts && opts.label) || "trend" });
  const x = t => ((t - t0) / Math.max(t1 - t0, 1)) * w;
  const y = v => h - ((v - ymin) / Math.max(ymax - ymin, 1e-9)) * h;
  let run = [];
  const flush = () => {
    if (run.length > 1) root.append(svg("polyline", { points: run.join(" ") }));
    else if (run.length === 1) { const [cx, cy] = run[0].split(","); root.append(svg("circle", { cx, cy, r: 2, class: "point" })); }
    run = [];
  };
  let last = null;
  for (const [t, v] of points) {
    if (v === null || v === undefined || (last !== null && t - last > 180)) flush();
    if (v !== null && v !== undefined) run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    last = t;
  }
  flush();
  for (const [t, v] of (opts && opts.dots) || []) root.append(svg("circle", { cx: x(t), cy: y(v), r: 4 }));
  return root;
}
function fmt(v, digits) { return v === null || v === undefined ? "--" : Number(v).toFixed(digits); }
function ago(s) { return s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`; }
function commandText(c) {
  if (!c) return ["", ""];
  const what = c.command === "acknowledge" ? `acknowledge ${c.alarm_id}` : c.command;
  if (!c.answered) return [`${what} sent by ${c.by}, waiting for the bed…`, "pending"];
  if (c.ok) return [`${what} by ${c.by}: done by the bed`, "ok"];
  return [`${what} by ${c.by}: refused by the bed: ${c.reason}`, "refused"];
}
function showBroker(broker) {
  const node = document.getElementById("broker");
  if (!node) return;
  if (broker && broker.connected === false) {
    node.textContent = "Broker unreachable: beds are not updating";
    node.className = "broker down";
  } else { node.textContent = ""; node.className = "broker"; }
}
