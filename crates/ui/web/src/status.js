// Status pages: build and runtime information, flags, the loaded configuration, TSDB cardinality,
// and the heartbeats of external jobs.
import { get } from './api.js';
import { html, useFetch, setParams, ago, fmtTime, ErrorBox, graphHref } from './util.js';

function Stats({ title, rows, link }) {
  if (!rows || !rows.length) return null;
  return html`<div><h3>${title}</h3><table class="list"><tbody>${rows.map((r) => html`<tr key=${r.name}><td class="mono">${link ? html`<a href=${graphHref(link(r.name), 'table')}>${r.name}</a>` : r.name}</td><td class="num">${r.value}</td></tr>`)}</tbody></table></div>`;
}

export function StatusPage({ params }) {
  const tab = params.get('tab') || 'overview';
  const res = useFetch(async () => {
    if (tab === 'config') return { config: (await get('/api/v1/status/config')).data.yaml };
    if (tab === 'flags') return { flags: (await get('/api/v1/status/flags')).data };
    if (tab === 'tsdb') return { tsdb: (await get('/api/v1/status/tsdb', { limit: 20 })).data };
    const [b, r] = await Promise.all([get('/api/v1/status/buildinfo'), get('/api/v1/status/runtimeinfo')]);
    return { build: b.data, runtime: r.data };
  }, [tab]);
  const d = res.data || {};
  const t = (name, label) => html`<button class=${'tab' + (tab === name ? ' on' : '')} onClick=${() => setParams({ tab: name === 'overview' ? '' : name }, true)}>${label}</button>`;
  return html`<section>
    <div class="toolbar">${t('overview', 'build and runtime')}${t('tsdb', 'TSDB cardinality')}${t('flags', 'flags')}${t('config', 'configuration')}</div>
    <${ErrorBox} error=${res.error} />
    ${d.build ? html`<div class="cols"><div><h2>Build</h2><table class="kv"><tbody>${Object.entries(d.build).filter(([, v]) => v !== '').map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${String(v)}</td></tr>`)}</tbody></table></div>
      <div><h2>Runtime</h2><table class="kv"><tbody>${Object.entries(d.runtime).filter(([k]) => !k.startsWith('GO') && k !== 'goroutineCount').map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${k.endsWith('Time') ? fmtTime(v) + ' (' + ago(v) + ')' : String(v)}</td></tr>`)}</tbody></table></div></div>` : null}
    ${d.flags ? html`<table class="kv" id="flags"><tbody>${Object.entries(d.flags).map(([k, v]) => html`<tr key=${k}><th>${k}</th><td class="mono">${v}</td></tr>`)}</tbody></table>` : null}
    ${d.config !== undefined ? html`<pre class="config" id="config">${d.config}</pre>` : null}
    ${d.tsdb ? html`<div>
      <h2>Head</h2><table class="kv"><tbody>${Object.entries(d.tsdb.headStats || {}).map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${k.endsWith('Time') ? fmtTime(v) : v}</td></tr>`)}</tbody></table>
      <div class="cols">
        <${Stats} title="Top metric names (series)" rows=${d.tsdb.seriesCountByMetricName} link=${(n) => `count by (__name__) ({__name__="${n}"})`} />
        <${Stats} title="Label names (values)" rows=${d.tsdb.labelValueCountByLabelName} />
        <${Stats} title="Label pairs (series)" rows=${d.tsdb.seriesCountByLabelValuePair} />
        <${Stats} title="Label names (memory bytes)" rows=${d.tsdb.memoryInBytesByLabelName} />
        ${d.tsdb.seriesCreatedPerHour ? html`<${Stats} title="Series created per hour" rows=${d.tsdb.seriesCreatedPerHour.map((r) => ({ name: fmtTime(r.time || r.name), value: r.value ?? r.count }))} />` : null}
      </div></div>` : null}
  </section>`;
}

export function HeartbeatsPage() {
  const res = useFetch(() => get('/api/v1/heartbeats').then((r) => r.data), [], 5000);
  return html`<section>
    <${ErrorBox} error=${res.error} />
    ${res.data && !res.data.length ? html`<p class="muted">No heartbeats are configured (heartbeats: in the configuration).</p>` : null}
    <table class="list" id="heartbeats"><thead><tr><th>name</th><th>state</th><th>last ping</th><th>pings</th><th>timeout</th></tr></thead>
    <tbody>${(res.data || []).map((h) => html`<tr key=${h.name}><td>${h.name}</td><td><span class=${'badge ' + (h.late ? 'st-firing' : 'st-ok')}>${h.late ? 'late' : 'ok'}</span></td>
      <td title=${h.lastSeen || ''}>${h.lastSeen ? ago(h.lastSeen) : 'never'}</td><td class="num">${h.pings}</td><td>${h.timeoutSeconds != null ? h.timeoutSeconds + 's' : ''}</td></tr>`)}</tbody></table>
  </section>`;
}
