// The Logs page: query, range, level histogram with drag-zoom, facets, newest-first lines with
// infinite scroll, and live tail.
import { get } from './api.js';
import { navigate } from './app.js';
import { chart, LEVEL_COLORS } from './chart.js';
import { h, clear, errorBox, loading, fmtTs, fmtInt, queryValue } from './util.js';
import { defaultRange, rangePicker, resolve, absolute, wider, describe, iso } from './time.js';

const PAGE = 100;
/** The most lines the live tail keeps on the page. */
const MAX_LINES = 2000;

/** Runs `f` once the current changes are painted (for the marks `bench/ui.sh` reads). */
const afterPaint = (f) => requestAnimationFrame(() => requestAnimationFrame(f));
const FACETS = ['function', 'level', 'version'];

/** One log line: a summary row that expands to every field as JSON. */
export function lineItem(hit, { isNew = false, showFunction = true } = {}) {
  const msg = h('span', { class: 'msg' });
  if (hit.highlight) msg.innerHTML = hit.highlight; // the server HTML-escapes it and adds <mark>
  else msg.textContent = hit.message;
  if (hit.request_id) {
    msg.append(h('a', { class: 'rid', href: `#/invocation/${encodeURIComponent(hit.request_id)}`,
      title: 'Open the invocation' }, hit.request_id));
  }
  const { highlight, ...fields } = hit;
  const details = h('details', {},
    h('summary', {},
      h('span', { class: 'ts' }, fmtTs(hit.ts_ms ?? Date.parse(hit.ts))),
      h('span', { class: 'fn', title: `${hit.function} (version ${hit.version})` }, showFunction ? hit.function : hit.source),
      h('span', { class: `lvl lvl-${hit.level}` }, hit.level),
      msg),
    h('pre', {}, JSON.stringify(fields, null, 2)));
  return h('li', { class: isNew ? 'new' : '' }, details);
}

/** `q AND clause`, parenthesising a query with a top-level OR. */
export function andQuery(q, clause) {
  q = (q || '').trim();
  if (!q || q === '*') return clause;
  return /\bOR\b/.test(q) ? `(${q}) AND ${clause}` : `${q} AND ${clause}`;
}

function queryError(err, q) {
  if (err.code !== 'invalid_query') return errorBox(err);
  const box = errorBox(err);
  if (Number.isInteger(err.position)) {
    box.append('\n', q, '\n', ' '.repeat(Math.min(err.position, q.length)) + '^');
  }
  return box;
}

