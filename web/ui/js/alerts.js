// The Alerts page: rules with their instances' states, a rule form that validates before
// saving, silences, and the history of transitions and deliveries.
import { get, send } from './api.js';
import { h, clear, errorBox, loading, fmtTs, fmtAgo, fmtNum, fmtMs } from './util.js';

const METRICS = [
  ['error_rate', 'Error rate (%)'], ['errors', 'Errors (count)'], ['invocations', 'Invocations (count)'],
  ['duration', 'Duration (ms)'], ['cold_start_rate', 'Cold-start rate (%)'], ['init_duration', 'Init duration (ms)'],
  ['memory_utilization', 'Memory utilisation (%)'], ['logs', 'Log lines matching a query'], ['sql', 'SQL query'],
];
const STATISTICS = { duration: ['p99', 'p95', 'p90', 'p50', 'avg', 'max'], init_duration: ['p99', 'p95', 'p90', 'p50', 'avg', 'max'],
  memory_utilization: ['max', 'avg'] };
const STATES = ['ALARM', 'PENDING', 'INSUFFICIENT_DATA', 'OK'];

const metricName = (m) => (typeof m === 'string' ? m : Object.keys(m)[0]);
const metricQuery = (m) => (typeof m === 'string' ? '' : Object.values(m)[0]);

export function formatValue(rule, v) {
  if (v === null || v === undefined) return '–';
  const m = metricName(rule.metric);
  if (['error_rate', 'cold_start_rate', 'memory_utilization'].includes(m)) return `${fmtNum(v, 2)}%`;
  if (['duration', 'init_duration'].includes(m)) return fmtMs(v);
  return fmtNum(v, 2);
}

export function describeRule(r) {
  const m = metricName(r.metric);
  const what = r.statistic ? `${r.statistic} ${m}` : m;
  const q = metricQuery(r.metric);
  const dp = r.datapoints_to_alarm ?? r.evaluation_periods;
  return `${what}${q ? ` (${q})` : ''} ${r.comparison} ${r.threshold} over ${r.window}, ${dp} of ${r.evaluation_periods} datapoints` +
    `${r.version ? `, version ${r.version}` : ''}${r.min_invocations ? `, at least ${r.min_invocations} invocations` : ''}`;
}

const stateTag = (s) => h('span', { class: `state state-${s}` }, s);

function durationMs(s) {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s.trim());
  if (!m) return null;
  return Number(m[1]) * { ms: 1, s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[m[2]];
}

/** Checks a rule as the form builds it; the server checks again (and the query and SQL). */
export function validateRule(rule) {
  const errors = {};
  if (!rule.name) errors.name = 'A name is required.';
  else if (rule.name.includes('/')) errors.name = 'A name cannot contain "/".';
  if (!rule.function) errors.function = 'A function name or glob is required (* for every function).';
  if (!Number.isFinite(rule.threshold)) errors.threshold = 'The threshold must be a number.';
  const w = durationMs(rule.window || '');
  if (w === null) errors.window = 'A duration like 1m, 30s or 1h.';
  else if (w < 5000 || w % 5000) errors.window = 'A multiple of 5 s.';
  if (!Number.isInteger(rule.evaluation_periods) || rule.evaluation_periods < 1) errors.evaluation_periods = 'A whole number, 1 or more.';
  if (rule.datapoints_to_alarm !== undefined && (!Number.isInteger(rule.datapoints_to_alarm) || rule.datapoints_to_alarm < 1
    || rule.datapoints_to_alarm > rule.evaluation_periods)) errors.datapoints_to_alarm = 'Between 1 and the evaluation periods.';
  if (!Number.isInteger(rule.min_invocations ?? 0) || (rule.min_invocations ?? 0) < 0) errors.min_invocations = 'A whole number, 0 or more.';
  const q = metricQuery(rule.metric);
  if (typeof rule.metric !== 'string' && !q.trim()) errors.query = 'The query is required for this metric.';
  for (const t of rule.notify || []) {
    try {
      const u = new URL(t.url);
      if (!/^https?:$/.test(u.protocol)) throw new Error();
    } catch { errors.url = 'An http:// or https:// URL.'; }
  }
  return errors;
}

