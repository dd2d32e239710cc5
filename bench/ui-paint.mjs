// Times the logs page in headless Chromium: from navigation to the first contentful paint, to
// the first result lines painted, and to the level histogram painted (the page's
// `fnlens:logs-*` performance marks, taken after the paint). A fresh browser context (no cache)
// per run. Usage: node bench/ui-paint.mjs <base url> <hash> <runs>
import { chromium } from '../tests/browser/node_modules/playwright-core/index.mjs';

const [base, hash, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 10);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const rows = [];
for (let i = 0; i < runs + 1; i++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/${hash}`);
  await page.waitForFunction(() => performance.getEntriesByName('fnlens:logs-results').length
    && performance.getEntriesByName('fnlens:logs-histogram').length, null, { timeout: 60000 });
  const t = await page.evaluate(() => ({
    fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
    results: performance.getEntriesByName('fnlens:logs-results')[0].startTime,
    histogram: performance.getEntriesByName('fnlens:logs-histogram')[0].startTime,
    lines: document.querySelectorAll('.lines > li').length,
    total: document.querySelector('.summary b')?.textContent,
  }));
  if (i > 0) rows.push(t); // the first run warms the server's caches and is not counted
  await context.close();
}
await browser.close();
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const fmt = (k) => `p50 ${pct(rows.map((r) => r[k]), 0.5).toFixed(0)} ms, p90 ${pct(rows.map((r) => r[k]), 0.9).toFixed(0)} ms`;
console.log(`${hash}: ${rows[0].total} matching lines, ${rows[0].lines} shown; ${runs} runs`);
console.log(`  first contentful paint: ${fmt('fcp')}`);
console.log(`  first result lines painted: ${fmt('results')}`);
console.log(`  level histogram painted: ${fmt('histogram')}`);
console.log(`  meaningful (both painted): p50 ${pct(rows.map((r) => Math.max(r.results, r.histogram)), 0.5).toFixed(0)} ms, p90 ${pct(rows.map((r) => Math.max(r.results, r.histogram)), 0.9).toFixed(0)} ms`);
