// Drives Debian's Chromium through playwright-core against a running Tocsin, one scenario per
// run: `node console.mjs <scenario> <base-url> [json-args]`. crates/tocsin/tests/browser.rs starts
// the server, prepares the data and asserts on the JSON this prints as its last line
// (`RESULT {...}`). Screenshots go to $SCREENS. playwright-core is found in $PLAYWRIGHT_DEPS
// (scripts/test installs it with `npm install --prefix target/browser-deps playwright-core@1`).
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const [scenario, base, argJson] = process.argv.slice(2);
const args = argJson ? JSON.parse(argJson) : {};
const deps = process.env.PLAYWRIGHT_DEPS;
if (!deps || !scenario || !base) {
  console.error('usage: PLAYWRIGHT_DEPS=<dir> node console.mjs <scenario> <base-url> [json-args]');
  process.exit(2);
}
const { chromium } = createRequire(path.join(deps, 'node_modules') + '/')('playwright-core');
const screens = process.env.SCREENS || 'target/browser-screens';
mkdirSync(screens, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const context = await browser.newContext({
  viewport: { width: 1400, height: 900 },
  ...(args.user ? { httpCredentials: { username: args.user, password: args.password } } : {}),
});
const page = await context.newPage();
page.setDefaultTimeout(args.timeout || 15000);
const errors = [];
page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()} (${page.url()})`); });
page.on('pageerror', (e) => errors.push(`page error: ${e.message} (${page.url()})`));
page.on('requestfailed', (r) => { if (!/net::ERR_ABORTED/.test(r.failure()?.errorText || '')) errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`); });

const shot = async (name) => page.screenshot({ path: path.join(screens, `${name}.png`), fullPage: false });
const url = (p) => base.replace(/\/$/, '') + p;
const result = { errors };

async function visit(p, name, ready) {
  await page.goto(url(p), { waitUntil: 'load' });
  if (ready) await page.waitForSelector(ready);
  await page.waitForLoadState('networkidle').catch(() => {});
  await shot(name);
}

