// Opens the self-contained HTML report of `tocsin lint --output html` in Debian's Chromium through
// playwright-core: `node lint_report.mjs <file-url> <screenshot.png>`. Prints, as its last line,
// `RESULT {...}` with what the page drew (product headings, each rule's status, id, reason cells
// and description, the summary line), every request the page made and every console error;
// crates/tocsin/tests/lint_report.rs asserts on it. playwright-core is found in $PLAYWRIGHT_DEPS.
import { createRequire } from 'node:module';
import path from 'node:path';

const [fileUrl, screenshot] = process.argv.slice(2);
const deps = process.env.PLAYWRIGHT_DEPS;
if (!deps || !fileUrl || !screenshot) {
  console.error('usage: PLAYWRIGHT_DEPS=<dir> node lint_report.mjs <file-url> <screenshot.png>');
  process.exit(2);
}
const { chromium } = createRequire(path.join(deps, 'node_modules') + '/')('playwright-core');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const result = { errors: [], requests: [] };
try {
  const page = await (await browser.newContext({ viewport: { width: 1300, height: 1000 } })).newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (m.type() === 'error') result.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => result.errors.push(`page error: ${e.message}`));
  page.on('request', (r) => result.requests.push(r.url()));
  await page.goto(fileUrl, { waitUntil: 'load' });
  await page.waitForSelector('h1');
  result.title = await page.title();
  result.summary = await page.locator('body > p').first().innerText();
  result.products = await page.locator('h2').allInnerTexts();
  result.rules = await page.locator('div.rule').evaluateAll((divs) => divs.map((d) => ({
    anchor: d.id,
    status: d.querySelector('span')?.textContent,
    id: d.querySelector('.id')?.textContent,
    description: d.querySelector('.desc')?.textContent || null,
    rows: [...d.querySelectorAll('tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    // What a reader sees: the failed status is painted in the failure colour.
    statusColor: getComputedStyle(d.querySelector('span')).color,
  })));
  // Nothing the page drew may sit outside the viewport's width (a report is read top to bottom).
  result.scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: screenshot, fullPage: true });
} catch (e) {
  result.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log('RESULT ' + JSON.stringify(result));
