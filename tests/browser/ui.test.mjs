// The fnlens UI in headless Chromium against a real server that tests/browser.rs started and
// filled with a simulated fleet (8 functions, payments-webhook failing a quarter of the time)
// plus one known invocation. Environment: FNLENS_URL, SCREENSHOT_DIR, KNOWN_REQUEST_ID.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const BASE = process.env.FNLENS_URL;
const SHOTS = process.env.SCREENSHOT_DIR;
const KNOWN = process.env.KNOWN_REQUEST_ID;
assert.ok(BASE && SHOTS && KNOWN, 'FNLENS_URL, SCREENSHOT_DIR and KNOWN_REQUEST_ID are set');

let browser;
let page;
const pageErrors = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(15000);
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // What the page's Content-Security-Policy refused (4xx answers the tests ask for are expected).
  page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/.test(m.text())) pageErrors.push(m.text()); });
});

after(async () => {
  await browser?.close();
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});

const shot = (name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
/** Waits until the page has routed to its current URL, and that URL contains `part`. */
const routed = (part) => page.waitForFunction((p) => {
  const route = document.getElementById('view').dataset.route;
  return route === location.hash && decodeURIComponent(route).includes(p);
}, part);
const go = async (hash) => {
  await page.goto(`${BASE}/${hash}`);
  await routed(decodeURIComponent(hash));
};
const post = async (path, body, type = 'application/json') => {
  const r = await fetch(`${BASE}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
  assert.ok(r.ok, `${path}: ${r.status} ${await r.text()}`);
};

test('a search finds a known line, with the matched term highlighted', async () => {
  await go('#/logs?q=zanzibar&start=now-1h');
  const line = page.locator('.lines li', { hasText: 'zanzibar parcel lost' });
  await line.waitFor();
  assert.equal(await page.locator('.lines > li').count(), 1);
  assert.equal(await line.locator('mark').first().textContent(), 'zanzibar');
  await page.locator('.summary b', { hasText: '1' }).waitFor();
  // The line expands to its attributes as JSON.
  await line.locator('summary').click();
  const json = JSON.parse(await line.locator('pre').textContent());
  assert.equal(json.attributes.order_id, 'o-991');
  assert.equal(json.request_id, KNOWN);
  await shot('logs-search');
});

test('the parser error is shown inline, at its position', async () => {
  await go(`#/logs?q=${encodeURIComponent('level:ERROR AND (')}`);
  const err = page.locator('.query-error .error-box');
  await err.waitFor();
  assert.match(await err.textContent(), /invalid_query: syntax error at position \d+/);
  assert.match(await err.textContent(), /\^$/);
  assert.equal(await page.locator('input[name=q]').getAttribute('aria-invalid'), 'true');
});

test('clicking a facet narrows the results to it', async () => {
  await go('#/logs?start=now-1h');
  await page.locator('.lines > li').first().waitFor();
  const before = Number((await page.locator('.summary b').textContent()).replace(/,/g, ''));
  await page.locator('.facets button', { hasText: 'payments-webhook' }).click();
  await routed('q=function:payments-webhook');
  await page.locator('.lines .fn').first().waitFor();
  const fns = await page.locator('.lines .fn').allTextContents();
  assert.ok(fns.length > 0);
  assert.deepEqual([...new Set(fns)], ['payments-webhook']);
  const after = Number((await page.locator('.summary b').textContent()).replace(/,/g, ''));
  assert.ok(after > 0 && after < before, `${after} < ${before}`);
  await shot('logs-facet');
});

test('scrolling to the end loads the next page through the cursor', async () => {
  await go('#/logs?start=now-1h');
  await page.locator('.lines > li').nth(99).waitFor();
  await page.locator('.sentinel').scrollIntoViewIfNeeded();
  await page.locator('.lines > li').nth(150).waitFor();
  const times = await page.locator('.lines .ts').allTextContents();
  const sorted = [...times].sort().reverse();
  assert.deepEqual(times, sorted, 'newest first across pages');
});

test('dragging across the histogram zooms into that range', async () => {
  await go('#/logs?start=now-1h');
  // Once the lines are in, the layout (and the chart's width) is settled.
  await page.locator('.lines > li').nth(99).waitFor();
  const svg = page.locator('.panel .chart svg').first();
  await svg.waitFor();
  await svg.scrollIntoViewIfNeeded();
  const box = await svg.boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => /start=\d{4}-\d\d-\d\dT/.test(decodeURIComponent(location.hash)));
  const params = new URLSearchParams(page.url().split('?')[1]);
  const span = Date.parse(params.get('end')) - Date.parse(params.get('start'));
  assert.ok(span > 10 * 60e3 && span < 30 * 60e3, `zoomed to ${span} ms of the hour`);
});