const scenarios = {
  // Every page loads without console errors; links navigate in place and the back button works.
  async pages() {
    const list = [
      ['/', 'alerts', '#alert-list'], ['/graph?expr=up&tab=table', 'graph-table', '#expr'], ['/targets', 'targets', '#targets'],
      ['/targets?state=dropped', 'targets-dropped', '#targets'], ['/rules', 'rules', 'section'], ['/silences', 'silences', '#silences'],
      ['/silences/new', 'silence-new', '#silence-form'], ['/heartbeats', 'heartbeats', '#heartbeats'], ['/actions', 'actions', 'section'],
      ['/actions?tab=policies', 'actions-policies', '#policies'], ['/status', 'status', 'section'], ['/status?tab=tsdb', 'status-tsdb', 'section'],
      ['/status?tab=config', 'status-config', '#config'], ['/status?tab=flags', 'status-flags', '#flags'],
    ];
    if (args.fingerprint) list.push([`/alerts/${args.fingerprint}`, 'alert-page', '.alert-page']);
    result.visited = [];
    for (const [p, name, sel] of list) { await visit(p, name, sel); result.visited.push(p); }
    // In-app navigation and history.
    await page.goto(url('/'), { waitUntil: 'load' });
    await page.click('nav.top >> text=Rules');
    await page.waitForURL(/\/rules$/);
    await page.click('nav.top >> text=Silences');
    await page.waitForURL(/\/silences$/);
    await page.goBack();
    await page.waitForURL(/\/rules$/);
    await page.waitForSelector('table.rules a[href*="/graph?"]');
    result.backTo = new URL(page.url()).pathname;
    result.ruleLinks = await page.locator('a[href*="/graph?"]').count();
  },

  // Opens the console, then waits for the alert named args.alertname to appear without reload;
  // reports when the alert manager's API first listed it and when the page showed it.
  async live() {
    await visit('/', 'live-before', '#alert-list');
    const nav = await page.evaluate(() => performance.timeOrigin);
    console.log('READY');
    const t0 = Date.now();
    let apiAt = null;
    const poll = (async () => {
      while (apiAt === null && Date.now() - t0 < 60000) {
        const r = await fetch(url('/api/v2/alerts?filter=' + encodeURIComponent(`alertname="${args.alertname}"`)), { headers: args.auth ? { authorization: args.auth } : {} });
        if ((await r.json()).length) apiAt = Date.now(); else await new Promise((s) => setTimeout(s, 100));
      }
    })();
    await page.waitForSelector(`#alert-list a:text-is("${args.alertname}")`, { timeout: 60000 });
    const domAt = Date.now();
    await poll;
    result.apiAt = apiAt; result.domAt = domAt; result.lagMs = domAt - apiAt; result.sameDocument = nav === await page.evaluate(() => performance.timeOrigin);
    await shot('live-after');
  },

  // Acknowledges the alert with a comment by clicking the button on its page.
  async ack() {
    await visit(`/alerts/${args.fingerprint}`, 'ack-before', '#ack');
    await page.fill('input[aria-label="comment"]', args.comment);
    await page.click('#ack');
    await page.waitForSelector('h1 .badge.st-acked');
    await shot('ack-after');
    result.acked = true;
  },

  // The alert's page and the console both show it acknowledged (after a restart).
  async acked() {
    await visit(`/alerts/${args.fingerprint}`, 'acked-after-restart', 'h1');
    result.pageAcked = await page.locator('h1 .badge.st-acked').count() > 0;
    result.timeline = await page.locator('#timeline').innerText().catch(() => '');
    await visit('/', 'console-acked', '#alert-list');
    result.listAcked = await page.locator(`tr[data-fingerprint="${args.fingerprint}"] .badge.st-acked`).count() > 0;
  },

  // Creates a silence through the form; the preview must show the alert first.
  async silence() {
    await visit('/silences/new?matchers=' + encodeURIComponent(args.matchers), 'silence-form', '#silence-form');
    await page.waitForSelector('#preview-count');
    result.preview = await page.locator('#preview-count').innerText();
    await page.fill('input[name="createdBy"]', 'browser-test');
    await page.fill('textarea[name="comment"]', args.comment);
    await page.fill('input[name="duration"]', '1h');
    await page.click('#silence-form button[type="submit"]');
    await page.waitForURL(/\/silences\/[0-9a-f-]{8,}$/);
    result.id = new URL(page.url()).pathname.split('/').pop();
    await page.waitForSelector('h1 .badge');
    await shot('silence-created');
    await visit('/', 'console-silenced', '#alert-list');
    await page.waitForSelector(`#alert-list tr:has(a:text-is("${args.alertname}")) .badge.st-silenced`);
    result.listSilenced = true;
  },

  // A denied action shows what role it needs.
  async forbidden() {
    await visit('/silences/new?matchers=' + encodeURIComponent('{alertname="x"}'), 'forbidden-form', '#silence-form');
    await page.fill('input[name="createdBy"]', 'viewer');
    await page.fill('textarea[name="comment"]', 'try');
    await page.click('#silence-form button[type="submit"]');
    await page.waitForSelector('#silence-form .error');
    result.message = await page.locator('#silence-form .error').innerText();
    await shot('forbidden');
    // The 403 itself is logged by the browser as a failed resource; that one is expected.
    result.errors = errors.filter((e) => !/403/.test(e));
  },

  // Draws a range query; counts series and non-blank pixels of the chart.
  async graph() {
    const t0 = Date.now();
    await page.goto(url('/graph?tab=graph&range=1h&expr=' + encodeURIComponent(args.expr)), { waitUntil: 'load' });
    await page.waitForSelector('#chart canvas', { timeout: 60000 });
    await page.waitForFunction(() => window.__tocsinDrawMs !== undefined);
    result.loadMs = Date.now() - t0;
    result.drawMs = await page.evaluate(() => window.__tocsinDrawMs);
    result.series = await page.evaluate(() => window.__tocsinPlot.series.length - 1);
    result.points = await page.evaluate(() => window.__tocsinPlot.data[0].length);
    result.inkPixels = await page.evaluate(() => {
      const c = document.querySelector('#chart canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    await page.hover('#chart .u-over', { position: { x: 300, y: 150 } });
    result.legend = await page.locator('.u-legend, .hover-legend').first().innerText().catch(() => '');
    await page.click('input[type="checkbox"]');
    await page.waitForURL(/stacked=1/);
    await page.waitForSelector('#chart canvas');
    await shot('graph');
    result.url = page.url();
  },

  // A PromQL syntax error shows its message and where it is.
  async promqlError() {
    await visit('/graph?tab=table&expr=' + encodeURIComponent(args.expr), 'promql-error', '.query-error');
    result.message = await page.locator('.query-error').innerText();
    // The failing query answers 400, which the browser logs as a failed resource: expected.
    result.errors = errors.filter((e) => !/status of 400/.test(e));
  },

  // Big lists: time to the first rows, then how long typing in the search box takes to apply.
  async big() {
    const out = {};
    for (const [name, p, sel, search] of [['alerts', '/', '#alert-list tbody tr', 'input[aria-label="search text"]'], ['targets', '/targets', '#targets tbody tr', 'input[aria-label="search"]']]) {
      const t0 = Date.now();
      await page.goto(url(p), { waitUntil: 'commit' });
      await page.waitForSelector(sel, { timeout: 60000 });
      const firstView = Date.now() - t0;
      await shot('big-' + name);
      const rows = await page.locator(sel).count();
      const t1 = Date.now();
      await page.fill(search, args[name + 'Search']);
      await page.waitForFunction(([s, text]) => { const r = document.querySelectorAll(s); return r.length > 0 && [...r].every((x) => x.innerText.includes(text) || x.classList.contains('group')); }, [sel, args[name + 'Search']], { timeout: 30000 });
      const filterMs = Date.now() - t1;
      // The main thread answers promptly while the page polls and re-renders.
      const t2 = Date.now();
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
      const frameMs = Date.now() - t2;
      const transfer = await page.evaluate(() => performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).reduce((s, e) => s + (e.transferSize || 0), 0));
      out[name] = { firstView, rows, filterMs, frameMs, transfer };
    }
    result.big = out;
  },
};

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario]();
  console.log('RESULT ' + JSON.stringify(result));
} catch (e) {
  await shot('failed-' + scenario).catch(() => {});
  console.log('RESULT ' + JSON.stringify({ ...result, failure: String(e && e.stack || e) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
