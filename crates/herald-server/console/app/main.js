// @ts-check
// Entry point: renders the console into #app.
import { html, render } from './html.js';
import { App } from './components/App.js';

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(html`<${App} />`, root);
}
