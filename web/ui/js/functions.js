// The Functions table and each function's dashboard, both computed with the SQL API.
import { get, sql } from './api.js';
import { navigate, href } from './app.js';
import { chart, color } from './chart.js';
import { lineItem } from './logs.js';
import { h, clear, errorBox, loading, fmtInt, fmtMs, fmtPct, fmtNum, fmtTs, sqlString, queryValue } from './util.js';
import { defaultRange, rangePicker, resolve, absolute, describe, bucketSeconds, wider } from './time.js';

/** An error rate at or above this share marks a function as failing. */
export const FAILING_ERROR_RATE = 0.05;

const tsLit = (ms) => `TIMESTAMP '${new Date(ms).toISOString()}'`;
const between = (r) => `ts >= ${tsLit(r.startMs)} AND ts < ${tsLit(r.endMs)}`;

const STATS = `count(*) AS invocations,
  count(*) FILTER (WHERE status <> 'success') AS errors,
  error_rate(status) AS error_rate,
  approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
  approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_ms) AS p90_ms,
  approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms,
  count(*) FILTER (WHERE cold_start) AS cold_starts,
  avg(init_duration_ms) AS init_avg_ms,
  max(CAST(max_memory_used_mb AS DOUBLE) / memory_size_mb) AS memory_utilization_max,
  max(max_memory_used_mb) AS memory_used_max_mb,
  max(memory_size_mb) AS memory_size_mb,
  sum(gb_seconds(billed_duration_ms, memory_size_mb)) AS gb_seconds`;

const COLUMNS = [
  ['function', 'Function', (r) => h('a', { href: `#/function/${encodeURIComponent(r.function)}` }, r.function), false],
  ['invocations', 'Invocations', (r) => fmtInt(r.invocations), true],
  ['error_rate', 'Error rate', (r) => fmtPct(r.error_rate * 100, 2), true],
  ['p50_ms', 'p50', (r) => fmtMs(r.p50_ms), true],
  ['p99_ms', 'p99', (r) => fmtMs(r.p99_ms), true],
  ['cold_share', 'Cold starts', (r) => fmtPct(r.cold_share * 100), true],
  ['memory_utilization_max', 'Max memory', (r) => fmtPct(r.memory_utilization_max * 100, 0), true],
  ['gb_seconds', 'GB-s billed', (r) => fmtNum(r.gb_seconds, 2), true],
  ['top_error', 'Top error', (r) => (r.top_error ? h('span', { class: 'mono', title: `${r.top_error_count} of ${r.errors} errors` },
    `${r.top_error} (${fmtInt(r.top_error_count)})`) : ''), false],
];

