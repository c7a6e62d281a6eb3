// The alert console (the home page): the built-in alert manager's alerts, filtered, grouped,
// sorted by severity and age, with each alert's state at a glance, refreshed live.
import { useEffect, useRef } from 'preact/hooks';
import { get, prefix } from './api.js';
import { html, useFetch, setParams, href, ago, ErrorBox, parseMatchers, Pager } from './util.js';

const SEVERITY = { critical: 0, page: 0, emergency: 0, error: 1, major: 1, high: 1, warning: 2, minor: 2, medium: 2, info: 3, low: 3, none: 4 };
export const sevRank = (a) => SEVERITY[String(a.labels?.severity || '').toLowerCase()] ?? 3.5;
const PAGE = 200;

// The states of an alert, most important first: firing, acknowledged, shelved, silenced,
// inhibited, resolved.
export function states(a) {
  const out = [];
  const st = a.status || {};
  if (a.resolved) out.push('resolved');
  else if (st.state === 'unprocessed') out.push('pending');
  else out.push('firing');
  if (a.ack || a.state === 'acknowledged') out.push('acked');
  if (a.shelve || a.state === 'shelved') out.push('shelved');
  if ((st.silencedBy || []).length) out.push('silenced');
  if ((st.inhibitedBy || []).length) out.push('inhibited');
  return out;
}

export function Badges({ alert }) {
  return html`${states(alert).map((s) => html`<span key=${s} class=${'badge st-' + s}>${s}</span>`)}`;
}

const STATE_PARAM = { acked: 'acknowledged' };

// One page of the console list, filtered, grouped, sorted and counted by the server
// (`GET /api/v1/console/alerts`): 20,000 alerts never reach the browser at once.
async function loadPage({ filter, text, by, only, page }) {
  const r = await get('/api/v1/console/alerts', {
    filter: filter || undefined,
    q: text,
    // Shelved alerts are hidden except on their own tab.
    state: only ? STATE_PARAM[only] || only : 'firing,acknowledged,silenced,inhibited,resolved',
    group_by: by || undefined,
    resolved_within: '1h',
    limit: PAGE,
    offset: (page - 1) * PAGE,
    group_limit: 1000,
  });
  const d = r.data;
  for (const a of d.alerts) {
    a.resolved = a.state === 'resolved';
    a.status = { state: a.state, silencedBy: a.silencedBy || [], inhibitedBy: a.inhibitedBy || [] };
  }
  return d;
}

// Calls `onChange` (debounced) whenever the server reports an alert change over server-sent
// events; the browser's EventSource reconnects by itself.
function useAlertEvents(onChange) {
  const cb = useRef(onChange);
  cb.current = onChange;
  useEffect(() => {
    if (typeof EventSource === 'undefined') return undefined;
    let timer = null;
    const kick = () => { clearTimeout(timer); timer = setTimeout(() => cb.current(), 150); };
    const es = new EventSource(prefix + '/api/v1/events');
    es.addEventListener('alert', kick);
    es.addEventListener('reset', kick);
    // The first hello comes as the page loads its list anyway; a later one follows a reconnect,
    // after which changes may have been missed.
    let hellos = 0;
    es.addEventListener('hello', () => { if (hellos++ > 0) kick(); });
    return () => { clearTimeout(timer); es.close(); };
  }, []);
}