export async function refreshAlarmBadge() {
  const badge = document.getElementById('alarm-badge');
  try {
    const r = await get('/api/v1/alerts', { state: 'ALARM' });
    badge.hidden = r.alerts.length === 0;
    badge.textContent = String(r.alerts.length);
    badge.title = `${r.alerts.length} alert instances in ALARM`;
  } catch (e) {
    // 503: alerting is off. Anything else is worth a look.
    badge.hidden = e.status === 503;
    badge.textContent = '!';
    badge.title = `Alert states unavailable: ${e.detail || e.message}`;
  }
}

function ruleForm(existing, onSaved) {
  const r = existing || {};
  const field = (name, label, input, wide) => {
    input.name = name;
    input.id = `rf-${name}`;
    return h('label', { class: wide ? 'wide' : '', for: input.id }, label, input, h('span', { class: 'field-error', id: `rf-${name}-err` }));
  };
  const input = (value, attrs = {}) => h('input', { value: value ?? '', ...attrs });
  const select = (options, value) => {
    const s = h('select', {}, options.map(([v, l]) => h('option', { value: v }, l ?? v)));
    if (value !== undefined) s.value = value;
    return s;
  };
  const hook = (r.notify || [])[0] || {};
  const f = {
    name: input(r.name, { required: true, readonly: existing ? true : null }),
    function: input(r.function ?? '*'),
    version: input(r.version, { placeholder: 'any' }),
    metric: select(METRICS, r.metric ? metricName(r.metric) : 'error_rate'),
    statistic: select([], r.statistic),
    query: h('textarea', { rows: 3, class: 'mono', placeholder: 'level:ERROR AND timeout' }),
    comparison: select([['>'], ['>='], ['<'], ['<=']], r.comparison ?? '>'),
    threshold: input(r.threshold ?? 5, { type: 'number', step: 'any', required: true }),
    window: input(r.window ?? '1m'),
    evaluation_periods: input(r.evaluation_periods ?? 1, { type: 'number', min: 1 }),
    datapoints_to_alarm: input(r.datapoints_to_alarm, { type: 'number', min: 1, placeholder: 'all of them' }),
    missing_data: select([['missing'], ['notBreaching'], ['breaching'], ['ignore']], r.missing_data ?? 'missing'),
    min_invocations: input(r.min_invocations ?? 0, { type: 'number', min: 0 }),
    severity: select([['critical'], ['warning'], ['info']], r.severity ?? 'warning'),
    target: select([['webhook', 'Webhook'], ['alertmanager', 'Alertmanager']], hook.type ?? 'webhook'),
    url: input(hook.url, { type: 'url', placeholder: 'https://hooks.example/fnlens (optional)' }),
    secret: input(hook.secret, { placeholder: 'HMAC secret (optional)' }),
    summary: input((r.annotations || {}).summary, { placeholder: 'optional' }),
  };
  f.query.value = r.metric ? metricQuery(r.metric) : '';
  const sync = () => {
    const m = f.metric.value;
    const stats = STATISTICS[m];
    const cur = f.statistic.value || r.statistic;
    f.statistic.replaceChildren(...(stats || []).map((s) => h('option', { value: s }, s)));
    if (stats) f.statistic.value = stats.includes(cur) ? cur : stats[0];
    f.statistic.closest('label')?.toggleAttribute('hidden', !stats);
    f.query.closest('label')?.toggleAttribute('hidden', !(m === 'logs' || m === 'sql'));
    f.query.placeholder = m === 'sql' ? "SELECT function, count(*) AS value FROM logs WHERE ts >= $start AND ts < $end GROUP BY 1" : 'level:ERROR AND timeout';
    f.secret.closest('label')?.toggleAttribute('hidden', f.target.value !== 'webhook');
  };
  f.metric.addEventListener('change', sync);
  f.target.addEventListener('change', sync);
  const formError = h('div');
  const save = h('button', { type: 'submit', class: 'primary' }, existing ? 'Save' : 'Create rule');
  const form = h('form', { method: 'dialog', novalidate: true },
    h('h2', {}, existing ? `Edit ${r.name}` : 'New alert rule'),
    h('div', { class: 'form-grid' },
      field('name', 'Name', f.name), field('function', 'Function (name or glob, * for all)', f.function),
      field('version', 'Version', f.version), field('metric', 'Metric', f.metric),
      field('statistic', 'Statistic', f.statistic), field('query', 'Query', f.query, true),
      field('comparison', 'Comparison', f.comparison), field('threshold', 'Threshold', f.threshold),
      field('window', 'Window (multiple of 5 s)', f.window), field('evaluation_periods', 'Evaluation periods (N)', f.evaluation_periods),
      field('datapoints_to_alarm', 'Datapoints to alarm (M of N)', f.datapoints_to_alarm), field('missing_data', 'Missing data', f.missing_data),
      field('min_invocations', 'Minimum invocations', f.min_invocations), field('severity', 'Severity', f.severity),
      field('target', 'Notify', f.target), field('url', 'URL', f.url), field('secret', 'Secret', f.secret),
      field('summary', 'Summary (annotation)', f.summary, true)),
    formError,
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), save));
  const dialog = h('dialog', { 'aria-label': existing ? 'Edit rule' : 'New rule' }, form);
  sync();

  function build() {
    const m = f.metric.value;
    const num = (el) => (el.value.trim() === '' ? undefined : Number(el.value));
    // The list's rules carry their status (instances, alarm, error): not fields of a rule.
    const { instances, alarm, error, ...stored } = existing || {};
    const rule = {
      ...stored,
      name: f.name.value.trim(),
      function: f.function.value.trim(),
      version: f.version.value.trim() || undefined,
      metric: m === 'logs' || m === 'sql' ? { [m]: f.query.value.trim() } : m,
      statistic: STATISTICS[m] ? f.statistic.value : undefined,
      comparison: f.comparison.value,
      threshold: num(f.threshold),
      window: f.window.value.trim(),
      evaluation_periods: num(f.evaluation_periods),
      datapoints_to_alarm: num(f.datapoints_to_alarm),
      missing_data: f.missing_data.value,
      min_invocations: num(f.min_invocations) ?? 0,
      severity: f.severity.value,
    };
    if (m === 'logs' || m === 'sql') delete rule.min_invocations;
    const others = (existing?.notify || []).slice(1);
    const url = f.url.value.trim();
    const target = url ? (f.target.value === 'webhook'
      ? { type: 'webhook', url, ...(f.secret.value ? { secret: f.secret.value } : {}) }
      : { type: 'alertmanager', url }) : null;
    rule.notify = [...(target ? [target] : []), ...others];
    const annotations = { ...(existing?.annotations || {}) };
    if (f.summary.value.trim()) annotations.summary = f.summary.value.trim(); else delete annotations.summary;
    rule.annotations = annotations;
    for (const k of Object.keys(rule)) if (rule[k] === undefined) delete rule[k];
    return rule;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const rule = build();
    const errors = validateRule(rule);
    for (const k of Object.keys(f)) {
      const err = document.getElementById(`rf-${k}-err`);
      if (err) err.textContent = errors[k] || '';
      if (errors[k]) f[k].setAttribute('aria-invalid', 'true'); else f[k].removeAttribute('aria-invalid');
    }
    clear(formError);
    const first = Object.keys(errors)[0];
    if (first) { f[first].focus(); return; }
    save.disabled = true;
    try {
      if (existing) await send('PUT', `/api/v1/alerts/rules/${encodeURIComponent(existing.name)}`, rule);
      else await send('POST', '/api/v1/alerts/rules', rule);
      dialog.close();
      onSaved();
    } catch (err) {
      clear(formError, errorBox(err));
    } finally {
      save.disabled = false;
    }
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  f[existing ? 'function' : 'name'].focus();
}

