// Remediation actions: the audit of executions (filtered), the approvals queue with approve and
// deny, dry-run results, and the policies with a tripped guard and its reset.
import { useState } from 'preact/hooks';
import { get, post } from './api.js';
import { html, useFetch, setParams, ago, fmtTime, ErrorBox, Labels } from './util.js';

export function ActionsPage({ params }) {
  const tab = params.get('tab') || 'queue';
  const policy = params.get('policy') || '';
  const [err, setErr] = useState(null);
  const [note, setNote] = useState('');
  const outcome = tab === 'queue' ? 'pending_approval' : tab === 'dry' ? 'dry_run' : params.get('outcome') || '';
  const list = useFetch(() => get('/api/v1/actions', { outcome, policy, limit: 500 }).then((r) => r.data), [outcome, policy], 5000);
  const policies = useFetch(() => get('/api/v1/actions/policies').then((r) => r.data), [], 10000);
  const act = async (path, role) => {
    setErr(null);
    try { await post(path, { comment: note }, role); setNote(''); list.reload(); policies.reload(); } catch (e) { setErr(e); }
  };
  const t = (name, label) => html`<button class=${'tab' + (tab === name ? ' on' : '')} onClick=${() => setParams({ tab: name === 'queue' ? '' : name }, true)}>${label}</button>`;
  const tripped = (policies.data || []).filter((p) => p.tripped);
  return html`<section>
    <div class="toolbar">${t('queue', 'approvals queue')}${t('audit', 'audit')}${t('dry', 'dry runs')}${t('policies', 'policies')}
      <input placeholder="policy" value=${policy} onChange=${(e) => setParams({ policy: e.target.value }, true)} aria-label="policy" />
      ${tab === 'audit' ? html`<input placeholder="outcome" value=${params.get('outcome') || ''} onChange=${(e) => setParams({ outcome: e.target.value }, true)} aria-label="outcome" />` : null}
      <input class="grow" placeholder="comment for approve / deny / reset" value=${note} onInput=${(e) => setNote(e.target.value)} aria-label="comment" />
    </div>
    <${ErrorBox} error=${err || list.error || policies.error} />
    ${tripped.length ? html`<div class="warning">Tripped: ${tripped.map((p) => html`<span key=${p.name}><b>${p.name}</b> (${p.tripped.guard || ''}: ${p.tripped.reason || ''}) <button onClick=${() => act(`/api/v1/actions/policies/${encodeURIComponent(p.name)}/reset`, 'admin')}>reset</button> </span>`)}</div>` : null}
    ${tab === 'policies' ? html`<table class="list" id="policies"><thead><tr><th>policy</th><th>kind</th><th>mode</th><th>state</th><th>guards</th><th></th></tr></thead><tbody>
      ${(policies.data || []).map((p) => html`<tr key=${p.name}><td>${p.name}</td><td>${p.kind}</td><td>${p.mode}</td>
        <td>${p.tripped ? html`<span class="badge st-firing">tripped</span> ${p.tripped.reason || ''} since ${ago(p.tripped.since)}` : html`<span class="badge st-ok">ok</span>`}</td>
        <td class="mono small">${p.counters ? Object.entries(p.counters).map(([k, v]) => `${k}=${v}`).join(' ') : ''}${p.pending_approvals ? ` · ${p.pending_approvals} waiting` : ''}</td>
        <td>${p.tripped ? html`<button onClick=${() => act(`/api/v1/actions/policies/${encodeURIComponent(p.name)}/reset`, 'admin')}>reset</button>` : null}</td></tr>`)}
    </tbody></table>` : html`<table class="list" id="actions"><thead><tr><th>id</th><th>created</th><th>policy</th><th>target</th><th>outcome</th><th>alert</th><th>detail</th><th></th></tr></thead><tbody>
      ${(list.data || []).map((x) => html`<tr key=${x.id}><td>${x.id}</td><td class="nowrap" title=${fmtTime(x.created_at)}>${ago(x.created_at)}</td><td>${x.policy}</td><td class="mono">${x.target}</td>
        <td><span class=${'badge out-' + x.outcome}>${x.outcome}</span>${x.decided_by ? html` by ${x.decided_by}` : null}</td>
        <td><${Labels} labels=${x.labels} /></td><td class="small">${x.mode === 'dry_run' ? 'dry run: ' : ''}${x.status ? `HTTP ${x.status} ` : ''}${x.detail || ''}${x.request ? html`<pre class="small">${typeof x.request === 'string' ? x.request : JSON.stringify(x.request, null, 1)}</pre>` : null}</td>
        <td class="nowrap">${x.outcome === 'pending_approval' ? html`<button class="primary" onClick=${() => act(`/api/v1/actions/${x.id}/approve`, 'admin')}>approve</button> <button onClick=${() => act(`/api/v1/actions/${x.id}/deny`, 'admin')}>deny</button>` : null}</td></tr>`)}
    </tbody></table>`}
    ${list.data && !list.data.length && tab !== 'policies' ? html`<p class="muted">${tab === 'queue' ? 'Nothing waits for approval.' : 'No executions.'}</p>` : null}
  </section>`;
}
