// The graph and expression browser: the editor, a table view (instant query) and a graph view
// (range query drawn with uPlot, stacked or not, with a legend showing the values under the
// cursor). Everything that defines the view is in the URL.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { get } from './api.js';
import { html, setParams, parseDur, dur, fmtNum, ErrorBox } from './util.js';
import { Editor } from './editor.js';

const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '2d', '1w', '2w', '4w'];
const MAX_TABLE = 1000;
// Most series drawn; more are listed as cut off.
const MAX_SERIES = 1000;

function seriesName(metric) {
  const { __name__: name, ...rest } = metric || {};
  const ls = Object.entries(rest).map(([k, v]) => `${k}="${v}"`).join(', ');
  return (name || '') + (ls || !name ? `{${ls}}` : '');
}

function endOf(params) {
  const e = params.get('end');
  if (!e) return Date.now() / 1000;
  const t = Date.parse(e);
  return isNaN(t) ? (isFinite(Number(e)) ? Number(e) : Date.now() / 1000) : t / 1000;
}

// Parameters from the URL; Prometheus's `g0.expr` / `g0.tab` (generator URLs) are read too.
function view(params) {
  const tab = params.get('tab') || (params.get('g0.tab') === '1' ? 'table' : params.get('g0.tab') === '0' ? 'graph' : 'graph');
  return {
    expr: params.get('expr') ?? params.get('g0.expr') ?? '',
    tab,
    range: params.get('range') || params.get('g0.range_input') || '1h',
    end: params.get('end') || '',
    step: params.get('step') || '',
    stacked: params.get('stacked') === '1',
  };
}

export function GraphPage({ params }) {
  const v = view(params);
  const [draft, setDraft] = useState(v.expr);
  useEffect(() => setDraft(v.expr), [v.expr]);
  const run = () => setParams({ expr: draft, 'g0.expr': '', 'g0.tab': '', tab: v.tab }, true);
  const [result, setResult] = useState({ error: null, data: null, loading: false, stats: '' });
  const rangeMs = parseDur(v.range);
  const badRange = !(rangeMs > 0);
  const stepS = v.step ? parseDur(v.step) / 1000 : Math.max(1, Math.round(rangeMs / 1000 / 250));
  useEffect(() => {
    if (!v.expr.trim() || badRange) { setResult({ error: badRange ? new Error(`range: "${v.range}" is not a duration such as 1h`) : null, data: null, loading: false, stats: '' }); return; }
    const ctl = new AbortController();
    setResult((r) => ({ ...r, loading: true }));
    const t0 = performance.now();
    const end = endOf(params);
    const p = v.tab === 'table'
      ? get('/api/v1/query', { query: v.expr, time: end }, { signal: ctl.signal })
      : get('/api/v1/query_range', { query: v.expr, start: end - rangeMs / 1000, end, step: stepS }, { signal: ctl.signal });
    const grid = v.tab === 'table' ? null : { start: end - rangeMs / 1000, end, step: stepS };
    p.then((r) => setResult({ error: null, data: r.data, grid, warnings: r.warnings, loading: false, stats: `${Math.round(performance.now() - t0)} ms` }))
      .catch((e) => { if (e.name !== 'AbortError') setResult({ error: e, data: null, loading: false, stats: '' }); });
    return () => ctl.abort();
  }, [v.expr, v.tab, v.range, v.end, v.step]);

  const tabLink = (t, label) => html`<button class=${'tab' + (v.tab === t ? ' on' : '')} onClick=${() => setParams({ tab: t, 'g0.tab': '' }, true)}>${label}</button>`;
  const shift = (sign) => setParams({ end: new Date((endOf(params) + sign * rangeMs / 2000) * 1000).toISOString().replace(/\.\d+Z$/, 'Z') }, true);
  const isParse = result.error && /\d+:\d+: parse error/.test(result.error.message);
  return html`<section class="graph-page">
    <div class="toolbar editor-row">
      <${Editor} value=${draft} onChange=${setDraft} onRun=${run} error=${isParse ? result.error.message : null} />
      <button class="primary" id="run" onClick=${run}>Execute</button>
    </div>
    <div class="toolbar">
      ${tabLink('graph', 'Graph')}${tabLink('table', 'Table')}
      ${v.tab === 'graph' ? html`
        <button onClick=${() => setParams({ range: RANGES[Math.max(0, RANGES.indexOf(v.range) - 1)] || '1h' }, true)} title="zoom in">−</button>
        <input size="5" value=${v.range} onChange=${(e) => setParams({ range: e.target.value }, true)} list="ranges" aria-label="range" />
        <datalist id="ranges">${RANGES.map((r) => html`<option value=${r} />`)}</datalist>
        <button onClick=${() => setParams({ range: RANGES[Math.min(RANGES.length - 1, RANGES.indexOf(v.range) + 1)] || '1h' }, true)} title="zoom out">+</button>
        <button onClick=${() => shift(-1)} title="back">«</button>
        <input size="20" placeholder="end (now)" value=${v.end} onChange=${(e) => setParams({ end: e.target.value }, true)} aria-label="end time" />
        <button onClick=${() => shift(1)} title="forward">»</button>
        <input size="6" placeholder=${'step ' + dur(stepS * 1000)} value=${v.step} onChange=${(e) => setParams({ step: e.target.value }, true)} aria-label="step" />
        <label><input type="checkbox" checked=${v.stacked} onChange=${(e) => setParams({ stacked: e.target.checked ? '1' : '' }, true)} /> stacked</label>
      ` : html`<input size="20" placeholder="evaluation time (now)" value=${v.end} onChange=${(e) => setParams({ end: e.target.value }, true)} aria-label="evaluation time" />`}
      <span class="muted">${result.loading ? 'loading…' : result.stats}</span>
    </div>
    ${result.error && !isParse ? html`<${ErrorBox} error=${result.error} />` : null}
    ${(result.warnings || []).map((w) => html`<div class="warning">${w}</div>`)}
    ${result.data ? (v.tab === 'table' ? html`<${Table} data=${result.data} />` : html`<${Chart} data=${result.data} stacked=${v.stacked} grid=${result.grid} />`) : null}
  </section>`;
}

