import { type DatabasePool, sql } from 'slonik';

/** The OAuth client OHIF's oidc configuration uses (ohif-config/app-config.js). */
export const OHIF_CLIENT_ID = 'ohif-viewer';
/**
 * The most it may ever get: sign-in (`openid fhirUser`) and reading imaging as the user (SMART App Launch 2.x scopes).
 * The user's roles and grants then decide which studies /dicom-web shows.
 */
export const OHIF_SCOPE_CEILING = 'openid fhirUser user/ImagingStudy.rs';

/** OHIF's redirect URI: its `/callback` route on the origin that serves it. */
export function ohifRedirectUri(publicBaseUrl: string): string {
  return `${publicBaseUrl}/callback`;
}

/**
 * Registers OHIF as a public client of the built-in authorization server (authorization code + PKCE, no secret,
 * RFC 7636; OAuth 2.0 for Browser-Based Apps), or adds this deployment's redirect URI to it. An administrator's
 * later changes (scope ceiling, deactivation) are kept: only a missing redirect URI is added.
 */
export async function ensureOhifClient(db: DatabasePool, publicBaseUrl: string): Promise<void> {
  const redirect = ohifRedirectUri(publicBaseUrl);
  await db.query(sql.unsafe`
    INSERT INTO oauth_clients (client_id, name, kind, redirect_uris, scope_ceiling)
    VALUES (${OHIF_CLIENT_ID}, 'OHIF viewer', 'public', ${sql.array([redirect], 'text')}, ${OHIF_SCOPE_CEILING})
    ON CONFLICT (client_id) DO UPDATE
      SET redirect_uris = oauth_clients.redirect_uris || EXCLUDED.redirect_uris
      WHERE NOT (${redirect} = ANY (oauth_clients.redirect_uris))`);
}