test('an empty range offers to widen it; absolute ranges go in the URL', async () => {
  await go('#/logs?q=zanzibar&start=now-5m');
  await page.locator('.lines > li').first().waitFor();
  await go('#/logs?q=nosuchword&start=now-5m');
  await page.locator('.lines .empty', { hasText: 'No logs in this range.' }).waitFor();
  await page.locator('button', { hasText: 'Widen it to last 15m' }).click();
  await routed('start=now-15m');
  await page.locator('.summary', { hasText: 'last 15m' }).waitFor();
  await page.locator('select[aria-label="Time range"]').selectOption('custom');
  await page.locator('input[aria-label="From (UTC)"]').fill('2026-01-01T10:00');
  await page.locator('input[aria-label="To (UTC)"]').fill('2026-01-01T12:30');
  await page.locator('button', { hasText: 'Apply' }).click();
  await routed('start=2026-01-01T10:00:00.000Z&end=2026-01-01T12:30:00.000Z');
  await page.locator('.summary', { hasText: '2026-01-01 10:00:00 – 2026-01-01 12:30:00 UTC' }).waitFor();
});

test('the request id opens the invocation view', async () => {
  await go('#/logs?q=zanzibar&start=now-1h');
  await page.locator('.lines a.rid').first().click();
  await routed(`#/invocation/${KNOWN}`);
  const report = page.locator('dl.report');
  await report.waitFor();
  const text = await report.textContent();
  assert.match(text, /checkout/);
  assert.match(text, /2\.60 s/); // duration 2599.4 ms
  assert.match(text, /94 MB used of 128 MB/);
  assert.match(text, /yes, init 549 ms/);
  const lines = await page.locator('.lines .msg').allTextContents();
  assert.ok(lines.some((l) => l.includes('zanzibar parcel lost')));
  assert.ok(lines.some((l) => l.startsWith('REPORT RequestId')));
  await shot('invocation');
});

