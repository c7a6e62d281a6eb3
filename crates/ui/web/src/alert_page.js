// One alert: labels, annotations (links made clickable), the silences and inhibitions that apply,
// its timeline, and the acknowledge / shelve / note controls.
import { useState } from 'preact/hooks';
import { get, post } from './api.js';
import { html, useFetch, href, ago, fmtTime, ErrorBox, matcherString, graphHref } from './util.js';
import { Badges } from './alerts.js';

const isUrl = (v) => /^https?:\/\//.test(String(v));

// A generator URL pointing at a /graph?g0.expr=... page (ours or Prometheus's) becomes a link to
// this console's graph page.
export function exprOf(url) {
  try {
    const u = new URL(url, location.href);
    return u.searchParams.get('g0.expr') || u.searchParams.get('expr');
  } catch { return null; }
}

async function loadAlert(fp) {
  // The alert with its acknowledgement, shelf and notes; 404 once it has left the alert manager.
  let alert = await get('/api/v1/alerts/' + fp).then((r) => r.data).catch((e) => (e.status === 404 ? null : Promise.reject(e)));
  if (alert) {
    alert.resolved = alert.state === 'resolved';
    alert.status = { state: alert.status, silencedBy: alert.silencedBy || [], inhibitedBy: alert.inhibitedBy || [] };
  }
  let hist = [];
  const byFp = await get('/api/v1/alerts/history', { limit: 200, ...(alert ? { filter: Object.entries(alert.labels).map(([name, value]) => matcherString({ name, value })) } : {}) }).catch(() => ({ data: [] }));
  hist = (byFp.data || []).filter((r) => r.fingerprint === fp);
  if (!alert && hist.length) alert = { fingerprint: fp, labels: hist[0].labels, annotations: {}, startsAt: hist[0].startsAt, endsAt: hist[0].endsAt, status: { state: 'resolved' }, resolved: true };
  const timeline = alert ? (await get(`/api/v1/alerts/${fp}/timeline`, { limit: 500 })).data : null;
  const silences = await Promise.all(((alert && alert.status && alert.status.silencedBy) || []).map((id) => get('/api/v2/silence/' + id).catch(() => ({ id }))));
  return { alert, hist, timeline, silences };
}

function Timeline({ hist, timeline }) {
  let events = [];
  if (Array.isArray(timeline)) {
    events = timeline.map((e) => ({
      at: e.at, kind: e.type, who: e.by,
      text: [e.comment, e.text, e.reason, e.receiver && `${e.receiver}${e.integration ? '/' + e.integration : ''}`, e.policy && `policy ${e.policy}`, e.event, e.status, e.outcome, e.error,
        e.expires && `expires ${fmtTime(e.expires)}`, e.until && `until ${fmtTime(e.until)}`, e.action && `action #${e.action}`].filter(Boolean).join(' · '),
    }));
  } else {
    for (const r of hist) {
      events.push({ at: r.startsAt, kind: 'firing', text: '' });
      if (r.endsAt) events.push({ at: r.endsAt, kind: 'resolved', text: '' });
    }
  }
  events.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  if (!events.length) return html`<p class="muted">No events recorded.</p>`;
  return html`<table class="list" id="timeline"><tbody>${events.map((e, i) => html`<tr key=${i}>
    <td class="nowrap" title=${e.at}>${fmtTime(e.at)}</td><td><span class=${'badge ev-' + e.kind}>${e.kind}</span></td>
    <td>${e.who ? html`<b>${e.who}</b> ` : null}${e.text}</td></tr>`)}</tbody></table>`;
}

