/// The live status page served at `/` to browsers: one self-contained HTML document (no external assets, so it
/// works offline) whose script fetches `/status.json` from the same origin every second and draws, per path, the
/// throughput each way, the RTT, the congestion window and the share of traffic over the last minutes on canvases.
/// Everything that comes from the daemon reaches the page through `textContent` or canvas text, never as markup.
/// After each refresh the script records how many points it plotted per path (`data-path-points` on the path's
/// row, `data-points` on each chart) and how many of the path's samples carried traffic (`data-path-busy-points`),
/// so a headless browser test can check the graphs have data.
package enum StatusPage {
    package static let html = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>agg status</title>
        <style>
        :root { --bg: #0f1419; --panel: #172029; --line: #263341; --text: #e6edf3; --dim: #8b9bab; --ok: #3fb950;
                --warn: #d29922; --bad: #f85149; }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--text);
               font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
        header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px;
                 border-bottom: 1px solid var(--line); }
        header h1 { margin: 0; font-size: 20px; letter-spacing: 0.5px; }
        header .meta { color: var(--dim); }
        #error { display: none; margin: 12px 24px 0; padding: 8px 12px; border-radius: 6px; background: #3d1d20;
                 color: #ffb4ae; }
        main { padding: 16px 24px 24px; }
        .tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
        .tile { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
        .tile .label { color: var(--dim); font-size: 12px; text-transform: uppercase; letter-spacing: 0.6px; }
        .tile .value { font-size: 22px; font-variant-numeric: tabular-nums; margin-top: 2px; }
        .tile .sub { color: var(--dim); font-size: 12px; }
        table { width: 100%; border-collapse: collapse; margin-top: 16px; background: var(--panel);
                border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
        th, td { padding: 7px 12px; text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        th { color: var(--dim); font-weight: 500; font-size: 12px; text-transform: uppercase; letter-spacing: 0.6px;
             border-bottom: 1px solid var(--line); }
        th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
        tr + tr td { border-top: 1px solid var(--line); }
        .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 8px; }
        .state { padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #263341; }
        .state.active { background: #1a3d26; color: #7ee2a0; }
        .state.potentially-failed { background: #3d3113; color: #f2cc60; }
        .state.inactive { background: #3d1d20; color: #ffb4ae; }
        .bar { display: inline-block; width: 120px; height: 8px; background: #263341; border-radius: 4px;
               vertical-align: middle; margin-left: 8px; overflow: hidden; }
        .bar span { display: block; height: 100%; }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px;
                  margin-top: 16px; }
        .chart { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
        .chart h2 { margin: 0 0 6px; font-size: 13px; font-weight: 600; color: var(--dim);
                    text-transform: uppercase; letter-spacing: 0.6px; }
        .chart canvas { width: 100%; height: 170px; display: block; }
        .chart.wide { grid-column: 1 / -1; }
        footer { color: var(--dim); font-size: 12px; padding: 0 24px 18px; }
        </style>
        </head>
        <body data-paths="0">
        <header><h1>agg</h1><span class="meta" id="role">connecting…</span><span class="meta" id="uptime"></span>
        </header>
        <div id="error"></div>
        <main>
        <section class="tiles">
          <div class="tile"><div class="label">Association</div><div class="value" id="assoc">–</div>
            <div class="sub" id="assoc-sub"></div></div>
          <div class="tile"><div class="label">Up (to the server)</div><div class="value" id="up">–</div>
            <div class="sub" id="up-sub"></div></div>
          <div class="tile"><div class="label">Down (to the client)</div><div class="value" id="down">–</div>
            <div class="sub" id="down-sub"></div></div>
          <div class="tile"><div class="label">Paths active</div><div class="value" id="active">–</div>
            <div class="sub" id="active-sub"></div></div>
          <div class="tile"><div class="label">Connections</div><div class="value" id="conns">–</div>
            <div class="sub" id="conns-sub"></div></div>
        </section>
        <table>
          <thead><tr><th>Path</th><th>State</th><th>RTT</th><th>cwnd</th><th>Up</th><th>Down</th><th>Loss</th>
            <th>Share</th><th>Bytes</th><th>Mode</th><th>Sent</th><th>Received</th></tr></thead>
          <tbody id="paths"></tbody>
        </table>
        <section class="charts">
          <div class="chart"><h2>Throughput up, per path (stacked)</h2><canvas id="chart-up"></canvas></div>
          <div class="chart"><h2>Throughput down, per path (stacked)</h2><canvas id="chart-down"></canvas></div>
          <div class="chart"><h2>Round-trip time</h2><canvas id="chart-rtt"></canvas></div>
          <div class="chart"><h2>Congestion window</h2><canvas id="chart-cwnd"></canvas></div>
          <div class="chart wide"><h2>Share of traffic</h2><canvas id="chart-share"></canvas></div>
        </section>
        </main>
        <footer>Refreshed every second from <code>/status.json</code>; Prometheus metrics at <code>/metrics</code>.
          <span id="updated"></span></footer>
        <script>
        "use strict";
        const COLORS = ["#58a6ff", "#f778ba", "#3fb950", "#d29922", "#a371f7", "#39c5cf", "#ff7b72", "#e3b341"];
        const colorOf = {};
        let nextColor = 0;
        function color(id) {
          if (!(id in colorOf)) { colorOf[id] = COLORS[nextColor % COLORS.length]; nextColor += 1; }
          return colorOf[id];
        }
        function el(tag, cls, text) {
          const node = document.createElement(tag);
          if (cls) node.className = cls;
          if (text !== undefined) node.textContent = String(text);
          return node;
        }
        function setText(id, text) { document.getElementById(id).textContent = String(text); }
        function fixed(value, digits) { return Number(value).toFixed(digits); }
        function rate(bytesPerSecond) {
          const bits = Math.max(bytesPerSecond, 0) * 8;
          if (bits < 1e3) return fixed(bits, 0) + " bit/s";
          if (bits < 1e6) return fixed(bits / 1e3, 0) + " kbit/s";
          if (bits < 1e9) return fixed(bits / 1e6, 1) + " Mbit/s";
          return fixed(bits / 1e9, 2) + " Gbit/s";
        }
        function bytes(count) {
          if (count < 1024) return fixed(count, 0) + " B";
          if (count < 1048576) return fixed(count / 1024, 1) + " KiB";
          if (count < 1073741824) return fixed(count / 1048576, 1) + " MiB";
          return fixed(count / 1073741824, 1) + " GiB";
        }
        function ms(value) {
          return value === null || value === undefined ? "–" : fixed(value, value < 10 ? 1 : 0) + " ms";
        }
        // "backup (standby), cap 20 Mbit/s": a path's policy; "active" for a daemon that does not say.
        function modeText(p) {
          let text = p.mode || "active";
          if (p.standby) text += " (standby)";
          if (p.rateLimitBitsPerSecond) text += ", cap " + fixed(p.rateLimitBitsPerSecond / 1e6, 1) + " Mbit/s";
          return text;
        }
        function pct(value) { return fixed(Math.min(Math.max(value, 0), 1) * 100, 1) + "%"; }
        function duration(seconds) {
          const s = Math.floor(seconds);
          if (s < 60) return s + "s";
          if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
          return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
        }
        // The client sends up and receives down; the server the other way round.
        function upDown(role, sendRate, receiveRate) {
          return role === "aggserver" ? [receiveRate, sendRate] : [sendRate, receiveRate];
        }
        function pathName(path, client, many) {
          const owner = many ? (client || "#" + path.association) + " " : "";
          const addresses = path.name === path.local ? path.remote : path.local + " → " + path.remote;
          return owner + path.name + " (" + addresses + ")";
        }

        // Draws series over a common time axis. series: [{id, color, values: [number|null]}]; times: seconds.
        // Returns how many points were plotted per series id.
        function drawChart(canvas, times, series, options) {
          const ratio = window.devicePixelRatio || 1;
          const width = canvas.clientWidth || 520, height = canvas.clientHeight || 170;
          canvas.width = Math.round(width * ratio);
          canvas.height = Math.round(height * ratio);
          const g = canvas.getContext("2d");
          g.setTransform(ratio, 0, 0, ratio, 0, 0);
          g.clearRect(0, 0, width, height);
          const left = 74, right = 10, top = 8, bottom = 22;
          const plotW = width - left - right, plotH = height - top - bottom;
          const counts = {};
          const now = times.length ? times[times.length - 1] : 0;
          const span = Math.min(Math.max(now - (times.length ? times[0] : 0), 60), 300);
          const x = t => left + plotW * (1 - (now - t) / span);
          // Stack: each series sits on the sum of the ones before it.
          const base = times.map(() => 0);
          const stacked = series.map(s => {
            const lower = base.slice();
            const upper = s.values.map((v, i) => {
              if (!options.stacked) return v;
              base[i] += v === null ? 0 : v;
              return base[i];
            });
            return { s: s, lower: lower, upper: upper };
          });
          let max = options.max || 0;
          if (!options.max) {
            for (const entry of stacked) for (const v of entry.upper) if (v !== null && v > max) max = v;
            max = niceCeiling(max * 1.1);
          }
          g.font = "11px system-ui, sans-serif";
          g.fillStyle = "#8b9bab";
          g.strokeStyle = "#263341";
          g.lineWidth = 1;
          for (let i = 0; i <= 4; i += 1) {
            const y = top + plotH * (1 - i / 4);
            g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + plotW, y + 0.5); g.stroke();
            g.textAlign = "right"; g.textBaseline = "middle";
            g.fillText(options.format(max * i / 4), left - 8, y);
          }
          g.textAlign = "center"; g.textBaseline = "top";
          const step = span > 120 ? 60 : 30;
          for (let ago = 0; ago <= span; ago += step) {
            const label = ago === 0 ? "now" : "-" + (ago >= 60 ? (ago / 60) + "m" : ago + "s");
            g.fillText(label, x(now - ago), top + plotH + 6);
          }
          const y = v => top + plotH * (1 - Math.min(v / (max || 1), 1));
          for (const entry of stacked) {
            const points = [];
            entry.upper.forEach((v, i) => {
              if (v !== null && entry.s.values[i] !== null && now - times[i] <= span) points.push(i);
            });
            counts[entry.s.id] = points.length;
            if (points.length === 0) continue;
            g.strokeStyle = entry.s.color;
            g.lineWidth = 1.6;
            if (options.stacked) {
              // One filled band per run of consecutive samples: a gap stays empty.
              const runs = [];
              points.forEach((i, k) => {
                if (k && i === points[k - 1] + 1) runs[runs.length - 1].push(i); else runs.push([i]);
              });
              g.globalAlpha = 0.35;
              g.fillStyle = entry.s.color;
              for (const run of runs) {
                g.beginPath();
                run.forEach((i, k) => {
                  if (k) g.lineTo(x(times[i]), y(entry.upper[i])); else g.moveTo(x(times[i]), y(entry.upper[i]));
                });
                for (let k = run.length - 1; k >= 0; k -= 1) g.lineTo(x(times[run[k]]), y(entry.lower[run[k]]));
                g.closePath();
                g.fill();
              }
              g.globalAlpha = 1;
            }
            g.beginPath();
            let drawing = false;
            entry.upper.forEach((v, i) => {
              if (v === null || entry.s.values[i] === null || now - times[i] > span) { drawing = false; return; }
              if (drawing) g.lineTo(x(times[i]), y(v)); else g.moveTo(x(times[i]), y(v));
              drawing = true;
            });
            g.stroke();
            if (points.length === 1) {
              const i = points[0];
              g.fillStyle = entry.s.color;
              g.beginPath(); g.arc(x(times[i]), y(entry.upper[i]), 2.5, 0, 2 * Math.PI); g.fill();
            }
          }
          canvas.setAttribute("data-points", String(Object.values(counts).reduce((a, b) => a + b, 0)));
          return counts;
        }
        function niceCeiling(value) {
          if (!(value > 0)) return 1;
          const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
          for (const m of [1, 2, 2.5, 5, 10]) if (m * magnitude >= value) return m * magnitude;
          return 10 * magnitude;
        }

        function render(status) {
          const paths = [];
          const clients = {};
          for (const a of status.associations) for (const p of a.paths) { paths.push(p); clients[p.id] = a.client; }
          const many = status.associations.length > 1;
          document.title = "agg status: " + status.role;
          setText("role", status.role + " " + status.version);
          setText("uptime", "watching for " + duration(status.uptime));
          if (status.associations.length === 0) {
            setText("assoc", "none");
            setText("assoc-sub", status.role === "aggclient" ? "reconnecting" : "no client connected");
          } else {
            const ready = status.associations.filter(a => a.state === "ready").length;
            setText("assoc", status.associations.length === 1 ? status.associations[0].state : ready + " ready");
            const streams = status.associations.reduce((n, a) => n + a.streams, 0);
            const buffered = status.associations.reduce((n, a) => n + a.bufferedBytes, 0);
            setText("assoc-sub", streams + " streams, " + bytes(buffered) + " buffered");
          }
          let up = 0, down = 0;
          for (const p of paths) {
            const [u, d] = upDown(status.role, p.sendRate, p.receiveRate);
            up += u; down += d;
          }
          setText("up", rate(up));
          setText("up-sub", bytes(status.counters.bytesUp) + " relayed");
          setText("down", rate(down));
          setText("down-sub", bytes(status.counters.bytesDown) + " relayed");
          setText("active", paths.filter(p => p.state === "active").length + " / " + paths.length);
          setText("active-sub", status.counters.datagramsSent + " datagrams sent");
          const outcomes = status.counters.connections;
          const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
          setText("conns", String(total));
          setText("conns-sub", (outcomes.success || 0) + " ok, " + (total - (outcomes.success || 0)) + " failed");

          // Series from the history, aligned on its sample times.
          const history = status.history;
          const times = history.map(s => s.uptime);
          const ids = paths.map(p => p.id);
          for (const s of history) for (const p of s.paths) if (!ids.includes(p.id)) ids.push(p.id);
          const byId = history.map(s => { const m = {}; for (const p of s.paths) m[p.id] = p; return m; });
          const series = pick => ids.map(id => ({
            id: id, color: color(id),
            values: byId.map(m => m[id] === undefined ? null : pick(m[id])),
          }));
          const upCounts = drawChart(document.getElementById("chart-up"), times,
            series(p => upDown(status.role, p.sendRate, p.receiveRate)[0]), { stacked: true, format: rate });
          drawChart(document.getElementById("chart-down"), times,
            series(p => upDown(status.role, p.sendRate, p.receiveRate)[1]), { stacked: true, format: rate });
          drawChart(document.getElementById("chart-rtt"), times,
            series(p => p.srttMilliseconds === undefined || p.srttMilliseconds === null ? null : p.srttMilliseconds),
            { stacked: false, format: v => fixed(v, v < 10 ? 1 : 0) + " ms" });
          drawChart(document.getElementById("chart-cwnd"), times, series(p => p.cwnd),
            { stacked: false, format: bytes });
          // A second without traffic has no shares: a gap, not a drop to zero.
          const shares = ids.map(id => ({
            id: id, color: color(id),
            values: byId.map(m => {
              const total = Object.values(m).reduce((sum, p) => sum + p.share, 0);
              return m[id] === undefined || total === 0 ? null : m[id].share;
            }),
          }));
          drawChart(document.getElementById("chart-share"), times, shares,
            { stacked: true, max: 1, format: v => fixed(v * 100, 0) + "%" });

          const body = document.getElementById("paths");
          body.replaceChildren();
          for (const p of paths) {
            const row = el("tr");
            row.setAttribute("data-path-id", p.id);
            row.setAttribute("data-path-points", String(upCounts[p.id] || 0));
            const busy = byId.filter(m => m[p.id] !== undefined && m[p.id].sendRate + m[p.id].receiveRate > 0);
            row.setAttribute("data-path-busy-points", String(busy.length));
            const name = el("td");
            const swatch = el("span", "swatch");
            swatch.style.background = color(p.id);
            name.append(swatch, document.createTextNode(pathName(p, clients[p.id], many)));
            name.title = "remote UDP port " + p.remotePort + ", PMTU " + p.pmtu;
            const state = el("td");
            state.append(el("span", "state " + p.state.replace(/[^a-z-]/g, ""), p.state));
            const [u, d] = upDown(status.role, p.sendRate, p.receiveRate);
            const share = el("td", "", pct(p.share));
            const bar = el("span", "bar");
            const fill = el("span");
            fill.style.width = (Math.min(Math.max(p.share, 0), 1) * 100).toFixed(1) + "%";
            fill.style.background = color(p.id);
            bar.append(fill);
            share.append(bar);
            row.append(name, state, el("td", "", ms(p.srttMilliseconds)), el("td", "", bytes(p.cwnd)),
              el("td", "", rate(u)), el("td", "", rate(d)), el("td", "", pct(p.lossRate)), share,
              el("td", "", bytes(p.totalBytes)), el("td", "", modeText(p)),
              el("td", "", p.totalBytesSent == null ? "–" : bytes(p.totalBytesSent)),
              el("td", "", p.totalBytesReceived == null ? "–" : bytes(p.totalBytesReceived)));
            body.append(row);
          }
          if (paths.length === 0) {
            const row = el("tr");
            const cell = el("td", "", "no paths");
            cell.colSpan = 12;
            row.append(cell);
            body.append(row);
          }
          document.body.setAttribute("data-paths", String(paths.length));
          setText("updated", "Last update: " + new Date().toLocaleTimeString() + ".");
        }

        let busy = false;
        async function refresh() {
          if (busy) return;
          busy = true;
          try {
            const response = await fetch("/status.json", { cache: "no-store" });
            if (!response.ok) throw new Error("HTTP " + response.status);
            render(await response.json());
            const banner = document.getElementById("error");
            banner.style.display = "none";
            banner.textContent = "";
          } catch (error) {
            const banner = document.getElementById("error");
            banner.textContent = "The daemon does not answer (" + error.message + "); retrying every second.";
            banner.style.display = "block";
          } finally {
            busy = false;
          }
        }
        refresh();
        setInterval(refresh, 1000);
        </script>
        </body>
        </html>
        """#
}