export const functionsPage = {
  title: () => 'Functions',
  render(main, params) {
    let sort = { key: params.get('sort') || 'error_rate', desc: params.get('dir') !== 'asc' };
    let range = defaultRange(params);
    let rows = null;
    let alarms = new Set();
    const toolbar = h('div', { class: 'toolbar' });
    const cards = h('div', { class: 'cards' });
    const body = h('div', { class: 'panel table-wrap' }, loading());
    clear(main, h('h1', {}, 'Functions'), toolbar, cards, body);
    let ctrl = null;
    let timer = null;

    function table() {
      const sorted = [...rows].sort((a, b) => {
        const x = a[sort.key];
        const y = b[sort.key];
        const c = typeof x === 'string' ? x.localeCompare(y) : (x ?? -1) - (y ?? -1);
        return sort.desc ? -c : c;
      });
      const head = h('tr', {}, COLUMNS.map(([key, label, , num]) => h('th', {
        class: num ? 'num' : '', scope: 'col',
        'aria-sort': sort.key === key ? (sort.desc ? 'descending' : 'ascending') : 'none',
      }, h('button', { type: 'button', onclick: () => {
        sort = { key, desc: sort.key === key ? !sort.desc : key !== 'function' };
        navigate('/functions', { ...range, sort: sort.key, dir: sort.desc ? 'desc' : 'asc' });
      } }, label, sort.key === key ? (sort.desc ? ' ▼' : ' ▲') : ''))));
      const trs = sorted.map((r) => {
        const failing = r.error_rate >= FAILING_ERROR_RATE;
        return h('tr', { class: failing ? 'failing' : '', dataset: { function: r.function } },
          COLUMNS.map(([key, , cell, num], i) => h(i === 0 ? 'th' : 'td', { class: num ? 'num' : '', scope: i === 0 ? 'row' : null },
            cell(r), i === 0 && failing ? [' ', h('span', { class: 'tag bad' }, 'failing')] : null,
            i === 0 && alarms.has(r.function) ? [' ', h('a', { class: 'tag bad', href: '#/alerts' }, 'ALARM')] : null)));
      });
      clear(body, h('table', { 'aria-label': 'Functions' }, h('thead', {}, head), h('tbody', {}, trs)));
    }

    async function load(p) {
      range = defaultRange(p);
      sort = { key: p.get('sort') || 'error_rate', desc: p.get('dir') !== 'asc' };
      clear(toolbar, rangePicker(range, (x) => navigate('/functions', { sort: p.get('sort'), dir: p.get('dir'), ...x })),
        h('span', { class: 'hint' }, `Failing: an error rate of ${FAILING_ERROR_RATE * 100}% or more. Click a function for its dashboard.`));
      ctrl?.abort();
      ctrl = new AbortController();
      const mine = ctrl;
      const r = resolve(range);
      if (!rows) clear(body, loading());
      try {
        const [res, errorTypes, al] = await Promise.all([
          sql(`SELECT function, ${STATS}, avg(CASE WHEN cold_start THEN 1.0 ELSE 0.0 END) AS cold_share
               FROM invocations WHERE ${between(r)} GROUP BY function`, mine.signal),
          sql(`SELECT function, coalesce(error_type, status) AS error_type, count(*) AS n FROM invocations
               WHERE status <> 'success' AND ${between(r)} GROUP BY 1, 2`, mine.signal),
          // Without the alerts (disabled, or failing), the table still shows; the reason is noted.
          get('/api/v1/alerts', { state: 'ALARM' }, mine.signal).catch((e) => {
            if (e.name === 'AbortError') throw e;
            return { alerts: [], error: e };
          }),
        ]);
        if (mine !== ctrl) return;
        // Why a function fails: its most frequent error type.
        const top = new Map();
        for (const e of errorTypes.rows) {
          const cur = top.get(e.function);
          if (!cur || e.n > cur.n || (e.n === cur.n && e.error_type < cur.error_type)) top.set(e.function, e);
        }
        rows = res.rows.map((x) => ({ ...x, top_error: top.get(x.function)?.error_type ?? '', top_error_count: top.get(x.function)?.n ?? 0 }));
        alarms = new Set(al.alerts.map((a) => a.function));
        toolbar.querySelector('.alerts-note')?.remove();
        if (al.error) toolbar.append(h('span', { class: 'hint alerts-note' }, `Alert states unavailable: ${al.error.detail}`));
        const total = rows.reduce((a, x) => a + x.invocations, 0);
        const errors = rows.reduce((a, x) => a + x.errors, 0);
        const failing = rows.filter((x) => x.error_rate >= FAILING_ERROR_RATE);
        clear(cards,
          card('Functions', fmtInt(rows.length)),
          card('Invocations', fmtInt(total), describe(range)),
          card('Error rate', fmtPct(total ? errors / total * 100 : 0, 2), `${fmtInt(errors)} errors`, errors > 0 && errors / total >= FAILING_ERROR_RATE),
          card('Failing functions', fmtInt(failing.length), failing.map((x) => x.function).slice(0, 3).join(', '), failing.length > 0),
          card('Cold starts', fmtInt(rows.reduce((a, x) => a + x.cold_starts, 0))),
          card('GB-seconds billed', fmtNum(rows.reduce((a, x) => a + x.gb_seconds, 0), 1)));
        if (!rows.length) {
          const w = wider(range);
          clear(body, h('div', { class: 'empty' }, h('p', {}, `No invocations in the ${describe(range)}.`),
            w ? h('button', { type: 'button', class: 'primary', onclick: () => navigate('/functions', w) }, `Widen it to ${describe(w)}`) : null,
            h('p', { class: 'hint' }, 'Point a Lambda extension, an OpenTelemetry exporter or a CloudWatch subscription at fnlens, or run ',
              h('code', {}, 'fnlens serve --demo'), ' for a simulated fleet.')));
        } else {
          table();
        }
      } catch (e) {
        if (e.name !== 'AbortError') clear(body, errorBox(e));
      }
    }
    load(params);
    // A relative range is refreshed every 15 s, unless the keyboard focus is in the table (a
    // re-render would lose it).
    timer = setInterval(() => {
      if (range.end !== 'now' || document.hidden || body.contains(document.activeElement)) return;
      load(new URLSearchParams({ ...range, sort: sort.key, dir: sort.desc ? 'desc' : 'asc' }));
    }, 15000);
    return { update: load, leave() { ctrl?.abort(); clearInterval(timer); } };
  },
};

