// The SQL console: an editor, the tables' schemas, examples, results as a table or a chart,
// DataFusion's errors, CSV download.
import { api, sql } from './api.js';
import { navigate } from './app.js';
import { chart, color } from './chart.js';
import { h, clear, errorBox, loading, fmtInt, download } from './util.js';

export const EXAMPLES = [
  ['Functions by error rate, last hour', `SELECT function, count(*) AS invocations, error_rate(status) AS error_rate,
       approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms
FROM invocations
WHERE ts >= now() - INTERVAL '1 hour'
GROUP BY function
ORDER BY error_rate DESC`],
  ['p99 duration per minute (chart)', `SELECT minute, function, duration_p99_ms
FROM lambda_metrics
WHERE minute >= now() - INTERVAL '30 minutes'
ORDER BY minute`],
  ['Invocations and errors per minute (chart)', `SELECT date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS minute,
       count(*) AS invocations,
       count(*) FILTER (WHERE status <> 'success') AS errors
FROM invocations
WHERE ts >= now() - INTERVAL '1 hour'
GROUP BY 1 ORDER BY 1`],
  ['Cold starts and init duration by memory size', `SELECT memory_size_mb, count(*) AS invocations,
       avg(CASE WHEN cold_start THEN 1.0 ELSE 0.0 END) AS cold_share,
       avg(init_duration_ms) AS init_avg_ms
FROM invocations
WHERE ts >= now() - INTERVAL '1 day'
GROUP BY 1 ORDER BY 1`],
  ['Top functions by GB-seconds', `SELECT function, sum(gb_seconds(billed_duration_ms, memory_size_mb)) AS gb_seconds
FROM invocations
WHERE ts >= now() - INTERVAL '1 day'
GROUP BY 1 ORDER BY 2 DESC LIMIT 10`],
  ['ERROR lines per function (logs)', `SELECT function, count(*) AS errors
FROM logs
WHERE level = 'ERROR' AND ts >= now() - INTERVAL '1 hour'
GROUP BY 1 ORDER BY 2 DESC`],
  ['Slowest invocations with a timeout in their logs', `SELECT i.function, i.request_id, i.duration_ms, i.status
FROM logs l JOIN invocations i USING (request_id)
WHERE match(l.message, 'timeout') AND l.ts >= now() - INTERVAL '1 hour'
ORDER BY i.duration_ms DESC LIMIT 20`],
];

const MAX_TABLE_ROWS = 1000;
const isTime = (t) => t.startsWith('Timestamp') || t.startsWith('Date');
const isNum = (t) => /^(U?Int|Float|Decimal)/.test(t);
const isText = (t) => /^(Utf8|LargeUtf8|Utf8View)/.test(t);

/**
 * The chart of a result, when it has one time column and numeric columns: one line per numeric
 * column, or, with one text column as well, one line per value of it (the ten largest).
 */
export function chartSpec(res) {
  const time = res.columns.find((c) => isTime(c.type));
  const nums = res.columns.filter((c) => isNum(c.type));
  if (!time || !nums.length || !res.rows.length) return null;
  const texts = res.columns.filter((c) => isText(c.type));
  const rows = res.rows.map((r) => ({ ...r, __t: Date.parse(r[time.name]) })).sort((a, b) => a.__t - b.__t);
  if (texts.length === 1 && nums.length >= 1) {
    const key = texts[0].name;
    const val = nums[0].name;
    const totals = new Map();
    for (const r of rows) totals.set(r[key], (totals.get(r[key]) || 0) + Math.abs(r[val] || 0));
    const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k]) => k);
    return { title: `${val} by ${key}`, series: top.map((k, i) => ({ name: String(k), color: color(i),
      points: rows.filter((r) => r[key] === k).map((r) => [r.__t, r[val]]) })) };
  }
  return { title: nums.map((c) => c.name).join(', '), series: nums.map((c, i) => ({ name: c.name, color: color(i),
    points: rows.map((r) => [r.__t, r[c.name]]) })) };
}

function cellText(v) {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'object') return JSON.stringify(v);
  if (typeof v === 'number' && !Number.isInteger(v)) return String(Math.round(v * 1e6) / 1e6);
  return String(v);
}

