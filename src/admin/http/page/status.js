// mswitch status page: signs in through the API, then polls /api/v1/status every second
// and redraws. Values are always set as text, never as markup.
"use strict";

const state = { csrf: null, role: null, timer: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(signedIn) {
  document.getElementById("login").hidden = signedIn;
  document.getElementById("main").hidden = !signedIn;
  document.getElementById("logout").hidden = !signedIn;
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) {
    stop();
    show(false);
    throw new Error("signed out");
  }
  const text = await r.text();
  const json = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error(json && json.error ? json.error.message : r.statusText);
  return json;
}

async function act(method, path, body) {
  const err = document.getElementById("action-error");
  err.textContent = "";
  try {
    await api(method, path, body);
    await refresh();
  } catch (e) {
    err.textContent = e.message;
  }
}

function time(unix) {
  return unix ? new Date(unix * 1000).toLocaleTimeString() : "";
}

function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

function meetingView(m) {
  const admin = state.role === "admin";
  const base = "/api/v1/meetings/" + encodeURIComponent(m.number);
  const secure = m.security === "secure";
  const icon = m.security === "none" ? "" : secure ? "\u{1F512} secure" : "\u{1F513} non-secure";
  const head = el("h3", {},
    el("span", { class: "number" }, m.number),
    el("span", { class: "security " + m.security, "data-security": m.security, title: m.security_reason || "" }, icon),
    el("span", { class: "badge" }, "policy " + m.policy),
    el("span", { class: "badge" }, m.switching + " switching"),
    m.locked ? el("span", { class: "badge locked", "data-locked": "true" }, "locked") : null,
    m.conf_id === null ? el("span", { class: "badge" }, "not running") : null);
  const list = el("ul", { class: "participants" });
  for (const p of m.participants) {
    const isSpeaker = m.speaker === p.id;
    const lines = p.lines.map((l) =>
      `${l.media}: ${l.keying}${l.srtp_profile ? " " + l.srtp_profile : ""}, ${l.transcrypted ? "transcrypted (standard endpoint)" : "TIP " + l.tip}, in ${l.packets_in} (${bytes(l.bytes_in)}), out ${l.packets_out} (${bytes(l.bytes_out)})` +
      (Object.keys(l.dropped).length ? ", dropped " + JSON.stringify(l.dropped) : "")).join("; ");
    list.append(el("li", { class: "participant", "data-id": p.id, "data-call-id": p.call_id },
      el("span", { class: isSpeaker ? "speaker" : "" }, (isSpeaker ? "\u{1F50A} " : "") + `#${p.id} ${p.call_id}`),
      " ", p.lock_icon ? "\u{1F512}" : "\u{1F513}",
      ` ${p.direction}, ${p.media_path || "-"}, ${p.remote || "-"}, ${p.screens || "?"} screen(s), joined ${time(p.joined_at)}`,
      admin ? el("button", { type: "button", class: "kick", onclick: () => act("DELETE", `${base}/participants/${p.id}`) }, "Kick") : null,
      el("div", { class: "lines" }, lines)));
  }
  const section = el("div", { class: "meeting", "data-number": m.number }, head, list);
  if (admin) {
    const dial = el("input", { placeholder: "number to dial", class: "dial-target" });
    section.append(el("div", { class: "actions" },
      m.conf_id !== null ? el("button", { type: "button", onclick: () => act("POST", `${base}/${m.locked ? "unlock" : "lock"}`) }, m.locked ? "Unlock" : "Lock") : null,
      m.conf_id !== null ? el("button", { type: "button", onclick: () => act("PUT", `${base}/switching`, { mode: m.switching === "site" ? "segment" : "site" }) }, m.switching === "site" ? "Segment switching" : "Site switching") : null,
      m.conf_id !== null ? el("button", { type: "button", onclick: () => act("POST", `${base}/end`) }, "End meeting") : null,
      dial,
      el("button", { type: "button", onclick: () => act("POST", `${base}/dial`, { target: dial.value }) }, "Dial out")));
  }
  return section;
}