test('the function table shows the simulated functions, the failing one highlighted', async () => {
  await go('#/functions?start=now-1h');
  await page.locator('table[aria-label=Functions] tbody tr').first().waitFor();
  const names = await page.locator('table[aria-label=Functions] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.function));
  for (const f of ['checkout', 'invoice', 'image-resize', 'auth', 'search-api', 'email-sender', 'payments-webhook']) {
    assert.ok(names.includes(f), `${f} in ${names}`);
  }
  const failing = await page.locator('tr.failing').evaluateAll((rows) => rows.map((r) => r.dataset.function));
  assert.ok(failing.includes('payments-webhook'), `failing: ${failing}`);
  assert.ok(!failing.includes('invoice'));
  // Why it fails: its most frequent error type.
  assert.match(await page.locator('tr[data-function="payments-webhook"] td').last().textContent(), /^\S+ \(\d+\)$/);
  // Sortable: by invocations, ascending then descending.
  await page.locator('th button', { hasText: 'Invocations' }).click();
  await page.locator('th[aria-sort=descending]', { hasText: 'Invocations' }).waitFor();
  const counts = (await page.locator('table[aria-label=Functions] tbody tr td:nth-child(2)').allTextContents())
    .map((t) => Number(t.replace(/,/g, '')));
  assert.deepEqual(counts, [...counts].sort((a, b) => b - a));
  await shot('functions');
  // The dashboard of the failing function: its charts, and its recent errors.
  await page.locator('a', { hasText: 'payments-webhook' }).first().click();
  await page.locator('.charts svg').first().waitFor();
  assert.ok(await page.locator('.charts section').count() >= 5);
  await page.locator('.lines .lvl-ERROR').first().waitFor();
  const slowest = page.locator('table[aria-label="Slowest invocations"] tbody tr');
  await slowest.first().waitFor();
  assert.equal(await slowest.count(), 10);
  assert.equal(await page.locator('a', { hasText: 'Logs of this function' }).getAttribute('href'),
    '#/logs?q=function%3Apayments-webhook&start=now-1h&end=now');
  assert.equal(await page.locator('a', { hasText: /^All \d+ error lines$/ }).getAttribute('href'),
    '#/logs?q=function%3Apayments-webhook+AND+level%3AERROR&start=now-1h&end=now');
  await page.locator('label', { hasText: 'Compare versions' }).click();
  await routed('versions=1');
  await page.locator('h3', { hasText: 'Invocations by version' }).waitFor();
  await shot('function-dashboard');
});

test('an SQL query renders a table and a chart; errors carry DataFusion\'s message', async () => {
  await go('#/sql');
  const editor = page.locator('textarea[aria-label="SQL query"]');
  await editor.fill(`SELECT date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS minute,
  count(*) AS invocations, count(*) FILTER (WHERE status <> 'success') AS errors
FROM invocations WHERE ts >= now() - INTERVAL '1 hour' GROUP BY 1 ORDER BY 1`);
  await editor.press('Control+Enter');
  await page.locator('table[aria-label="Query results"] tbody tr').first().waitFor();
  const headers = await page.locator('table[aria-label="Query results"] th').allTextContents();
  assert.deepEqual(headers, ['minute', 'invocations', 'errors']);
  await page.locator('.schema summary', { hasText: 'invocations' }).waitFor();
  await page.locator('button', { hasText: 'Chart' }).click();
  await page.locator('.sql-out .chart svg path[stroke]').first().waitFor();
  assert.equal(await page.locator('.sql-out .legend > span').count(), 2);
  await shot('sql-chart');
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('button', { hasText: 'Download CSV' }).click()]);
  const csv = await (await download.createReadStream()).toArray();
  const text = Buffer.concat(csv).toString();
  assert.equal(text.split('\n')[0], 'minute,invocations,errors');
  assert.ok(text.trim().split('\n').length >= 6, text);
  await editor.fill('SELECT nope FROM invocations');
  await editor.press('Control+Enter');
  const err = page.locator('.sql-out .error-box');
  await err.waitFor();
  assert.match(await err.textContent(), /nope/);
});