export const sqlPage = {
  title: () => 'SQL',
  render(main, params) {
    const editor = h('textarea', { 'aria-label': 'SQL query', spellcheck: 'false', class: 'mono' });
    editor.value = params.get('q') || EXAMPLES[0][1];
    const run = h('button', { type: 'button', class: 'primary' }, 'Run');
    const csv = h('button', { type: 'button', disabled: true }, 'Download CSV');
    const viewTable = h('button', { type: 'button', 'aria-pressed': 'true' }, 'Table');
    const viewChart = h('button', { type: 'button', 'aria-pressed': 'false', disabled: true }, 'Chart');
    const examples = h('select', { 'aria-label': 'Example queries' }, h('option', { value: '' }, 'Examples…'),
      EXAMPLES.map(([label], i) => h('option', { value: i }, label)));
    const meta = h('span', { class: 'hint', 'aria-live': 'polite' });
    const out = h('div', { class: 'sql-out' });
    const schema = h('aside', { class: 'schema panel', 'aria-label': 'Tables' }, h('h2', {}, 'Tables'), loading());
    clear(main, h('h1', {}, 'SQL'),
      h('div', { class: 'sql-layout' },
        h('section', {}, editor,
          h('div', { class: 'toolbar' }, run, h('span', { class: 'hint' }, 'Ctrl+Enter runs'), examples, viewTable, viewChart, csv, meta),
          out),
        schema));

    let last = null;
    let mode = 'table';
    let ctrl = null;
    function show() {
      if (!last) return;
      viewTable.setAttribute('aria-pressed', String(mode === 'table'));
      viewChart.setAttribute('aria-pressed', String(mode === 'chart'));
      const spec = chartSpec(last);
      viewChart.disabled = !spec;
      if (mode === 'chart' && spec) {
        clear(out, h('section', { class: 'panel' }, h('h3', {}, spec.title), chart({ series: spec.series, legend: true, label: spec.title })));
        return;
      }
      if (!last.rows.length) { clear(out, h('p', { class: 'empty' }, 'The query returned no rows.')); return; }
      const shown = last.rows.slice(0, MAX_TABLE_ROWS);
      clear(out, h('div', { class: 'panel table-wrap' }, h('table', { 'aria-label': 'Query results' },
        h('thead', {}, h('tr', {}, last.columns.map((c) => h('th', { scope: 'col', title: c.type, class: isNum(c.type) ? 'num' : '' }, c.name)))),
        h('tbody', {}, shown.map((r) => h('tr', {}, last.columns.map((c) =>
          h('td', { class: isNum(c.type) ? 'num' : '' }, cellText(r[c.name])))))))),
        last.rows.length > shown.length ? h('p', { class: 'hint' }, `Showing ${fmtInt(shown.length)} of ${fmtInt(last.rows.length)} rows; the CSV has them all.`) : null);
    }

    async function execute() {
      const q = editor.value.trim();
      if (!q) return;
      navigate('/sql', { q }, true);
      ctrl?.abort();
      ctrl = new AbortController();
      const mine = ctrl;
      clear(out, loading('Running'));
      clear(meta);
      csv.disabled = true;
      try {
        const res = await sql(q, mine.signal);
        if (mine !== ctrl) return;
        last = res;
        csv.disabled = false;
        meta.textContent = `${fmtInt(res.row_count)} rows in ${res.took_ms.toFixed(1)} ms`;
        mode = chartSpec(res) && mode === 'chart' ? 'chart' : 'table';
        show();
      } catch (e) {
        if (e.name === 'AbortError' || mine !== ctrl) return;
        last = null;
        viewChart.disabled = true;
        clear(out, errorBox(e));
      }
    }
    run.addEventListener('click', execute);
    editor.addEventListener('keydown', (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); execute(); }
      // Tab indents; Escape then Tab leaves the editor (keyboard users are not trapped).
      if (e.key === 'Tab' && !e.shiftKey && editor.dataset.tabs !== 'off') {
        e.preventDefault();
        editor.setRangeText('  ', editor.selectionStart, editor.selectionEnd, 'end');
      }
      if (e.key === 'Escape') editor.dataset.tabs = 'off';
    });
    editor.addEventListener('blur', () => { delete editor.dataset.tabs; });
    examples.addEventListener('change', () => {
      if (examples.value === '') return;
      editor.value = EXAMPLES[Number(examples.value)][1];
      examples.value = '';
      mode = /chart/.test(EXAMPLES.find(([, s]) => s === editor.value)[0]) ? 'chart' : 'table';
      execute();
    });
    viewTable.addEventListener('click', () => { mode = 'table'; show(); });
    viewChart.addEventListener('click', () => { mode = 'chart'; show(); });
    csv.addEventListener('click', async () => {
      try {
        const text = await api('/api/v1/sql', { method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sql: editor.value, format: 'csv' }) });
        download('fnlens-query.csv', text, 'text/csv');
      } catch (e) {
        clear(out, errorBox(e));
      }
    });

    sql(`SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`).then((res) => {
      const tables = new Map();
      for (const r of res.rows) {
        if (!tables.has(r.table_name)) tables.set(r.table_name, []);
        tables.get(r.table_name).push(r);
      }
      clear(schema, h('h2', {}, 'Tables'), [...tables.entries()].map(([t, cols]) => h('details', { open: t === 'invocations' },
        h('summary', {}, t),
        h('ul', {}, cols.map((c) => h('li', {}, h('button', { type: 'button', class: 'link', title: 'Insert into the query',
          onclick: () => { editor.setRangeText(c.column_name, editor.selectionStart, editor.selectionEnd, 'end'); editor.focus(); } },
        c.column_name), ' ', h('span', { class: 'type' }, c.data_type.replace(/"/g, ''))))))),
      h('p', { class: 'hint' }, 'Also: error_rate(status), gb_seconds(billed_ms, mb), match(col, \'words\'), search(\'query\').'));
    }).catch((e) => clear(schema, h('h2', {}, 'Tables'), errorBox(e)));

    if (params.get('q')) execute();
    return {
      update(p) { if (p.get('q') && p.get('q') !== editor.value.trim()) { editor.value = p.get('q'); execute(); } },
      leave() { ctrl?.abort(); },
    };
  },
};
