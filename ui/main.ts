import { html } from 'htm/preact';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onTokenNeeded, setToken, token } from './api.js';
import { JobPage } from './job-page.js';
import { Overview } from './overview.js';
import { onLinkClick, useRoute } from './router.js';
import './styles.css';

/** Asked when a call got 401: the token is kept in this browser (localStorage) until signed out. */
function TokenPrompt({ why }: { why: string }) {
  const [value, setValue] = useState('');
  return html`<div class="modal-back">
    <form
      class="modal"
      id="token-form"
      onSubmit=${(e: Event) => {
        e.preventDefault();
        if (value.trim()) setToken(value);
      }}
    >
      <h2>Token needed</h2>
      <p>${why}</p>
      <p class="small dim">
        Paste a client or admin token: <code>weir token --role client --ttl 8h</code> prints one. It is kept in this
        browser only.
      </p>
      <input
        name="token"
        type="password"
        autocomplete="off"
        placeholder="eyJhbGciOi…"
        value=${value}
        onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)}
        autofocus
      />
      <div class="actions"><button class="btn primary" type="submit">Use this token</button></div>
    </form>
  </div>`;
}

function App() {
  const route = useRoute();
  const [why, setWhy] = useState<string | null>(null);
  useEffect(() => onTokenNeeded(setWhy), []);
  // The polls stop asking while the prompt is up: the same 401 every second helps no one.
  const body = why
    ? null
    : route.page === 'job'
      ? html`<${JobPage} key=${route.jobId} jobId=${route.jobId} />`
      : html`<${Overview} />`;
  return html`<div onClick=${onLinkClick}>
    <header class="top">
      <a href="/" class="brand"><span class="logo">≋</span> Weir</a>
      <span class="host mono">${location.host}</span>
      <span class="spacer"></span>
      ${token() ? html`<button class="btn ghost" onClick=${() => setToken(null)} title="Forget the token kept in this browser">Sign out</button>` : ''}
    </header>
    <main>${body}</main>
    ${why ? html`<${TokenPrompt} why=${why} />` : ''}
  </div>`;
}

render(html`<${App} />`, document.getElementById('app')!);
