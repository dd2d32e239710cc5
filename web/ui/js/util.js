// DOM building and formatting shared by the pages.

/** Builds an element: h('a', {href: '#/'}, 'text', child). `on*` attributes become listeners. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'html') el.innerHTML = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const loading = (what = 'Loading') => h('p', { class: 'loading', role: 'status' }, `${what}…`);

/** An API error as the user sees it: the error code and the server's explanation. */
export function errorBox(err) {
  const text = err && err.detail ? `${err.code}: ${err.detail}` : String(err && err.message || err);
  return h('div', { class: 'error-box', role: 'alert' }, text);
}

const nf = new Intl.NumberFormat('en-US');
export const fmtInt = (v) => (v === null || v === undefined ? '–' : nf.format(Math.round(v)));
export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  return Number.isInteger(v) ? nf.format(v) : v.toFixed(digits);
}
export function fmtMs(v) {
  if (v === null || v === undefined) return '–';
  if (v >= 60000) return (v / 60000).toFixed(1) + ' min';
  if (v >= 1000) return (v / 1000).toFixed(2) + ' s';
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' ms';
}
export const fmtPct = (v, digits = 1) => (v === null || v === undefined ? '–' : v.toFixed(digits) + '%');

/** A UTC time as `2026-11-27 08:24:59.673`. */
export function fmtTs(ms, withMs = true) {
  const s = new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
  return withMs ? s : s.slice(0, 19);
}

export function fmtAgo(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
}

/** An SQL string literal. */
export const sqlString = (s) => `'${String(s).replace(/'/g, "''")}'`;

/** A value of the search language, quoted when it is not a plain term. */
export const queryValue = (v) => (/^[\w.$\-*]+$/.test(v) ? v : `"${v.replace(/(["\\])/g, '\\$1')}"`);

export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
