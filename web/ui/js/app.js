// The single page: a hash router (`#/logs?q=...&start=now-15m`) over the page modules. Each
// page is `{render(main, params, path) -> {update?(params), leave?()}}`; links are plain hrefs,
// so the URL always reproduces the view.
import { logsPage } from './logs.js';
import { invocationPage } from './invocation.js';
import { functionsPage, functionPage } from './functions.js';
import { sqlPage } from './sql.js';
import { alertsPage, refreshAlarmBadge } from './alerts.js';
import { clear, errorBox } from './util.js';

const ROUTES = [
  [/^\/?$/, functionsPage, 'functions'],
  [/^\/functions$/, functionsPage, 'functions'],
  [/^\/function\/(.+)$/, functionPage, 'functions'],
  [/^\/logs$/, logsPage, 'logs'],
  [/^\/invocation\/(.+)$/, invocationPage, 'logs'],
  [/^\/sql$/, sqlPage, 'sql'],
  [/^\/alerts$/, alertsPage, 'alerts'],
];

const main = document.getElementById('view');
let current = null; // {page, path, handle}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  return { path, params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

/** The link to a view: `#path?k=v...`, leaving out empty parameters. */
export function href(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') qs.set(k, v);
  const s = qs.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

/**
 * Goes to a view. `record` only records in the URL (replacing the history entry) what the
 * page already shows, without routing.
 */
export function navigate(path, params, record = false) {
  const hash = href(path, params);
  if (record) { history.replaceState(null, '', hash); return; }
  if (hash === location.hash) route(); else location.hash = hash;
}

function route() {
  const { path, params } = parseHash();
  const found = ROUTES.map(([re, page, nav]) => [re.exec(path), page, nav]).find(([m]) => m);
  document.querySelectorAll('[data-nav]').forEach((a) => {
    if (found && a.dataset.nav === found[2]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  if (!found) {
    current?.handle?.leave?.();
    current = null;
    clear(main, errorBox(`No page at ${path}`));
    return;
  }
  const [m, page] = found;
  const arg = m[1] ? decodeURIComponent(m[1]) : undefined;
  // What the view shows now (tests wait for it after a navigation).
  main.dataset.route = location.hash;
  if (current && current.page === page && current.arg === arg && current.handle?.update) {
    current.handle.update(params);
    return;
  }
  current?.handle?.leave?.();
  clear(main);
  current = { page, arg, handle: null };
  try {
    current.handle = page.render(main, params, arg) || null;
  } catch (e) {
    clear(main, errorBox(e));
  }
  document.title = `${page.title ? page.title(arg) + ' · ' : ''}fnlens`;
}

window.addEventListener('hashchange', route);
document.querySelector('[data-skip]').addEventListener('click', (e) => { e.preventDefault(); main.focus(); });
route();
// The badge waits for the page's own requests.
setTimeout(refreshAlarmBadge, 1000);
setInterval(refreshAlarmBadge, 15000);
