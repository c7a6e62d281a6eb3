// The alert console (the home page): the built-in alert manager's alerts, filtered, grouped,
// sorted by severity and age, with each alert's state at a glance, refreshed live.
import { useMemo, useRef } from 'preact/hooks';
import { get } from './api.js';
import { html, useFetch, setParams, href, ago, ErrorBox, parseMatchers, matcherString, matches, Pager } from './util.js';

const SEVERITY = { critical: 0, page: 0, emergency: 0, error: 1, major: 1, high: 1, warning: 2, minor: 2, medium: 2, info: 3, low: 3, none: 4 };
export const sevRank = (a) => SEVERITY[String(a.labels?.severity || '').toLowerCase()] ?? 3.5;
const PAGE = 200;
// Resolved alerts stay listed this long.
const RECENT_MS = 3600e3;

// The states of an alert, most important first: firing, acknowledged, shelved, silenced,
// inhibited, resolved.
export function states(a) {
  const out = [];
  const st = a.status || {};
  if (a.resolved) out.push('resolved');
  else if (st.state === 'unprocessed') out.push('pending');
  else out.push('firing');
  if (a.ack) out.push('acked');
  if (a.shelve) out.push('shelved');
  if ((st.silencedBy || []).length) out.push('silenced');
  if ((st.inhibitedBy || []).length) out.push('inhibited');
  return out;
}

export function Badges({ alert }) {
  return html`${states(alert).map((s) => html`<span key=${s} class=${'badge st-' + s}>${s}</span>`)}`;
}

function filterParams(matchers) {
  return { filter: matchers.map(matcherString), silenced: 'true', inhibited: 'true', active: 'true', unprocessed: 'true' };
}

async function loadAlerts(matchers, withResolved) {
  const t0 = performance.now();
  const [alerts, hist, marks] = await Promise.all([
    get('/api/v2/alerts', filterParams(matchers)),
    withResolved ? get('/api/v1/alerts/history', { filter: matchers.map(matcherString), start: Math.floor((Date.now() - RECENT_MS) / 1000), limit: 1000 }).catch(() => ({ data: [] })) : { data: [] },
    get('/api/v1/alerts/marks').then((r) => r.data).catch(() => ({ acks: {}, shelves: {} })),
  ]);
  for (const a of alerts) {
    a.ack = marks.acks[a.fingerprint] || null;
    a.shelve = marks.shelves[a.fingerprint] || null;
  }
  const active = new Set(alerts.map((a) => a.fingerprint));
  const resolved = [];
  const seen = new Set();
  for (const r of hist.data || []) {
    if (!r.endsAt || Date.parse(r.endsAt) > Date.now() || active.has(r.fingerprint) || seen.has(r.fingerprint)) continue;
    seen.add(r.fingerprint);
    resolved.push({ fingerprint: r.fingerprint, labels: r.labels, annotations: {}, startsAt: r.startsAt, endsAt: r.endsAt, status: { state: 'resolved' }, resolved: true });
  }
  return { alerts: alerts.concat(resolved), took: performance.now() - t0 };
}

function groupKey(a, by) {
  if (!by) return '';
  return by.split(',').map((l) => `${l}=${a.labels?.[l] ?? ''}`).join(', ');
}