function Controls({ fp, onDone, alert }) {
  const [comment, setComment] = useState('');
  const [duration, setDuration] = useState('');
  const [msg, setMsg] = useState(null);
  const [err, setErr] = useState(null);
  const act = async (what, body) => {
    setErr(null); setMsg(null);
    try {
      await post(`/api/v1/alerts/${fp}/${what}`, body, 'alert');
      setMsg(`${what}: done`);
      setComment('');
      onDone();
    } catch (e) { setErr(e); }
  };
  const acked = alert.ack;
  const shelved = alert.shelve;
  return html`<div class="controls">
    <input class="grow" placeholder="comment or note" value=${comment} onInput=${(e) => setComment(e.target.value)} aria-label="comment" />
    <input size="8" placeholder="duration" value=${duration} onInput=${(e) => setDuration(e.target.value)} aria-label="duration" title="how long a shelf lasts (default 1h), or an acknowledgement (default: until the alert resolves)" />
    ${acked ? html`<button onClick=${() => act('unack', {})}>unack</button>` : html`<button class="primary" id="ack" onClick=${() => act('ack', { comment, ...(duration ? { expires: duration } : {}) })}>acknowledge</button>`}
    ${shelved ? html`<button onClick=${() => act('unshelve', {})}>unshelve</button>` : html`<button onClick=${() => act('shelve', { comment, duration: duration || '1h' })}>shelve</button>`}
    <button disabled=${!comment} onClick=${() => act('note', { text: comment })}>add note</button>
    <a class="button" href=${href('/silences/new', { matchers: '{' + Object.entries(alert.labels).map(([name, value]) => matcherString({ name, value })).join(', ') + '}' })}>silence…</a>
    ${msg ? html`<span class="ok">${msg}</span>` : null}
    <${ErrorBox} error=${err} />
  </div>`;
}

export function AlertPage({ fp }) {
  const res = useFetch(() => loadAlert(fp), [fp], 5000);
  if (res.error && !res.data) return html`<${ErrorBox} error=${res.error} />`;
  if (!res.data) return html`<p class="muted">loading…</p>`;
  const { alert, hist, timeline, silences } = res.data;
  if (!alert) return html`<div class="error">No alert with fingerprint ${fp} is active or in the history.</div>`;
  const expr = exprOf(alert.generatorURL);
  const inhibitedBy = (alert.status && alert.status.inhibitedBy) || [];
  return html`<section class="alert-page">
    <h1>${alert.labels.alertname || fp} <${Badges} alert=${alert} /></h1>
    ${alert.ack ? html`<p class="marks">acknowledged by <b>${alert.ack.by}</b> ${ago(alert.ack.at)}${alert.ack.comment ? ': ' + alert.ack.comment : ''}${alert.ack.expires ? ' · until ' + fmtTime(alert.ack.expires) : ''}</p>` : null}
    ${alert.shelve ? html`<p class="marks">shelved by <b>${alert.shelve.by}</b> until ${fmtTime(alert.shelve.until)}${alert.shelve.comment ? ': ' + alert.shelve.comment : ''}</p>` : null}
    <p class="muted">fingerprint ${fp} · since ${fmtTime(alert.startsAt)} (${ago(alert.startsAt)})${alert.resolved ? ' · resolved ' + ago(alert.endsAt) : ''}
      ${alert.receivers ? ' · receivers: ' + alert.receivers.map((r) => r.name || r).join(', ') : ''}</p>
    <${ErrorBox} error=${res.error} />
    ${alert.resolved ? null : html`<${Controls} fp=${fp} alert=${alert} onDone=${res.reload} />`}
    <div class="cols">
      <div><h2>Labels</h2><table class="kv"><tbody>${Object.entries(alert.labels).map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${v}</td></tr>`)}</tbody></table></div>
      <div><h2>Annotations</h2><table class="kv"><tbody>${Object.entries(alert.annotations || {}).map(([k, v]) => html`<tr key=${k}><th>${k}</th><td>${isUrl(v) ? html`<a href=${v} target="_blank" rel="noopener">${v}</a>` : v}</td></tr>`)}
        ${alert.generatorURL ? html`<tr><th>generator</th><td>${expr ? html`<a href=${graphHref(expr)}>${expr}</a> · ` : null}<a href=${alert.generatorURL} target="_blank" rel="noopener">source</a></td></tr>` : null}
      </tbody></table></div>
    </div>
    ${silences.length ? html`<h2>Silenced by</h2><ul>${silences.map((s) => html`<li key=${s.id}><a href=${href('/silences/' + s.id)}>${s.id}</a> ${s.matchers ? '{' + s.matchers.map(matcherString).join(', ') + '}' : ''} by ${s.createdBy || '?'} until ${fmtTime(s.endsAt)}: ${s.comment || ''}</li>`)}</ul>` : null}
    ${inhibitedBy.length ? html`<h2>Inhibited by</h2><ul>${inhibitedBy.map((f) => html`<li key=${f}><a href=${href('/alerts/' + f)}>${f}</a></li>`)}</ul>` : null}
    <h2>Timeline</h2>
    <${Timeline} hist=${hist} timeline=${timeline} />
  </section>`;
}