function Table({ data }) {
  const r = data.result;
  if (data.resultType === 'scalar' || data.resultType === 'string') return html`<table class="list"><tbody><tr><td>scalar</td><td>${r[1]}</td></tr></tbody></table>`;
  if (!r.length) return html`<p class="muted">Empty result.</p>`;
  return html`<table class="list" id="result-table"><thead><tr><th>series</th><th>value</th></tr></thead><tbody>
    ${r.slice(0, MAX_TABLE).map((s, i) => html`<tr key=${i}><td class="mono">${seriesName(s.metric)}</td><td class="mono">${s.value ? s.value[1] : (s.values || []).map((x) => x[1] + ' @' + x[0]).join('\n')}</td></tr>`)}
  </tbody></table>${r.length > MAX_TABLE ? html`<p class="warning">showing ${MAX_TABLE} of ${r.length} series</p>` : null}`;
}

// Hashes a series name to a stable colour.
function color(i) { return `hsl(${(i * 137.508) % 360},65%,45%)`; }

// A range result -> uPlot's columnar data: shared timestamps, one column per series (null where a
// series has no sample), summed down the columns when stacked. A range query's samples all sit
// on the grid start + k * step, so a sample's row is computed, not looked up.
export function toColumns(result, stacked, grid) {
  let xs;
  let row = null;
  if (grid && grid.step > 0) {
    const n = Math.floor((grid.end - grid.start) / grid.step + 1e-9) + 1;
    xs = new Float64Array(n);
    for (let i = 0; i < n; i++) xs[i] = grid.start + i * grid.step;
  } else {
    const ts = new Set();
    for (const s of result) for (const [t] of s.values || []) ts.add(t);
    xs = Float64Array.from(ts).sort();
    const index = new Map();
    xs.forEach((t, i) => index.set(t, i));
    row = (t) => index.get(t);
  }
  const cols = [xs];
  const acc = stacked ? new Float64Array(xs.length) : null;
  const n = xs.length;
  const start = grid ? grid.start : 0;
  const inv = grid && grid.step > 0 ? 1 / grid.step : 0;
  // Plain indexed loops: this runs once per sample (500 series x 1,000 points in the benchmark).
  // Each column is first a Float64Array (NaN = no sample): a plain array of numbers and nulls
  // boxes every value, which cost most of the draw time at 500 x 1,000. A column without gaps
  // goes to uPlot as it is; only one with gaps becomes an array with nulls (uPlot's gaps).
  for (let k = 0; k < result.length; k++) {
    const vals = result[k].values || [];
    const f = new Float64Array(n).fill(NaN);
    let filled = 0;
    for (let j = 0; j < vals.length; j++) {
      const pt = vals[j];
      const i = row ? row(pt[0]) : Math.round((pt[0] - start) * inv);
      if (i >= 0 && i < n) { f[i] = +pt[1]; filled++; }
    }
    if (acc) for (let i = 0; i < n; i++) { const v = f[i]; if (isFinite(v)) { acc[i] += v; f[i] = acc[i]; } }
    let gaps = filled < n;
    if (!gaps) for (let i = 0; i < n; i++) if (!isFinite(f[i])) { gaps = true; break; }
    if (!gaps) { cols.push(f); continue; }
    const col = new Array(n);
    for (let i = 0; i < n; i++) { const v = f[i]; col[i] = isFinite(v) ? v : null; }
    cols.push(col);
  }
  return cols;
}