function render(s) {
  const meetings = document.getElementById("meetings");
  meetings.replaceChildren(...(s.meetings.length ? s.meetings.map(meetingView) : [el("p", { class: "muted" }, "no meeting")]));
  const peers = document.querySelector("#peers tbody");
  peers.replaceChildren(...s.peers.map((p) => el("tr", { "data-state": p.state },
    el("td", {}, p.address), el("td", {}, p.transport), el("td", {}, p.subject || ""),
    el("td", {}, p.state), el("td", {}, time(p.since)),
    el("td", {}, p.last_keepalive ? `${time(p.last_keepalive.at)} ${p.last_keepalive.status || "no answer"}` : ""))));
  const sys = s.system;
  const dl = document.getElementById("system");
  const rows = [
    ["version", sys.version], ["uptime", sys.uptime_s + " s"], ["Device Security", sys.device_security],
    ["taking calls", sys.accepting_calls ? "yes" : "no (draining)"],
    ["media ports", `${sys.media_ports.used} used, ${sys.media_ports.free} free (${sys.media_ports.range})`],
    ["workers", sys.workers],
    ["management security", `level ${sys.security_level.effective} of 4 (lowest of: ${sys.security_level.services.map((s) => `${s.service} ${s.level}`).join(", ")})`],
    ["SIP", [sys.listeners.sip_tls && "TLS " + sys.listeners.sip_tls, sys.listeners.sip_tcp && "TCP " + sys.listeners.sip_tcp, sys.listeners.sip_udp && "UDP " + sys.listeners.sip_udp].filter(Boolean).join(", ")],
  ];
  const c = sys.cluster;
  if (c) {
    rows.push(
      ["cluster node", `${c.node_id} (${c.sip_uri}): ${c.registered ? "registered" : "NOT registered (lease lost, rejoining)"}, etcd ${c.etcd_reachable ? "reachable" : "UNREACHABLE: new meetings " + (c.etcd_down === "local" ? "served here unregistered" : "refused")}, lease ${c.lease_ttl_s} s`],
      ["meetings held", c.held.length ? c.held.map((h) => `${h.number} (token ${h.token})`).join(", ") : "none"],
      ["nodes", c.nodes.map((n) => `${n.id}: ${n.meetings} meeting(s), ${n.segments} segment(s), CPU ${Math.round(n.cpu * 100)} %${n.draining ? ", draining" : ""}`).join("; ") || "-"]);
  }
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const certs = document.querySelector("#certificates tbody");
  certs.replaceChildren(...sys.certificates.map((c) => el("tr", { title: c.used_for },
    el("td", {}, c.unit), el("td", {}, c.subject), el("td", {}, c.sans.join(", ")), el("td", {}, c.issuer),
    el("td", {}, c.serial), el("td", {}, c.key), el("td", {}, c.eku.join(", ") || "any"), el("td", {}, c.not_after),
    el("td", { class: c.expiring ? "error" : "" }, c.expiring ? `⚠ ${c.days_left}` : c.days_left),
    el("td", { class: "muted" }, c.sha256.slice(0, 16) + "…"))));
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function refresh() {
  render(await api("GET", "/api/v1/status"));
}

function stop() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

async function start(session) {
  state.csrf = session.csrf;
  state.role = session.role;
  document.getElementById("who").textContent = `${session.user} (${session.role})`;
  show(true);
  await refresh().catch(() => {});
  stop();
  state.timer = setInterval(() => refresh().catch(() => {}), 1000);
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("login-error");
  err.textContent = "";
  try {
    const r = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({
        user: document.getElementById("user").value,
        password: document.getElementById("password").value,
      }),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
    document.getElementById("password").value = "";
    await start(body);
  } catch (e) {
    err.textContent = e.message;
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  stop();
  await api("POST", "/api/v1/logout").catch(() => {});
  state.csrf = null;
  show(false);
});

fetch("/api/v1/session", { credentials: "same-origin" })
  .then((r) => (r.ok ? r.json().then(start) : show(false)))
  .catch(() => show(false));
