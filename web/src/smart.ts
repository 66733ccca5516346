/**
 * Sign-in as a SMART on FHIR app (SMART App Launch 2.x standalone launch) with fhirclient: authorization code with
 * PKCE S256 against the facade's built-in authorization server, as the public client `ehr-web`. fhirclient keeps
 * its state (and the token) in sessionStorage, per tab, and nowhere else; this app never copies the token.
 */
import FHIR from 'fhirclient';
import type Client from 'fhirclient/lib/Client';

export const CLIENT_ID = 'ehr-web';
/** Within the client's scope ceiling (src/webapp/web-client.ts); the user's roles and grants decide the rest. */
export const SCOPE = 'openid fhirUser online_access user/*.cruds user/AuditEvent.rs';
const RETURN_KEY = 'ehr-web:return-to';

export function fhirBase(): string {
  return `${window.location.origin}/fhir`;
}

/** Starts the sign-in (leaves the page). `returnTo` is the app path to come back to. */
export async function signIn(returnTo: string): Promise<void> {
  sessionStorage.setItem(RETURN_KEY, returnTo);
  await FHIR.oauth2.authorize({
    clientId: CLIENT_ID,
    scope: SCOPE,
    iss: fhirBase(),
    redirectUri: '/app/callback',
    pkceMode: 'required',
  });
}

/** Completes the sign-in on /app/callback, or restores this tab's session; undefined when not signed in. */
export async function restore(): Promise<{ client: Client; returnTo: string | undefined } | undefined> {
  const onCallback = window.location.pathname === '/app/callback';
  const hasState = Object.keys(sessionStorage).some((k) => k === 'SMART_KEY');
  if (!onCallback && !hasState) return undefined;
  const client = await FHIR.oauth2.ready();
  const returnTo = onCallback ? (sessionStorage.getItem(RETURN_KEY) ?? '/') : undefined;
  sessionStorage.removeItem(RETURN_KEY);
  return { client, returnTo };
}

/** Signs out of this tab: forgets fhirclient's state (the token lives there only). */
export function signOut(): void {
  const key = sessionStorage.getItem('SMART_KEY');
  if (key) sessionStorage.removeItem(JSON.parse(key) as string);
  sessionStorage.removeItem('SMART_KEY');
}
