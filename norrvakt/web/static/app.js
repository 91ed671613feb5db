// Norrvakt console: small enhancements on top of server-rendered pages (htmx does the rest).
(function () {
  "use strict";
  function params(form) { return new URLSearchParams(new FormData(form)).toString(); }

  function drawHistogram() {
    const canvas = document.getElementById("histogram");
    if (!canvas || !window.Chart) return;
    const q = new URLSearchParams({ q: canvas.dataset.q || "", tenant: canvas.dataset.tenant || "",
                                    since: canvas.dataset.since || "" });
    fetch("/api/search/histogram?" + q, { credentials: "same-origin" }).then(r => r.ok ? r.json() : null).then(data => {
      if (!data) return;
      if (canvas._chart) canvas._chart.destroy();
      canvas._chart = new Chart(canvas, {
        type: "bar",
        data: { labels: data.buckets.map(b => new Date(b.t / 1000).toLocaleString("sv-SE")),
                datasets: [{ data: data.buckets.map(b => b.count), backgroundColor: "#0b5fa5" }] },
        options: { animation: false, plugins: { legend: { display: false } },
                   scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
    });
  }

  function drawCharts() {
    document.querySelectorAll("canvas[data-chart]").forEach(canvas => {
      if (!window.Chart || canvas._chart) return;
      const spec = JSON.parse(canvas.dataset.chart);
      spec.options = Object.assign({ maintainAspectRatio: false }, spec.options || {});
      canvas._chart = new Chart(canvas, spec);
    });
  }

  let tail = null;
  function toggleLive(button) {
    const form = document.getElementById("search-form");
    if (tail) { tail.close(); tail = null; button.setAttribute("aria-pressed", "false"); button.textContent = button.dataset.labelOff; return; }
    tail = new EventSource("/api/tail?" + params(form));
    button.setAttribute("aria-pressed", "true"); button.textContent = button.dataset.labelOn;
    // Refused (429: too many live tails, 400: a bad query) or stopped by the server ("event: error"
    // with the reason): stop here, rather than let EventSource reconnect again and again.
    tail.addEventListener("error", e => {
      if (!tail || (!e.data && tail.readyState !== EventSource.CLOSED)) return;
      tail.close(); tail = null;
      button.setAttribute("aria-pressed", "false"); button.textContent = button.dataset.labelOff;
      if (e.data) { try { button.title = JSON.parse(e.data).detail; } catch (err) { button.title = e.data; } }
    });
    tail.addEventListener("event", e => {
      const row = JSON.parse(e.data);
      let body = document.getElementById("rows");
      if (!body) { document.getElementById("results").innerHTML = '<table class="events"><tbody id="rows"></tbody></table>'; body = document.getElementById("rows"); }
      const tr = document.createElement("tr");
      const cells = [row["@timestamp"].slice(0, 19).replace("T", " "), row.tenant, (row.ecs || {})["host.name"] || "",
                     (row.ecs || {})["user.name"] || "", row.message];
      cells.forEach((text, i) => { const td = document.createElement("td"); td.textContent = text; if (i === 4) td.className = "msg"; tr.appendChild(td); });
      body.prepend(tr);
      while (body.children.length > 500) body.removeChild(body.lastChild);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawHistogram(); drawCharts();
    const live = document.getElementById("live");
    if (live) live.addEventListener("click", () => toggleLive(live));
    document.body.addEventListener("htmx:afterSwap", () => { drawHistogram(); drawCharts(); });
  });
})();

// Admin forms and buttons call the JSON API (same checks and audit as the CLI).
(function () {
  "use strict";
  function csrf() {
    const h = document.body.getAttribute("hx-headers");
    try { return JSON.parse(h)["X-CSRF-Token"]; } catch (e) { return ""; }
  }
  // A secret the answer carries once (a new password or token): data-show names its field.
  function shown(form, text) {
    if (!form.dataset.show) return "";
    try { const v = JSON.parse(text)[form.dataset.show]; return v ? " " + v : ""; } catch (e) { return ""; }
  }
  async function call(url, body, method) {
    const r = await fetch(url, { method: method || "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() }, body: JSON.stringify(body || {}) });
    const text = await r.text();
    return { ok: r.ok, text: text };
  }
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest("form[data-api-form]");
    if (!form) return;
    e.preventDefault();
    const data = {};
    new FormData(form).forEach((v, k) => {
      if (v === "" && form.dataset.method === "PUT") return;  // only the fields filled in
      if (form.elements[k] && form.elements[k].multiple) { (data[k] = data[k] || []).push(v); }
      else if (form.elements[k] && form.elements[k].type === "checkbox") { data[k] = true; }
      else { data[k] = v; }
    });
    const out = form.querySelector(".api-result");
    const res = await call(form.dataset.apiForm, data, form.dataset.method);
    if (out) out.textContent = res.ok ? "✓" + shown(form, res.text) : res.text;
    if (res.ok && form.dataset.reload) window.location.reload();
  });
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-api]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const res = await call(button.dataset.api, undefined, button.dataset.method);
    button.textContent = res.ok ? "✓" : res.text;
    if (res.ok && button.dataset.reload) window.location.reload();
  });
})();

// The alert queue: select all, and acknowledge the selected alerts (or their cases).
(function () {
  "use strict";
  document.addEventListener("change", (e) => {
    if (e.target.id === "all") document.querySelectorAll("input[name=alert]").forEach(c => { c.checked = e.target.checked; });
  });
  document.addEventListener("click", async (e) => {
    if (!e.target || e.target.id !== "bulk-ack") return;
    const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
    const picked = Array.from(document.querySelectorAll("input[name=alert]:checked"));
    const cases = new Set();
    let done = 0, failed = [];
    for (const box of picked) {
      const url = box.dataset.case ? "/api/cases/" + box.dataset.case + "/status" : "/api/alerts/" + box.value + "/status";
      if (box.dataset.case) { if (cases.has(box.dataset.case)) continue; cases.add(box.dataset.case); }
      const r = await fetch(url, { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token }, body: JSON.stringify({ status: "acknowledged" }) });
      if (r.ok) done++; else failed.push(await r.text());
    }
    document.getElementById("bulk-result").textContent = done + " ✓" + (failed.length ? " — " + failed.join("; ") : "");
    if (!failed.length) window.location.reload();
  });
})();

