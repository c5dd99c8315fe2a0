/* The report's page: plots, the invalid-key timeline, the history table and the operation drawer, drawn from the
 * JSON payload in #report-data (see reports/payload.py for its shape). Data from the run is only ever put into the
 * page with textContent or as plotly data, never as HTML. Sets document.body.dataset.ready = "1" when done. */
(function () {
  'use strict';
  const tParse = performance.now();
  const D = JSON.parse(document.getElementById('report-data').textContent);
  const parseMs = Math.round(performance.now() - tParse);
  const O = D.ops;
  const N = O ? O.i.length : 0;
  const TYPES = ['ok', 'fail', 'info', 'pending'];
  const COLORS = { ok: '#2563eb', fail: '#dc2626', info: '#f59e0b', pending: '#7c3aed' };
  const PALETTE = ['#ef4444', '#8b5cf6', '#10b981', '#f97316', '#0ea5e9', '#ec4899', '#84cc16', '#64748b', '#eab308'];
  const ROLE_COLORS = { leader: '#1d4ed8', follower: '#93c5fd', candidate: '#f59e0b', 'pre-candidate': '#fcd34d',
    precandidate: '#fcd34d', unreachable: '#9ca3af', unknown: '#e5e7eb' };
  const served = location.protocol === 'http:' || location.protocol === 'https:';
  const END = D.end || 0;
  const nemP = O ? O.P.indexOf('nemesis') : -1;

  // ------------------------------------------------------------------------------------------------ helpers
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'cls') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'style') e.style.cssText = v;
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }
  const fmtInt = (n) => n.toLocaleString('en-US');
  const sec = (us) => us / 1e6;
  function fmtS(s) { return s === null || s === undefined ? '–' : (Math.abs(s) >= 100 ? s.toFixed(1) : s.toFixed(3)) + ' s'; }
  function fmtMs(ms) { return ms >= 1000 ? (ms / 1000).toFixed(2) + ' s' : ms >= 10 ? ms.toFixed(0) + ' ms' : ms.toFixed(2) + ' ms'; }
  function encPath(p) { return p.split('/').map(encodeURIComponent).join('/'); }
  function fileHref(path, line) {
    if (served) {
      const dir = location.pathname.replace(/[^/]*$/, '');
      return '/preview' + dir + encPath(path) + (line ? '?line=' + line + '#L' + line : '');
    }
    return encPath(path);
  }
  const timings = {};  // ms per part, for bench/report.py and curious readers (window.reportTimings)
  window.reportTimings = timings;
  function guard(name, fn) {
    const t0 = performance.now();
    try { fn(); } catch (err) {
      console.error('report: ' + name + ' failed', err);
      const box = document.getElementById(name);
      if (box) box.append(el('div', { cls: 'js-error', text: 'Drawing this part failed: ' + err }));
    }
    timings[name] = Math.round(performance.now() - t0);
  }
  const rowOf = new Map();  // invoke or completion index -> row
  for (let r = 0; r < N; r++) { rowOf.set(O.i[r], r); if (O.c[r] >= 0) rowOf.set(O.c[r], r); }
  const isClient = (r) => O.p[r] !== nemP;
  const typeOf = (r) => TYPES[O.y[r]];
  const lat = (r) => O.l[r] >= 0 ? O.l[r] : null;
  const kindColor = {};
  (D.faults || []).forEach((f) => { if (!(f.kind in kindColor)) kindColor[f.kind] = PALETTE[Object.keys(kindColor).length % PALETTE.length]; });
  function invLine(r) { return O.il ? O.il[r] : O.i[r] + 1; }
  function compLine(r) { return O.c[r] < 0 ? null : (O.cl ? O.cl[r] : O.c[r] + 1); }
  function describe(r) {
    const k = O.k[r] >= 0 ? ' ' + O.K[O.k[r]] : '';
    const a = O.a[r] ? ' ' + O.a[r] : '';
    const res = O.y[r] === 0 ? (O.r[r] ? ' → ' + O.r[r] : ' → ok') : ' → ' + typeOf(r) + (O.e[r] >= 0 ? ' ' + O.E[O.e[r]] : '');
    return O.F[O.f[r]] + k + a + res;
  }

  // ------------------------------------------------------------------------------------------------ summary tiles
  function tiles() {
    const box = document.getElementById('summary');
    const counts = [0, 0, 0, 0]; const keys = new Set(); const procs = new Set(); const oks = [];
    for (let r = 0; r < N; r++) {
      if (!isClient(r)) continue;
      counts[O.y[r]]++; if (O.k[r] >= 0) keys.add(O.k[r]); procs.add(O.p[r]);
      if (O.y[r] === 0) oks.push(O.l[r]);
    }
    oks.sort((a, b) => a - b);
    const q = (p) => oks.length ? fmtMs(oks[Math.min(oks.length - 1, Math.floor(p * oks.length))] / 1000) : '–';
    const total = counts.reduce((a, b) => a + b, 0);
    const pct = (n) => total ? ' · ' + (100 * n / total).toFixed(1) + ' %' : '';
    const items = [
      ['operations', fmtInt(total)], ['ok' + pct(counts[0]), fmtInt(counts[0])], ['fail' + pct(counts[1]), fmtInt(counts[1])],
      ['info' + pct(counts[2]), fmtInt(counts[2])], ['no completion' + pct(counts[3]), fmtInt(counts[3])], ['duration', fmtS(END)],
      ['ok per second', END > 0 ? (counts[0] / END).toFixed(1) : '–'], ['latency p50 (ok)', q(0.5)], ['latency p99 (ok)', q(0.99)],
      ['keys', fmtInt(keys.size)], ['client processes', fmtInt(procs.size)], ['fault intervals', fmtInt((D.faults || []).length)],
    ];
    for (const [k, v] of items) box.append(el('div', { cls: 'tile' }, el('div', { cls: 'v', text: v }), el('div', { cls: 'k', text: k })));
  }

  // ------------------------------------------------------------------------------------------------ plots
  const timePlots = [];
  function faultShapes() {
    return (D.faults || []).map((f) => ({
      type: 'rect', xref: 'x', yref: 'paper', x0: f.start, x1: f.stop === null ? END : Math.max(f.stop, f.start + END / 2000),
      y0: 0, y1: 1, fillcolor: kindColor[f.kind], opacity: 0.13, line: { width: 0 }, layer: 'below' }));
  }
  function baseLayout(height, ytitle, extra) {
    return Object.assign({
      height: height, margin: { l: 64, r: 16, t: 28, b: 28 }, hovermode: 'closest',
      xaxis: { range: [0, Math.max(END, 1e-3)], zeroline: false, showspikes: false, ticksuffix: ' s' },
      yaxis: { title: { text: ytitle, font: { size: 12 } }, zeroline: false },
      legend: { orientation: 'h', x: 0.4, xanchor: 'left', y: 1.02, yanchor: 'bottom', font: { size: 11 } },
      shapes: faultShapes(), paper_bgcolor: '#fff', plot_bgcolor: '#fff', font: { size: 11 },
    }, extra || {});
  }
  const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ['select2d', 'lasso2d'] };
  function newPlot(id, traces, layout) {
    const div = document.getElementById(id);
    // With responsive plots the container decides the size on every window resize: give it the height.
    div.style.height = layout.height + 'px';
    Plotly.newPlot(div, traces, layout, CONFIG);
    timePlots.push(div);
    return div;
  }
  let syncing = false;
  function syncX(src) {
    src.on('plotly_relayout', (ev) => {
      if (syncing) return;
      let upd = null;
      if (ev['xaxis.range[0]'] !== undefined) upd = { 'xaxis.range': [ev['xaxis.range[0]'], ev['xaxis.range[1]']] };
      else if (ev['xaxis.range']) upd = { 'xaxis.range': ev['xaxis.range'] };
      else if (ev['xaxis.autorange']) upd = { 'xaxis.range': [0, Math.max(END, 1e-3)] };
      if (!upd) return;
      syncing = true;
      Promise.all(timePlots.filter((d) => d !== src).map((d) => Plotly.relayout(d, upd))).finally(() => { syncing = false; });
    });
  }
  function zoomAll(a, b) {
    syncing = true;
    Promise.all(timePlots.map((d) => Plotly.relayout(d, { 'xaxis.range': [a, b] }))).finally(() => { syncing = false; });
  }

  function plotLatency() {
    const xs = [[], [], [], []], ys = [[], [], [], []], cd = [[], [], [], []];
    for (let r = 0; r < N; r++) {
      if (!isClient(r)) continue;
      const y = O.y[r]; const t = sec(O.t[r]);
      const l = O.l[r] >= 0 ? O.l[r] / 1000 : Math.max(END - t, 0) * 1000;
      xs[y].push(t); ys[y].push(Math.max(l, 0.001)); cd[y].push(r);
    }
    const traces = TYPES.map((ty, y) => ({
      type: 'scattergl', mode: 'markers', name: ty === 'pending' ? 'no completion' : ty, x: xs[y], y: ys[y], customdata: cd[y],
      marker: { color: COLORS[ty], size: N > 20000 ? 3 : 4, opacity: 0.65, symbol: ty === 'pending' ? 'triangle-up' : 'circle' },
      hovertemplate: 't=%{x:.4f} s<br>latency=%{y:.3f} ms<br>row %{customdata}<extra>' + ty + '</extra>',
    })).filter((t) => t.x.length);
    const div = newPlot('plot-latency', traces, baseLayout(380, 'latency (ms)', {
      yaxis: { type: 'log', dtick: 1, title: { text: 'latency (ms)', font: { size: 12 } } }, title: { text: 'Latency of every operation', font: { size: 13 }, x: 0.01 } }));
    div.on('plotly_click', (ev) => { const p = ev.points && ev.points[0]; if (p && p.customdata !== undefined) showOp(p.customdata); });
  }
  function plotFaults() {
    const fs = D.faults || [];
    const div = document.getElementById('plot-faults');
    if (!fs.length) { div.append(el('p', { cls: 'note', style: 'margin:8px 12px', text: 'No faults were injected (no nemesis events in the history).' })); return; }
    const kinds = Object.keys(kindColor);
    const traces = kinds.map((kind) => {
      const mine = fs.filter((f) => f.kind === kind);
      return {
        type: 'bar', orientation: 'h', name: kind, y: mine.map(() => kind), base: mine.map((f) => f.start),
        x: mine.map((f) => Math.max((f.stop === null ? END : f.stop) - f.start, END / 2000)),
        text: mine.map((f) => f.label + (f.stop === null ? ' (never healed)' : '')), textposition: 'inside', insidetextanchor: 'start',
        textfont: { color: '#fff', size: 11 }, marker: { color: kindColor[kind] }, width: 0.7,
        customdata: mine.map((f) => [f.label, f.details, f.stop === null ? 'never healed' : (f.stop - f.start).toFixed(2) + ' s']),
        hovertemplate: kind + ' on %{customdata[0]}<br>from %{base:.3f} s for %{customdata[2]}<br>%{customdata[1]}<extra></extra>',
      };
    });
    newPlot('plot-faults', traces, baseLayout(50 + 30 * kinds.length, 'faults', {
      showlegend: false, barmode: 'overlay', shapes: [], margin: { l: 64, r: 16, t: 8, b: 24 },
      yaxis: { type: 'category', automargin: true, autorange: 'reversed' } }));
  }
  function plotThroughput() {
    const T = D.throughput; if (!T) return;
    const traces = ['ok', 'fail', 'info'].map((k) => ({ type: 'scatter', mode: 'lines', name: k, x: T.t, y: T[k],
      line: { color: COLORS[k], width: 1.5, shape: 'hv' }, hovertemplate: '%{y:.1f} ' + k + '/s at %{x:.2f} s<extra></extra>' }));
    newPlot('plot-throughput', traces, baseLayout(230, 'ops / s', { title: { text: 'Throughput by outcome', font: { size: 13 }, x: 0.01 } }));
  }
  function plotQuantiles() {
    const Q = D.quantiles; if (!Q || !Q.p50.some((v) => v !== null)) return;
    const styles = { p50: ['#0f766e', 1.5], p95: ['#ca8a04', 1.2], p99: ['#ea580c', 1.2], max: ['#9f1239', 1] };
    const traces = Object.entries(styles).map(([k, [c, w]]) => ({ type: 'scatter', mode: Q.t.length > 150 ? 'lines' : 'lines+markers', name: k, x: Q.t, y: Q[k],
      marker: { size: 3 }, line: { color: c, width: w, shape: 'hv' }, connectgaps: false, hovertemplate: k + ' %{y:.2f} ms at %{x:.2f} s<extra></extra>' }));
    newPlot('plot-quantiles', traces, baseLayout(250, 'latency (ms)', { yaxis: { type: 'log', dtick: 1, title: { text: 'latency (ms)', font: { size: 12 } } },
      title: { text: 'Latency quantiles (ok operations)', font: { size: 13 }, x: 0.01 } }));
  }
  function plotAvailability() {
    const A = D.availability; if (!A || !A.ok.some((v) => v !== null)) return;
    const shapes = faultShapes();
    const ann = [];
    const R = D.recovery;
    const bound = R && R.bound_s !== null ? R.bound_s : null;
    for (const rc of D.recoveries || []) {
      const late = bound !== null && (rc.seconds === null || rc.seconds > bound);
      shapes.push({ type: 'line', xref: 'x', yref: 'paper', x0: rc.heal, x1: rc.heal, y0: 0, y1: 1, line: { color: '#334155', width: 1, dash: 'dot' } });
      ann.push({ x: rc.heal, y: 1.0, xref: 'x', yref: 'paper', yanchor: 'bottom', showarrow: false, font: { size: 10, color: late ? '#dc2626' : '#334155' },
        text: rc.seconds === null ? 'no ok after' : '+' + (rc.seconds < 1 ? (rc.seconds * 1000).toFixed(0) + ' ms' : rc.seconds.toFixed(2) + ' s') });
    }
    // The recovery checker's bound after each full heal: a band as long as the bound, red where a write or a read
    // missed it, grey where it could not be judged.
    for (const w of (R && bound !== null ? R.windows : [])) {
      const missed = w.write === 'missed' || w.read === 'missed';
      const judged = w.write !== 'unknown' || w.read !== 'unknown';
      const start = Math.min(w.write_clock === null ? w.heal : w.write_clock, w.read_clock === null ? w.heal : w.read_clock);
      shapes.push({ type: 'rect', xref: 'x', yref: 'paper', x0: w.heal, x1: start + bound, y0: 0, y1: 0.06, line: { width: 0 },
        fillcolor: missed ? 'rgba(220,38,38,0.55)' : judged ? 'rgba(16,185,129,0.35)' : 'rgba(148,163,184,0.35)' });
      if (missed) ann.push({ x: w.heal, y: 0.08, xref: 'x', yref: 'paper', xanchor: 'left', yanchor: 'bottom', showarrow: false,
        font: { size: 11, color: '#dc2626' }, text: 'missed the ' + bound + ' s bound: ' + ['write', 'read'].filter((k) => w[k] === 'missed').join(' and ') });
    }
    const traces = [{ type: 'scatter', mode: A.t.length > 150 ? 'lines' : 'lines+markers', name: 'availability', x: A.t, y: A.ok, customdata: A.invoked,
      marker: { size: 3 }, connectgaps: false, line: { color: '#0f766e', width: 1.5, shape: 'hv' },
      hovertemplate: '%{y:.1%} of %{customdata} invoked ops ok at %{x:.2f} s<extra></extra>' }];
    newPlot('plot-availability', traces, baseLayout(230, 'fraction ok', { shapes: shapes, annotations: ann, showlegend: false,
      yaxis: { range: [0, 1.05], tickformat: '.0%', title: { text: 'fraction ok', font: { size: 12 } } },
      title: { text: 'Availability and recovery after each heal', font: { size: 13 }, x: 0.01, y: 0.97 }, margin: { l: 64, r: 16, t: 40, b: 28 } }));
  }
  function plotCluster() {
    const C = D.cluster;
    if (!C) { document.getElementById('cluster-plots').replaceChildren(el('p', { cls: 'note', text: 'No cluster state was recorded (cluster.jsonl missing or empty).' })); return; }
    const roles = {};
    for (const [node, role, a, b] of C.roles) {
      const t = roles[role] || (roles[role] = { x: [], y: [] });
      t.x.push(a, b, null); t.y.push(node, node, null);
    }
    const rt = Object.entries(roles).map(([role, t]) => ({ type: 'scatter', mode: 'lines', name: role, x: t.x, y: t.y,
      line: { color: ROLE_COLORS[role] || '#a855f7', width: 14 }, hovertemplate: role + ' %{y} at %{x:.2f} s<extra></extra>' }));
    newPlot('plot-roles', rt, baseLayout(60 + 26 * C.nodes.length, 'role', { yaxis: { type: 'category', categoryorder: 'array',
      categoryarray: C.nodes.slice().reverse(), title: { text: 'role', font: { size: 12 } } },
      title: { text: 'Cluster state: role of each node', font: { size: 13 }, x: 0.01 } }));
    const step = (S, name) => Object.entries(S).map(([node, [x, y]], i) => ({ type: 'scatter', mode: 'lines', name: node, x: x, y: y,
      line: { shape: 'hv', width: 1.5, color: PALETTE[(i + 4) % PALETTE.length] }, hovertemplate: node + ' ' + name + ' %{y} at %{x:.2f} s<extra></extra>' }));
    newPlot('plot-term', step(C.term, 'term'), baseLayout(210, 'term', { title: { text: 'Term per node', font: { size: 13 }, x: 0.01 } }));
    newPlot('plot-commit', step(C.commit, 'commit'), baseLayout(210, 'commit index', { title: { text: 'Commit index per node', font: { size: 13 }, x: 0.01 } }));
  }
  // Node metrics of a --monitor run (reports/metrics.py): one plot per panel the DB named, a line per node (and
  // series), the node's colour as in the cluster plots; a failed scrape is a null point, i.e. a gap.
  function plotMetrics() {
    const M = D.metrics;
    const box = document.getElementById('node-metrics');
    if (!M) {
      box.append(el('p', { cls: 'note', text: 'Node metrics were not recorded during this run (harness run --monitor records them).' }));
      document.getElementById('node-metrics-caption').hidden = true;
      return;
    }
    if (!M.panels.length) box.append(el('p', { cls: 'note', text: 'metrics.jsonl holds ' + M.series + ' series, but the DB names no panels to plot.' }));
    const DASHES = ['solid', 'dot', 'dash', 'dashdot', 'longdash', 'longdashdot'];
    M.panels.forEach((P, k) => {
      const div = el('div', { cls: 'plot', id: 'plot-metric-' + k });
      box.append(div);
      const names = [...new Set(P.traces.map((t) => t.name))];
      const traces = P.traces.map((t) => {
        const i = Math.max(M.nodes.indexOf(t.node), 0);
        const label = t.node + (t.name ? ' ' + t.name : '');
        return { type: 'scatter', mode: 'lines', name: label, legendgroup: t.node, x: t.x, y: t.y, connectgaps: false,
          line: { width: 1.5, shape: P.show === 'value' ? 'hv' : 'linear', color: PALETTE[(i + 4) % PALETTE.length], dash: DASHES[names.indexOf(t.name) % DASHES.length] },
          hovertemplate: label + ' %{y:.4g} ' + P.unit + ' at %{x:.2f} s<extra></extra>' };
      });
      newPlot(div.id, traces, baseLayout(240, P.unit || P.show, { title: { text: P.title, font: { size: 13 }, x: 0.01 } }));
    });
    const failed = Object.entries(M.failures || {});
    if (failed.length) {
      const ul = el('ul', { cls: 'note' });
      for (const [node, fs] of failed) {
        const n = (M.scrapes[node] || {}).failed || fs.length;
        ul.append(el('li', { text: node + ': ' + n + ' failed scrape(s), the first at ' + fmtS(fs[0][0]) + ': ' + fs[0][1] }));
      }
      box.append(ul);
    }
  }
  function plots() {
    document.querySelectorAll('.width').forEach((e) => { e.textContent = D.width + ' s'; });
    const legend = document.getElementById('fault-legend');
    for (const [kind, c] of Object.entries(kindColor)) legend.append(el('span', null, el('span', { cls: 'swatch', style: 'background:' + c }), kind));
    if (!window.Plotly) { document.getElementById('plotly-missing').hidden = false; return; }
    if (!N) document.getElementById('plot-latency').append(el('p', { cls: 'note', style: 'margin:8px 12px', text: 'No operations in the history.' }));
    else guard('plot-latency', plotLatency);
    guard('plot-faults', plotFaults);
    guard('plot-throughput', plotThroughput);
    guard('plot-quantiles', plotQuantiles);
    guard('plot-availability', plotAvailability);
    guard('cluster-plots', plotCluster);
    guard('node-metrics', plotMetrics);
    for (const d of timePlots) syncX(d);
  }

  // ------------------------------------------------------------------------------------------------ fault table
  function faultTable() {
    const box = document.getElementById('fault-table');
    const fs = D.faults || [];
    if (!fs.length) { box.append(el('p', { cls: 'note', text: 'No faults.' })); return; }
    const rec = new Map((D.recoveries || []).map((r) => [r.kind + '@' + r.heal, r]));
    const head = el('tr', null, ...['fault', 'targets', 'from', 'to', 'lasted', 'first ok after heal', 'details', ''].map((h) => el('th', { text: h })));
    const rows = fs.map((f) => {
      const rc = f.stop === null ? null : rec.get(f.kind + '@' + f.stop);
      const after = f.stop === null ? 'never healed' : !rc ? '–' : rc.seconds === null ? 'none before the end' : fmtS(rc.seconds);
      const opLink = rc && rc.op !== null ? el('a', { href: '#h' + rc.op, text: ' (op ' + rc.op + ')' }) : null;
      const zoom = el('button', { type: 'button', text: 'zoom', onclick: () => { zoomAll(Math.max(0, f.start - 2), (f.stop === null ? END : f.stop) + 4); document.getElementById('plots').scrollIntoView(); } });
      return el('tr', { cls: 'fault-row' }, el('td', null, el('span', { cls: 'swatch', style: 'background:' + kindColor[f.kind] }), f.kind),
        el('td', { text: f.label }), el('td', { text: fmtS(f.start) }), el('td', { text: f.stop === null ? '–' : fmtS(f.stop) }),
        el('td', { text: f.stop === null ? '–' : fmtS(f.stop - f.start) }), el('td', null, after, opLink), el('td', { text: f.details }),
        el('td', null, timePlots.length ? zoom : null));
    });
    box.append(el('table', { cls: 'grid faults' }, head, ...rows));
  }

  // ------------------------------------------------------------------------------------------------ logs
  function lineAt(log, t) {
    const pts = log.points; if (!pts || !pts.length) return null;
    let lo = 0, hi = pts.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (pts[mid][0] < t) lo = mid + 1; else hi = mid; }
    return pts[Math.min(lo, pts.length - 1)][1];
  }
  function logLinks(t) {
    const out = el('ul', { cls: 'mono', style: 'padding-left:16px;margin:4px 0' });
    for (const log of D.logs || []) {
      const line = lineAt(log, t);
      if (line === null) continue;
      out.append(el('li', null, el('a', { href: fileHref(log.path, line), target: '_blank', text: log.path }),
        el('span', { cls: 'dim', text: ' ≈ line ' + line + (served ? '' : ' (open the file and go to that line)') })));
    }
    return out.childNodes.length ? out : el('p', { cls: 'note', text: 'No time-indexed logs (the logs carry no timestamps, or test.json has no start_wall).' });
  }
  function excerptFor(a, b) {
    const X = D.excerpts; if (!X || b < X.from || a > X.to) return null;
    const box = el('div');
    for (const [path, lines] of Object.entries(X.files)) {
      const sel = lines.filter((l) => l[1] >= a && l[1] <= b).slice(0, 60);
      if (!sel.length) continue;
      const pre = el('pre', { cls: 'loglines' });
      for (const [n, , text] of sel) pre.append(el('div', null, el('a', { cls: 'ln', href: fileHref(path, n), target: '_blank', text: String(n) }), text));
      box.append(el('div', { cls: 'mono', style: 'margin-top:6px', text: path }), pre);
    }
    return box.childNodes.length ? box : null;
  }

  // ------------------------------------------------------------------------------------------------ drawer
  function rawEvent(r, which) {
    const ev = { index: which === 'invoke' ? O.i[r] : O.c[r], process: O.P[O.p[r]], type: which === 'invoke' ? 'invoke' : typeOf(r), f: O.F[O.f[r]] };
    if (O.k[r] >= 0) ev.key = O.K[O.k[r]];
    const v = which === 'invoke' ? O.a[r] : (O.r[r] || (O.y[r] !== 0 ? O.a[r] : ''));
    if (v) ev.value = v;
    ev.t = which === 'invoke' ? sec(O.t[r]).toFixed(6) + ' s' : (sec(O.t[r] + O.l[r])).toFixed(6) + ' s';
    if (O.n[r] >= 0) ev.node = O.N[O.n[r]];
    if (which !== 'invoke' && O.e[r] >= 0) ev.error = O.E[O.e[r]];
    return Object.entries(ev).map(([k, v]) => k + ': ' + v).join('\n');
  }
  function showOp(r) {
    const body = document.getElementById('drawer-body');
    document.getElementById('drawer-title').textContent = 'op ' + O.i[r] + ' · process ' + O.P[O.p[r]] + ' · ' + typeOf(r);
    body.replaceChildren();
    const t = sec(O.t[r]); const l = lat(r);
    const il = invLine(r), cl = compLine(r);
    const hist = el('p', null, 'history.jsonl ',
      el('a', { href: fileHref('history.jsonl', il), target: '_blank', text: 'line ' + il }),
      cl ? ' and ' : ' (no completion)', cl ? el('a', { href: fileHref('history.jsonl', cl), target: '_blank', text: 'line ' + cl }) : null,
      ' · ', el('a', { href: '#h' + O.i[r], text: 'row in the history table' }));
    const cdesc = D.invalid && (D.invalid.descriptions || {})[O.i[r]];
    const stuck = D.invalid && (D.invalid.stuck || []).find((s) => s.op === O.i[r]);
    body.append(el('p', { cls: 'mono', text: describe(r) }),
      cdesc ? el('p', null, 'checker: ', el('span', { cls: 'mono', text: cdesc }), el('a', { href: '#invalid', text: ' (on the timeline)' })) : null,
      stuck ? el('p', { cls: 'mono', style: 'color:#b91c1c', text: 'cannot take effect from state ' + stuck.state_before }) : null,
      hist,
      el('p', null, 'invoked at ' + fmtS(t) + (l !== null ? ', took ' + fmtMs(l / 1000) : ', never completed')),
      el('h4', { text: 'invoke event' }), el('pre', { cls: 'loglines', text: rawEvent(r, 'invoke') }));
    if (O.c[r] >= 0) body.append(el('h4', { text: 'completion event' }), el('pre', { cls: 'loglines', text: rawEvent(r, 'completion') }));
    const a = t - 0.5, b = (l !== null ? t + l / 1e6 : t) + 0.5;
    body.append(el('h4', { text: 'node logs around ' + fmtS(t) }), logLinks(a));
    const ex = excerptFor(a, b);
    if (ex) body.append(el('h4', { text: 'log lines from ' + fmtS(a) + ' to ' + fmtS(b) }), ex);
    document.getElementById('drawer').hidden = false;
  }
  document.getElementById('drawer-close').addEventListener('click', () => { document.getElementById('drawer').hidden = true; });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') document.getElementById('drawer').hidden = true; });

  // ------------------------------------------------------------------------------------------------ history table
  const ROW_H = 24;
  const H = { rows: null, sel: -1 };
  const COLS = ['index', 'time', 'process', 'f', 'key', 'value', 'outcome', 'result / error', 'latency', 'node'];
  function historyTable() {
    const root = document.getElementById('history-root');
    if (!N) { root.append(el('p', { cls: 'note', text: 'The history is empty or missing.' })); return; }
    const fOpts = O.F.map((f, i) => el('option', { value: String(i), text: f }));
    const keyList = el('datalist', { id: 'keys' }, ...O.K.slice(0, 5000).map((k) => el('option', { value: k })));
    const inKey = el('input', { type: 'search', list: 'keys', placeholder: 'exact or part', id: 'flt-key' });
    const inProc = el('input', { type: 'search', placeholder: 'e.g. 3, 7 or nemesis', id: 'flt-proc' });
    const inType = el('select', { id: 'flt-type' }, el('option', { value: '', text: 'any' }), ...TYPES.map((t, i) => el('option', { value: String(i), text: t })));
    const inF = el('select', { id: 'flt-f' }, el('option', { value: '', text: 'any' }), ...fOpts);
    const inFrom = el('input', { type: 'number', step: 'any', placeholder: 's', id: 'flt-from', style: 'width:90px' });
    const inTo = el('input', { type: 'number', step: 'any', placeholder: 's', id: 'flt-to', style: 'width:90px' });
    const count = el('span', { cls: 'count' });
    const bInv = D.invalid && D.invalid.part !== null ? el('button', { type: 'button', text: 'key ' + D.invalid.part + ' only', onclick: () => { inKey.value = D.invalid.part; apply(); } }) : null;
    const bClear = el('button', { type: 'button', text: 'clear', onclick: () => { for (const i of [inKey, inProc, inFrom, inTo]) i.value = ''; inType.value = ''; inF.value = ''; apply(); } });
    const lab = (t, i) => el('label', null, t, i);
    root.append(el('div', { cls: 'filters' }, lab('key', inKey), keyList, lab('process', inProc), lab('outcome', inType), lab('f', inF),
      lab('from (s)', inFrom), lab('to (s)', inTo), bInv, bClear, count));
    const head = el('div', { cls: 'vt-head' }, ...COLS.map((c) => el('span', { text: c })));
    const spacer = el('div', { cls: 'vt-spacer' });
    const body = el('div', { cls: 'vt-body', id: 'history-body' }, spacer);
    root.append(el('div', { cls: 'vt' }, head, body));
    function apply() {
      const kq = inKey.value.trim();
      let keySet = null;
      if (kq) {
        const exact = O.K.indexOf(kq);
        keySet = new Set(exact >= 0 ? [exact] : O.K.map((k, i) => k.includes(kq) ? i : -1).filter((i) => i >= 0));
      }
      const pq = inProc.value.trim();
      const procSet = pq ? new Set(pq.split(/[\s,]+/).map((p) => O.P.indexOf(p)).filter((i) => i >= 0)) : null;
      const ty = inType.value === '' ? -1 : +inType.value;
      const ff = inF.value === '' ? -1 : +inF.value;
      const from = inFrom.value === '' ? -Infinity : +inFrom.value * 1e6;
      const to = inTo.value === '' ? Infinity : +inTo.value * 1e6;
      const out = new Int32Array(N); let n = 0;
      for (let r = 0; r < N; r++) {
        if (keySet && !keySet.has(O.k[r])) continue;
        if (procSet && !procSet.has(O.p[r])) continue;
        if (ty >= 0 && O.y[r] !== ty) continue;
        if (ff >= 0 && O.f[r] !== ff) continue;
        if (O.t[r] < from || O.t[r] > to) continue;
        out[n++] = r;
      }
      H.rows = out.subarray(0, n);
      count.textContent = fmtInt(n) + ' of ' + fmtInt(N) + ' operations';
      spacer.style.height = (n * ROW_H) + 'px';
      body.scrollTop = 0;
      draw();
    }
    let pending = false;
    function draw() {
      pending = false;
      const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - 5);
      const last = Math.min(H.rows.length, first + Math.ceil(body.clientHeight / ROW_H) + 12);
      const frag = document.createDocumentFragment();
      for (let j = first; j < last; j++) {
        const r = H.rows[j];
        const ty = typeOf(r);
        const resErr = O.y[r] === 0 ? O.r[r] : (O.e[r] >= 0 ? O.E[O.e[r]] : '') + (O.r[r] ? ' ' + O.r[r] : '');
        const row = el('div', { cls: 'vt-row' + (r === H.sel ? ' sel' : '') + (isClient(r) ? '' : ' nem'), style: 'top:' + (j * ROW_H) + 'px', 'data-row': String(r), id: 'row-' + O.i[r] },
          el('span', { text: String(O.i[r]) }), el('span', { text: sec(O.t[r]).toFixed(4) }), el('span', { text: O.P[O.p[r]] }),
          el('span', { text: O.F[O.f[r]] }), el('span', { text: O.k[r] >= 0 ? O.K[O.k[r]] : '' }), el('span', { text: O.a[r], title: O.a[r] }),
          el('span', { cls: 't-' + ty, text: ty }), el('span', { text: resErr, title: resErr }),
          el('span', { text: O.l[r] >= 0 ? fmtMs(O.l[r] / 1000) : '–' }), el('span', { text: O.n[r] >= 0 ? O.N[O.n[r]] : '' }));
        frag.append(row);
      }
      spacer.replaceChildren(frag);
    }
    body.addEventListener('scroll', () => { if (!pending) { pending = true; requestAnimationFrame(draw); } });
    spacer.addEventListener('click', (e) => { const row = e.target.closest('.vt-row'); if (row) { H.sel = +row.dataset.row; draw(); showOp(H.sel); } });
    for (const i of [inKey, inProc, inFrom, inTo]) i.addEventListener('input', debounce(apply, 150));
    for (const s of [inType, inF]) s.addEventListener('change', apply);
    H.apply = apply; H.draw = draw; H.body = body; H.clear = () => bClear.click();
    apply();
  }
  function debounce(fn, ms) { let t = 0; return () => { clearTimeout(t); t = setTimeout(fn, ms); }; }
  function jumpTo(index) {
    if (!H.rows) return;
    const r = rowOf.get(index);
    if (r === undefined) return;
    let j = H.rows.indexOf(r);
    if (j < 0) { H.clear(); j = H.rows.indexOf(r); }
    H.sel = r;
    document.getElementById('history').scrollIntoView();
    H.body.scrollTop = Math.max(0, j * ROW_H - H.body.clientHeight / 2);
    H.draw();
    showOp(r);
  }
  function onHash() {
    const m = /^#h(\d+)$/.exec(location.hash);
    if (m) jumpTo(+m[1]);
  }

  // ------------------------------------------------------------------------------------------------ invalid key timeline
  function timeline() {
    const inv = D.invalid; if (!inv) return;
    const sect = document.getElementById('invalid'); sect.hidden = false;
    const root = document.getElementById('timeline-root');
    const kid = !O ? -2 : inv.part === null ? -1 : O.K.indexOf(String(inv.part));
    const label = inv.part === null ? 'The history' : 'Key ' + inv.part;
    const rows = [];
    for (let r = 0; r < N; r++) if (O.k[r] === kid && isClient(r)) rows.push(r);
    const stuckIds = new Set((inv.stuck || []).map((s) => s.op));
    const st = (inv.stuck || [])[0];
    const callout = el('div', { cls: 'callout' },
      el('div', null, el('b', { text: label }), ' · checker ' + inv.checker + (inv.explanation ? ' · ' : ''), inv.explanation || ''));
    if (st) {
      const list = el('div', { style: 'margin-top:6px' }, (inv.stuck.length > 1 ? 'Operations that cannot take effect next' : 'First operation that cannot be linearized') + ': ');
      inv.stuck.slice(0, 6).forEach((s, i) => list.append(i ? ', ' : '', el('a', { href: '#h' + s.op, text: 'op ' + s.op }), s.description ? ' ' : '', el('span', { cls: 'state', text: s.description || '' })));
      if (inv.stuck.length > 6) list.append(' and ' + (inv.stuck.length - 6) + ' more');
      callout.append(list, el('div', null, 'Model state before it (after the longest linearizable prefix' +
        (inv.prefixes && inv.prefixes[0] ? ', ' + inv.prefixes[0].length + ' operations' : '') + '): ',
        el('span', { cls: 'state', text: st.state_before || 'unknown' }),
        inv.initial_state ? el('span', { cls: 'dim', text: ' · initial state ' + inv.initial_state }) : null));
    }
    root.append(callout);
    if (!rows.length) { root.append(el('p', { cls: 'note', text: 'The history has no operations on this key to draw.' })); return; }
    const prefixes = inv.prefixes && inv.prefixes.length ? inv.prefixes : [[]];
    let pi = 0;
    const procs = [...new Set(rows.map((r) => O.p[r]))].sort((a, b) => (+O.P[a]) - (+O.P[b]) || O.P[a].localeCompare(O.P[b]));
    const laneOf = new Map(procs.map((p, i) => [p, i]));
    const byCall = rows.slice().sort((a, b) => O.t[a] - O.t[b]);
    const endOf = (r) => O.l[r] >= 0 ? sec(O.t[r] + O.l[r]) : END;
    const stuckRow = st && rowOf.has(st.op) ? rowOf.get(st.op) : null;
    function around() {
      // About fifteen operations before the stuck one, up to its completion: wide enough to see what it
      // overlapped, narrow enough to read the labels.
      if (stuckRow === null) return [sec(O.t[byCall[0]]), endOf(byCall[byCall.length - 1])];
      const s = byCall.indexOf(stuckRow);
      const a = sec(O.t[byCall[Math.max(0, s - 15)]]);
      const sEnd = O.l[stuckRow] >= 0 ? endOf(stuckRow) : sec(O.t[stuckRow]) + 0.25 * (sec(O.t[stuckRow]) - a);
      const b = sEnd + 0.12 * (sEnd - a);
      const pad = (b - a) * 0.03 || 0.01;
      return [a - pad, b + pad];
    }
    let [wa, wb] = around();
    const allRange = [sec(O.t[byCall[0]]), rows.reduce((m, r) => Math.max(m, endOf(r)), -Infinity)];
    const sel = prefixes.length > 1 ? el('select', { onchange: (e) => { pi = +e.target.value; draw(); } },
      ...prefixes.map((p, i) => el('option', { value: String(i), text: 'prefix ' + (i + 1) + ' (' + p.length + ' ops)' }))) : null;
    const zoom = (f) => { const c = (wa + wb) / 2, h = (wb - wa) * f / 2; wa = c - h; wb = c + h; draw(); };
    const pan = (f) => { const d = (wb - wa) * f; wa += d; wb += d; draw(); };
    const info = el('span', { cls: 'dim' });
    root.append(el('div', { cls: 'tl-controls' },
      el('button', { type: 'button', text: 'around the failure', onclick: () => { [wa, wb] = around(); draw(); } }),
      el('button', { type: 'button', text: 'whole key', onclick: () => { [wa, wb] = allRange; draw(); } }),
      el('button', { type: 'button', text: 'zoom in', onclick: () => zoom(0.5) }), el('button', { type: 'button', text: 'zoom out', onclick: () => zoom(2) }),
      el('button', { type: 'button', text: '←', onclick: () => pan(-0.4) }), el('button', { type: 'button', text: '→', onclick: () => pan(0.4) }),
      sel, info,
      el('span', { cls: 'tl-legend' },
        el('span', null, el('span', { cls: 'swatch', style: 'background:#dcfce7;border:1px solid #22c55e' }), 'in the longest linearizable prefix (#order)'),
        el('span', null, el('span', { cls: 'swatch', style: 'background:#fee2e2;border:2px solid #b91c1c' }), 'cannot be linearized'),
        el('span', null, el('span', { cls: 'swatch', style: 'background:#e2e8f0;border:1px solid #94a3b8' }), 'other'),
        el('span', null, el('span', { cls: 'swatch', style: 'border:1px dashed #94a3b8' }), 'info / no completion'))));
    const tl = el('div', { cls: 'tl', id: 'timeline' });
    root.append(tl, el('p', { cls: 'caption', style: 'margin-left:0', text: 'One row per process, each operation drawn from its invoke to its completion on a time scale. The line joins the earliest instants at which the operations of the prefix can take effect, in their linearization order. Click an operation for its history lines and the node logs around it.' }));
    const tip = el('div', { cls: 'tl-tip', hidden: true }); document.body.append(tip);
    const LANE = 26;
    function draw() {
      const W = Math.max(200, tl.clientWidth - 92);
      const x = (t) => (t - wa) / (wb - wa) * W;
      const order = new Map((prefixes[pi] || []).map((id, i) => [id, i + 1]));
      tl.replaceChildren();
      const axis = el('div', { cls: 'tl-axis' });
      const span = wb - wa; const raw = span / 8; const mag = Math.pow(10, Math.floor(Math.log10(raw)));
      const stepT = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
      const ticks = [];
      for (let t = Math.ceil(wa / stepT) * stepT; t <= wb; t += stepT) ticks.push(t);
      const digits = Math.max(0, -Math.floor(Math.log10(stepT)));
      for (const t of ticks) axis.append(el('div', { cls: 'tl-tick', style: 'left:' + x(t) + 'px', text: t.toFixed(Math.min(6, digits)) + ' s' }));
      const visible = rows.filter((r) => endOf(r) >= wa && sec(O.t[r]) <= wb);
      const inView = new Set(visible.map((r) => O.p[r]));
      const lanesShown = procs.filter((p) => inView.has(p));
      laneOf.clear(); lanesShown.forEach((p, i) => laneOf.set(p, i));
      const height = Math.max(1, lanesShown.length) * LANE + 8;
      const lanes = el('div', { cls: 'tl-rows', style: 'height:' + height + 'px' });
      const track = el('div', { cls: 'tl-track', style: 'height:' + height + 'px' });
      for (const t of ticks) track.append(el('div', { cls: 'tl-grid', style: 'left:' + x(t) + 'px' }));
      lanesShown.forEach((p, i) => lanes.append(el('div', { cls: 'tl-label', style: 'top:' + (i * LANE + 4) + 'px', text: 'p ' + O.P[p] })));
      if (stuckRow !== null) track.append(el('div', { cls: 'tl-band', style: 'left:' + x(sec(O.t[stuckRow])) + 'px;width:' + Math.max(2, x(endOf(stuckRow)) - x(sec(O.t[stuckRow]))) + 'px' }));
      let shown = 0;
      if (visible.length > 4000) { info.textContent = visible.length + ' operations in view: zoom in to draw them'; }
      else {
        for (const r of visible) {
          const a = Math.max(-5, x(sec(O.t[r]))), b = Math.min(W + 5, x(endOf(r)));
          const ord = order.get(O.i[r]);
          const cls = 'tl-op' + (stuckIds.has(O.i[r]) ? ' stuck' : ord ? ' lin' : '') + (O.y[r] >= 2 ? ' open' : '') + (O.y[r] === 1 ? ' failed' : '');
          const label = (ord ? '#' + ord + ' ' : '') + ((inv.descriptions || {})[O.i[r]] || describe(r));
          // The stuck op is drawn wide enough to read even when it took a millisecond (the band shows its real span).
          const w = stuckIds.has(O.i[r]) ? Math.max(120, b - a) : Math.max(3, b - a);
          const op = el('div', { cls: cls, style: 'left:' + a + 'px;width:' + w + 'px;top:' + (laneOf.get(O.p[r]) * LANE + 3) + 'px', text: label, 'data-row': String(r), id: 'tl-' + O.i[r] });
          track.append(op); shown++;
        }
        info.textContent = shown + ' of ' + rows.length + ' operations on this key in view';
      }
      // The linearization path: each prefix op at the earliest instant >= the previous one inside its interval.
      const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      svg.setAttribute('class', 'tl-path'); svg.setAttribute('width', W); svg.setAttribute('height', height);
      let prev = -Infinity; const pts = [];
      for (const id of prefixes[pi] || []) {
        const r = rowOf.get(id); if (r === undefined) continue;
        const p = Math.min(Math.max(prev, sec(O.t[r])), endOf(r)); prev = p;
        if (laneOf.has(O.p[r])) pts.push([x(p), laneOf.get(O.p[r]) * LANE + 13]);
      }
      const vis = pts.filter(([px]) => px >= -50 && px <= W + 50);
      if (vis.length > 1) {
        const pl = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
        pl.setAttribute('points', pts.map((q) => q.join(',')).join(' '));
        pl.setAttribute('fill', 'none'); pl.setAttribute('stroke', '#16a34a'); pl.setAttribute('stroke-width', '1.5'); pl.setAttribute('opacity', '0.8');
        svg.append(pl);
      }
      for (const [px, py] of vis) {
        const c = document.createElementNS('http://www.w3.org/2000/svg', 'circle');
        c.setAttribute('cx', px); c.setAttribute('cy', py); c.setAttribute('r', '3'); c.setAttribute('fill', '#16a34a');
        svg.append(c);
      }
      tl.append(axis, lanes, svg, track);
      lanes.append(track); lanes.append(svg);
      svg.style.left = '90px';
    }
    tl.addEventListener('click', (e) => { const op = e.target.closest('.tl-op'); if (op) showOp(+op.dataset.row); });
    tl.addEventListener('mousemove', (e) => {
      const op = e.target.closest('.tl-op');
      if (!op) { tip.hidden = true; return; }
      const r = +op.dataset.row; const l = lat(r);
      const ord = (prefixes[pi] || []).indexOf(O.i[r]);
      const states = (inv.prefix_states || [])[pi] || [];
      const desc = (inv.descriptions || {})[O.i[r]];
      tip.textContent = 'op ' + O.i[r] + ' · process ' + O.P[O.p[r]] + '\n' + (desc ? desc + '\n' : '') + describe(r) + '\n' +
        fmtS(sec(O.t[r])) + (l !== null ? ' + ' + fmtMs(l / 1000) : ' (no completion)') +
        (ord >= 0 ? '\nlinearized #' + (ord + 1) + (states[ord] ? ', state after: ' + states[ord] : '') : '') +
        (stuckIds.has(O.i[r]) ? '\ncannot take effect from state ' + ((inv.stuck.find((s) => s.op === O.i[r]) || {}).state_before || '?') : '');
      tip.hidden = false; tip.style.left = Math.min(e.clientX + 12, innerWidth - 470) + 'px'; tip.style.top = (e.clientY + 14) + 'px';
    });
    tl.addEventListener('mouseleave', () => { tip.hidden = true; });
    addEventListener('resize', debounce(draw, 100));
    draw();
  }

  // ------------------------------------------------------------------------------------------------ files
  function files() {
    if (!served) return;
    const dir = location.pathname.replace(/\/[^/]*$/, '');
    document.getElementById('files').querySelector('h2').after(el('p', null,
      el('a', { href: '/zip' + dir, text: 'Download this run as a zip' }), ' (with plotly.js, so the report opens offline once unzipped)'));
    document.querySelectorAll('a.file').forEach((a) => {
      a.after(el('a', { cls: 'preview', href: fileHref(a.dataset.path), text: 'preview' }));
    });
  }

  guard('summary', tiles);
  guard('plots', plots);
  guard('fault-table', faultTable);
  guard('timeline-root', timeline);
  guard('history-root', historyTable);
  guard('files', files);
  addEventListener('hashchange', onHash);
  onHash();
  timings.parse = parseMs;
  document.body.dataset.ready = '1';
})();