export const logsPage = {
  title: () => 'Logs',
  render(main, params) {
    let state = null; // {q, range, abs}
    let ctrl = null;
    let cursor = null;
    let loadingMore = false;
    let tail = null;
    const buffered = [];

    const input = h('input', { type: 'search', class: 'grow mono', name: 'q', 'aria-label': 'Search query',
      placeholder: 'level:ERROR AND timeout', autocomplete: 'off', spellcheck: 'false' });
    const pickerSlot = h('span');
    const tailBtn = h('button', { type: 'button', 'aria-pressed': 'false', title: 'Stream new matching lines as they arrive' }, '● Live tail');
    const form = h('form', { class: 'toolbar', role: 'search' }, input, pickerSlot,
      h('button', { type: 'submit', class: 'primary' }, 'Search'), tailBtn);
    const errorSlot = h('div', { class: 'query-error' });
    const histSlot = h('div', { class: 'panel' });
    const facetsSlot = h('aside', { class: 'facets panel', 'aria-label': 'Facets' });
    const summary = h('div', { class: 'summary', 'aria-live': 'polite' });
    const list = h('ul', { class: 'lines', 'aria-label': 'Log lines' });
    const status = h('div', { class: 'more' });
    const sentinel = h('div', { class: 'sentinel' });
    clear(main,
      h('h1', {}, 'Logs'),
      form,
      h('p', { class: 'hint' }, 'Words are ANDed; ', h('code', {}, '"a phrase"'), ' ', h('code', {}, 'timeout OR refused'), ' ',
        h('code', {}, '-level:DEBUG'), ' ', h('code', {}, 'function:checkout*'), ' ', h('code', {}, 'level:ERROR'), ' ',
        h('code', {}, 'request_id:…'), ' ', h('code', {}, 'attributes.user_id:42'), ' ', h('code', {}, 'attributes.duration_ms:>500'),
        '. Drag across the histogram to zoom.'),
      errorSlot,
      h('div', { class: 'logs-layout' }, facetsSlot,
        h('section', { 'aria-label': 'Results' }, histSlot, summary, list, status, sentinel)));

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      go({ q: input.value.trim() });
    });
    const go = (change) => {
      const next = { q: state.q, ...state.range, ...change };
      navigate('/logs', next);
    };

    function setTail(on) {
      tailBtn.setAttribute('aria-pressed', String(on));
      tail?.close();
      tail = null;
      buffered.length = 0;
      if (!on) { tailNote.hidden = true; return; }
      const es = new EventSource(`/api/v1/logs/tail?q=${encodeURIComponent(state.q)}`);
      tail = es;
      tailNote.hidden = false;
      tailNote.textContent = 'Live: connecting…';
      es.addEventListener('line', (e) => {
        const hit = JSON.parse(e.data);
        buffered.push(hit);
        if (buffered.length > MAX_LINES) buffered.splice(0, buffered.length - MAX_LINES);
        if (paused()) showPaused();
        else if (buffered.length === 1) requestAnimationFrame(() => (paused() ? showPaused() : flush()));
      });
      es.addEventListener('dropped', (e) => {
        const d = JSON.parse(e.data);
        tailNote.textContent = `Live: ${d.lines} lines were dropped because the page read too slowly.`;
      });
      es.onerror = () => {
        if (tail !== es) return;
        // EventSource reconnects by itself after a dropped connection, but not after an error
        // answer (a query the tail refuses, say).
        tailNote.textContent = es.readyState === EventSource.CLOSED
          ? 'Live tail stopped: the server refused the stream.'
          : 'Live tail: connection lost, reconnecting…';
        if (es.readyState === EventSource.CLOSED) tailBtn.setAttribute('aria-pressed', 'false');
      };
      es.addEventListener('subscribed', () => { if (tail === es) tailNote.textContent = 'Live: new lines appear at the top.'; });
    }
    const tailNote = h('span', { hidden: true });
    const paused = () => window.scrollY > 60;
    function showPaused() {
      tailNote.replaceChildren(h('span', { class: 'tail-paused' }, `Paused while you scroll: ${buffered.length} new lines `),
        ' ', h('button', { type: 'button', onclick: () => { window.scrollTo(0, 0); flush(); } }, 'Resume'));
    }
    function flush() {
      if (!buffered.length) return;
      prepend(buffered.splice(0));
      tailNote.textContent = 'Live: new lines appear at the top.';
    }
    function prepend(hits) {
      list.querySelector('.empty')?.remove();
      const frag = document.createDocumentFragment();
      for (const hit of hits.slice(-MAX_LINES).reverse()) frag.append(lineItem(hit, { isNew: true }));
      list.prepend(frag);
      // A busy tail would grow the page without end: the oldest lines go, and paging with them.
      if (list.children.length > MAX_LINES) {
        while (list.children.length > MAX_LINES) list.lastChild.remove();
        cursor = null;
        clear(status, h('p', { class: 'hint' }, `Showing the newest ${fmtInt(MAX_LINES)} lines; search again to page through older ones.`));
      }
    }
    const onScroll = () => { if (tail && !paused()) flush(); };
    window.addEventListener('scroll', onScroll, { passive: true });
    tailBtn.addEventListener('click', () => setTail(tailBtn.getAttribute('aria-pressed') !== 'true'));

    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) more();
    }, { rootMargin: '400px' });
    observer.observe(sentinel);

    async function more() {
      if (!cursor || loadingMore || !state) return;
      loadingMore = true;
      const mine = ctrl;
      clear(status, loading('Loading more'));
      try {
        const r = await get('/api/v1/logs/search', { q: state.q, ...state.abs, limit: PAGE, cursor, highlight: true }, mine.signal);
        if (mine !== ctrl) return;
        cursor = r.cursor;
        list.append(...r.hits.map((hit) => lineItem(hit)));
        clear(status, cursor ? null : h('p', { class: 'hint' }, 'End of results.'));
      } catch (e) {
        if (e.name !== 'AbortError') clear(status, errorBox(e));
      } finally {
        loadingMore = false;
      }
    }

    async function load(params) {
      const range = defaultRange(params);
      const q = params.get('q') || '';
      let resolved;
      try { resolved = resolve(range); } catch (e) { clear(errorSlot, errorBox(e)); return; }
      const abs = { start: iso(resolved.startMs), end: iso(resolved.endMs) };
      const tailWasOn = tail !== null;
      const queryChanged = state && state.q !== q;
      state = { q, range, abs };
      window.scrollTo(0, 0);
      input.value = q;
      input.removeAttribute('aria-invalid');
      clear(pickerSlot, rangePicker(range, (r) => go(r)));
      ctrl?.abort();
      ctrl = new AbortController();
      const mine = ctrl;
      cursor = null;
      clear(errorSlot);
      clear(summary, loading('Searching'));
      clear(list);
      clear(status);
      clear(histSlot, loading('Counting'));
      clear(facetsSlot, loading());
      const base = { q, ...abs };
      const search = get('/api/v1/logs/search', { ...base, limit: PAGE, highlight: true }, mine.signal);
      const hist = get('/api/v1/logs/histogram', { ...base, split: 'level' }, mine.signal);
      const facets = get('/api/v1/logs/facets', { ...base, size: 8 }, mine.signal);
      search.then((r) => {
        if (mine !== ctrl) return;
        cursor = r.cursor;
        clear(summary, h('span', {}, h('b', {}, fmtInt(r.total)), ` matching lines, ${describe(range)}, newest first`),
          h('span', {}, `${r.took_ms.toFixed(1)} ms`), tailNote);
        if (!r.hits.length) {
          const w = wider(range);
          list.append(h('li', { class: 'empty' }, h('p', {}, 'No logs in this range.'),
            w ? h('button', { type: 'button', class: 'primary', onclick: () => go(w) }, `Widen it to ${describe(w)}`) : null,
            q ? h('button', { type: 'button', onclick: () => go({ q: '' }) }, 'Clear the query') : null));
        } else {
          list.append(...r.hits.map((hit) => lineItem(hit)));
        }
        afterPaint(() => performance.mark('fnlens:logs-results'));
        if (cursor) requestAnimationFrame(() => {
          const r2 = sentinel.getBoundingClientRect();
          if (r2.top < innerHeight + 400) more();
        });
      }).catch((e) => {
        if (e.name === 'AbortError' || mine !== ctrl) return;
        clear(summary);
        clear(errorSlot, queryError(e, q));
        if (e.code === 'invalid_query') { input.setAttribute('aria-invalid', 'true'); input.focus(); }
      });
      hist.then((r) => {
        if (mine !== ctrl) return;
        const series = r.series.map((s) => ({
          name: s.value, color: LEVEL_COLORS[s.value] || '#888',
          points: r.buckets.map((b) => [b.ts_ms, b.by[s.value] || 0]),
        }));
        clear(histSlot, chart({ series, kind: 'stacked', height: 120, step: r.interval_ms, legend: true,
          domain: [resolved.startMs, resolved.endMs], label: 'Matching lines over time by level', empty: 'No matching lines.',
          format: (v) => fmtInt(v), onZoom: (a, b) => go(absolute(a, b)) }));
        afterPaint(() => performance.mark('fnlens:logs-histogram'));
      }).catch((e) => {
        if (e.name === 'AbortError' || mine !== ctrl) return;
        clear(histSlot, e.code === 'invalid_query' ? null : errorBox(e));
      });
      facets.then((r) => {
        if (mine !== ctrl) return;
        clear(facetsSlot, FACETS.map((field) => [
          h('h3', {}, field),
          h('ul', {}, (r.facets[field] || []).map((f) => h('li', {},
            h('button', { type: 'button', title: `Add ${field}:${f.value} to the query`,
              onclick: () => go({ q: andQuery(q, `${field}:${queryValue(f.value)}`) }) },
              h('span', { class: field === 'level' ? `lvl lvl-${f.value}` : '' }, f.value),
              h('span', { class: 'count' }, fmtInt(f.count))))),
            (r.facets[field] || []).length ? null : h('li', { class: 'hint' }, 'none')),
        ]));
      }).catch((e) => {
        if (e.name === 'AbortError' || mine !== ctrl) return;
        // A bad query is reported once, above the results.
        clear(facetsSlot, e.code === 'invalid_query' ? null : errorBox(e));
      });
      if (tailWasOn && queryChanged) setTail(true);
    }

    load(params);
    return {
      update: load,
      leave() {
        ctrl?.abort();
        tail?.close();
        observer.disconnect();
        window.removeEventListener('scroll', onScroll);
      },
    };
  },
};