function card(k, v, sub, bad) {
  return h('div', { class: `panel card${bad ? ' bad' : ''}` }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v),
    sub ? h('div', { class: 'k' }, sub) : null);
}

export const functionPage = {
  title: (name) => name,
  render(main, params, name) {
    let ctrl = null;
    async function load(p) {
      const range = defaultRange(p);
      const byVersion = p.get('versions') === '1';
      const r = resolve(range);
      const step = bucketSeconds(r.endMs - r.startMs);
      const go = (change) => navigate(`/function/${encodeURIComponent(name)}`, { ...range, versions: byVersion ? '1' : '', ...change });
      const toggle = h('label', { class: 'inline' }, h('input', { type: 'checkbox', checked: byVersion,
        onchange: (e) => go({ versions: e.target.checked ? '1' : '' }) }), 'Compare versions');
      const cards = h('div', { class: 'cards' }, loading());
      const charts = h('div', { class: 'charts' });
      const errors = h('div', {}, loading());
      const slowest = h('div', {}, loading());
      clear(main, h('h1', {}, name, h('small', {}, h('a', { href: href('/functions', range) }, 'all functions'))),
        h('div', { class: 'toolbar' }, rangePicker(range, (x) => go(x)), toggle,
          h('a', { href: href('/logs', { q: `function:${queryValue(name)}`, ...range }) }, 'Logs of this function'),
          h('span', { class: 'hint' }, 'Drag across a chart to zoom.')),
        cards, charts, h('h2', {}, 'Recent errors'), errors, h('h2', {}, 'Slowest invocations'), slowest);
      ctrl?.abort();
      ctrl = new AbortController();
      const mine = ctrl;
      const where = `function = ${sqlString(name)} AND ${between(r)}`;
      const bucket = `date_bin(INTERVAL '${step} seconds', ts, TIMESTAMP '1970-01-01T00:00:00Z')`;
      try {
        const [summary, series] = await Promise.all([
          sql(`SELECT ${STATS}, count(DISTINCT version) AS versions FROM invocations WHERE ${where}`, mine.signal),
          sql(`SELECT ${bucket} AS t, ${byVersion ? 'version, ' : ''}${STATS} FROM invocations WHERE ${where}
               GROUP BY ${byVersion ? '1, 2' : '1'} ORDER BY 1`, mine.signal),
        ]);
        if (mine !== ctrl) return;
        const s = summary.rows[0];
        if (!s || !s.invocations) {
          const w = wider(range);
          clear(cards, h('div', { class: 'empty panel' }, `No invocations of ${name} in the ${describe(range)}.`,
            w ? h('div', {}, h('button', { type: 'button', class: 'primary', onclick: () => go(w) }, `Widen it to ${describe(w)}`)) : null));
        } else {
          clear(cards,
            card('Invocations', fmtInt(s.invocations), `${s.versions} version${s.versions === 1 ? '' : 's'}`),
            card('Error rate', fmtPct(s.error_rate * 100, 2), `${fmtInt(s.errors)} errors`, s.error_rate >= FAILING_ERROR_RATE),
            card('Duration p50 / p99', `${fmtMs(s.p50_ms)} / ${fmtMs(s.p99_ms)}`),
            card('Cold starts', fmtInt(s.cold_starts), s.init_avg_ms ? `init ${fmtMs(s.init_avg_ms)} avg` : null),
            card('Max memory', fmtPct(s.memory_utilization_max * 100, 0), `${s.memory_used_max_mb} of ${s.memory_size_mb} MB`),
            card('GB-seconds billed', fmtNum(s.gb_seconds, 2)));
        }
        const rows = series.rows.map((x) => ({ ...x, t: Date.parse(x.t) }));
        const common = { domain: [r.startMs, r.endMs], step: step * 1000, onZoom: (a, b) => go(absolute(a, b)) };
        const panel = (title, c) => h('section', { class: 'panel' }, h('h3', {}, title), c);
        let panels;
        if (byVersion) {
          const versions = [...new Set(rows.map((x) => x.version))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
          const per = (key) => versions.map((v, i) => ({ name: `v${v}`, color: color(i),
            points: rows.filter((x) => x.version === v).map((x) => [x.t, x[key]]) }));
          panels = [
            panel('Invocations by version', chart({ ...common, series: per('invocations'), label: 'Invocations per version', legend: true })),
            panel('Errors by version', chart({ ...common, series: per('errors'), label: 'Errors per version', legend: true })),
            panel('Duration p99 by version', chart({ ...common, series: per('p99_ms'), format: fmtMs, label: 'p99 duration per version', legend: true })),
            panel('Cold starts by version', chart({ ...common, series: per('cold_starts'), label: 'Cold starts per version', legend: true })),
            panel('Init duration (avg) by version', chart({ ...common, series: per('init_avg_ms'), format: fmtMs, label: 'Init duration per version', legend: true })),
            panel('Max memory used (MB) by version', chart({ ...common, series: per('memory_used_max_mb'), label: 'Memory per version', legend: true })),
          ];
        } else {
          const pts = (key, f = (x) => x[key]) => rows.map((x) => [x.t, f(x)]);
          panels = [
            panel('Invocations and errors', chart({ ...common, kind: 'stacked', legend: true, label: 'Invocations and errors', series: [
              { name: 'succeeded', color: '#3b6fd8', points: pts('ok', (x) => x.invocations - x.errors) },
              { name: 'errors', color: '#d32f2f', points: pts('errors') }] })),
            panel('Duration', chart({ ...common, format: fmtMs, legend: true, label: 'Duration percentiles', series: [
              { name: 'p50', color: color(0), points: pts('p50_ms') },
              { name: 'p90', color: color(1), points: pts('p90_ms') },
              { name: 'p99', color: color(8), points: pts('p99_ms') }] })),
            panel('Cold starts', chart({ ...common, kind: 'stacked', label: 'Cold starts', series: [
              { name: 'cold starts', color: color(4), points: pts('cold_starts') }] })),
            panel('Init duration (avg of cold starts)', chart({ ...common, format: fmtMs, label: 'Init duration', series: [
              { name: 'init avg', color: color(3), points: pts('init_avg_ms') }] })),
            panel('Memory (MB)', chart({ ...common, legend: true, label: 'Memory used', series: [
              { name: 'max used', color: color(2), points: pts('memory_used_max_mb') },
              { name: 'size', color: color(7), dash: true, points: pts('memory_size_mb') }] })),
          ];
        }
        clear(charts, panels);
      } catch (e) {
        if (e.name !== 'AbortError') clear(charts, errorBox(e));
        clear(cards);
      }
      slowestInvocations(slowest, name, r, mine.signal);
      const errorQuery = `function:${queryValue(name)} AND level:ERROR`;
      get('/api/v1/logs/search', { q: errorQuery, start: new Date(r.startMs).toISOString(),
        end: new Date(r.endMs).toISOString(), limit: 10, highlight: true }, mine.signal).then((res) => {
        if (mine !== ctrl) return;
        clear(errors, res.hits.length
          ? [h('ul', { class: 'lines panel' }, res.hits.map((x) => lineItem(x))),
             res.total > res.hits.length ? h('p', {}, h('a', { href: href('/logs', { q: errorQuery, ...range }) }, `All ${fmtInt(res.total)} error lines`)) : null]
          : h('p', { class: 'empty' }, 'No ERROR lines in this range.'));
      }).catch((e) => { if (e.name !== 'AbortError') clear(errors, errorBox(e)); });
    }
    load(params);
    return { update: load, leave() { ctrl?.abort(); } };
  },
};

/** The ten slowest invocations of a function, each a link to its invocation view. */
async function slowestInvocations(slot, name, r, signal) {
  try {
    const res = await sql(`SELECT request_id, ts, version, duration_ms, status, error_type, cold_start
      FROM invocations WHERE function = ${sqlString(name)} AND ${between(r)} ORDER BY duration_ms DESC LIMIT 10`, signal);
    clear(slot, res.rows.length ? h('div', { class: 'panel table-wrap' }, h('table', { 'aria-label': 'Slowest invocations' },
      h('thead', {}, h('tr', {}, ['Request id', 'Started (UTC)', 'Version', 'Duration', 'Status', 'Cold'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, res.rows.map((x) => h('tr', {},
        h('td', {}, h('a', { class: 'mono', href: `#/invocation/${encodeURIComponent(x.request_id)}` }, x.request_id)),
        h('td', { class: 'mono' }, fmtTs(Date.parse(x.ts))), h('td', {}, x.version), h('td', { class: 'num' }, fmtMs(x.duration_ms)),
        h('td', {}, h('span', { class: `tag ${x.status === 'success' ? 'ok' : 'bad'}` }, x.status), x.error_type ? ` ${x.error_type}` : ''),
        h('td', {}, x.cold_start ? 'cold' : '')))))) : h('p', { class: 'empty' }, 'No invocations in this range.'));
  } catch (e) {
    if (e.name !== 'AbortError') clear(slot, errorBox(e));
  }
}
