// The search page: a chart next to a stats / timechart result (Chart.js from npm, served under
// /vendor), and exports of a result (CSV / NDJSON) with the rows so far and a cancel button.
// The server sends the chart's labels and series (norrvakt.store.query_agg.chart); this file
// only draws them. Text from the answer is set as textContent, never as HTML.
(function () {
  "use strict";
  const COLORS = ["#0b5fa5", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d",
                  "#364fc7", "#868e96", "#495057"];

  // The canvas has no id on purpose: htmx gives a swapped-in element with the same id as the old
  // one the old element's attributes until it settles, then sets its own back — which reset the
  // canvas that Chart.js had drawn (and its style attribute, which the CSP refuses).
  function drawResultChart() {
    const canvas = document.querySelector("canvas[data-result-chart]");
    if (!canvas || !window.Chart || canvas._chart) return;
    const spec = JSON.parse(canvas.dataset.resultChart);
    const line = spec.type === "line";
    const datasets = spec.series.map((s, i) => ({
      label: s.name, data: s.values, borderColor: COLORS[i % COLORS.length],
      backgroundColor: COLORS[i % COLORS.length], pointRadius: line ? 1.5 : 0, tension: 0, spanGaps: false,
    }));
    const labels = line ? spec.labels.map(t => t.slice(0, 16).replace("T", " ")) : spec.labels;
    canvas._chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: { legend: { display: true, position: "bottom" } },
        scales: {
          x: { ticks: { maxTicksLimit: line ? 10 : 20, autoSkip: true } },
          y: { beginAtZero: true, title: { display: datasets.length === 1, text: datasets.length ? datasets[0].label : "" } },
        },
      },
    });
  }

  function filename(resp, format) {
    const found = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
    return found ? found[1] : "norrvakt-search." + format;
  }

  function newlines(bytes) {
    let n = 0;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === 10) n++;
    return n;
  }

  let running = null;  // the export in progress: { controller, box }

  async function runExport(box, format) {
    if (running) return;
    const status = box.querySelector(".export-status");
    const cancel = box.querySelector("[data-export-cancel]");
    const params = new URLSearchParams({ q: box.dataset.q || "", since: box.dataset.since || "", format: format });
    if (box.dataset.tenant) params.set("tenant", box.dataset.tenant);
    const controller = new AbortController();
    running = { controller: controller, box: box };
    cancel.hidden = false;
    box.querySelectorAll("[data-export]").forEach(b => { b.disabled = true; });
    const total = Number(box.dataset.total || 0);
    const parts = [];
    let lines = 0, bytes = 0, tail = "";
    const show = () => {
      const rows = Math.max(0, format === "csv" ? lines - 1 : lines);
      status.textContent = rows.toLocaleString() + " " + box.dataset.progress +
        (total ? " (" + box.dataset.of + " " + total.toLocaleString() + ")" : "") +
        " · " + (bytes / 1048576).toFixed(1) + " MB";
    };
    try {
      const resp = await fetch("/api/search/export?" + params, { credentials: "same-origin", signal: controller.signal });
      if (!resp.ok) {
        let detail = resp.statusText;
        try { detail = (await resp.json()).detail; } catch (e) { /* not JSON: keep the status text */ }
        status.textContent = box.dataset.failed + " " + detail;
        return;
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        bytes += value.length;
        lines += newlines(value);
        tail = (tail + decoder.decode(value.slice(-512), { stream: false })).slice(-512);
        show();
      }
      const cut = /(^|\n)("?# export cut|\{"_export": \{"cut": true)/.test(tail);
      if (cut) lines -= 1;
      show();
      const url = URL.createObjectURL(new Blob(parts, { type: resp.headers.get("Content-Type") || "text/plain" }));
      const link = document.createElement("a");
      link.href = url; link.download = filename(resp, format);
      document.body.appendChild(link); link.click(); link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      status.textContent += " — " + (cut ? box.dataset.cut : box.dataset.done);
      box.dataset.state = cut ? "cut" : "done";
    } catch (e) {
      parts.length = 0;  // a cancelled export leaves nothing behind, not a partial file
      status.textContent = e.name === "AbortError" ? box.dataset.cancelled : box.dataset.failed + " " + e.message;
      box.dataset.state = e.name === "AbortError" ? "cancelled" : "failed";
    } finally {
      running = null;
      cancel.hidden = true;
      box.querySelectorAll("[data-export]").forEach(b => { b.disabled = false; });
    }
  }

  document.addEventListener("click", (e) => {
    const start = e.target.closest("[data-export]");
    if (start) { runExport(start.closest(".export"), start.dataset.export); return; }
    if (e.target.closest("[data-export-cancel]") && running) running.controller.abort();
  });
  document.addEventListener("DOMContentLoaded", () => {
    drawResultChart();
    document.body.addEventListener("htmx:afterSettle", drawResultChart);
  });
})();
