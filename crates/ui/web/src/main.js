// The console's shell: the navigation bar and the router that maps a path under the route prefix
// to its page. Each page keeps its state in the query string.
import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { html, useLocation, href } from './util.js';
import { AlertConsole } from './alerts.js';
import { AlertPage } from './alert_page.js';
import { GraphPage } from './graph.js';
import { TargetsPage } from './targets.js';
import { RulesPage } from './rules.js';
import { SilencesPage, SilenceForm } from './silences.js';
import { StatusPage, HeartbeatsPage } from './status.js';
import { ActionsPage } from './actions.js';

const NAV = [
  ['/', 'Alerts'], ['/graph', 'Graph'], ['/targets', 'Targets'], ['/rules', 'Rules'], ['/silences', 'Silences'],
  ['/heartbeats', 'Heartbeats'], ['/actions', 'Actions'], ['/status', 'Status'],
];

function page(path, params) {
  let m;
  if (path === '/' || path === '/alerts') return [html`<${AlertConsole} params=${params} />`, 'Alerts'];
  if ((m = /^\/alerts\/([0-9a-fA-F]+)$/.exec(path))) return [html`<${AlertPage} fp=${m[1]} />`, 'Alert'];
  if (path === '/graph') return [html`<${GraphPage} params=${params} />`, 'Graph'];
  if (path === '/targets') return [html`<${TargetsPage} params=${params} />`, 'Targets'];
  if (path === '/rules') return [html`<${RulesPage} params=${params} />`, 'Rules'];
  if (path === '/silences') return [html`<${SilencesPage} params=${params} />`, 'Silences'];
  if (path === '/silences/new') return [html`<${SilenceForm} key="new" params=${params} />`, 'New silence'];
  if ((m = /^\/silences\/([^/]+)$/.exec(path))) return [html`<${SilenceForm} key=${m[1]} id=${m[1]} params=${params} />`, 'Silence'];
  if (path === '/heartbeats') return [html`<${HeartbeatsPage} />`, 'Heartbeats'];
  if (path === '/actions') return [html`<${ActionsPage} params=${params} />`, 'Actions'];
  if (path === '/status') return [html`<${StatusPage} params=${params} />`, 'Status'];
  return [html`<div class="error">No console page at ${path}.</div>`, 'Not found'];
}

function App() {
  const { path, params } = useLocation();
  const [body, title] = page(path, params);
  document.title = `${title} · Tocsin`;
  const section = '/' + (path.split('/')[1] || '');
  return html`<div>
    <nav class="top">
      <a class="brand" href=${href('/')}>Tocsin</a>
      ${NAV.map(([p, label]) => html`<a key=${p} href=${href(p)} class=${(p === '/' ? section === '/' || section === '/alerts' : section === p) ? 'on' : ''}>${label}</a>`)}
    </nav>
    <main>${body}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
