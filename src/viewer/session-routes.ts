/**
 * The routes of a viewer session, called by the viewer with its current viewer token (ohif-config/app-config.js):
 *
 * - `GET /api/v1/viewer/session?studies=<uid>,<uid>`: before OHIF loads, may this token open these studies? 200 with
 *   the session (study, reach, expiry, idle time), or 404 `study_not_available` naming none of them.
 * - `POST /api/v1/viewer/renew` (JSON body `{"idle_s": <seconds without user activity>}`): a fresh viewer token for
 *   the same user, patient, study, reach and session, after the user's current rights are checked again (renew.ts).
 *   Each token renews once. Audited like any issued token (BALP "Get Access Token"), by jti.
 *
 * An expired, revoked or foreign token never gets here: the resource server refuses it first (401 invalid_token, with
 * its reason in WWW-Authenticate), and the viewer words that reason.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeJwt } from 'jose';
import { imagingAccess } from '../auth/imaging-access.ts';
import { authUrls } from '../auth/server/discovery.ts';
import type { Config } from '../config/spec.ts';
import {
  availableStudies,
  claimRenewal,
  idleRefusal,
  recheckRights,
  type ViewerClaims,
  ViewerSessionError,
  viewerClaimsOf,
} from './renew.ts';
import { isStudyUid, mintViewerToken, VIEWER_CLIENT_ID, VIEWER_SCOPE } from '../auth/viewer-token.ts';
import { bearerTokenIfAny } from '../auth/verify-token.ts';
import { API_RULES, type RouteRules } from '../http/route-rules.ts';

/** The viewer session's routes accept viewer tokens (and only they have a session); audited; JSON errors. */
const VIEWER_SESSION_RULES: RouteRules = { ...API_RULES, who: 'token-or-viewer' };

const MAX_STUDIES = 20;

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

/** The caller's viewer claims; the resource server has verified the token (its onRequest hook ran first). */
function viewerCaller(req: FastifyRequest): ViewerClaims {
  const token = bearerTokenIfAny(req.raw.rawHeaders);
  let claims: Record<string, unknown> = {};
  try {
    if (token) claims = decodeJwt(token) as Record<string, unknown>;
  } catch {
    claims = {};
  }
  const c = viewerClaimsOf(claims);
  if (!req.access || !c || req.access.agent.jti !== c.jti || req.access.patientContext !== c.patient) {
    throw new ViewerSessionError(401, 'not_a_viewer_token', 'only a viewer link token has a viewer session');
  }
  if (!imagingAccess(req.access).mayRead(c.patient)) {
    throw new ViewerSessionError(401, 'revoked', 'the user no longer has access to this patient');
  }
  return c;
}

function refused(req: FastifyRequest, reply: FastifyReply, err: ViewerSessionError): FastifyReply {
  req.log.info({ viewer: { decision: 'deny', code: err.error, reason: err.message } }, 'viewer session refused');
  req.audit?.deny();
  if (err.statusCode === 401)
    reply.header('www-authenticate', `Bearer error="invalid_token", error_description="${err.message}"`);
  return noStore(reply)
    .code(err.statusCode)
    .send({ error: err.error, error_description: err.message, requestId: req.id });
}

export async function viewerSessionRoutes(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { config } = opts;
  const urls = authUrls(config.publicBaseUrl);

  app.get<{ Querystring: { studies?: string } }>(
    '/api/v1/viewer/session',
    { config: { rules: VIEWER_SESSION_RULES } },
    async (req, reply) => {
      try {
        const c = viewerCaller(req);
        const asked = (req.query.studies ?? c.study).split(',').filter(Boolean).slice(0, MAX_STUDIES);
        const available = asked.every(isStudyUid) ? await availableStudies(app.db, c, asked) : new Map();
        if (asked.length === 0 || asked.some((u) => available.get(u) !== true)) {
          throw new ViewerSessionError(404, 'study_not_available', 'this link does not open the requested study');
        }
        return noStore(reply).send({
          study: c.study,
          reach: c.reach,
          expires_at: new Date(c.exp * 1000).toISOString(),
          idle_timeout_s: config.viewerIdleTimeoutS,
        });
      } catch (err) {
        if (err instanceof ViewerSessionError) return refused(req, reply, err);
        throw err;
      }
    },
  );

  app.post<{ Body: { idle_s?: unknown } | undefined }>(
    '/api/v1/viewer/renew',
    { config: { rules: VIEWER_SESSION_RULES }, bodyLimit: 1024 },
    async (req, reply) => {
      try {
        const c = viewerCaller(req);
        const idle = idleRefusal(req.body?.idle_s, config.viewerIdleTimeoutS);
        if (idle) throw idle;
        await recheckRights(app.db, c);
        if (!(await claimRenewal(app.db, c))) {
          throw new ViewerSessionError(401, 'already_renewed', 'this viewer token was already renewed');
        }
        const minted = await mintViewerToken(await app.authKeys.signingKey(), {
          issuer: urls.issuer,
          audience: urls.fhirBase,
          sub: c.sub,
          fhirUser: c.fhirUser,
          patientId: c.patient,
          studyInstanceUid: c.study,
          reach: c.reach,
          sessionId: c.sessionId,
          ttlS: config.viewerTokenTtlS,
        });
        req.audit?.describe({
          kind: 'token-issued',
          input: {
            grantType: 'urn:imaging-ehr:viewer-renewal',
            clientId: VIEWER_CLIENT_ID,
            user: req.access.agent,
            jti: minted.jti,
            scope: VIEWER_SCOPE,
            patientId: c.patient,
          },
        });
        req.log.info(
          { viewer: { decision: 'allow', session: c.sessionId, from: c.jti, jti: minted.jti, reach: c.reach } },
          'viewer token renewed',
        );
        return noStore(reply).send({
          token: minted.token,
          expires_at: minted.expiresAt.toISOString(),
          expires_in: Math.max(0, Math.round((minted.expiresAt.getTime() - Date.now()) / 1000)),
          idle_timeout_s: config.viewerIdleTimeoutS,
        });
      } catch (err) {
        if (err instanceof ViewerSessionError) return refused(req, reply, err);
        throw err;
      }
    },
  );
}
