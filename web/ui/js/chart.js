// A small SVG time-series chart: lines or stacked bars, a hover read-out and drag-to-zoom.
//
//   chart({series: [{name, color, points: [[tsMs, value|null], ...]}], kind: 'line' | 'stacked',
//          domain: [startMs, endMs], step: bucketMs, format: (v) => text, onZoom: (a, b) => {}})
import { h, fmtNum } from './util.js';

const PALETTE = ['#3b6fd8', '#e8710a', '#1a9e5a', '#d33fa4', '#8a63d2', '#0f9bb5', '#b5870f', '#6b7a8f', '#c0392b', '#2c7a7b'];
export const color = (i) => PALETTE[i % PALETTE.length];
export const LEVEL_COLORS = { FATAL: '#8e0000', ERROR: '#d32f2f', WARN: '#e0a200', INFO: '#3b6fd8', DEBUG: '#8b949e', TRACE: '#b8c0c8' };

const M = { top: 8, right: 12, bottom: 22, left: 48 };
const TIME_STEPS = [1e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5, 6048e5];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function timeLabel(ms, step, span) {
  const s = new Date(ms).toISOString();
  if (span > 2 * 864e5) return `${s.slice(5, 10)} ${s.slice(11, 16)}`;
  return step < 6e4 ? s.slice(11, 19) : s.slice(11, 16);
}

