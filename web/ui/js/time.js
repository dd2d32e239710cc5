// Time ranges as the URL keeps them: `start`/`end` are `now-15m`/`now` (relative, as the API
// takes them) or RFC 3339 instants. Everything is shown in UTC.
import { h } from './util.js';

export const PRESETS = [['5m', '5 minutes'], ['15m', '15 minutes'], ['1h', '1 hour'], ['24h', '24 hours'], ['7d', '7 days']];
const UNIT_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };

export function defaultRange(params, preset = '1h') {
  return { start: params.get('start') || `now-${preset}`, end: params.get('end') || 'now' };
}

/** A range bound to epoch ms, relative to `now`. */
export function toMs(bound, now = Date.now()) {
  if (!bound || bound === 'now') return now;
  const rel = /^now-(\d+)([smhdw])$/.exec(bound);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2]];
  if (/^\d+$/.test(bound)) return Number(bound);
  const t = Date.parse(bound);
  if (Number.isNaN(t)) throw new Error(`not a time: ${bound}`);
  return t;
}

export function resolve(range, now = Date.now()) {
  return { startMs: toMs(range.start, now), endMs: toMs(range.end, now) };
}

export const iso = (ms) => new Date(ms).toISOString();

/** The range as absolute instants, e.g. after a drag-zoom. */
export const absolute = (startMs, endMs) => ({ start: iso(Math.floor(startMs)), end: iso(Math.ceil(endMs)) });

/** The next wider preset, for "no logs in this range; widen it". */
export function wider(range) {
  const m = /^now-(\w+)$/.exec(range.start);
  const i = m ? PRESETS.findIndex(([p]) => p === m[1]) : -1;
  if (range.end === 'now' && i >= 0 && i < PRESETS.length - 1) return { start: `now-${PRESETS[i + 1][0]}`, end: 'now' };
  if (range.end === 'now' && i === PRESETS.length - 1) return null;
  const { startMs, endMs } = resolve(range);
  const span = Math.max(endMs - startMs, 60e3);
  return absolute(startMs - span, Math.min(endMs + span, Date.now()));
}

export function describe(range) {
  const m = /^now-(\w+)$/.exec(range.start);
  if (m && range.end === 'now') return `last ${m[1]}`;
  const { startMs, endMs } = resolve(range);
  return `${iso(startMs).slice(0, 19).replace('T', ' ')} – ${iso(endMs).slice(0, 19).replace('T', ' ')} UTC`;
}

/** A bucket width (seconds) giving about `target` buckets over the span. */
export function bucketSeconds(spanMs, target = 60) {
  const steps = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400];
  const want = spanMs / 1000 / target;
  return steps.find((s) => s >= want) || 86400;
}

const toLocalInput = (ms) => iso(ms).slice(0, 16);

/**
 * The range picker: preset buttons and a custom (absolute, UTC) range. Calls `onChange(range)`.
 */
export function rangePicker(range, onChange) {
  const select = h('select', { 'aria-label': 'Time range' },
    PRESETS.map(([p, label]) => h('option', { value: p }, `Last ${label}`)),
    h('option', { value: 'custom' }, 'Absolute range…'));
  const m = /^now-(\w+)$/.exec(range.start);
  const isPreset = m && range.end === 'now' && PRESETS.some(([p]) => p === m[1]);
  select.value = isPreset ? m[1] : 'custom';
  let resolved;
  try { resolved = resolve(range); } catch { resolved = resolve({ start: 'now-1h', end: 'now' }); }
  const from = h('input', { type: 'datetime-local', 'aria-label': 'From (UTC)', value: toLocalInput(resolved.startMs) });
  const to = h('input', { type: 'datetime-local', 'aria-label': 'To (UTC)', value: toLocalInput(resolved.endMs) });
  const apply = h('button', { type: 'button' }, 'Apply');
  const custom = h('span', { class: 'custom-range', hidden: isPreset }, from, ' – ', to, ' UTC ', apply);
  select.addEventListener('change', () => {
    if (select.value === 'custom') { custom.hidden = false; from.focus(); return; }
    custom.hidden = true;
    onChange({ start: `now-${select.value}`, end: 'now' });
  });
  apply.addEventListener('click', () => {
    const a = Date.parse(from.value + 'Z');
    const b = Date.parse(to.value + 'Z');
    if (Number.isNaN(a) || Number.isNaN(b) || a >= b) {
      from.setAttribute('aria-invalid', 'true');
      return;
    }
    from.removeAttribute('aria-invalid');
    onChange(absolute(a, b));
  });
  return h('span', { class: 'range-picker' }, select, ' ', custom);
}
