// The PromQL editor: a textarea with completion of metric names, functions, label names and label
// values (fetched from the server, capped), and the position of a parse error marked under the
// line it is on.
import { useEffect, useRef, useState } from 'preact/hooks';
import { get } from './api.js';
import { html } from './util.js';

const FUNCTIONS = ('abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp floor histogram_quantile histogram_count histogram_sum holt_winters hour idelta increase irate label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month predict_linear present_over_time quantile_over_time rate resets round scalar sgn sort sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time time timestamp vector year ' +
  'sum avg min max count stddev stdvar topk bottomk quantile count_values group by without on ignoring group_left group_right offset bool and or unless').split(' ');
const LIMIT = 200;

let metricCache = null;
async function metricNames() {
  if (!metricCache) metricCache = get('/api/v1/label/__name__/values', { limit: 10000 }).then((r) => r.data || []).catch((e) => { metricCache = null; throw e; });
  return metricCache;
}

// What is being typed at `pos`: the word, where it starts, and whether it is a metric/function,
// a label name or a label value (with the label's name and the selector's metric).
export function context(text, pos) {
  const before = text.slice(0, pos);
  const open = before.lastIndexOf('{');
  const inBraces = open > before.lastIndexOf('}');
  const vm = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(before);
  if (inBraces && vm) {
    const metric = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, open));
    return { kind: 'value', word: vm[3], start: pos - vm[3].length, label: vm[1], metric: metric ? metric[1] : null };
  }
  const wm = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(before);
  const word = wm ? wm[0] : '';
  if (inBraces || /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before)) {
    const metric = inBraces ? /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, open)) : null;
    return { kind: 'label', word, start: pos - word.length, metric: metric ? metric[1] : null };
  }
  return { kind: 'metric', word, start: pos - word.length };
}

async function suggestions(ctx) {
  const w = ctx.word.toLowerCase();
  const pick = (list) => {
    const pre = [], sub = [];
    for (const x of list) {
      const l = x.toLowerCase();
      if (l.startsWith(w)) pre.push(x); else if (w && l.includes(w)) sub.push(x);
      if (pre.length >= 50) break;
    }
    return pre.concat(sub).slice(0, 50);
  };
  if (ctx.kind === 'metric') {
    if (!ctx.word) return [];
    return pick(FUNCTIONS.concat(await metricNames()));
  }
  const match = ctx.metric ? { 'match[]': ctx.metric } : {};
  if (ctx.kind === 'label') {
    const r = await get('/api/v1/labels', { ...match, limit: LIMIT });
    return pick((r.data || []).filter((l) => l !== '__name__'));
  }
  const r = await get('/api/v1/label/' + encodeURIComponent(ctx.label) + '/values', { ...match, limit: LIMIT });
  return pick(r.data || []);
}

// '... 1:9: parse error: ...' (the query API prefixes 'invalid parameter "query": ') -> {line, col}
export function errorPosition(msg) {
  const m = /(\d+):(\d+): parse error/.exec(msg || '');
  return m ? { line: Number(m[1]), col: Number(m[2]) } : null;
}

export function Editor({ value, onChange, onRun, error }) {
  const ref = useRef(null);
  const [sugg, setSugg] = useState({ items: [], sel: 0, ctx: null });
  const seq = useRef(0);
  const update = async (text, pos) => {
    const my = ++seq.current;
    const ctx = context(text, pos);
    try {
      const items = await suggestions(ctx);
      if (my === seq.current) setSugg({ items: items.filter((i) => i !== ctx.word), sel: 0, ctx });
    } catch { if (my === seq.current) setSugg({ items: [], sel: 0, ctx: null }); }
  };
  const accept = (item) => {
    const ta = ref.current;
    const { start, word } = sugg.ctx;
    const text = ta.value.slice(0, start) + item + ta.value.slice(start + word.length);
    onChange(text);
    setSugg({ items: [], sel: 0, ctx: null });
    requestAnimationFrame(() => { ta.focus(); ta.selectionStart = ta.selectionEnd = start + item.length; });
  };
  const key = (e) => {
    if (sugg.items.length) {
      if (e.key === 'ArrowDown') { e.preventDefault(); setSugg({ ...sugg, sel: (sugg.sel + 1) % sugg.items.length }); return; }
      if (e.key === 'ArrowUp') { e.preventDefault(); setSugg({ ...sugg, sel: (sugg.sel + sugg.items.length - 1) % sugg.items.length }); return; }
      if (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey)) { e.preventDefault(); accept(sugg.items[sugg.sel]); return; }
      if (e.key === 'Escape') { setSugg({ items: [], sel: 0, ctx: null }); return; }
    }
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); setSugg({ items: [], sel: 0, ctx: null }); onRun(); }
  };
  useEffect(() => { metricNames().catch(() => {}); }, []);
  const pos = errorPosition(error);
  const lines = value.split('\n');
  return html`<div class="editor">
    <textarea ref=${ref} id="expr" rows=${Math.min(8, Math.max(1, lines.length))} spellcheck="false" autocomplete="off"
      placeholder="PromQL expression (Enter runs, Shift+Enter for a new line)" value=${value}
      onInput=${(e) => { onChange(e.target.value); update(e.target.value, e.target.selectionStart); }}
      onKeyDown=${key} onBlur=${() => setTimeout(() => setSugg({ items: [], sel: 0, ctx: null }), 150)}
      class=${error ? 'bad' : ''} aria-label="expression"></textarea>
    ${sugg.items.length ? html`<ul class="completions" role="listbox">${sugg.items.map((s, i) => html`<li key=${s} class=${i === sugg.sel ? 'sel' : ''} onMouseDown=${(e) => { e.preventDefault(); accept(s); }}>${s}</li>`)}</ul>` : null}
    ${error ? html`<div class="error query-error" role="alert">${pos && lines[pos.line - 1] !== undefined ? html`<pre class="caret">${lines[pos.line - 1] + '\n' + ' '.repeat(Math.max(0, pos.col - 1)) + '^'}</pre>` : null}${error}</div>` : null}
  </div>`;
}
