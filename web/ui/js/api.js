// The public HTTP API, as the UI calls it. Every failure becomes an ApiError with the server's
// `error` code and `detail`, which the pages show.

export class ApiError extends Error {
  constructor(status, code, detail, extra = {}) {
    super(`${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    Object.assign(this, extra);
  }
}

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', `fnlens did not answer (${e.message})`);
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON: kept as text below */ }
  if (!response.ok) {
    const b = body && typeof body === 'object' ? body : {};
    throw new ApiError(response.status, b.error || `http_${response.status}`, b.detail || text || response.statusText, b);
  }
  return body ?? text;
}

export function get(path, params = {}, signal) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') qs.set(k, v);
  const s = qs.toString();
  return api(s ? `${path}?${s}` : path, { signal });
}

export function send(method, path, body) {
  return api(path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Runs one SQL query: `{columns, rows, row_count, took_ms}`. */
export const sql = (query, signal) => api('/api/v1/sql', {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: query }), signal,
});