export function AlertConsole({ params }) {
  const filter = params.get('filter') || '';
  const text = params.get('q') || '';
  const by = params.get('group') ?? 'alertname';
  const only = params.get('state') || '';
  const page = Number(params.get('page') || 1);
  let ferr = null;
  try { parseMatchers(filter); } catch (e) { ferr = e; }
  // Live through the event stream; a slow poll as well, for times shown relative to now and in
  // case the stream is cut by a proxy.
  const res = useFetch(() => loadPage({ filter: ferr ? '' : filter, text, by, only, page }), [filter, text, by, only, page], 15000);
  useAlertEvents(() => res.reload());
  const d = res.data;
  const groups = new Map(((d && d.groups) || []).map((g) => [g.key, g]));
  const counts = (d && d.states) || {};
  const allCount = Object.entries(counts).filter(([k]) => k !== 'shelved').reduce((s, [, n]) => s + n, 0);
  const stateTab = (s, label) => html`<a class=${'tab' + (only === s ? ' on' : '')} href=${href('/', { ...Object.fromEntries(params), state: s, page: '' })}>${label} <b>${s ? counts[STATE_PARAM[s] || s] || 0 : allCount}</b></a>`;
  let last = null;
  return html`<section>
    <div class="toolbar">
      <input class="grow" placeholder='matchers, e.g. {severity="critical", job=~"api.*"}' value=${filter}
        onChange=${(e) => setParams({ filter: e.target.value, page: '' }, true)} aria-label="filter by matchers" />
      <input placeholder="search text" value=${text} onInput=${(e) => setParams({ q: e.target.value, page: '' })} aria-label="search text" />
      <label>group by <input list="groupings" size="12" value=${by} onChange=${(e) => setParams({ group: e.target.value, page: '' }, true)} aria-label="group by" /></label>
      <datalist id="groupings"><option value="alertname" /><option value="route" /><option value="job" /><option value="severity" /><option value="instance" /></datalist>
    </div>
    <div class="tabs">${stateTab('', 'all')}${stateTab('firing', 'firing')}${stateTab('acked', 'acknowledged')}${stateTab('shelved', 'shelved')}${stateTab('silenced', 'silenced')}${stateTab('inhibited', 'inhibited')}${stateTab('resolved', 'resolved (1h)')}</div>
    <${ErrorBox} error=${ferr || res.error} />
    ${res.loading && !d ? html`<p class="muted">loading…</p>` : null}
    ${d && !d.alerts.length ? html`<p class="muted">No alerts${filter || text || only ? ' match' : ''}.</p>` : null}
    <table class="list alerts" id="alert-list">
      <tbody>${(d ? d.alerts : []).map((a) => {
        const g = by && a.group !== undefined && a.group !== last ? groups.get(a.group) || { key: a.group, labels: {}, count: '' } : null;
        last = a.group;
        return html`
        ${g ? html`<tr class="group" key=${'g' + g.key}><td colspan="5">${Object.entries(g.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || g.key || '(no value)'} <span class="muted">${g.count}${g.receiver ? ' → ' + g.receiver : ''}</span></td></tr>` : null}
        <tr key=${a.fingerprint + (a.group || '')} class=${'sev' + Math.floor(sevRank(a)) + (a.resolved ? ' resolved' : '')} data-fingerprint=${a.fingerprint}>
          <td class="sevbar"></td>
          <td><a href=${href('/alerts/' + a.fingerprint)}>${a.labels?.alertname || '(no alertname)'}</a></td>
          <td class="nowrap"><${Badges} alert=${a} /></td>
          <td class="wide"><span class="summary">${a.annotations?.summary || a.annotations?.description || ''}</span>
            <span class="labels">${Object.entries(a.labels || {}).filter(([k]) => k !== 'alertname').map(([k, v]) => html`<a class="label" key=${k} title="filter on this" href=${href('/', { ...Object.fromEntries(params), filter: [filter.replace(/^\{|\}$/g, ''), `${k}=${JSON.stringify(v)}`].filter(Boolean).join(', '), page: '' })}><b>${k}</b>=${v}</a>`)}</span></td>
          <td class="nowrap muted" title=${a.startsAt}>${a.resolved ? 'resolved ' + ago(a.endsAt) : ago(a.startsAt)}</td>
        </tr>`;
      })}
      </tbody>
    </table>
    <${Pager} total=${d ? d.total : 0} page=${page} size=${PAGE} onPage=${(p) => setParams({ page: p }, true)} />
  </section>`;
}
