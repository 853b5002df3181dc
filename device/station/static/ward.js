// The ward overview: one tile per bed, kept current by Server-Sent Events (/events).
"use strict";
const beds = new Map();
const role = document.body.dataset.role;
const mayAct = role === "nurse" || role === "admin";
const AVAIL = { online: "online", stale: "stale: no data", offline: "offline", unknown: "no status yet" };

function tile(b, now) {
  const level = b.level || "unknown";
  const node = el("article", { class: `tile level-${b.availability === "online" ? level : "off"} avail-${b.availability}`,
                               id: `bed-${b.device_id}`, "data-device": b.device_id,
                               "data-pain-t": b.pain_t_unix_s });
  const seen = b.last_seen_unix_s ? ` (last data ${ago(now - b.last_seen_unix_s)} ago)` : "";
  node.append(el("h2", {}, el("a", { href: `/bed/${encodeURIComponent(b.device_id)}` }, b.device_id), " ",
    el("span", { class: `avail ${b.availability}` }, AVAIL[b.availability] + (b.availability === "online" ? "" : seen))));
  node.append(el("div", {}, el("span", { class: "score" }, b.score === null ? "--" : fmt(b.score, 1)),
    el("span", { class: "muted" }, " /10 "), el("span", { class: `level ${level}` }, b.level || "no estimate"),
    el("span", { class: "muted" }, `  confidence ${b.confidence === null ? "--" : Math.round(b.confidence * 100) + "%"}`)));
  node.append(lineChart(b.trend, now - 3600, now, 0, 10, { w: 120, h: 20, cls: "trend", label: "pain, last hour" }));
  node.append(el("div", { class: "muted" }, `HR ${fmt(b.hr_bpm, 0)} bpm · EDA ${fmt(b.eda_us, 2)} µS`));
  for (const a of b.alarms) {
    const row = el("div", { class: `alarm ${a.category} ${a.priority}`, "data-alarm": a.alarm_id },
      el("strong", {}, a.category === "technical" ? "Technical" : "Pain alarm"),
      el("span", { class: "state" }, `${a.priority} · ${a.state}`), el("span", { class: "muted" }, a.message || a.kind));
    if (mayAct && a.state === "raised") {
      row.append(el("button", { type: "button", onclick: ev => acknowledge(ev, b.device_id, a.alarm_id) }, "Acknowledge"));
    }
    node.append(row);
  }
  if (b.rejected) node.append(el("div", { class: "muted" }, `${b.rejected} refused message(s) on this bed's topics`));
  const [text, cls] = commandText(b.command);
  node.append(el("p", { class: `command ${cls}`, role: "status" }, text));
  return node;
}

async function acknowledge(ev, device, alarm) {
  ev.target.disabled = true;
  const status = ev.target.closest(".tile").querySelector(".command");
  try {
    await post(`/api/bed/${encodeURIComponent(device)}/acknowledge`, { alarm_id: alarm });
    status.textContent = `acknowledge ${alarm} sent, waiting for the bed…`;
  } catch (e) { status.textContent = `not sent: ${e.message}`; status.className = "command refused"; ev.target.disabled = false; }
}

function render(snapshot) {
  const ward = document.getElementById("ward");
  const now = snapshot.now_unix_s;
  for (const b of snapshot.beds) {
    beds.set(b.device_id, b);
    const fresh = tile(b, now);
    const old = document.getElementById(`bed-${b.device_id}`);
    if (old) old.replaceWith(fresh); else {
      const empty = ward.querySelector(".empty"); if (empty) empty.remove();
      const after = [...ward.children].find(n => n.dataset.device > b.device_id);
      ward.insertBefore(fresh, after || null);
    }
  }
  showBroker(snapshot.broker);
  const rejected = document.getElementById("rejected");
  if (snapshot.rejected) {
    rejected.hidden = false;
    rejected.textContent = `${snapshot.rejected} message(s) refused (not valid for the published schemas, or forged); last: ${snapshot.last_reject.topic}: ${snapshot.last_reject.reason}`;
  } else rejected.hidden = true;
}

const source = new EventSource("/events");
source.addEventListener("ward", ev => render(JSON.parse(ev.data)));
source.onerror = () => {
  const node = document.getElementById("broker");
  node.textContent = "Station unreachable: reconnecting…"; node.className = "broker down";
};
