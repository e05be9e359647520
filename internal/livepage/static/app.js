// troupe live page: polls /api/state every second and redraws. No build
// step, no dependencies.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";

// colour gives each host a colour from a palette, in the order the page
// first saw them, and keeps it for as long as the page is open.
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1",
  "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac"];
const colours = new Map();
function colour(id) {
  if (!colours.has(id)) colours.set(id, PALETTE[colours.size % PALETTE.length]);
  return colours.get(id);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function sum(obj) { return Object.values(obj).reduce((a, b) => a + b, 0); }

function drawHosts(s) {
  const body = document.getElementById("hosts");
  const maxRate = Math.max(1, ...s.hosts.map(h => h.calls_per_second));
  body.replaceChildren(...s.hosts.map(h => {
    const cls = ["host", h.draining ? "draining" : "", h.answered ? "" : "silent"].join(" ").trim();
    const actors = h.answered
      ? Object.entries(h.actors).map(([t, n]) => `${t}: ${n}`).join(", ") || "0"
      : "no answer";
    const rate = el("td", { class: "num" },
      el("span", { class: "bar", style: `width:${Math.round(60 * h.calls_per_second / maxRate)}px` }),
      h.calls_per_second.toFixed(1));
    const lease = h.answered ? `${(h.lease_age_ms / 1000).toFixed(1)}s / ${(h.lease_ttl_ms / 1000).toFixed(0)}s` : "–";
    return el("tr", { class: cls, "data-host": h.id },
      el("td", {}, el("span", { class: "swatch", style: `background:${colour(h.id)}` })),
      el("td", {}, h.id + (h.id === s.served_by ? " (this host)" : "")),
      el("td", {}, h.draining ? "draining" : "active"),
      el("td", {}, h.types.join(", ") || "–"),
      el("td", { class: "num" }, actors),
      rate,
      el("td", { class: "num" }, String(h.calls)),
      el("td", { class: "num" }, lease));
  }));
  document.getElementById("host-count").textContent = `(${s.hosts.length})`;
}

// arcs draws a band between radii r0 and r1 from a list of owners, one per
// equal slice, merging runs of slices with the same owner.
function arcs(g, c, r0, r1, owners, hosts) {
  const n = owners.length;
  const pt = (r, a) => `${(c + r * Math.sin(a)).toFixed(2)},${(c - r * Math.cos(a)).toFixed(2)}`;
  if (new Set(owners).size === 1) { // one owner: a whole circle, which one arc cannot draw
    const host = hosts[owners[0]].host;
    g.append(svg("circle", { cx: c, cy: c, r: (r0 + r1) / 2, fill: "none", stroke: colour(host), "stroke-width": r1 - r0, "data-host": host }));
    return;
  }
  for (let i = 0; i < n;) {
    let j = i;
    while (j < n && owners[j] === owners[i]) j++;
    const a0 = 2 * Math.PI * i / n, a1 = 2 * Math.PI * j / n, large = a1 - a0 > Math.PI ? 1 : 0;
    const host = hosts[owners[i]].host;
    g.append(svg("path", {
      d: `M${pt(r1, a0)} A${r1},${r1} 0 ${large} 1 ${pt(r1, a1)} L${pt(r0, a1)} A${r0},${r0} 0 ${large} 0 ${pt(r0, a0)} Z`,
      fill: colour(host), "data-host": host,
    }));
    i = j;
  }
}

// ring draws one type's placement: the outer band is the key space in
// order, each slice coloured by its owner; the inner band gathers each
// host's share into one arc.
function ring(p) {
  const size = 200, c = size / 2;
  const g = svg("svg", { width: size, height: size, viewBox: `0 0 ${size} ${size}`, class: "ring-svg", "data-type": p.type });
  arcs(g, c, 66, 96, p.ring, p.hosts);
  const shares = [];
  p.hosts.forEach((h, i) => { for (let k = 0; k < Math.round(h.space * 360); k++) shares.push(i); });
  arcs(g, c, 50, 62, shares, p.hosts);
  const label = svg("text", { x: c, y: c + 5, "text-anchor": "middle", "font-size": 14, "font-weight": 600 });
  label.textContent = p.type;
  g.append(label);
  const legend = el("div", { class: "legend" }, ...p.hosts.map(h =>
    el("div", {}, el("span", { class: "swatch", style: `background:${colour(h.host)}` }),
      ` ${h.host} ${(100 * h.space).toFixed(1)}%`)));
  return el("div", { class: "ring" }, g, legend);
}

function drawPlacement(s) {
  const box = document.getElementById("placement");
  box.replaceChildren(...s.placement.map(ring));
  if (s.placement.length === 0) box.textContent = "no actor types served";
}

function drawHistory(s) {
  const list = document.getElementById("history");
  list.replaceChildren(...s.history.slice().reverse().map(c => {
    const li = el("li");
    li.append(`generation ${c.generation} at ${new Date(c.time).toLocaleTimeString()}: `);
    for (const h of c.joined) li.append(el("span", { class: "joined" }, `+${h} `));
    for (const h of c.left) li.append(el("span", { class: "left" }, `−${h} `));
    li.append(`(${c.hosts.length} host${c.hosts.length === 1 ? "" : "s"})`);
    return li;
  }));
}

let last = 0;

async function poll() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("api/state", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const s = await res.json();
    document.getElementById("generation").textContent = s.generation;
    drawHosts(s);
    drawPlacement(s);
    drawHistory(s);
    last = Date.now();
    status.textContent = `served by ${s.served_by} · ${new Date(s.time).toLocaleTimeString()}`;
    status.classList.remove("stale");
  } catch (err) {
    if (Date.now() - last > 3 * POLL_MS) {
      status.textContent = `no answer from the host (${err.message}); retrying`;
      status.classList.add("stale");
    }
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