// The rules page: switch a rule on/off for a tenant (keeping its dedupe settings), and test a
// rule against stored events. Results are built as DOM nodes, never as HTML from the answer.
(function () {
  "use strict";
  function csrf() { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]; }
  async function send(url, method, body) {
    const r = await fetch(url, { method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() }, body: JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = { detail: r.statusText }; }
    return { ok: r.ok, status: r.status, data: data };
  }
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function row(cells, head) {
    const tr = el("tr");
    cells.forEach(c => { const td = el(head ? "th" : "td"); if (c instanceof Node) td.appendChild(c); else td.textContent = c; tr.appendChild(td); });
    return tr;
  }
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest("form[data-rule-switch]");
    if (!form) return;
    e.preventDefault();
    const tenant = form.elements.tenant.value;
    const settings = JSON.parse(form.closest("tr").dataset.settings || "[]");
    const old = settings.find(s => s.tenant === tenant) || {};
    const res = await send("/api/alerts/rules/" + encodeURIComponent(form.dataset.ruleSwitch), "PUT", {
      tenant: tenant, enabled: form.elements.enabled.value === "true",
      dedupe_fields: old.dedupe_fields === undefined ? null : old.dedupe_fields,
      window_s: old.window_s === undefined ? null : old.window_s });
    form.querySelector(".api-result").textContent = res.ok ? "✓" : (res.data.detail || res.status);
    if (res.ok) window.location.reload();
  });
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest("form[data-rule-test]");
    if (!form) return;
    e.preventDefault();
    const out = document.getElementById("test-result");
    out.replaceChildren(el("p", "…", "muted"));
    const text = form.elements.rule.value.trim();
    const body = { since: form.elements.since.value || "7d", tenant: form.elements.tenant.value || null };
    if (text) body.rule = text; else body.rule_id = form.elements.rule_id.value.trim();
    const res = await send("/api/rules/test", "POST", body);
    out.replaceChildren();
    if (!res.ok) {
      const p = el("p", null, "error");
      p.setAttribute("role", "alert");
      p.textContent = typeof res.data.detail === "string" ? res.data.detail : JSON.stringify(res.data.detail);
      out.appendChild(p);
      return;
    }
    const d = res.data, L = out.dataset;
    out.appendChild(el("p", d.scanned + " " + L.scanned + " (" + d.in_range + " " + L.inRange + ") · " + d.matched +
      " " + L.matched + " · " + d.seconds + " s", "test-summary"));
    if (d.note) out.appendChild(el("p", d.note, "test-note"));  // stopped early: what was scanned
    const rules = el("table");
    rules.appendChild(row([L.rule, L.level, L.matched, ""], true));
    d.rules.forEach(r => rules.appendChild(row([r.title + " (" + r.id + ")", r.level, r.matched, r.note])));
    out.appendChild(rules);
    if (d.matches.length) {
      const t = el("table", null, "matches");
      t.appendChild(row([L.time, L.tenant, L.rule, L.message], true));
      d.matches.forEach(m => {
        const link = el("a", m.message || m.detail || m.title);
        link.href = "/events/" + encodeURIComponent(m.tenant) + "/" + encodeURIComponent(m.seq);
        t.appendChild(row([m.timestamp || m["@timestamp"], m.tenant, m.title, link]));
      });
      out.appendChild(t);
    }
  });
})();