test('an alert rule created in the form appears with its state', async () => {
  await go('#/alerts');
  await page.locator('button', { hasText: 'New rule' }).click();
  const dialog = page.locator('dialog');
  await dialog.locator('input[name=name]').fill('webhook errors');
  await dialog.locator('input[name=function]').fill('payments-webhook');
  await dialog.locator('input[name=threshold]').fill('5');
  await dialog.locator('input[name=window]').fill('7s');
  await dialog.locator('button[type=submit]').click();
  // Checked before saving: nothing was sent.
  assert.equal(await page.locator('#rf-window-err').textContent(), 'A multiple of 5 s.');
  const rules = await (await fetch(`${BASE}/api/v1/alerts/rules`)).json();
  assert.equal(rules.rules.length, 0);
  // The server checks what the form cannot, such as a log query, and the form shows its answer.
  await dialog.locator('input[name=window]').fill('10m');
  await dialog.locator('select[name=metric]').selectOption('logs');
  await dialog.locator('textarea[name=query]').fill('level:ERROR AND (');
  await dialog.locator('button[type=submit]').click();
  await dialog.locator('.error-box', { hasText: 'invalid_rule: rule "webhook errors": the logs query: invalid query at position 17' }).waitFor();
  await dialog.locator('select[name=metric]').selectOption('error_rate');
  // A webhook nobody listens on: its delivery attempts fail, and the history shows them.
  await dialog.locator('input[name=url]').fill('http://127.0.0.1:9/hook');
  await dialog.locator('input[name=secret]').fill('s3cret');
  await dialog.locator('button[type=submit]').click();
  await dialog.waitFor({ state: 'detached' });
  const rule = page.locator('article.rule[data-rule="webhook errors"]');
  await rule.waitFor();
  const state = rule.locator('tr[data-function="payments-webhook"] .state');
  await state.waitFor();
  assert.match(await state.textContent(), /^(OK|PENDING|ALARM|INSUFFICIENT_DATA)$/);
  // A quarter of its 10-minute window fails: the rule fires.
  await rule.locator('tr[data-function="payments-webhook"] .state-ALARM').waitFor();
  await page.locator('table[aria-label="Alert history"] td', { hasText: 'webhook errors' }).first().waitFor();
  await page.locator('table[aria-label="Alert history"] td', { hasText: 'firing to http://127.0.0.1:9/hook, attempt 1' }).first().waitFor();
  assert.equal(await page.locator('table[aria-label="Alert history"] .tag', { hasText: 'failed' }).first().textContent(), 'failed');
  await shot('alerts');
  // Silence the instance.
  await rule.locator('tr[data-function="payments-webhook"] button', { hasText: 'Silence' }).click();
  await rule.locator('button', { hasText: /^Silence$/ }).last().click();
  await page.locator('table[aria-label=Silences] td', { hasText: 'payments-webhook' }).waitFor();
  await rule.locator('tr[data-function="payments-webhook"] .tag', { hasText: 'silenced' }).waitFor();
  // Edit: the threshold goes up, and the server's answer is what the page shows.
  await rule.locator('button', { hasText: 'Edit' }).click();
  await dialog.locator('input[name=threshold]').fill('90');
  await dialog.locator('button[type=submit]').click();
  await dialog.waitFor({ state: 'detached' });
  await rule.locator('h2 small', { hasText: 'error_rate > 90 over 10m' }).waitFor();
  const stored = await (await fetch(`${BASE}/api/v1/alerts/rules/webhook%20errors`)).json();
  assert.equal(stored.threshold, 90);
  // Delete, after the confirmation.
  page.once('dialog', (d) => d.accept());
  await rule.locator('button', { hasText: 'Delete' }).click();
  await rule.waitFor({ state: 'detached' });
  assert.equal((await (await fetch(`${BASE}/api/v1/alerts/rules`)).json()).rules.length, 0);
});

test('live tail shows a line posted after it was switched on', async () => {
  await go('#/logs?q=tailmarker');
  await page.locator('.lines .empty').waitFor();
  await page.locator('button', { hasText: 'Live tail' }).click();
  await page.locator('.summary', { hasText: 'Live: new lines appear at the top.' }).waitFor();
  await post('/api/v1/ingest/logs', JSON.stringify({ function: 'checkout', level: 'WARN', message: 'tailmarker arrived live' }));
  await page.locator('.lines li', { hasText: 'tailmarker arrived live' }).waitFor();
  await shot('live-tail');
  // Scrolled down, new lines wait; Resume shows them.
  await page.evaluate(() => { document.body.style.minHeight = '4000px'; window.scrollTo(0, 500); });
  await post('/api/v1/ingest/logs', JSON.stringify({ function: 'checkout', message: 'tailmarker while scrolled' }));
  await page.locator('.tail-paused', { hasText: '1 new lines' }).waitFor();
  assert.equal(await page.locator('.lines li', { hasText: 'tailmarker while scrolled' }).count(), 0);
  // Resume, without scrolling first (scrolling back up resumes by itself: next).
  await page.locator('button', { hasText: 'Resume' }).dispatchEvent('click');
  await page.locator('.lines li', { hasText: 'tailmarker while scrolled' }).waitFor();
  await page.evaluate(() => window.scrollTo(0, 500));
  await post('/api/v1/ingest/logs', JSON.stringify({ function: 'checkout', message: 'tailmarker scrolled again' }));
  await page.locator('.tail-paused', { hasText: '1 new lines' }).waitFor();
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.locator('.lines li', { hasText: 'tailmarker scrolled again' }).waitFor();
  await page.locator('button', { hasText: 'Live tail' }).click();
  assert.equal(await page.locator('button', { hasText: 'Live tail' }).getAttribute('aria-pressed'), 'false');
  await page.evaluate(() => { document.body.style.minHeight = ''; });
});

