import { type DatabasePool, sql } from 'slonik';

/** The OAuth client of the staff web app (web/, served at /app/). */
export const WEB_CLIENT_ID = 'ehr-web';
/**
 * The most the web app may ever get: sign-in, a session refresh, and every interaction the user's roles allow
 * (SMART App Launch 2.x `user/` scopes; AuditEvent must be named explicitly). The user's roles and grants then decide.
 */
export const WEB_SCOPE_CEILING = 'openid fhirUser online_access user/*.cruds user/AuditEvent.rs';

/** The app's redirect URI: its `/app/callback` route on the facade's public origin. */
export function webRedirectUri(publicBaseUrl: string): string {
  return `${publicBaseUrl}/app/callback`;
}

/**
 * Registers the web app as a public client of the built-in authorization server (authorization code + PKCE S256, no
 * secret: RFC 7636, OAuth 2.0 for Browser-Based Apps), or adds this deployment's redirect URI to it. An
 * administrator's later changes (scope ceiling, deactivation) are kept: only a missing redirect URI is added.
 */
export async function ensureWebClient(db: DatabasePool, publicBaseUrl: string): Promise<void> {
  const redirect = webRedirectUri(publicBaseUrl);
  await db.query(sql.unsafe`
    INSERT INTO oauth_clients (client_id, name, kind, redirect_uris, scope_ceiling)
    VALUES (${WEB_CLIENT_ID}, 'EHR web app', 'public', ${sql.array([redirect], 'text')}, ${WEB_SCOPE_CEILING})
    ON CONFLICT (client_id) DO UPDATE
      SET redirect_uris = oauth_clients.redirect_uris || EXCLUDED.redirect_uris
      WHERE NOT (${redirect} = ANY (oauth_clients.redirect_uris))`);
}
