/**
 * The signed-in user's connected apps, behind SMART App Launch 2.x `management_endpoint`
 * (https://hl7.org/fhir/smart-app-launch/conformance.html; the web app's screen at `/app/authorizations`):
 *
 * - `GET    /api/v1/me/authorizations` → `{ items: [{ grantId, clientId, clientName, scope, patient, createdAt,
 *   lastUsedAt, expiresAt, current }] }`: the user's active grants of the built-in authorization server
 *   (`current`: the grant of the asking token)
 * - `DELETE /api/v1/me/authorizations/{grantId}` → 204: revokes that grant's refresh and access tokens; 404 when the
 *   user has no such active grant (also another user's grant: no existence leak)
 *
 * Any user token of the built-in server may list and revoke its own user's grants (401 without a token, 403 for other
 * tokens: backend clients, external issuers, development tokens). Audited like every `/api` request.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Access } from '../auth/access.ts';
import { builtinTokenUser, listUserGrants, revokeUserGrant } from '../auth/server/user-grants.ts';
import { AdminRequestError } from './admin-routes.ts';

async function userOf(app: FastifyInstance, req: FastifyRequest): Promise<string> {
  const access = req.access as Access | null | undefined;
  if (!access) throw new AdminRequestError(401, 'authentication required');
  const userId = await builtinTokenUser(app.db, access.agent.jti, access.agent.sub);
  req.log.info(
    { authz: { decision: userId ? 'allow' : 'deny', who: access.agent.who } },
    'connected apps API: access decision',
  );
  if (!userId) throw new AdminRequestError(403, 'connected apps are managed with a token of the built-in server');
  return userId;
}

export async function meAuthorizationRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/v1/me/authorizations', async (req) => {
    const userId = await userOf(app, req);
    return { items: await listUserGrants(app.db, userId, req.access?.agent.jti) };
  });

  app.delete<{ Params: { grantId: string } }>(
    '/api/v1/me/authorizations/:grantId',
    {
      schema: {
        params: { type: 'object', properties: { grantId: { type: 'string', pattern: '^[A-Za-z0-9-]{1,64}$' } } },
      },
    },
    async (req, reply) => {
      const userId = await userOf(app, req);
      if (!(await revokeUserGrant(app.db, userId, req.params.grantId))) {
        throw new AdminRequestError(404, `no active authorization ${req.params.grantId}`);
      }
      // This process forgets its resolved callers at once (as the token endpoint does after revoking a family); the
      // denylist trigger tells the other processes.
      app.authCallerCache.clear();
      return reply.code(204).send();
    },
  );
}
