/** The plain server-rendered pages of the authorization endpoint: login, patient picker, error. Pure. */

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

/** Headers for every page: no framing (clickjacking), no scripts, no caching. */
export const PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
};

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.8rem 0}
input[type=text],input[type=password]{width:100%;padding:.4rem}.error{color:#a00}button{padding:.5rem 1.2rem}
:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}</style>
</head><body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

function hidden(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
    .join('\n');
}

export function loginPage(action: string, params: Record<string, string>, clientName: string, error?: string): string {
  return layout(
    'Sign in',
    `<p>${escapeHtml(clientName)} asks to access the EHR on your behalf.</p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
${hidden(params)}
<label>User name <input type="text" name="username" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>`,
  );
}

export interface PatientChoice {
  readonly id: string;
  readonly label: string;
}

export function patientPickerPage(
  action: string,
  interaction: string,
  patients: readonly PatientChoice[],
  allowFreeEntry: boolean,
  error?: string,
): string {
  const options = patients
    .map(
      (p) =>
        `<label><input type="radio" name="patient" value="${escapeHtml(p.id)}" required> ${escapeHtml(p.label)}</label>`,
    )
    .join('\n');
  const free = allowFreeEntry ? '<label>Or patient id <input type="text" name="patient_id"></label>' : '';
  return layout(
    'Choose a patient',
    `${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="interaction" value="${escapeHtml(interaction)}">
${options || (allowFreeEntry ? '' : '<p>No patients are available to you.</p>')}
${free}
<button type="submit">Continue</button>
</form>`,
  );
}

export function errorPage(message: string): string {
  return layout('Authorization error', `<p class="error" role="alert">${escapeHtml(message)}</p>`);
}
