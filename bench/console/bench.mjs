// Measures the console in Chromium; started by bench/console/run with the server binary's path.
// Starts the server on a temp directory with 50,000 file_sd targets (45,000 dropped by
// relabelling) scraping three local endpoints served from here, posts 20,000 alerts and writes
// 500 series x 1,000 points, then times first views, the graph's draw and transfer sizes.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const bin = process.argv[2];
const RUNS = Number(process.env.RUNS || 5);
const { chromium } = createRequire(path.resolve('target/browser-deps/node_modules') + '/')('playwright-core');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const endpoints = [];
for (let i = 0; i < 3; i++) {
  const srv = createServer((req, res) => { res.setHeader('content-type', 'text/plain'); res.end(`# TYPE fleet_up gauge\nfleet_up{endpoint="${i}"} 1\n`); });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  endpoints.push(srv);
}
const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-console-bench-'));
const groups = [];
for (let i = 0; i < 50000; i++) groups.push({ targets: [`127.0.0.1:${endpoints[i % 3].address().port}`], labels: { shard: String(i), rack: `r${i % 97}` } });
writeFileSync(path.join(dir, 'fleet.json'), JSON.stringify(groups));
writeFileSync(path.join(dir, 'tocsin.yml'), `scrape_configs:
  - job_name: fleet
    scrape_interval: 1m
    file_sd_configs:
      - files: ['fleet.json']
    relabel_configs:
      - source_labels: [shard]
        regex: '.*0'
        action: keep
`);
const addrFile = path.join(dir, 'addr');
const serverLog = openSync(path.join(dir, 'server.log'), 'w');
const server = spawn(bin, ['server', '--config', path.join(dir, 'tocsin.yml'), '--data-dir', path.join(dir, 'data'), '--listen', '127.0.0.1:0', '--listen-addr-file', addrFile, '--self-monitoring=false'], { stdio: ['ignore', 'ignore', serverLog] });
server.on('exit', (code) => { if (code && code !== 0 && code !== null) console.error(`server exited with ${code}; log:\n` + readFileSync(path.join(dir, 'server.log'), 'utf8')); });
let base;
try {
  while (!existsSync(addrFile)) await sleep(50);
  base = 'http://' + readFileSync(addrFile, 'utf8').trim();
  for (;;) { try { if ((await fetch(base + '/-/ready')).ok) break; } catch {} await sleep(100); }

  // 20,000 alerts.
  for (let b = 0; b < 4; b++) {
    const body = [];
    for (let i = 0; i < 5000; i++) {
      const n = b * 5000 + i;
      body.push({ labels: { alertname: `Fleet${n % 50}`, instance: `vm-${n}`, severity: ['critical', 'warning', 'info'][n % 3], job: 'fleet' }, annotations: { summary: `vm-${n} is unhappy` }, startsAt: new Date(Date.now() - n * 1000).toISOString(), endsAt: '2099-01-01T00:00:00Z' });
    }
    const r = await fetch(base + '/api/v2/alerts', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error('posting alerts: ' + await r.text());
  }
  // 500 series x 1,000 points, 15 s apart.
  const now = Math.floor(Date.now() / 1000);
  for (let p0 = 0; p0 < 1000; p0 += 100) {
    let body = '';
    for (let p = p0; p < p0 + 100; p++) for (let s = 0; s < 500; s++) body += `bench_graph,series=s${s} value=${(s + Math.sin(p / 30) * 50).toFixed(3)} ${now - (1000 - p) * 15}\n`;
    const r = await fetch(base + '/write?precision=s', { method: 'POST', body });
    if (!r.ok) throw new Error('writing samples: ' + await r.text());
  }
  for (;;) {
    const t = await (await fetch(base + '/api/v1/targets?state=dropped')).json();
    if ((t.data.droppedTargets || []).length === 45000) break;
    await sleep(500);
  }
  console.log(`server ${base}: 20,000 alerts, 50,000 targets (45,000 dropped), 500 series x 1,000 points loaded`);

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const pages = {
    alerts: { path: '/', ready: '#alert-list tbody tr' },
    targets: { path: '/targets', ready: '#targets tbody tr' },
    graph: { path: `/graph?tab=graph&range=4h10m&step=15s&expr=bench_graph_value`, ready: '#chart canvas' },
  };
  const res = {};
  for (const [name, p] of Object.entries(pages)) {
    res[name] = { firstView: [], transfer: [], draw: [], series: [], points: [] };
    for (let i = 0; i < RUNS; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await ctx.newPage();
      const t0 = Date.now();
      await page.goto(base + p.path, { waitUntil: 'commit' });
      await page.waitForSelector(p.ready, { timeout: 120000 });
      res[name].firstView.push(Date.now() - t0);
      if (name === 'graph') {
        await page.waitForFunction(() => window.__tocsinDrawMs !== undefined);
        res[name].draw.push(await page.evaluate(() => window.__tocsinDrawMs));
        res[name].parts = await page.evaluate(() => window.__tocsinDrawParts);
        res[name].series.push(await page.evaluate(() => window.__tocsinPlot.series.length - 1));
        res[name].points.push(await page.evaluate(() => window.__tocsinPlot.data[0].length));
      }
      await page.waitForLoadState('networkidle').catch(() => {});
      res[name].transfer.push(await page.evaluate(() => performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((s, e) => s + (e.transferSize || 0), 0)));
      await ctx.close();
    }
  }
  await browser.close();
  const kb = (n) => (n / 1024).toFixed(1) + ' KiB';
  console.log(`FIGURE alert console, 20,000 alerts: first view median ${median(res.alerts.firstView)} ms (runs ${res.alerts.firstView.join(', ')}), transfer ${kb(median(res.alerts.transfer))}`);
  console.log(`FIGURE targets page, 50,000 targets: first view median ${median(res.targets.firstView)} ms (runs ${res.targets.firstView.join(', ')}), transfer ${kb(median(res.targets.transfer))}`);
  console.log(`FIGURE graph, ${res.graph.series[0]} series x ${res.graph.points[0]} points: draw median ${median(res.graph.draw).toFixed(1)} ms (runs ${res.graph.draw.map((x) => x.toFixed(0)).join(', ')}; last run: reshaping ${res.graph.parts.columns.toFixed(0)} ms, uPlot ${res.graph.parts.plot.toFixed(0)} ms, the rest until the next frame), page ready ${median(res.graph.firstView)} ms, transfer ${kb(median(res.graph.transfer))}`);
} finally {
  server.kill('SIGTERM');
  endpoints.forEach((s) => s.close());
  await sleep(500);
  rmSync(dir, { recursive: true, force: true });
}
