// prevue's dashboard: reads the API with the session's cookie, changes
// things with its CSRF token, and asks again whenever the daemon's event
// stream says something changed. Every value from the API reaches the page
// as text (textContent), never as HTML.
"use strict";

const csrf = document.querySelector('meta[name="prevue-csrf"]').content;
const role = document.querySelector('meta[name="prevue-role"]').content;
const roles = { read: 0, write: 1, admin: 2 };
const may = (needed) => roles[role] >= roles[needed];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-Prevue-CSRF"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  if (reply.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const text = await reply.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (!reply.ok) throw new Error((data && data.error) || reply.statusText);
  return data;
}

function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m` : `${s}s`;
}

// A lease as a reviewer reads it: what happens and when.
function leaseText(env) {
  const lease = env.lease;
  if (!lease) return "";
  if (lease.pinned) return "pinned";
  if (env.state === "sleeping") return "sleeping";
  if (lease.deadline_ms === null || lease.deadline_ms === undefined) return "no end";
  const left = lease.deadline_ms - Date.now();
  return left <= 0 ? `${lease.end} due` : `${lease.end} in ${span(left)}`;
}

function stateBadge(state) { return el("span", { class: "state state-" + state }, state); }

let environments = [];
let current = null;  // the slug the detail view shows

function notice(text, isError) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = isError ? "error" : "muted";
}

function renderList() {
  const root = document.getElementById("repositories");
  // Drawn afresh on each change: the keyboard's place (a preview's link) is kept.
  const focused = document.activeElement && document.activeElement.closest("tr[data-slug]");
  const focusedSlug = focused ? focused.dataset.slug : null;
  root.replaceChildren();
  if (!environments.length) { root.append(el("p", { class: "muted" }, "No previews yet. Open a pull request in a watched repository.")); return; }
  const byRepo = new Map();
  for (const env of environments) {
    const key = env.repo || "";
    if (!byRepo.has(key)) byRepo.set(key, []);
    byRepo.get(key).push(env);
  }
  for (const [repo, envs] of byRepo) {
    root.append(el("h3", {}, repo || "(unknown repository)"));
    const body = el("tbody");
    for (const env of envs) {
      body.append(el("tr", { "data-slug": env.slug },
        el("td", { "data-label": "Preview" }, el("a", { href: "#/p/" + encodeURIComponent(env.slug) }, env.slug)),
        el("td", { "data-label": "PR" }, "#" + env.pr),
        el("td", { "data-label": "Branch" }, env.ref),
        el("td", { "data-label": "Commit", class: "mono" }, (env.deployed_commit || env.commit || "").slice(0, 12)),
        el("td", { "data-label": "State" }, stateBadge(env.state)),
        el("td", { "data-label": "Link" }, env.url ? el("a", { href: env.url, target: "_blank", rel: "noopener noreferrer" }, "open") : ""),
        el("td", { "data-label": "Lease", class: "lease" }, leaseText(env))));
    }
    root.append(el("div", { class: "scroll" }, el("table", { class: "previews" },
      el("thead", {}, el("tr", {}, ["Preview", "PR", "Branch", "Commit", "State", "Link", "Lease"].map((h) => el("th", {}, h)))), body)));
  }
  if (focusedSlug) {
    const again = [...root.querySelectorAll("tr[data-slug]")].find((tr) => tr.dataset.slug === focusedSlug);
    if (again) again.querySelector("a").focus();
  }
}

async function renderEvents() {
  const events = await api("GET", "/api/v1/events");
  const body = document.querySelector("#events tbody");
  body.replaceChildren(...events.slice(0, 30).map((e) => el("tr", {},
    el("td", {}, ago(e.received_at_ms)), el("td", {}, e.source), el("td", {}, "#" + e.pr), el("td", {}, e.action),
    el("td", { class: "mono" }, (e.head_sha || "").slice(0, 12)), el("td", {}, e.status + (e.note ? ": " + e.note : "")))));
}

async function act(label, method, path, body, done) {
  try {
    await api(method, path, body);
    notice(done);
    await refresh();
  } catch (e) {
    notice(label + ": " + e.message, true);
  }
}

function renderActions(env) {
  const root = document.getElementById("actions");
  root.replaceChildren();
  const path = "/api/v1/environments/" + encodeURIComponent(env.slug);
  if (may("write") && env.lease) {
    const choice = el("select", { id: "extend-by", "aria-label": "Extend by" }, ["1h", "4h", "24h", "72h", "7d"].map((d) => el("option", { value: d, selected: d === "24h" }, d)));
    root.append(choice, el("button", { id: "extend", onclick: () => act("Extend", "POST", path + "/extend", { duration: choice.value }, "Lease extended by " + choice.value) }, "Extend"));
    const pinned = env.lease.pinned;
    root.append(el("button", { id: "pin", onclick: () => act(pinned ? "Unpin" : "Pin", "POST", path + "/pin", { pinned: !pinned }, pinned ? "Unpinned" : "Pinned") }, pinned ? "Unpin" : "Pin"));
  }
  if (may("write") && env.state === "failed")
    root.append(el("button", { id: "redeploy", onclick: () => act("Redeploy", "POST", path + "/redeploy", undefined, "Redeploying " + env.slug) }, "Redeploy"));
  if (may("write") && env.state === "ready")
    root.append(el("button", { id: "sleep", onclick: () => act("Sleep", "POST", path + "/sleep", undefined, "Putting " + env.slug + " to sleep") }, "Sleep"));
  if (may("write") && env.state === "sleeping")
    root.append(el("button", { id: "wake", onclick: () => act("Wake", "POST", path + "/wake", undefined, "Waking " + env.slug) }, "Wake"));
  if (may("admin") && env.state !== "destroying")
    root.append(el("button", { id: "destroy", class: "danger", onclick: () => {
      if (confirm("Destroy " + env.slug + "? It comes back with the next push.")) act("Destroy", "DELETE", path, undefined, "Destroying " + env.slug);
    } }, "Destroy"));
}

// The URL of the share link just made (the API gives it once, so the page
// keeps it), and what is typed into the form, across the redraws that the
// event stream brings.
let madeLink = null;
const linkDraft = { ttl: "7d", note: "" };

function renderLinks(env, links) {
  const root = document.getElementById("links");
  const path = "/api/v1/environments/" + encodeURIComponent(env.slug) + "/links";
  const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
  const now = Date.now();
  const live = links.filter((l) => !l.revoked_at_ms && l.expires_at_ms > now);
  root.replaceChildren();
  if (madeLink && madeLink.slug === env.slug)
    root.append(el("p", {}, el("label", { for: "made-link" }, "New share link (copy it now: it is shown once) "),
      el("input", { id: "made-link", readonly: true, value: madeLink.url, size: 60, onfocus: (ev) => ev.target.select() })));
  if (!live.length) root.append(el("p", { class: "muted" }, "No share link that works."));
  else root.append(el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, ["Made", "Expires", "By", "Note", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, live.map((l) => el("tr", {}, el("td", {}, ago(l.created_at_ms)), el("td", {}, new Date(l.expires_at_ms).toLocaleString()),
      el("td", {}, l.created_by), el("td", {}, l.note || ""),
      el("td", {}, may("write") ? el("button", { id: "revoke-" + l.id, onclick: () => {
        if (madeLink && madeLink.id === l.id) madeLink = null;  // its URL no longer opens anything
        act("Revoke", "DELETE", path + "/" + encodeURIComponent(l.id), undefined, "Share link revoked");
      } }, "Revoke") : "")))))));
  if (may("write")) {
    const ttl = el("select", { id: "link-ttl", "aria-label": "The share link lasts", onchange: (ev) => { linkDraft.ttl = ev.target.value; } },
      ["1h", "24h", "7d", "30d"].map((d) => el("option", { value: d, selected: d === linkDraft.ttl }, d)));
    const note = el("input", { id: "link-note", placeholder: "who it is for (optional)", maxlength: 200, value: linkDraft.note, "aria-label": "Note",
      oninput: (ev) => { linkDraft.note = ev.target.value; } });
    const make = el("button", { id: "make-link", onclick: async () => {
      try {
        const made = await api("POST", path, { ttl: linkDraft.ttl, note: linkDraft.note });
        madeLink = { slug: env.slug, id: made.id, url: made.url };
        linkDraft.note = "";
        notice("Share link made: it opens " + env.slug + " until " + new Date(made.expires_at_ms).toLocaleString());
        await refresh();
      } catch (e) { notice("Share link: " + e.message, true); }
    } }, "Make a share link");
    root.append(el("p", { class: "actions" }, ttl, note, make));
  }
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

async function renderDetail(slug) {
  const env = environments.find((e) => e.slug === slug) || await api("GET", "/api/v1/environments/" + encodeURIComponent(slug)).catch(() => null);
  if (!env) { document.getElementById("detail-title").textContent = slug + " is gone"; return; }
  document.getElementById("detail-title").replaceChildren(env.slug, " ", stateBadge(env.state));
  const facts = [["Repository", env.repo], ["Pull request", "#" + env.pr], ["Branch", env.ref], ["Commit", env.commit],
    ["Deployed", env.deployed_commit || "—"], ["Lease", leaseText(env)],
    // The lease's own end: what an extension moves (an idle limit may come first).
    ["Lease ends", env.lease ? new Date(env.lease.expires_at_ms).toLocaleString() : ""], ["Layers", (env.layers || []).map((l) => l.name + " (" + l.provider + ")").join(", ")]];
  if (env.error) facts.push(["Failed", env.failed_step + ": " + env.error]);
  const dl = document.getElementById("detail-facts");
  dl.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v || "")]));
  if (env.url) dl.append(el("dt", {}, "Link"), el("dd", {}, el("a", { href: env.url, target: "_blank", rel: "noopener noreferrer" }, env.url)));
  renderActions(env);
  const [log, timeline, links] = await Promise.all([
    api("GET", "/api/v1/environments/" + encodeURIComponent(slug) + "/log"),
    api("GET", "/api/v1/environments/" + encodeURIComponent(slug) + "/timeline"),
    api("GET", "/api/v1/environments/" + encodeURIComponent(slug) + "/links").catch(() => [])]);
  renderLinks(env, links);
  const run = document.getElementById("run");
  const open = new Set([...run.querySelectorAll("details[open]")].map((d) => d.dataset.step));
  run.replaceChildren();
  if (!log.run) run.append(el("p", { class: "muted" }, "No runs yet."));
  else run.append(el("p", {}, `Run ${log.run.id} (${log.run.kind}): ${log.run.state}`));
  for (const step of log.steps) {
    const failed = step.state === "failed";
    run.append(el("details", { "data-step": step.name, open: failed || open.has(step.name) },
      el("summary", {}, `${step.name} — ${step.state}, ${step.duration_ms} ms`), el("pre", {}, step.log || "(no output)")));
  }
  document.getElementById("timeline").replaceChildren(...timeline.slice(-50).reverse().map((t) =>
    el("li", {}, el("span", { class: "muted" }, new Date(t.at_ms).toLocaleString() + " "), t.kind + ": " + t.detail)));
}

async function refresh() {
  try {
    environments = await api("GET", "/api/v1/environments");
    const match = location.hash.match(/^#\/p\/(.+)$/);
    current = match ? decodeURIComponent(match[1]) : null;
    document.getElementById("list").hidden = !!current;
    document.getElementById("detail").hidden = !current;
    if (current) await renderDetail(current);
    else { renderList(); await renderEvents(); }
  } catch (e) {
    if (e.message !== "signed out") notice("Could not load: " + e.message, true);
  }
}

// The daemon says when something changed (the stream sends one event as
// soon as it opens, so nothing between the first load and it is missed).
function listen() {
  const live = document.getElementById("live");
  const stream = new EventSource("/api/v1/stream");
  stream.addEventListener("changed", () => { live.textContent = "live"; live.className = "live on"; refresh(); });
  stream.onerror = () => { live.textContent = "reconnecting…"; live.className = "live"; };
}

window.addEventListener("hashchange", () => { notice(""); refresh(); });
// Times left move on their own: the list's lease column once a minute.
setInterval(() => { if (!current) renderList(); }, 60000);
listen();