function Chart({ data, stacked, grid }) {
  const box = useRef(null);
  const legend = useRef(null);
  const [drawMs, setDrawMs] = useState(null);
  const result = (data.result || []).slice(0, MAX_SERIES);
  useEffect(() => {
    if (data.resultType !== 'matrix' || !result.length) return;
    const t0 = performance.now();
    const cols = toColumns(result, stacked, grid);
    const t1 = performance.now();
    const names = result.map((s) => seriesName(s.metric));
    const many = result.length > 20;
    const opts = {
      width: box.current.clientWidth || 800,
      height: 360,
      series: [{}].concat(names.map((n, i) => ({ label: n, stroke: color(i), width: 1, fill: stacked ? color(i).replace('45%)', '45%,0.25)').replace('hsl', 'hsla') : undefined, spanGaps: false, points: { show: false } }))),
      axes: [{}, { size: 70, values: (u, vals) => vals.map(fmtNum) }],
      scales: { x: { time: true } },
      // The built-in legend is a table row per series; with many series only the hovered one is
      // shown, in the custom line under the chart.
      legend: { show: !many, live: true },
      cursor: { focus: { prox: 16 } },
      focus: { alpha: 0.3 },
      hooks: many ? {
        setSeries: [(u, i) => { if (legend.current && i != null) legend.current.dataset.series = i; }],
        setCursor: [(u) => {
          const i = Number(legend.current?.dataset.series || 0), idx = u.cursor.idx;
          if (!legend.current) return;
          legend.current.textContent = i > 0 && idx != null ? `${names[i - 1]}: ${fmtNum(u.data[i][idx])} @ ${new Date(u.data[0][idx] * 1000).toISOString()}` : `${names.length} series; hover a line for its value`;
        }],
      } : {},
    };
    const plot = new uPlot(opts, cols, box.current);
    const t2 = performance.now();
    window.__tocsinPlot = plot;
    // Where the time went, for bench/console: data reshaping, drawing, and until the next frame.
    window.__tocsinDrawParts = { columns: t1 - t0, plot: t2 - t1 };
    // The draw happened synchronously in the constructor; the next frame is when it is visible.
    requestAnimationFrame(() => { const ms = performance.now() - t0; setDrawMs(ms); window.__tocsinDrawMs = ms; });
    const ro = new ResizeObserver(() => plot.setSize({ width: box.current.clientWidth, height: 360 }));
    ro.observe(box.current);
    return () => { ro.disconnect(); plot.destroy(); };
  }, [data, stacked]);
  if (data.resultType !== 'matrix') return html`<p class="warning">The graph needs a range vector result; this is a ${data.resultType}. Use the table.</p>`;
  if (!result.length) return html`<p class="muted">Empty result.</p>`;
  return html`<div>
    <div ref=${box} class="chart" id="chart" data-series=${result.length}></div>
    <div ref=${legend} class="hover-legend mono"></div>
    <p class="muted">${result.length} series${data.result.length > MAX_SERIES ? ` (of ${data.result.length}; narrow the query)` : ''}${drawMs != null ? ` · drawn in ${Math.round(drawMs)} ms` : ''}</p>
  </div>`;
}
