// Shared pieces of the pages: the client-side router (paths under the route prefix, state in the
// query string so a URL can be shared and the back button works), time and number formatting, and
// the matcher syntax the filters and silences use.
import { h } from 'preact';
import { useEffect, useState, useRef } from 'preact/hooks';
import htm from 'htm';
import { prefix } from './api.js';

export const html = htm.bind(h);

const listeners = new Set();
export function currentPath() {
  const p = location.pathname;
  const rel = p.startsWith(prefix) ? p.slice(prefix.length) : p;
  return rel === '' ? '/' : rel;
}
function notify() { listeners.forEach((f) => f()); }
window.addEventListener('popstate', notify);

// Re-renders the caller whenever the location changes.
export function useLocation() {
  const [, set] = useState(0);
  useEffect(() => {
    const f = () => set((n) => n + 1);
    listeners.add(f);
    return () => listeners.delete(f);
  }, []);
  return { path: currentPath(), params: new URLSearchParams(location.search) };
}

export function href(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null)).toString() : '';
  return prefix + path + (q ? '?' + q : '');
}

export function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  notify();
}

// Changes some query parameters of the current URL; empty values are removed. `push` makes a
// history entry (a committed change, such as running a query); otherwise the entry is replaced.
export function setParams(changes, push = false) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === '' || v === null || v === undefined || v === false) q.delete(k); else q.set(k, String(v));
  }
  const s = q.toString();
  navigate(location.pathname + (s ? '?' + s : ''), !push);
}

// Links inside the app navigate without reloading.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(prefix + '/') && url.pathname !== prefix) return;
  const rel = url.pathname.slice(prefix.length);
  if (rel.startsWith('/api/') || rel.startsWith('/assets/') || rel === '/metrics' || rel === '/federate' || rel.startsWith('/-/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

// Runs `load` now and again `ms` after each load finishes (`ms` may be a function giving the next
// delay), while mounted; restarts when `deps` change. Loads never overlap.
// Returns { data, error, loading, reload }.
export function useFetch(load, deps, ms) {
  const [st, set] = useState({ data: null, error: null, loading: true });
  const gen = useRef(0);
  const run = async (my = gen.current) => {
    try {
      const data = await load();
      if (my === gen.current) set({ data, error: null, loading: false });
    } catch (e) {
      if (my === gen.current) set((s) => ({ data: s.data, error: e, loading: false }));
    }
  };
  useEffect(() => {
    const my = ++gen.current;
    let timer = null;
    const loop = async () => {
      await run(my);
      if (ms && my === gen.current) timer = setTimeout(loop, typeof ms === 'function' ? ms() : ms);
    };
    set((s) => ({ ...s, loading: true }));
    loop();
    return () => { gen.current++; clearTimeout(timer); };
  }, deps);
  return { ...st, reload: () => run(gen.current) };
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${String(error.message || error)}</div>`;
}

export function ago(t) {
  if (!t) return '';
  const ms = Date.now() - (typeof t === 'number' ? t : Date.parse(t));
  if (!isFinite(ms)) return '';
  return dur(Math.abs(ms)) + (ms < 0 ? ' from now' : ' ago');
}

export function dur(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm' + (s % 60 ? ' ' + (s % 60) + 's' : '');
  const hr = Math.floor(m / 60);
  if (hr < 48) return hr + 'h' + (m % 60 ? ' ' + (m % 60) + 'm' : '');
  return Math.floor(hr / 24) + 'd' + (hr % 24 ? ' ' + (hr % 24) + 'h' : '');
}

// "5m", "1h30m", "2d", "1w" -> milliseconds; NaN when not a duration.
export function parseDur(s) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;
  const unit = { ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8, y: 3.1536e10 };
  let total = 0, used = 0, m;
  const str = String(s || '').trim();
  while ((m = re.exec(str))) { total += parseFloat(m[1]) * unit[m[2]]; used += m[0].length; }
  return used === str.length && used > 0 ? total : NaN;
}

export function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtNum(v) {
  const n = Number(v);
  if (!isFinite(n)) return String(v);
  if (n !== 0 && (Math.abs(n) >= 1e6 || Math.abs(n) < 1e-3)) return n.toExponential(3);
  return String(Math.round(n * 1e4) / 1e4);
}

export function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
  return (n / (1 << 20)).toFixed(1) + ' MiB';
}

// `{a="b", c=~"d.*"}` or `a="b" c!="d"` -> [{name, value, isRegex, isEqual}]; throws with the
// position of what could not be read.
export function parseMatchers(text) {
  let s = String(text || '').trim();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  const out = [];
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,\s"]+)\s*,?/y;
  let i = 0;
  while (i < s.length) {
    if (/^\s*$/.test(s.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) throw new Error(`cannot read a matcher at "${s.slice(i, i + 20)}" (expected name="value", name!="value", name=~"regex" or name!~"regex")`);
    let v = m[3];
    if (v.startsWith('"')) v = JSON.parse(v);
    out.push({ name: m[1], value: v, isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!') });
    i = re.lastIndex;
  }
  return out;
}

export function matcherString(m) {
  const neg = m.isEqual === false;
  const op = m.isRegex ? (neg ? '!~' : '=~') : (neg ? '!=' : '=');
  return `${m.name}${op}${JSON.stringify(m.value)}`;
}

export function matches(labels, ms) {
  return ms.every((m) => {
    const v = labels[m.name] ?? '';
    let ok;
    if (m.isRegex) {
      try { ok = new RegExp('^(?:' + m.value + ')$').test(v); } catch { ok = false; }
    } else ok = v === m.value;
    return m.isEqual === false ? !ok : ok;
  });
}

export function Labels({ labels, skip }) {
  return html`<span class="labels">${Object.entries(labels || {}).filter(([k]) => !skip || !skip.includes(k)).map(([k, v]) => html`<span class="label" key=${k}><b>${k}</b>=${v}</span>`)}</span>`;
}

export function graphHref(expr, tab = 'graph') {
  return href('/graph', { expr, tab });
}

// Pages through `items` `size` at a time; the page number lives in the URL parameter `key`.
export function Pager({ total, page, size, onPage }) {
  const pages = Math.max(1, Math.ceil(total / size));
  if (pages <= 1) return null;
  return html`<div class="pager">
    <button disabled=${page <= 1} onClick=${() => onPage(page - 1)}>‹ prev</button>
    <span>page ${page} of ${pages} (${total} rows)</span>
    <button disabled=${page >= pages} onClick=${() => onPage(page + 1)}>next ›</button>
  </div>`;
}