export function AlertConsole({ params }) {
  const filter = params.get('filter') || '';
  const text = params.get('q') || '';
  const by = params.get('group') ?? 'alertname';
  const only = params.get('state') || '';
  const page = Number(params.get('page') || 1);
  let matchers = [], ferr = null;
  try { matchers = parseMatchers(filter); } catch (e) { ferr = e; }
  const took = useRef(0);
  const res = useFetch(async () => {
    const r = await loadAlerts(matchers, true);
    took.current = r.took;
    return r.alerts;
  }, [filter], () => Math.max(1000, Math.min(10000, took.current * 5)));
  // (Polling waits longer after a slow load, so a huge list never keeps the console busy.)

  const view = useMemo(() => {
    const all = res.data || [];
    const counts = { all: all.filter((a) => !a.shelve).length };
    for (const a of all) for (const s of states(a)) counts[s] = (counts[s] || 0) + 1;
    const t = text.toLowerCase();
    // Shelved alerts are hidden except on their own tab.
    let rows = all.filter((a) => (only ? states(a).includes(only) : !a.shelve) && (!t ||
      Object.entries(a.labels || {}).some(([k, v]) => (k + '=' + v).toLowerCase().includes(t)) ||
      Object.values(a.annotations || {}).some((v) => String(v).toLowerCase().includes(t))));
    const age = (a) => Date.parse(a.startsAt) || 0;
    rows.sort((x, y) => (x.resolved - y.resolved) || sevRank(x) - sevRank(y) || age(y) - age(x));
    const groups = new Map();
    for (const a of rows) {
      const k = groupKey(a, by);
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(a);
    }
    // Groups ordered by their most severe member, then size.
    const ordered = [...groups.entries()].sort((x, y) => sevRank(x[1][0]) - sevRank(y[1][0]) || y[1].length - x[1].length);
    const flat = [];
    for (const [k, list] of ordered) list.forEach((a, i) => flat.push({ a, group: i === 0 ? k : null, size: list.length }));
    return { counts, flat };
  }, [res.data, text, by, only]);

  const shown = view.flat.slice((page - 1) * PAGE, page * PAGE);
  const stateTab = (s, label) => html`<a class=${'tab' + (only === s ? ' on' : '')} href=${href('/', { ...Object.fromEntries(params), state: s, page: '' })}>${label} <b>${s ? view.counts[s] || 0 : view.counts.all}</b></a>`;
  return html`<section>
    <div class="toolbar">
      <input class="grow" placeholder='matchers, e.g. {severity="critical", job=~"api.*"}' value=${filter}
        onChange=${(e) => setParams({ filter: e.target.value, page: '' }, true)} aria-label="filter by matchers" />
      <input placeholder="search text" value=${text} onInput=${(e) => setParams({ q: e.target.value, page: '' })} aria-label="search text" />
      <label>group by <input list="groupings" size="12" value=${by} onChange=${(e) => setParams({ group: e.target.value, page: '' }, true)} aria-label="group by labels" /></label>
      <datalist id="groupings"><option value="alertname" /><option value="job" /><option value="severity" /><option value="instance" /><option value="" /></datalist>
    </div>
    <div class="tabs">${stateTab('', 'all')}${stateTab('firing', 'firing')}${stateTab('acked', 'acknowledged')}${stateTab('shelved', 'shelved')}${stateTab('silenced', 'silenced')}${stateTab('inhibited', 'inhibited')}${stateTab('resolved', 'resolved (1h)')}</div>
    <${ErrorBox} error=${ferr || res.error} />
    ${res.loading && !res.data ? html`<p class="muted">loading…</p>` : null}
    ${res.data && !view.flat.length ? html`<p class="muted">No alerts${filter || text || only ? ' match' : ''}.</p>` : null}
    <table class="list alerts" id="alert-list">
      <tbody>${shown.map(({ a, group, size }) => html`
        ${group !== null && by ? html`<tr class="group" key=${'g' + group}><td colspan="5">${group || '(no value)'} <span class="muted">${size}</span></td></tr>` : null}
        <tr key=${a.fingerprint} class=${'sev' + Math.floor(sevRank(a)) + (a.resolved ? ' resolved' : '')} data-fingerprint=${a.fingerprint}>
          <td class="sevbar"></td>
          <td><a href=${href('/alerts/' + a.fingerprint)}>${a.labels?.alertname || '(no alertname)'}</a></td>
          <td class="nowrap"><${Badges} alert=${a} /></td>
          <td class="wide"><span class="summary">${a.annotations?.summary || a.annotations?.description || ''}</span>
            <span class="labels">${Object.entries(a.labels || {}).filter(([k]) => k !== 'alertname').map(([k, v]) => html`<a class="label" key=${k} title="filter on this" href=${href('/', { ...Object.fromEntries(params), filter: [filter.replace(/^\{|\}$/g, ''), `${k}=${JSON.stringify(v)}`].filter(Boolean).join(', '), page: '' })}><b>${k}</b>=${v}</a>`)}</span></td>
          <td class="nowrap muted" title=${a.startsAt}>${a.resolved ? 'resolved ' + ago(a.endsAt) : ago(a.startsAt)}</td>
        </tr>`)}
      </tbody>
    </table>
    <${Pager} total=${view.flat.length} page=${page} size=${PAGE} onPage=${(p) => setParams({ page: p }, true)} />
  </section>`;
}
