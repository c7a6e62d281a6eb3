// Silences: the list (active, pending, expired), a form that creates or edits one with a live
// preview of the alerts it would mute, and expiry.
import { useEffect, useState } from 'preact/hooks';
import { get, post } from './api.js';
import { html, useFetch, setParams, href, navigate, ago, fmtTime, ErrorBox, parseMatchers, matcherString, parseDur } from './util.js';

export function SilencesPage({ params }) {
  const state = params.get('state') || 'active';
  const res = useFetch(() => get('/api/v2/silences'), [], 5000);
  const [err, setErr] = useState(null);
  const list = (res.data || []).filter((s) => s.status.state === state).sort((a, b) => Date.parse(b.startsAt) - Date.parse(a.startsAt));
  const count = (st) => (res.data || []).filter((s) => s.status.state === st).length;
  const expire = async (id) => {
    setErr(null);
    try { await post('/api/v2/silence/' + id, undefined, 'alert', 'DELETE'); res.reload(); } catch (e) { setErr(e); }
  };
  return html`<section>
    <div class="toolbar">
      ${['active', 'pending', 'expired'].map((s) => html`<button key=${s} class=${'tab' + (state === s ? ' on' : '')} onClick=${() => setParams({ state: s === 'active' ? '' : s }, true)}>${s} <b>${count(s)}</b></button>`)}
      <span class="grow"></span>
      <a class="button primary" href=${href('/silences/new')} id="new-silence">new silence</a>
    </div>
    <${ErrorBox} error=${res.error || err} />
    <table class="list" id="silences"><thead><tr><th>matchers</th><th>created by</th><th>comment</th><th>starts</th><th>ends</th><th></th></tr></thead>
    <tbody>${list.map((s) => html`<tr key=${s.id} data-id=${s.id}>
      <td class="mono"><a href=${href('/silences/' + s.id)}>{${s.matchers.map(matcherString).join(', ')}}</a></td>
      <td>${s.createdBy}</td><td>${s.comment}</td>
      <td class="nowrap" title=${s.startsAt}>${ago(s.startsAt)}</td><td class="nowrap" title=${s.endsAt}>${ago(s.endsAt)}</td>
      <td>${state !== 'expired' ? html`<button onClick=${() => expire(s.id)}>expire</button>` : null}</td>
    </tr>`)}</tbody></table>
    ${res.data && !list.length ? html`<p class="muted">No ${state} silences.</p>` : null}
  </section>`;
}

const toLocal = (t) => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');

export function SilenceForm({ id, params }) {
  const [form, setForm] = useState({ matchers: params.get('matchers') || '', duration: '2h', start: '', end: '', createdBy: localStorage.getItem('tocsin.user') || '', comment: '' });
  const [loadErr, setLoadErr] = useState(null);
  const [err, setErr] = useState(null);
  const [preview, setPreview] = useState({ alerts: null, error: null });
  const [existing, setExisting] = useState(null);
  useEffect(() => {
    if (!id) return;
    get('/api/v2/silence/' + id).then((s) => {
      setExisting(s);
      setForm({ matchers: '{' + s.matchers.map(matcherString).join(', ') + '}', duration: '', start: s.startsAt, end: s.endsAt, createdBy: s.createdBy, comment: s.comment });
    }).catch(setLoadErr);
  }, [id]);
  useEffect(() => {
    let ms;
    try { ms = parseMatchers(form.matchers); } catch (e) { setPreview({ alerts: null, error: e }); return; }
    if (!ms.length) { setPreview({ alerts: null, error: null }); return; }
    const t = setTimeout(() => {
      get('/api/v2/alerts', { filter: ms.map(matcherString), silenced: 'true', inhibited: 'true', active: 'true' })
        .then((alerts) => setPreview({ alerts, error: null })).catch((e) => setPreview({ alerts: null, error: e }));
    }, 250);
    return () => clearTimeout(t);
  }, [form.matchers]);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const save = async (e) => {
    e.preventDefault();
    setErr(null);
    try {
      const matchers = parseMatchers(form.matchers);
      if (!matchers.length) throw new Error('matchers: at least one matcher is needed');
      const start = form.start ? Date.parse(form.start) : Date.now();
      if (isNaN(start)) throw new Error(`start: "${form.start}" is not a time`);
      let end;
      if (form.duration) {
        const d = parseDur(form.duration);
        if (!(d > 0)) throw new Error(`duration: "${form.duration}" is not a duration such as 2h`);
        end = start + d;
      } else {
        end = Date.parse(form.end);
        if (isNaN(end)) throw new Error(`end: "${form.end}" is not a time`);
      }
      if (!form.createdBy.trim()) throw new Error('created by: say who you are');
      if (!form.comment.trim()) throw new Error('comment: say why');
      localStorage.setItem('tocsin.user', form.createdBy);
      const body = { matchers, startsAt: toLocal(start), endsAt: toLocal(end), createdBy: form.createdBy, comment: form.comment };
      if (id) body.id = id;
      const r = await post('/api/v2/silences', body, 'alert');
      navigate(href('/silences/' + (r.silenceID || id)));
    } catch (e2) { setErr(e2); }
  };
  if (loadErr) return html`<${ErrorBox} error=${loadErr} />`;
  return html`<section>
    <h1>${id ? 'Silence ' + id : 'New silence'} ${existing ? html`<span class=${'badge si-' + existing.status.state}>${existing.status.state}</span>` : null}</h1>
    <form class="form" onSubmit=${save} id="silence-form">
      <label>matchers <input class="mono" name="matchers" value=${form.matchers} onInput=${set('matchers')} placeholder='{alertname="HighLatency", job="api"}' required /></label>
      <label>start <input name="start" value=${form.start} onInput=${set('start')} placeholder="now" /></label>
      <label>duration <input name="duration" value=${form.duration} onInput=${set('duration')} placeholder="2h (or set an end)" /></label>
      ${!form.duration ? html`<label>end <input name="end" value=${form.end} onInput=${set('end')} placeholder="2026-01-01T12:00:00Z" /></label>` : null}
      <label>created by <input name="createdBy" value=${form.createdBy} onInput=${set('createdBy')} /></label>
      <label>comment <textarea name="comment" value=${form.comment} onInput=${set('comment')}></textarea></label>
      <div><button class="primary" type="submit">${id ? 'save (replaces the silence)' : 'create'}</button>
        ${existing && existing.status.state !== 'expired' ? html` <button type="button" onClick=${async () => { try { await post('/api/v2/silence/' + id, undefined, 'alert', 'DELETE'); navigate(href('/silences')); } catch (e2) { setErr(e2); } }}>expire</button>` : null}</div>
      <${ErrorBox} error=${err} />
    </form>
    <h2>Alerts it would mute</h2>
    <${ErrorBox} error=${preview.error} />
    ${preview.alerts ? html`<p class="muted" id="preview-count">${preview.alerts.length} alerts match now</p>
      <ul class="preview">${preview.alerts.slice(0, 100).map((a) => html`<li key=${a.fingerprint}><a href=${href('/alerts/' + a.fingerprint)}>${a.labels.alertname}</a> <span class="mono">{${Object.entries(a.labels).filter(([k]) => k !== 'alertname').map(([k, v]) => `${k}="${v}"`).join(', ')}}</span></li>`)}</ul>` : null}
    ${existing ? html`<p class="muted">created ${fmtTime(existing.startsAt)} · ends ${fmtTime(existing.endsAt)} · updated ${fmtTime(existing.updatedAt)}</p>` : null}
  </section>`;
}
