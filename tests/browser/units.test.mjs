// Unit tests of the UI's pure functions, in Node (no browser): time ranges, the rule form's
// checks and descriptions, formatting. Run with ui.test.mjs by tests/browser.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toMs, resolve, wider, describe, bucketSeconds, absolute } from '../../web/ui/js/time.js';
import { validateRule, describeRule, formatValue } from '../../web/ui/js/alerts.js';
import { fmtMs, fmtNum, fmtPct, queryValue, sqlString } from '../../web/ui/js/util.js';

const NOW = Date.parse('2026-11-27T12:00:00Z');

test('range bounds: relative, RFC 3339 and epoch ms', () => {
  assert.equal(toMs('now', NOW), NOW);
  assert.equal(toMs('now-15m', NOW), NOW - 15 * 60e3);
  assert.equal(toMs('now-7d', NOW), NOW - 7 * 864e5);
  assert.equal(toMs('2026-01-01T00:00:00Z', NOW), Date.parse('2026-01-01T00:00:00Z'));
  assert.equal(toMs('1767225600000', NOW), 1767225600000);
  assert.throws(() => toMs('yesterday', NOW), /not a time: yesterday/);
  assert.deepEqual(resolve({ start: 'now-1h', end: 'now' }, NOW), { startMs: NOW - 36e5, endMs: NOW });
});

test('widening steps through the presets, then doubles an absolute range', () => {
  assert.deepEqual(wider({ start: 'now-5m', end: 'now' }), { start: 'now-15m', end: 'now' });
  assert.deepEqual(wider({ start: 'now-24h', end: 'now' }), { start: 'now-7d', end: 'now' });
  assert.equal(wider({ start: 'now-7d', end: 'now' }), null);
  const w = wider(absolute(Date.parse('2026-01-01T10:00:00Z'), Date.parse('2026-01-01T11:00:00Z')));
  assert.deepEqual(w, { start: '2026-01-01T09:00:00.000Z', end: '2026-01-01T12:00:00.000Z' });
  assert.equal(describe({ start: 'now-15m', end: 'now' }), 'last 15m');
  assert.equal(describe({ start: '2026-01-01T10:00:00Z', end: '2026-01-01T12:30:00Z' }), '2026-01-01 10:00:00 – 2026-01-01 12:30:00 UTC');
});

test('bucket widths give about sixty buckets, in round steps', () => {
  assert.equal(bucketSeconds(5 * 60e3), 5);
  assert.equal(bucketSeconds(36e5), 60);
  assert.equal(bucketSeconds(864e5), 1800);
  assert.equal(bucketSeconds(7 * 864e5), 10800);
  assert.equal(bucketSeconds(365 * 864e5), 86400);
});

const RULE = { name: 'errors', function: '*', metric: 'error_rate', comparison: '>', threshold: 5, window: '1m', evaluation_periods: 3 };

test('the rule form refuses what the server would, before sending it', () => {
  assert.deepEqual(validateRule(RULE), {});
  const bad = (change) => Object.keys(validateRule({ ...RULE, ...change }));
  assert.deepEqual(bad({ name: '' }), ['name']);
  assert.deepEqual(bad({ name: 'a/b' }), ['name']);
  assert.deepEqual(bad({ function: '' }), ['function']);
  assert.deepEqual(bad({ threshold: Number.NaN }), ['threshold']);
  assert.deepEqual(bad({ window: '7s' }), ['window']);
  assert.deepEqual(bad({ window: '1 minute' }), ['window']);
  assert.deepEqual(bad({ evaluation_periods: 0 }), ['evaluation_periods']);
  assert.deepEqual(bad({ datapoints_to_alarm: 4 }), ['datapoints_to_alarm']);
  assert.deepEqual(bad({ min_invocations: -1 }), ['min_invocations']);
  assert.deepEqual(bad({ metric: { logs: '  ' } }), ['query']);
  assert.deepEqual(bad({ notify: [{ type: 'webhook', url: 'ftp://x' }] }), ['url']);
  assert.deepEqual(bad({ notify: [{ type: 'webhook', url: 'https://hooks.example/x' }] }), []);
});

test('rules and their values read as a sentence', () => {
  assert.equal(describeRule({ ...RULE, datapoints_to_alarm: 2, min_invocations: 20 }),
    'error_rate > 5 over 1m, 2 of 3 datapoints, at least 20 invocations');
  assert.equal(describeRule({ ...RULE, metric: { logs: 'level:ERROR' }, evaluation_periods: 1 }),
    'logs (level:ERROR) > 5 over 1m, 1 of 1 datapoints');
  assert.equal(formatValue(RULE, 12.345), '12.35%');
  assert.equal(formatValue({ ...RULE, metric: 'duration' }, 1234), '1.23 s');
  assert.equal(formatValue(RULE, null), '–');
});

test('formatting and quoting', () => {
  assert.equal(fmtMs(0.5), '0.5 ms');
  assert.equal(fmtMs(250), '250 ms');
  assert.equal(fmtMs(30000), '30.00 s');
  assert.equal(fmtMs(90000), '1.5 min');
  assert.equal(fmtNum(12345), '12.3k');
  assert.equal(fmtPct(2.345, 2), '2.35%');
  assert.equal(queryValue('payments-webhook'), 'payments-webhook');
  assert.equal(queryValue('$LATEST'), '$LATEST');
  assert.equal(queryValue('my fn "x"'), '"my fn \\"x\\""');
  assert.equal(sqlString("o'brien"), "'o''brien'");
});