/**
 * A rule's instances as a table; with many, those in OK fold under a summary line, so that the
 * ones that need a look come first.
 */
function instanceTables(rule, instances, row) {
  const table = (list, label) => h('div', { class: 'table-wrap' }, h('table', { 'aria-label': label },
    h('thead', {}, h('tr', {}, ['Function', 'State', 'Value', 'Since', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, list.map(row))));
  const ok = instances.filter((a) => a.state === 'OK');
  if (instances.length <= 10 || !ok.length) return table(instances, `Instances of ${rule.name}`);
  const rest = instances.filter((a) => a.state !== 'OK');
  return [rest.length ? table(rest, `Instances of ${rule.name}`) : null,
    h('details', {}, h('summary', {}, `${ok.length} instances in OK`), table(ok, `Instances of ${rule.name} in OK`))];
}

export const alertsPage = {
  title: () => 'Alerts',
  render(main) {
    const rulesSlot = h('div', {}, loading());
    const silencesSlot = h('div');
    const historySlot = h('div', {}, loading());
    let silencing = false;
    clear(main,
      h('h1', {}, 'Alerts', h('button', { type: 'button', class: 'primary', onclick: () => ruleForm(null, refresh) }, 'New rule')),
      h('p', { class: 'hint' }, 'Rules are evaluated as invocations arrive (CloudWatch-style M of N datapoints). See docs/alerts.md for every field.'),
      h('section', { 'aria-label': 'Rules' }, rulesSlot),
      h('h2', {}, 'Silences'), silencesSlot,
      h('h2', {}, 'History ', h('small', {}, 'transitions and delivery attempts, newest first')), historySlot);

    function silenceForm(rule, fn, cell) {
      silencing = true;
      const dur = h('select', { 'aria-label': 'Silence for' }, ['1h', '2h', '8h', '1d', '7d'].map((d) => h('option', { value: d }, d)));
      const comment = h('input', { placeholder: 'comment', 'aria-label': 'Comment' });
      const err = h('span');
      const formEl = h('form', { class: 'toolbar' }, dur, comment, h('button', { type: 'submit', class: 'primary' }, 'Silence'),
        h('button', { type: 'button', onclick: () => { silencing = false; refresh(); } }, 'Cancel'), err);
      formEl.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          await send('POST', '/api/v1/alerts/silences', { rule, function: fn, duration: dur.value, comment: comment.value });
          silencing = false;
          refresh();
        } catch (x) { clear(err, errorBox(x)); }
      });
      clear(cell, formEl);
      dur.focus();
    }

    async function refresh() {
      if (silencing) return;
      try {
        const [rules, alerts, silences, history] = await Promise.all([
          get('/api/v1/alerts/rules'), get('/api/v1/alerts'), get('/api/v1/alerts/silences'), get('/api/v1/alerts/history', { limit: 100 }),
        ]);
        if (silencing) return;
        refreshAlarmBadge();
        const byRule = new Map();
        for (const a of alerts.alerts) {
          if (!byRule.has(a.rule)) byRule.set(a.rule, []);
          byRule.get(a.rule).push(a);
        }
        clear(rulesSlot, rules.rules.length ? rules.rules.map((rule) => {
          const inst = (byRule.get(rule.name) || []).sort((a, b) => STATES.indexOf(a.state) - STATES.indexOf(b.state) || a.function.localeCompare(b.function));
          return h('article', { class: 'rule panel', dataset: { rule: rule.name } },
            h('header', {}, h('h2', { class: 'grow' }, rule.name, ' ', h('small', {}, describeRule(rule))),
              h('span', { class: `tag ${rule.severity === 'critical' ? 'bad' : rule.severity === 'warning' ? 'warn' : 'muted'}` }, rule.severity),
              h('button', { type: 'button', onclick: () => ruleForm(rule, refresh) }, 'Edit'),
              h('button', { type: 'button', class: 'danger', onclick: async () => {
                if (!confirm(`Delete the rule "${rule.name}"?`)) return;
                try { await send('DELETE', `/api/v1/alerts/rules/${encodeURIComponent(rule.name)}`); refresh(); } catch (e) { rulesSlot.prepend(errorBox(e)); }
              } }, 'Delete')),
            rule.error ? errorBox(rule.error) : null,
            inst.length ? instanceTables(rule, inst, (a) => {
                const actions = h('td', {}, a.silenced ? h('span', { class: 'tag muted' }, 'silenced')
                  : h('button', { type: 'button', onclick: (e) => silenceForm(rule.name, a.function, e.target.closest('td')) }, 'Silence'));
                return h('tr', { class: a.state === 'ALARM' ? 'failing' : '', dataset: { function: a.function } },
                  h('th', { scope: 'row' }, h('a', { href: `#/function/${encodeURIComponent(a.function)}` }, a.function)),
                  h('td', {}, stateTag(a.state)),
                  h('td', { class: 'num' }, formatValue(rule, a.value)),
                  h('td', { title: `${fmtTs(a.since_ms, false)} UTC` }, fmtAgo(a.since_ms)),
                  actions);
              })
              : h('p', { class: 'hint' }, 'No instance yet: it appears with the first evaluation (within seconds for streaming rules).'));
        }) : h('div', { class: 'empty panel' }, h('p', {}, 'No alert rules yet.'),
          h('button', { type: 'button', class: 'primary', onclick: () => ruleForm(null, refresh) }, 'Create the first rule')));
        clear(silencesSlot, silences.silences.length ? h('div', { class: 'panel table-wrap' }, h('table', { 'aria-label': 'Silences' },
          h('thead', {}, h('tr', {}, ['Rule', 'Function', 'Until', 'Comment', ''].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, silences.silences.map((s) => h('tr', {}, h('td', {}, s.rule ?? 'every rule'), h('td', {}, s.function),
            h('td', {}, `${fmtTs(Date.parse(s.until), false)} UTC`), h('td', {}, s.comment),
            h('td', {}, h('button', { type: 'button', onclick: async () => {
              try { await send('DELETE', `/api/v1/alerts/silences/${encodeURIComponent(s.id)}`); refresh(); } catch (e) { silencesSlot.prepend(errorBox(e)); }
            } }, 'End silence'))))))) : h('p', { class: 'hint' }, 'No active silences.'));
        clear(historySlot, history.entries.length ? h('div', { class: 'panel table-wrap' }, h('table', { 'aria-label': 'Alert history' },
          h('thead', {}, h('tr', {}, ['Time (UTC)', 'Rule', 'Function', 'Event'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, history.entries.map((e) => h('tr', {},
            h('td', { class: 'mono' }, fmtTs(e.ts_ms, false)), h('td', {}, e.rule), h('td', {}, e.function),
            h('td', {}, e.kind === 'transition'
              ? [stateTag(e.from), ' → ', stateTag(e.to), ` value ${e.value === null ? '–' : fmtNum(e.value, 2)} (threshold ${e.threshold})`, e.silenced ? ' silenced' : '']
              : [h('span', { class: `tag ${e.outcome === 'delivered' ? 'ok' : 'bad'}` }, e.outcome), ` ${e.status} to ${e.target}, attempt ${e.attempt}`,
                e.http_status ? `, HTTP ${e.http_status}` : '', e.error ? `, ${e.error}` : '',
                e.next_attempt_ms ? `, next ${fmtTs(e.next_attempt_ms, false)}` : '']))))),
          history.pending_deliveries ? h('p', { class: 'hint' }, `${history.pending_deliveries} ${history.pending_deliveries === 1 ? 'delivery' : 'deliveries'} pending.`) : null)
          : h('p', { class: 'hint' }, 'Nothing has happened yet.'));
      } catch (e) {
        clear(rulesSlot, errorBox(e));
        clear(historySlot);
      }
    }
    refresh();
    // Refreshed every 5 s, unless the keyboard focus is in one of the lists (a re-render would lose it).
    const timer = setInterval(() => {
      const focus = document.activeElement;
      if (document.hidden || [rulesSlot, silencesSlot, historySlot].some((slot) => slot.contains(focus))) return;
      refresh();
    }, 5000);
    return {
      leave() {
        clearInterval(timer);
        document.querySelectorAll('dialog').forEach((d) => d.close());
      },
    };
  },
};