test('charts show values on hover', async () => {
  await go('#/logs?start=now-15m');
  await page.locator('.lines > li').first().waitFor();
  const svg = page.locator('.panel .chart svg').first();
  await svg.scrollIntoViewIfNeeded();
  const box = await svg.boundingBox();
  // The simulated fleet fills the minutes from 6 to 1 ago: the middle of the last 15 has lines.
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height / 2);
  const tip = page.locator('.chart .tip');
  await tip.waitFor();
  assert.match(await tip.textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*(INFO|ERROR|DEBUG|WARN): \d+/);
});

test('the keyboard reaches the pages and opens a log line', async () => {
  await go('#/logs?q=zanzibar&start=now-1h');
  await page.locator('.lines > li').first().waitFor();
  await page.reload(); // focus starts from the top of the document
  const reached = [];
  for (let i = 0; i < 40 && !reached.includes('SUMMARY'); i++) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => document.activeElement.tagName));
  }
  assert.ok(reached.includes('A') && reached.includes('INPUT') && reached.includes('SELECT'), reached.join(' '));
  assert.ok(reached.includes('SUMMARY'), 'a log line takes the focus');
  await page.keyboard.press('Enter');
  await page.locator('.lines details[open] pre').waitFor();
});

test('HTML in a log line is shown as text', async () => {
  await post('/api/v1/ingest/logs', JSON.stringify({ function: 'checkout', level: 'ERROR',
    message: 'xsscheck <img src=x onerror="window.__xss=1"> & <b>bold</b>', note: '<script>window.__xss=2</script>' }));
  for (let i = 0; i < 100; i++) {
    const r = await (await fetch(`${BASE}/api/v1/logs/search?q=xsscheck`)).json();
    if (r.total === 1) break;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  await go('#/logs?q=xsscheck');
  const line = page.locator('.lines > li', { hasText: 'xsscheck' });
  await line.waitFor();
  assert.equal(await line.locator('.msg img, .msg b').count(), 0);
  assert.match(await line.locator('.msg').textContent(), /xsscheck <img src=x onerror="window.__xss=1"> & <b>bold<\/b>/);
  await line.locator('summary').click();
  assert.match(await line.locator('pre').textContent(), /<script>window.__xss=2<\/script>/);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
});

test('an unknown request id says so', async () => {
  await go('#/invocation/no-such-request');
  await page.locator('.empty', { hasText: 'No invocation or log line has this request id' }).waitFor();
});

/** The text of the page whose contrast with its background is under WCAG AA's 4.5:1. */
function lowContrast() {
  return page.evaluate(() => {
    const rgb = (c) => c.match(/[\d.]+/g).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
      for (; el; el = el.parentElement) {
        const c = rgb(getComputedStyle(el).backgroundColor);
        if (c.length < 4 || c[3] > 0) return c;
      }
      return [255, 255, 255];
    };
    const bad = [];
    for (const el of document.querySelectorAll('main *, header *')) {
      const text = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim()).map((n) => n.textContent.trim()).join(' ');
      if (!text || el.closest('[hidden], details:not([open]) > :not(summary)') || !el.getClientRects().length) continue;
      const a = lum(rgb(getComputedStyle(el).color));
      const b = lum(background(el));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) bad.push(`${el.tagName}.${el.className} "${text.slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
    return bad;
  });
}

test('text has readable contrast in both themes', async () => {
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const view of ['#/functions?start=now-1h', '#/logs?q=zanzibar&start=now-1h', '#/alerts', '#/sql']) {
      await go(view);
      await page.waitForLoadState('networkidle');
      await page.waitForTimeout(300);
      assert.deepEqual(await lowContrast(), [], `${scheme} ${view}`);
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
});

test('the pages work on a narrow screen and in the dark theme', async () => {
  await page.setViewportSize({ width: 420, height: 900 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await go('#/functions?start=now-1h');
  await page.locator('tr.failing').first().waitFor();
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(15, 18, 22)');
  await shot('functions-narrow-dark');
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.emulateMedia({ colorScheme: 'light' });
});
