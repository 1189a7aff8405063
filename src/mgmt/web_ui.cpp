#include "mgmt/web_ui.h"

namespace warren::mgmt {

namespace {

// Hash routes: #/ overview, #/queues, #/queues/{vhost}/{name}, #/connections, and
// #/login/{user}/{password} (as RabbitMQ's UI accepts) to sign in from a link.
constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Warren</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
  header { background: #3b4252; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: center; }
  header a { color: #dde; text-decoration: none; } header a.on { color: #fff; font-weight: bold; }
  main { padding: 20px; }
  table { border-collapse: collapse; background: #fff; min-width: 50%; }
  th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; }
  th { background: #eef; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .cards { display: flex; gap: 16px; margin-bottom: 16px; }
  .card { background: #fff; border: 1px solid #ddd; padding: 10px 16px; min-width: 120px; }
  .card b { display: block; font-size: 22px; }
  button { margin: 2px; } #error { color: #b00; } pre { background: #fff; border: 1px solid #ddd; padding: 6px; }
  form#login { display: none; gap: 8px; }
</style>
</head>
<body>
<header><b>Warren</b>
  <a href="#/">Overview</a><a href="#/queues">Queues</a><a href="#/connections">Connections</a>
  <span id="who"></span>
</header>
<main>
  <form id="login"><input id="user" placeholder="user"><input id="password" type="password" placeholder="password">
    <button>Sign in</button></form>
  <div id="error"></div>
  <div id="view"></div>
</main>
<script>
"use strict";
let auth = sessionStorage.getItem("warren-auth");
const view = document.getElementById("view");
const esc = s => String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
const enc = encodeURIComponent;

async function api(method, path, body) {
  const r = await fetch("/api" + path, {method, headers: {"Authorization": "Basic " + auth,
    "Content-Type": "application/json"}, body: body === undefined ? undefined : JSON.stringify(body)});
  if (r.status === 401) { showLogin(); throw new Error("sign in"); }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.reason) || r.status);
  return data;
}

function showLogin() {
  document.getElementById("login").style.display = "flex";
  view.innerHTML = "";
}
document.getElementById("login").onsubmit = e => {
  e.preventDefault();
  auth = btoa(document.getElementById("user").value + ":" + document.getElementById("password").value);
  sessionStorage.setItem("warren-auth", auth);
  document.getElementById("login").style.display = "none";
  route();
};

const rate = d => d && d.rate !== undefined ? d.rate.toFixed(1) + "/s" : "";

async function overview() {
  const o = await api("GET", "/overview");
  const m = o.message_stats || {}, t = o.queue_totals || {}, n = o.object_totals || {};
  view.innerHTML = `<h2>Overview</h2><div class="cards">
    <div class="card">Ready<b id="ready">${t.messages_ready}</b></div>
    <div class="card">Unacked<b>${t.messages_unacknowledged}</b></div>
    <div class="card">Publish<b>${rate(m.publish_details)}</b></div>
    <div class="card">Deliver<b>${rate(m.deliver_get_details)}</b></div>
    <div class="card">Ack<b>${rate(m.ack_details)}</b></div></div>
    <table><tr><th>Connections</th><th>Channels</th><th>Consumers</th><th>Exchanges</th><th>Queues</th></tr>
    <tr><td class="n">${n.connections}</td><td class="n">${n.channels}</td><td class="n">${n.consumers}</td>
    <td class="n">${n.exchanges}</td><td class="n">${n.queues}</td></tr></table>`;
}

async function queues() {
  const list = await api("GET", "/queues");
  view.innerHTML = `<h2>Queues</h2><table id="queues"><tr><th>Virtual host</th><th>Name</th><th>Ready</th>
    <th>Unacked</th><th>Total</th><th>Consumers</th><th>Publish</th><th></th></tr>` +
    list.map(q => `<tr data-queue="${esc(q.name)}"><td>${esc(q.vhost)}</td>
      <td><a href="#/queues/${enc(q.vhost)}/${enc(q.name)}">${esc(q.name)}</a></td>
      <td class="n ready">${q.messages_ready}</td><td class="n">${q.messages_unacknowledged}</td>
      <td class="n">${q.messages}</td><td class="n">${q.consumers}</td>
      <td class="n">${rate(q.message_stats && q.message_stats.publish_details)}</td>
      <td><button class="purge" data-vhost="${esc(q.vhost)}">Purge</button></td></tr>`).join("") + "</table>";
  for (const b of view.querySelectorAll("button.purge"))
    b.onclick = () => act(() => api("DELETE", `/queues/${enc(b.dataset.vhost)}/${enc(b.closest("tr").dataset.queue)}/contents`));
}

async function queue(vhost, name) {
  const q = await api("GET", `/queues/${enc(vhost)}/${enc(name)}`);
  const path = `/queues/${enc(vhost)}/${enc(name)}`;
  view.innerHTML = `<h2>Queue ${esc(name)} <small>in ${esc(vhost)}</small></h2>
    <table><tr><th>Ready</th><th>Unacked</th><th>Consumers</th><th>Durable</th><th>Arguments</th></tr>
    <tr><td class="n" id="ready">${q.messages_ready}</td><td class="n">${q.messages_unacknowledged}</td>
    <td class="n">${q.consumers}</td><td>${q.durable}</td><td>${esc(JSON.stringify(q.arguments))}</td></tr></table>
    <p><button id="get">Get 5 messages (requeue)</button><button id="purge">Purge</button>
    <button id="move">Move back to where they died</button><button id="delete">Delete</button></p>
    <div id="messages"></div>`;
  document.getElementById("get").onclick = () => act(async () => {
    const got = await api("POST", path + "/get", {count: 5, ackmode: "ack_requeue_true", encoding: "auto", truncate: 50000});
    document.getElementById("messages").innerHTML = got.map(m =>
      `<pre>${esc(m.routing_key)} ${esc(JSON.stringify(m.properties))}\n${esc(m.payload)}</pre>`).join("") || "<p>Empty.</p>";
  }, false);
  document.getElementById("purge").onclick = () => act(() => api("DELETE", path + "/contents"));
  document.getElementById("move").onclick = () => act(() => api("POST", path + "/move", {}));
  document.getElementById("delete").onclick = () => act(async () => { await api("DELETE", path); location.hash = "#/queues"; });
}

async function connections() {
  const list = await api("GET", "/connections");
  view.innerHTML = `<h2>Connections</h2><table><tr><th>Name</th><th>User</th><th>Virtual host</th><th>Channels</th></tr>` +
    list.map(c => `<tr><td>${esc(c.name)}</td><td>${esc(c.user)}</td><td>${esc(c.vhost)}</td>
      <td class="n">${c.channels}</td></tr>`).join("") + "</table>";
}

async function act(fn, refresh = true) {
  try { await fn(); document.getElementById("error").textContent = ""; if (refresh) await route(); }
  catch (e) { document.getElementById("error").textContent = e.message; }
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "login" && parts.length >= 3) {
    auth = btoa(parts[1] + ":" + parts.slice(2).join("/"));
    sessionStorage.setItem("warren-auth", auth);
    history.replaceState(null, "", "#/queues");
    return route();
  }
  if (!auth) return showLogin();
  for (const a of document.querySelectorAll("header a"))
    a.className = location.hash.startsWith(a.getAttribute("href")) && a.getAttribute("href") !== "#/" ||
                  a.getAttribute("href") === "#/" && parts[0] === "" ? "on" : "";
  try {
    if (parts[0] === "queues" && parts.length >= 3) await queue(parts[1], parts.slice(2).join("/"));
    else if (parts[0] === "queues") await queues();
    else if (parts[0] === "connections") await connections();
    else await overview();
    document.getElementById("error").textContent = "";
  } catch (e) { document.getElementById("error").textContent = e.message; }
}

window.onhashchange = route;
route();
// Counts refresh by themselves, except on a queue's page (it would drop fetched messages).
setInterval(() => { if (!location.hash.match(/^#\/queues\/.+\/.+/)) route(); }, 2000);
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view web_ui_page() { return kPage; }

}  // namespace warren::mgmt
