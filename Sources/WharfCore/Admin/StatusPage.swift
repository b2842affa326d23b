/// `GET /`: the status page for people. One self-contained document (no external script,
/// font or stylesheet, so it works on an offline host) that polls `/status` every second
/// and redraws: listeners with open connections and rates, ends by reason, upstream
/// connects and failures, workers, generations. Rates are computed in the page from the
/// difference between two polls.
enum StatusPage {
    static let html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Wharf status</title>
        <style>
        :root { --fg: #1d2430; --muted: #667085; --line: #e4e7ec; --bg: #f8f9fb; --ok: #067647; --bad: #b42318;
                --warn: #b54708; --accent: #175cd3; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
               background: var(--bg); }
        header { display: flex; align-items: baseline; gap: 16px; padding: 16px 24px; background: #fff;
                 border-bottom: 1px solid var(--line); flex-wrap: wrap; }
        header h1 { margin: 0; font-size: 20px; }
        header .facts { color: var(--muted); }
        main { padding: 16px 24px 32px; display: grid; gap: 20px; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
        section h2 { margin: 0; padding: 10px 14px; font-size: 14px; border-bottom: 1px solid var(--line);
                     background: #fcfcfd; }
        table { border-collapse: collapse; width: 100%; }
        th, td { padding: 7px 14px; text-align: left; border-bottom: 1px solid var(--line); white-space: nowrap; }
        th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
        tr:last-child td { border-bottom: 0; }
        .num { text-align: right; font-variant-numeric: tabular-nums; }
        .pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
        .ok { color: var(--ok); background: #ecfdf3; }
        .bad { color: var(--bad); background: #fef3f2; }
        .warn { color: var(--warn); background: #fffaeb; }
        .muted { color: var(--muted); }
        .reasons span { margin-right: 10px; }
        #error { color: var(--bad); }
        </style>
        </head>
        <body>
        <header>
          <h1>Wharf</h1>
          <span id="readiness" class="pill">…</span>
          <span class="facts" id="facts"></span>
          <span class="facts">updated <span id="updated" data-refreshes="0">never</span></span>
          <span id="error"></span>
        </header>
        <main>
          <section>
            <h2>Listeners</h2>
            <table id="listeners">
              <thead><tr><th>Listener</th><th>Address</th><th>Plugin</th><th class="num">Open</th>
                <th class="num">Accepted</th><th class="num">Conn/s</th><th class="num">In/s</th><th class="num">Out/s</th>
                <th>Ended by</th><th>Accept errors</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section>
            <h2>Upstreams, as the plugins see them</h2>
            <table id="upstreams">
              <thead><tr><th>Instance</th><th>Route</th><th>Upstream</th><th class="num">Open</th>
                <th class="num">Connects</th><th class="num">Failed</th><th>Health (last interval)</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section>
            <h2>Upstream traffic by listener</h2>
            <table id="upstream-traffic">
              <thead><tr><th>Listener</th><th>Plugin</th><th class="num">Connects</th><th class="num">Failed</th>
                <th>Failures by reason</th><th class="num">In/s</th><th class="num">Out/s</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section>
            <h2>Worker processes</h2>
            <table id="workers">
              <thead><tr><th>PID</th><th class="num">Generation</th><th class="num">Slot</th><th>State</th>
                <th class="num">Uptime</th><th class="num">Restarts of slot</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section>
            <h2>Generations</h2>
            <table id="generations">
              <thead><tr><th>Generation</th><th>State</th><th class="num">Age</th><th class="num">Processes</th>
                <th>Config</th><th>Plugins</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
        </main>
        <script>
        "use strict";
        let previous = null;
        let refreshes = 0;
        const text = (value) => String(value).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\"": "&quot;"})[c]);
        const number = (value) => Number(value).toLocaleString("en-US");
        function bytes(value) {
          const units = ["B", "KiB", "MiB", "GiB", "TiB"];
          let i = 0;
          while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
          return (i === 0 ? Math.round(value) : value.toFixed(1)) + " " + units[i];
        }
        function duration(seconds) {
          seconds = Math.floor(seconds);
          const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
          if (d) return d + "d " + h + "h";
          if (h) return h + "h " + m + "m";
          if (m) return m + "m " + (seconds % 60) + "s";
          return (seconds % 60) + "s";
        }
        function rate(listener, key, elapsed) {
          const before = previous && previous.listeners.find((l) => l.name === listener.name && l.plugin === listener.plugin);
          if (!before || elapsed <= 0) return null;
          return Math.max(0, (listener[key] - before[key]) / elapsed);
        }
        function sum(object) { return Object.values(object).reduce((a, b) => a + b, 0); }
        function reasons(object) {
          const parts = Object.entries(object).filter(([, count]) => count > 0)
            .map(([name, count]) => "<span>" + text(name) + " " + number(count) + "</span>");
          return parts.length ? parts.join("") : "<span class=\\"muted\\">none</span>";
        }
        function rows(id, html) { document.querySelector("#" + id + " tbody").innerHTML = html.join(""); }

        // Plugins that report upstreams (the proxy does) name their metrics
        // *_upstream_connects_total, *_upstream_connect_failures_total and *_upstream_active,
        // labelled with the upstream: one row per upstream, health from the last interval.
        function upstreamRows(status) {
          const byKey = new Map();
          const key = (m) => m.instance + "\\u0000" + (m.labels.route ?? "") + "\\u0000" + m.labels.upstream;
          const find = (list, m, suffix) => list.find((p) => p.name.endsWith(suffix) && key(p) === key(m));
          for (const m of status.plugin_metrics.filter((m) => m.labels.upstream !== undefined)) {
            if (!byKey.has(key(m))) byKey.set(key(m), {instance: m.instance, route: m.labels.route ?? "", upstream: m.labels.upstream});
            const row = byKey.get(key(m));
            if (m.name.endsWith("_upstream_connects_total")) row.connects = m.value;
            if (m.name.endsWith("_upstream_connect_failures_total")) row.failures = m.value;
            if (m.name.endsWith("_upstream_active")) row.active = m.value;
          }
          if (byKey.size === 0) return ["<tr><td class=\\"muted\\" colspan=\\"7\\">no plugin reports upstreams</td></tr>"];
          return [...byKey.values()].map((row) => {
            const before = previous && previous.plugin_metrics;
            const was = (suffix) => { const m = before && find(before, {instance: row.instance, labels: {route: row.route || undefined, upstream: row.upstream}}, suffix); return m ? m.value : null; };
            const tried = row.connects - (was("_upstream_connects_total") ?? row.connects);
            const failed = row.failures - (was("_upstream_connect_failures_total") ?? row.failures);
            const health = tried <= 0 ? (row.failures > 0 && row.failures === row.connects ? "<span class=\\"pill bad\\">down</span>" : "<span class=\\"pill ok\\">ok</span>")
              : failed === 0 ? "<span class=\\"pill ok\\">ok</span>"
              : failed < tried ? "<span class=\\"pill warn\\">" + Math.round(100 * failed / tried) + "% failing</span>"
              : "<span class=\\"pill bad\\">down</span>";
            return "<tr><td>" + text(row.instance) + "</td><td>" + text(row.route) + "</td><td>" + text(row.upstream) + "</td>" +
              "<td class=\\"num\\">" + number(row.active ?? 0) + "</td><td class=\\"num\\">" + number(row.connects ?? 0) + "</td>" +
              "<td class=\\"num\\">" + number(row.failures ?? 0) + "</td><td>" + health + "</td></tr>";
          });
        }

        function draw(status) {
          const elapsed = previous ? status.time - previous.time : 0;
          const ready = document.getElementById("readiness");
          ready.textContent = status.ready ? "ready" : "not ready: " + status.not_ready_reason;
          ready.className = "pill " + (status.ready ? "ok" : "bad");
          document.getElementById("facts").textContent = "version " + status.version + " · ABI " + status.abi +
            " · pid " + status.pid + " · up " + duration(status.uptime_s) + " · generation " + (status.generation ?? "none") +
            " · reloads " + status.reloads.ok + " ok, " + status.reloads.failed + " failed · restarts " + sum(status.restarts);
          rows("listeners", status.listeners.map((l) => {
            const perSecond = (key, format) => { const r = rate(l, key, elapsed); return r === null ? "–" : format(r); };
            return "<tr data-listener=\\"" + text(l.name) + "\\">" +
              "<td>" + text(l.name) + (l.current ? "" : " <span class=\\"muted\\">(removed)</span>") + "</td>" +
              "<td>" + (l.address === null ? "–" : text(l.address + ":" + l.port)) + "</td>" +
              "<td>" + text(l.plugin) + "</td>" +
              "<td class=\\"num active\\">" + number(l.active) + "</td>" +
              "<td class=\\"num accepted\\">" + number(l.accepted) + "</td>" +
              "<td class=\\"num\\">" + perSecond("accepted", (r) => r.toFixed(1)) + "</td>" +
              "<td class=\\"num\\">" + perSecond("received_bytes", (r) => bytes(r)) + "</td>" +
              "<td class=\\"num\\">" + perSecond("sent_bytes", (r) => bytes(r)) + "</td>" +
              "<td class=\\"reasons\\">" + reasons(l.closed) + "</td>" +
              "<td class=\\"reasons\\">" + reasons(l.accept_errors) + "</td></tr>";
          }));
          rows("upstreams", upstreamRows(status));
          const traffic = status.listeners.filter((l) => l.upstream_connects > 0);
          rows("upstream-traffic", traffic.length ? traffic.map((l) => {
            const perSecond = (key) => { const r = rate(l, key, elapsed); return r === null ? "–" : bytes(r); };
            return "<tr><td>" + text(l.name) + "</td><td>" + text(l.plugin) + "</td>" +
              "<td class=\\"num\\">" + number(l.upstream_connects) + "</td>" +
              "<td class=\\"num\\">" + number(sum(l.upstream_failures)) + "</td>" +
              "<td class=\\"reasons\\">" + reasons(l.upstream_failures) + "</td>" +
              "<td class=\\"num\\">" + perSecond("upstream_received_bytes") + "</td>" +
              "<td class=\\"num\\">" + perSecond("upstream_sent_bytes") + "</td></tr>";
          }) : ["<tr><td class=\\"muted\\" colspan=\\"7\\">no plugin has connected upstream yet</td></tr>"]);
          rows("workers", status.workers.map((w) =>
            "<tr><td>" + w.pid + "</td><td class=\\"num\\">" + w.generation + "</td><td class=\\"num\\">" + w.slot + "</td>" +
            "<td><span class=\\"pill " + (w.state === "serving" ? "ok" : w.state === "starting" ? "warn" : "") + "\\">" +
            text(w.state) + "</span></td><td class=\\"num\\">" + duration(w.uptime_s) + "</td>" +
            "<td class=\\"num\\">" + w.slot_restarts + "</td></tr>"));
          rows("generations", status.generations.map((g) =>
            "<tr><td>" + g.number + "</td><td><span class=\\"pill " + (g.state === "serving" ? "ok" : g.state === "failed" ? "bad" : "warn") +
            "\\">" + text(g.state) + "</span></td><td class=\\"num\\">" + (g.age_s === null ? "–" : duration(g.age_s)) + "</td>" +
            "<td class=\\"num\\">" + (g.processes ?? "–") + "</td>" +
            "<td>" + text(g.config ?? "") + " <span class=\\"muted\\">" + text(g.config_hash ?? "") + "</span></td>" +
            "<td>" + g.plugins.map((p) => text(p.instance + ": " + p.library + " " + p.version + " (ABI " + p.abi + ")")).join(", ") +
            "</td></tr>"));
          previous = status;
        }

        async function refresh() {
          try {
            const response = await fetch("/status", {cache: "no-store"});
            if (!response.ok) throw new Error("HTTP " + response.status);
            draw(await response.json());
            refreshes += 1;
            const updated = document.getElementById("updated");
            updated.textContent = new Date().toLocaleTimeString();
            updated.dataset.refreshes = String(refreshes);
            document.getElementById("error").textContent = "";
          } catch (error) {
            document.getElementById("error").textContent = "cannot reach Wharf: " + error.message;
          }
          setTimeout(refresh, 1000);
        }
        refresh();
        </script>
        </body>
        </html>

        """
}
