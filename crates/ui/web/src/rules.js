// Rules: every group with its last evaluation, and each rule's health, error, and the alerts it
// has pending or firing; each expression links to the graph page.
import { get } from './api.js';
import { html, useFetch, setParams, href, ago, ErrorBox, Labels, graphHref, fmtNum } from './util.js';

export function RulesPage({ params }) {
  const text = (params.get('q') || '').toLowerCase();
  const only = params.get('health') || '';
  const res = useFetch(() => get('/api/v1/rules').then((r) => r.data.groups || []), [], 10000);
  const groups = (res.data || []).map((g) => ({ ...g, rules: g.rules.filter((r) => (!only || r.health === only || r.state === only) && (!text || r.name.toLowerCase().includes(text) || (r.query || '').toLowerCase().includes(text))) })).filter((g) => g.rules.length);
  return html`<section>
    <div class="toolbar">
      <input class="grow" placeholder="search rule name or expression" value=${params.get('q') || ''} onInput=${(e) => setParams({ q: e.target.value })} aria-label="search" />
      <select value=${only} onChange=${(e) => setParams({ health: e.target.value }, true)} aria-label="state"><option value="">all</option><option value="err">errors</option><option value="firing">firing</option><option value="pending">pending</option><option value="inactive">inactive</option></select>
    </div>
    <${ErrorBox} error=${res.error} />
    ${res.data && !res.data.length ? html`<p class="muted">No rule groups are loaded (rule_files in the configuration).</p>` : null}
    ${groups.map((g) => html`<div class="group-box" key=${g.file + g.name}>
      <h2>${g.name} <span class="muted">${g.file} · every ${g.interval}s · evaluated ${ago(g.lastEvaluation)} in ${fmtNum(g.evaluationTime * 1000)} ms</span></h2>
      <table class="list rules"><tbody>${g.rules.map((r) => html`<tr key=${r.name + r.query} class=${'h-' + r.health}>
        <td class="nowrap"><b>${r.type === 'alerting' ? 'alert' : 'record'}</b> ${r.name}</td>
        <td class="mono wide"><a href=${graphHref(r.query)}>${r.query}</a>${r.duration ? html` <span class="muted">for ${r.duration}s</span>` : null}
          ${r.labels && Object.keys(r.labels).length ? html`<div><${Labels} labels=${r.labels} /></div>` : null}
          ${r.lastError ? html`<div class="err">${r.lastError}</div>` : null}
          ${(r.alerts || []).length ? html`<ul class="rule-alerts">${r.alerts.map((a, i) => html`<li key=${i}><span class=${'badge st-' + (a.state === 'firing' ? 'firing' : 'pending')}>${a.state}</span> <a href=${href('/', { filter: '{' + Object.entries(a.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') + '}' })}><${Labels} labels=${a.labels} skip=${['alertname']} /></a> since ${ago(a.activeAt)} value ${a.value}</li>`)}</ul>` : null}</td>
        <td class="nowrap">${r.type === 'alerting' ? html`<span class=${'badge st-' + (r.state === 'inactive' ? 'ok' : r.state)}>${r.state}</span>` : null} <span class=${'badge h-' + r.health}>${r.health}</span></td>
        <td class="nowrap muted">${ago(r.lastEvaluation)}</td>
      </tr>`)}</tbody></table></div>`)}
  </section>`;
}
