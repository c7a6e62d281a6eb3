// HTTP calls to the server's own API, under the route prefix. Every failure becomes an Error whose
// message a person can act on: the server's own message, and for 401/403 what access is missing.

export const prefix = (document.querySelector('meta[name="tocsin-prefix"]')?.content || '').replace(/\/$/, '');

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function decode(res, role) {
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (res.ok) {
    if (body && body.status === 'error') throw new ApiError(body.error || 'error', res.status);
    return body;
  }
  const msg = (body && (body.error || body.message)) || text.trim() || res.statusText;
  if (res.status === 403) {
    const need = role ? `this needs the ${role} role` : 'access denied';
    throw new ApiError(`Forbidden: ${need} (${msg})`, 403);
  }
  if (res.status === 401) throw new ApiError(`Not signed in: ${msg}. Reload the page to enter credentials.`, 401);
  throw new ApiError(msg, res.status);
}

// GET path?params; params is an object (arrays repeat the key) or a URLSearchParams.
export async function get(path, params, opts = {}) {
  const q = params instanceof URLSearchParams ? params : toParams(params);
  const s = q.toString();
  const res = await fetch(prefix + path + (s ? '?' + s : ''), { credentials: 'same-origin', signal: opts.signal });
  return decode(res);
}

// Returns { body, bytes } where bytes is the transferred size when the browser reports it.
export async function post(path, body, role = 'alert', method = 'POST') {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(prefix + path, init);
  return decode(res, role);
}

export function toParams(obj) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  return q;
}