export function chart(opts) {
  const height = opts.height || 180;
  const format = opts.format || ((v) => fmtNum(v));
  const series = opts.series.filter((s) => s.points.length);
  const tip = h('div', { class: 'tip', hidden: true });
  const root = h('div', { class: 'chart', role: 'img', 'aria-label': opts.label || 'chart' });
  const legend = h('div', { class: 'legend' }, series.map((s) =>
    h('span', {}, h('span', { class: 'sw', style: `background:${s.color}` }), s.name)));
  const wrap = h('div', {}, root, series.length > 1 || opts.legend ? legend : null);

  let xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const [x0, x1] = opts.domain || [xs[0] ?? 0, (xs[xs.length - 1] ?? 1) + (opts.step || 0)];
  const byX = series.map((s) => new Map(s.points.map((p) => [p[0], p[1]])));
  const stacked = opts.kind === 'stacked';
  let ymax = 0;
  for (const x of xs) {
    if (stacked) ymax = Math.max(ymax, byX.reduce((a, m) => a + (m.get(x) || 0), 0));
    else for (const m of byX) ymax = Math.max(ymax, m.get(x) ?? 0);
  }
  ymax = niceMax(ymax);

  let width = 0;
  let svg = null;
  const px = (x) => M.left + ((x - x0) / (x1 - x0 || 1)) * (width - M.left - M.right);
  const py = (y) => M.top + (1 - y / ymax) * (height - M.top - M.bottom);
  const xAt = (p) => x0 + ((p - M.left) / (width - M.left - M.right)) * (x1 - x0);

  function draw() {
    const parts = [];
    const plotW = width - M.left - M.right;
    // Grid and axes.
    for (let i = 0; i <= 4; i++) {
      const y = (ymax * i) / 4;
      parts.push(`<g class="grid"><line x1="${M.left}" x2="${width - M.right}" y1="${py(y)}" y2="${py(y)}"/></g>`);
      parts.push(`<g class="axis"><text x="${M.left - 6}" y="${py(y) + 3.5}" text-anchor="end">${esc(format(y))}</text></g>`);
    }
    const span = x1 - x0;
    const tstep = TIME_STEPS.find((s) => span / s <= Math.max(2, plotW / 90)) || 6048e5;
    for (let t = Math.ceil(x0 / tstep) * tstep; t <= x1; t += tstep) {
      parts.push(`<g class="axis"><text x="${px(t)}" y="${height - 6}" text-anchor="middle">${timeLabel(t, tstep, span)}</text></g>`);
    }
    if (stacked) {
      const bw = Math.max(1, (px(x0 + (opts.step || span / Math.max(xs.length, 1))) - px(x0)) - 1);
      for (const x of xs) {
        let acc = 0;
        series.forEach((s, i) => {
          const v = byX[i].get(x) || 0;
          if (v > 0) parts.push(`<rect x="${px(x)}" width="${bw}" y="${py(acc + v)}" height="${py(acc) - py(acc + v)}" fill="${s.color}"/>`);
          acc += v;
        });
      }
    } else {
      series.forEach((s) => {
        let d = '';
        let pen = false;
        for (const [x, y] of s.points) {
          if (y === null || y === undefined || Number.isNaN(y)) { pen = false; continue; }
          d += `${pen ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`;
          pen = true;
        }
        parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8" stroke-linejoin="round"${s.dash ? ' stroke-dasharray="4 3"' : ''}/>`);
        if (s.points.length < 3) for (const [x, y] of s.points) if (y !== null) parts.push(`<circle cx="${px(x)}" cy="${py(y)}" r="2.5" fill="${s.color}"/>`);
      });
    }
    parts.push(`<line class="cursor" x1="0" x2="0" y1="${M.top}" y2="${height - M.bottom}" visibility="hidden"/>`);
    parts.push(`<rect class="sel" x="0" width="0" y="${M.top}" height="${height - M.top - M.bottom}" visibility="hidden"/>`);
    root.innerHTML = `<svg viewBox="0 0 ${width} ${height}" height="${height}">${parts.join('')}</svg>`;
    svg = root.firstChild;
    root.append(tip);
    attach();
  }

  function nearest(p) {
    const x = xAt(p);
    let best = null;
    for (const v of xs) if (best === null || Math.abs(v - x) < Math.abs(best - x)) best = v;
    return best;
  }

  function attach() {
    const cursor = svg.querySelector('.cursor');
    const sel = svg.querySelector('.sel');
    let dragFrom = null;
    const local = (e) => {
      const r = svg.getBoundingClientRect();
      return Math.min(Math.max(e.clientX - r.left, M.left), width - M.right);
    };
    svg.addEventListener('pointermove', (e) => {
      const p = local(e);
      if (dragFrom !== null) {
        sel.setAttribute('x', Math.min(p, dragFrom));
        sel.setAttribute('width', Math.abs(p - dragFrom));
        sel.setAttribute('visibility', 'visible');
      }
      const x = nearest(p);
      if (x === null) return;
      const cx = stacked ? px(x) + (px(x0 + (opts.step || 0)) - px(x0)) / 2 : px(x);
      cursor.setAttribute('x1', cx);
      cursor.setAttribute('x2', cx);
      cursor.setAttribute('visibility', 'visible');
      const rows = series.map((s, i) => [s, byX[i].get(x)]).filter(([, v]) => v !== undefined && v !== null);
      tip.innerHTML = `<div><b>${esc(new Date(x).toISOString().replace('T', ' ').slice(0, 19))}</b></div>` +
        rows.map(([s, v]) => `<div><span class="sw" style="background:${s.color}"></span>${esc(s.name)}: <b>${esc(format(v))}</b></div>`).join('');
      tip.hidden = false;
      const left = cx + 12 + tip.offsetWidth > width ? cx - tip.offsetWidth - 12 : cx + 12;
      tip.style.left = `${Math.max(0, left)}px`;
      tip.style.top = `${M.top}px`;
    });
    svg.addEventListener('pointerleave', () => { cursor.setAttribute('visibility', 'hidden'); tip.hidden = true; });
    if (!opts.onZoom) return;
    svg.style.cursor = 'crosshair';
    svg.addEventListener('pointerdown', (e) => { dragFrom = local(e); svg.setPointerCapture(e.pointerId); });
    svg.addEventListener('pointerup', (e) => {
      if (dragFrom === null) return;
      const p = local(e);
      const a = Math.min(p, dragFrom);
      const b = Math.max(p, dragFrom);
      dragFrom = null;
      sel.setAttribute('visibility', 'hidden');
      if (b - a >= 5) opts.onZoom(xAt(a), xAt(b));
    });
  }

  if (!series.length) {
    root.append(h('p', { class: 'empty' }, opts.empty || 'No data in this range.'));
    return wrap;
  }
  const ro = new ResizeObserver(() => {
    const w = Math.floor(root.clientWidth);
    if (w > 0 && w !== width) { width = w; draw(); }
  });
  ro.observe(root);
  return wrap;
}
