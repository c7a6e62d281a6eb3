// Targets: active targets by scrape pool with health, last scrape, duration and error; the
// labels before and after relabelling; dropped targets on their own tab, paged.
import { get } from './api.js';
import { html, useFetch, setParams, ago, ErrorBox, Labels, Pager } from './util.js';

const PAGE = 100;
// Most dropped targets fetched at once; a search narrows them.
const DROPPED_CAP = 2000;

export function TargetsPage({ params }) {
  const state = params.get('state') === 'dropped' ? 'dropped' : 'active';
  const pool = params.get('pool') || '';
  const text = params.get('q') || '';
  const health = params.get('health') || '';
  const page = Number(params.get('page') || 1);
  const open = params.get('open') || '';
  // Filtered and paged by the server: a fleet of 50,000 targets never reaches the browser whole.
  const res = useFetch(() => get('/api/v1/targets', state === 'active'
    ? { state, scrapePool: pool, q: text, health, limit: PAGE, offset: (page - 1) * PAGE }
    : { state, scrapePool: pool, q: text, droppedLimit: DROPPED_CAP }).then((r) => r.data), [state, pool, text, health, page], 10000);
  const poolsRes = useFetch(() => get('/api/v1/targets/pools').then((r) => r.data), [], 10000);
  const pools = (poolsRes.data || []).map((p) => [p.scrapePool, { up: p.up, total: p.active, dropped: p.dropped }]);
  const total = res.data ? (state === 'active' ? res.data.activeTotal : res.data.droppedTotal) ?? 0 : 0;
  const list = res.data ? (state === 'active' ? res.data.activeTargets || [] : res.data.droppedTargets || []) : [];
  const rows = state === 'active' ? list : list.slice((page - 1) * PAGE, page * PAGE);
  const shown = rows;
  return html`<section>
    <div class="toolbar">
      <button class=${'tab' + (state === 'active' ? ' on' : '')} onClick=${() => setParams({ state: '', page: '' }, true)}>active</button>
      <button class=${'tab' + (state === 'dropped' ? ' on' : '')} onClick=${() => setParams({ state: 'dropped', page: '' }, true)}>dropped by relabelling</button>
      <input placeholder="scrape pool" value=${pool} onChange=${(e) => setParams({ pool: e.target.value, page: '' }, true)} aria-label="scrape pool" />
      <input class="grow" placeholder="search URL, label value or error" value=${text} onInput=${(e) => setParams({ q: e.target.value, page: '' })} aria-label="search" />
      ${state === 'active' ? html`<select value=${health} onChange=${(e) => setParams({ health: e.target.value, page: '' }, true)} aria-label="health"><option value="">any health</option><option>up</option><option>down</option><option>unknown</option></select>` : null}
    </div>
    ${pools.length ? html`<div class="pools">${pools.map(([p, c]) => html`<a key=${p} title=${c.dropped + ' dropped'} class=${'pool' + (c.up < c.total ? ' degraded' : '')} href="#" onClick=${(e) => { e.preventDefault(); setParams({ pool: p === pool ? '' : p, page: '' }, true); }}>${p} <b>${c.up}/${c.total}</b></a>`)}</div>` : null}
    <${ErrorBox} error=${res.error} />
    ${res.loading && !res.data ? html`<p class="muted">loading…</p>` : null}
    <p class="muted">${total} ${state} targets${text || health || pool ? ' match' : ''}${state === 'dropped' && total > list.length ? ` (the first ${list.length} listed: search to narrow)` : ''}</p>
    <table class="list" id="targets">
      <thead>${state === 'active' ? html`<tr><th>endpoint</th><th>pool</th><th>health</th><th>labels</th><th>last scrape</th><th>duration</th><th>error</th></tr>` : html`<tr><th>discovered labels</th></tr>`}</thead>
      <tbody>${shown.map((x, i) => {
        const key = x.scrapeUrl || String(i);
        const isOpen = open === key;
        return state === 'active' ? html`
        <tr key=${key} class=${'h-' + x.health}>
          <td class="mono"><a href="#" onClick=${(e) => { e.preventDefault(); setParams({ open: isOpen ? '' : key }); }} title="labels before and after relabelling">${x.scrapeUrl}</a></td>
          <td>${x.scrapePool}</td>
          <td><span class=${'badge h-' + x.health}>${x.health}</span></td>
          <td><${Labels} labels=${x.labels} /></td>
          <td class="nowrap">${x.lastScrape && !x.lastScrape.startsWith('0001') ? ago(x.lastScrape) : 'never'}</td>
          <td class="nowrap">${x.lastScrapeDuration ? (x.lastScrapeDuration * 1000).toFixed(1) + ' ms' : ''}</td>
          <td class="err">${x.lastError}</td>
        </tr>
        ${isOpen ? html`<tr key=${key + '-open'}><td colspan="7"><div class="cols"><div><h3>before relabelling</h3><${Labels} labels=${x.discoveredLabels} /></div><div><h3>after</h3><${Labels} labels=${x.labels} /></div></div></td></tr>` : null}` :
        html`<tr key=${i}><td><${Labels} labels=${x.discoveredLabels} /></td></tr>`;
      })}</tbody>
    </table>
    <${Pager} total=${state === 'active' ? total : list.length} page=${page} size=${PAGE} onPage=${(p) => setParams({ page: p }, true)} />
  </section>`;
}
