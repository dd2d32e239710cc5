// The invocation view: the report of one request and its log lines, oldest first.
import { get } from './api.js';
import { lineItem } from './logs.js';
import { h, clear, errorBox, loading, fmtMs, fmtTs, fmtPct } from './util.js';

const statusTag = (s) => h('span', { class: `tag ${s === 'success' ? 'ok' : 'bad'}` }, s);

export const invocationPage = {
  title: (id) => `Invocation ${id}`,
  render(main, _params, requestId) {
    clear(main, h('h1', {}, 'Invocation ', h('small', { class: 'mono' }, requestId)), loading());
    get(`/api/v1/invocations/${encodeURIComponent(requestId)}`).then((r) => {
      const inv = r.invocation;
      const parts = [h('h1', {}, 'Invocation ', h('small', { class: 'mono' }, requestId))];
      if (inv) {
        const used = inv.max_memory_used_mb / inv.memory_size_mb * 100;
        parts.push(h('section', { class: 'panel', 'aria-label': 'Report' }, h('dl', { class: 'report' },
          h('dt', {}, 'Function'), h('dd', {}, h('a', { href: `#/function/${encodeURIComponent(inv.function)}` }, inv.function), ` version ${inv.version}`),
          h('dt', {}, 'Status'), h('dd', {}, statusTag(inv.status), inv.error_type ? ` ${inv.error_type}` : ''),
          h('dt', {}, 'Started'), h('dd', {}, `${fmtTs(Date.parse(inv.ts))} UTC`),
          h('dt', {}, 'Duration'), h('dd', {}, fmtMs(inv.duration_ms)),
          h('dt', {}, 'Billed duration'), h('dd', {}, fmtMs(inv.billed_duration_ms)),
          h('dt', {}, 'Memory'), h('dd', {}, `${inv.max_memory_used_mb} MB used of ${inv.memory_size_mb} MB (${fmtPct(used, 0)})`,
            h('span', { class: 'meter', role: 'presentation' }, h('span', { style: `width:${Math.min(100, used)}%` }))),
          h('dt', {}, 'Cold start'), h('dd', {}, inv.cold_start
            ? `yes, init ${fmtMs(inv.init_duration_ms)}${inv.init_status && inv.init_status !== 'success' ? ` (${inv.init_status})` : ''}`
            : 'no'),
          inv.instance ? [h('dt', {}, 'Instance'), h('dd', { class: 'mono' }, inv.instance)] : null,
          inv.region ? [h('dt', {}, 'Region'), h('dd', {}, inv.region)] : null)));
      } else {
        parts.push(h('p', { class: 'hint' }, 'No invocation report was received for this request id; its log lines follow.'));
      }
      parts.push(h('h2', {}, `Log lines `, h('small', {}, `${r.log_count ?? r.logs.length}, oldest first`)));
      parts.push(r.logs.length
        ? h('ul', { class: 'lines', 'aria-label': 'Log lines of the invocation' }, r.logs.map((l) => lineItem(l, { showFunction: false })))
        : h('p', { class: 'empty' }, 'No log lines with this request id.'));
      clear(main, parts);
    }).catch((e) => {
      clear(main, h('h1', {}, 'Invocation ', h('small', { class: 'mono' }, requestId)),
        e.status === 404 ? h('p', { class: 'empty' }, 'No invocation or log line has this request id (it may be past retention).') : errorBox(e));
    });
  },
};
