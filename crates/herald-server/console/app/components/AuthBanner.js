// @ts-check
// Says what is wrong with the tab's admin token when the server refused it (auth = jwt).
import { html } from '../html.js';
import { useAppState, setState } from '../state.js';

export function AuthBanner() {
  const { authProblem } = useAppState();
  if (!authProblem) return null;
  const text = {
    missing: 'This server requires a token (auth = jwt). Paste a token with the ADMIN role to use the admin screens.',
    invalid: `The token was refused: ${authProblem.message}. It may have expired; paste a fresh one.`,
    forbidden: `This token lacks the ADMIN role: ${authProblem.message}. The admin screens need an admin's token.`,
  }[authProblem.kind];
  return html`
    <div class="banner error" role="alert">
      <p>${text}</p>
      <button type="button" class="btn" onClick=${() => setState({ tokenDialog: true })}>Enter token</button>
    </div>
  `;
}