// Behaviour that lived in inline attributes (onchange=, hx-on) — the Content-Security-Policy
// runs no inline script: a select that submits its form, a link that opens a dialog when its
// htmx request is done (the event detail).
(function () {
  "use strict";
  document.addEventListener("change", (e) => {
    if (e.target.matches && e.target.matches("select[data-autosubmit]")) e.target.form.submit();
  });
  document.addEventListener("htmx:afterRequest", (e) => {
    const opener = e.target.closest && e.target.closest("[data-opens]");
    const dialog = opener && document.getElementById(opener.dataset.opens);
    if (dialog && !dialog.open) dialog.showModal();
  });
})();

// Saved searches: the save form takes the search form's query, time range and municipality as
// they are now (the results are swapped in by htmx, so the page's own values may be older).
(function () {
  "use strict";
  document.addEventListener("submit", async (e) => {
    const form = e.target.closest("form[data-save-search]");
    if (!form) return;
    e.preventDefault();
    const search = document.getElementById("search-form");
    const body = { name: form.elements.name.value, description: form.elements.description.value,
      visibility: form.elements.visibility.value, level: form.elements.level.value,
      query: search.elements.q.value, since: search.elements.since.value,
      tenant: search.elements.tenant.value || null, schedule: form.elements.schedule.value || null };
    const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
    const r = await fetch("/api/saved-searches", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token }, body: JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (err) { data = { detail: r.statusText }; }
    const out = form.querySelector(".api-result");
    out.textContent = r.ok ? "✓" : (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
    if (r.ok) window.location.reload();
  });
  // The rules page: switch a scheduled search on or off (its owner or the SOC).
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-search-rule]");
    if (!button) return;
    const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"];
    const r = await fetch("/api/saved-searches/" + button.dataset.searchRule, { method: "PATCH", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ enabled: button.dataset.enabled === "true" }) });
    if (r.ok) window.location.reload(); else button.textContent = await r.text();
  });
})();
