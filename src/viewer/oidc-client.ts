import { type DatabasePool, sql } from 'slonik';

/** The OAuth client OHIF's oidc configuration uses (ohif-config/app-config.js). */
export const OHIF_CLIENT_ID = 'ohif-viewer';
/**
 * The most it may ever get: sign-in (`openid fhirUser`), reading imaging as the user and creating imaging as the user
 * (SMART App Launch 2.x scopes): OHIF saves SR, SEG and measurements with STOW-RS into the open study. The user's
 * roles and grants then decide which studies /dicom-web shows and whether a save is accepted (the access policy's
 * `create` on ImagingStudy for that patient; otherwise 0x0124 per instance). `online_access`: a refresh token (rotated
 * on every use, RFC 6749 §6) so that a read outlasts the access token's lifetime; each refresh rechecks the user.
 */
export const OHIF_SCOPE_CEILING = 'openid fhirUser online_access user/ImagingStudy.crs';
/** Ceilings registered by earlier versions: upgraded, as they were never an admin's choice. */
export const OHIF_FORMER_SCOPE_CEILINGS: readonly string[] = [
  'openid fhirUser user/ImagingStudy.rs',
  'openid fhirUser user/ImagingStudy.crs',
];

/** OHIF's redirect URI: its `/callback` route on the origin that serves it. */
export function ohifRedirectUri(publicBaseUrl: string): string {
  return `${publicBaseUrl}/callback`;
}

/**
 * Registers OHIF as a public client of the built-in authorization server (authorization code + PKCE, no secret,
 * RFC 7636; OAuth 2.0 for Browser-Based Apps), or adds this deployment's redirect URI to it. An administrator's
 * later changes (scope ceiling, deactivation) are kept: only a missing redirect URI is added, and a former default
 * ceiling becomes the current one.
 */
export async function ensureOhifClient(db: DatabasePool, publicBaseUrl: string): Promise<void> {
  const redirect = ohifRedirectUri(publicBaseUrl);
  const former = sql.array([...OHIF_FORMER_SCOPE_CEILINGS], 'text');
  await db.query(sql.unsafe`
    INSERT INTO oauth_clients (client_id, name, kind, redirect_uris, scope_ceiling)
    VALUES (${OHIF_CLIENT_ID}, 'OHIF viewer', 'public', ${sql.array([redirect], 'text')}, ${OHIF_SCOPE_CEILING})
    ON CONFLICT (client_id) DO UPDATE
      SET redirect_uris = CASE WHEN ${redirect} = ANY (oauth_clients.redirect_uris) THEN oauth_clients.redirect_uris
                               ELSE oauth_clients.redirect_uris || EXCLUDED.redirect_uris END,
          scope_ceiling = CASE WHEN oauth_clients.scope_ceiling = ANY (${former})
                               THEN EXCLUDED.scope_ceiling ELSE oauth_clients.scope_ceiling END
      WHERE NOT (${redirect} = ANY (oauth_clients.redirect_uris))
         OR oauth_clients.scope_ceiling = ANY (${former})`);
}
