/**
 * "View Images" for an order: `GET /api/v1/dicom/viewer-url/{order_id}` (the founding design's endpoint, answering
 * `{viewer_url, expires_at}`) and the same action FHIR-style, `GET /fhir/ServiceRequest/{id}/$viewer-url` (a FHIR R4
 * operation on an instance, https://hl7.org/fhir/R4/operations.html, answering a Parameters resource).
 *
 * The caller needs their own token and read access to the order's patient (the order, ServiceRequest, and its
 * imaging, ImagingStudy). The link opens OHIF on the order's StudyInstanceUID with a new viewer token
 * (src/auth/viewer-token.ts): at most 15 minutes (renewed while the user reads, src/viewer/renew.ts), DICOMweb reads
 * only, never the caller's token. It reaches the patient's other studies the user may read (priors, for comparison)
 * unless asked with `share=study`: a link to pass on for one study, which opens that study only. With `compare=prior`
 * the link opens the study next to the patient's latest earlier study.
 */
import { API_RULES, FHIR_RULES } from '../http/route-rules.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sql } from 'slonik';
import { type Access, allowsPatient } from '../auth/access.ts';
import { imagingAccess } from '../auth/imaging-access.ts';
import { authUrls } from '../auth/server/discovery.ts';
import type { Config } from '../config/spec.ts';
import { renderFhir, renderJson, sendRendered } from '../errors/render.ts';
import { latestPrior } from '../viewer/renew.ts';
import { FhirError } from '../fhir/errors.ts';
import {
  isStudyUid,
  mintViewerToken,
  VIEWER_CLIENT_ID,
  VIEWER_SCOPE,
  VIEWER_STUDY_CLAIM,
  type ViewerReach,
} from '../auth/viewer-token.ts';

const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;

export interface ViewerLink {
  readonly viewerUrl: string;
  readonly expiresAt: Date;
  readonly studyInstanceUid: string;
}

/**
 * The viewer URL for a study. The token is in the fragment (never sent to a server, so never in an access log or a
 * Referer); ohif-config/app-config.js hands it to OHIF's token-from-URL support, which removes it at once.
 */
export function viewerUrl(publicBaseUrl: string, studyInstanceUid: string, token: string, prior?: string): string {
  if (prior === undefined) {
    return `${publicBaseUrl}/viewer?StudyInstanceUIDs=${encodeURIComponent(studyInstanceUid)}#token=${token}`;
  }
  // OHIF 3.13's "compare two studies" hanging protocol: the first study left, the second (the prior) right.
  const studies = encodeURIComponent(`${studyInstanceUid},${prior}`);
  return `${publicBaseUrl}/viewer?StudyInstanceUIDs=${studies}&hangingprotocolId=%40ohif%2FhpCompare#token=${token}`;
}

/** `compare=prior`: open the study next to the patient's latest earlier study (a patient-reach link only). */
function comparesPrior(req: FastifyRequest, reach: ViewerReach): boolean {
  const compare = (req.query as Record<string, unknown> | undefined)?.['compare'];
  if (compare === undefined) return false;
  if (compare !== 'prior') throw new FhirError(400, 'value', 'compare must be "prior" when given');
  if (reach !== 'patient') throw new FhirError(400, 'value', 'a link shared for one study cannot compare');
  return true;
}

interface OrderRow {
  patient_id: string | null;
  study_instance_uid: string | null;
}

/** `share=study`: a one-study link; no parameter: the user's reach for the patient (priors). */
function reachOf(req: FastifyRequest): ViewerReach {
  const share = (req.query as Record<string, unknown> | undefined)?.['share'];
  if (share === undefined) return 'patient';
  if (share === 'study') return 'study';
  throw new FhirError(400, 'value', 'share must be "study" when given');
}

async function createLink(app: FastifyInstance, config: Config, req: FastifyRequest, orderId: string) {
  const access: Access | null = req.access;
  if (!access) throw new FhirError(401, 'login', 'authentication required');
  if (!config.authBuiltinServer) {
    throw new FhirError(503, 'not-supported', 'viewer links need the built-in authorization server');
  }
  if (!FHIR_ID.test(orderId)) throw new FhirError(400, 'value', 'order id is not a valid FHIR id');
  const reach = reachOf(req);
  const compare = comparesPrior(req, reach);
  if (!access.allows('read', 'ServiceRequest') || !access.allows('read', 'ImagingStudy')) {
    throw new FhirError(403, 'forbidden', 'reading orders and their imaging is not permitted for this token');
  }
  const row = (await app.db.maybeOne(sql.unsafe`
    SELECT patient_id, study_instance_uid FROM orders WHERE id = ${orderId} AND NOT deleted`)) as OrderRow | null;
  const patientId = row?.patient_id ?? undefined;
  // An order of a patient the caller may not see is answered like a missing one (no existence leak).
  if (
    !row ||
    patientId === undefined ||
    !allowsPatient(access, 'read', 'ServiceRequest', patientId) ||
    !imagingAccess(access).mayRead(patientId)
  ) {
    req.log.info({ viewer: { decision: 'deny', order: orderId, who: access.agent.who } }, 'viewer link refused');
    req.audit?.deny();
    throw new FhirError(404, 'not-found', `ServiceRequest/${orderId} not found`);
  }
  const study = row.study_instance_uid;
  if (!study || !isStudyUid(study)) {
    throw new FhirError(409, 'business-rule', `ServiceRequest/${orderId} has no StudyInstanceUID yet`);
  }
  const urls = authUrls(config.publicBaseUrl);
  const minted = await mintViewerToken(await app.authKeys.signingKey(), {
    issuer: urls.issuer,
    audience: urls.fhirBase,
    sub: access.agent.sub,
    fhirUser: access.agent.fhirUser,
    patientId,
    studyInstanceUid: study,
    reach,
    ttlS: config.viewerTokenTtlS,
  });
  // Audited as a token issued to the user (BALP/IUA "Get Access Token"): by its jti, never the token itself.
  req.audit?.describe({
    kind: 'token-issued',
    input: {
      grantType: 'urn:imaging-ehr:viewer-link',
      clientId: VIEWER_CLIENT_ID,
      user: access.agent,
      jti: minted.jti,
      scope: VIEWER_SCOPE,
      patientId,
    },
  });
  req.log.info(
    {
      viewer: {
        decision: 'allow',
        order: orderId,
        patient: patientId,
        [VIEWER_STUDY_CLAIM]: study,
        reach,
        session: minted.sessionId,
        who: access.agent.who,
        jti: minted.jti,
        expiresAt: minted.expiresAt.toISOString(),
      },
    },
    'viewer link issued',
  );
  const prior = compare ? await latestPrior(app.db, patientId, study) : undefined;
  return {
    viewerUrl: viewerUrl(config.publicBaseUrl, study, minted.token, prior),
    expiresAt: minted.expiresAt,
    studyInstanceUid: study,
  } satisfies ViewerLink;
}

function noStore(reply: FastifyReply): FastifyReply {
  // The answer carries a bearer token: no cache may keep it (RFC 6749 §5.1 asks the same of token responses).
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

export async function viewerUrlRoutes(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { config } = opts;

  app.get<{ Params: { orderId: string } }>(
    '/api/v1/dicom/viewer-url/:orderId',
    { config: { rules: API_RULES } },
    async (req, reply) => {
      try {
        const link = await createLink(app, config, req, req.params.orderId);
        return noStore(reply).send({ viewer_url: link.viewerUrl, expires_at: link.expiresAt.toISOString() });
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
        return sendRendered(noStore(reply), renderJson(err, req.id));
      }
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/ServiceRequest/:id/$viewer-url',
    { config: { rules: FHIR_RULES } },
    async (req, reply) => {
      noStore(reply).type('application/fhir+json; charset=utf-8');
      try {
        const link = await createLink(app, config, req, req.params.id);
        return reply.send({
          resourceType: 'Parameters',
          parameter: [
            { name: 'viewer_url', valueUrl: link.viewerUrl },
            { name: 'expires_at', valueInstant: link.expiresAt.toISOString() },
            { name: 'study_instance_uid', valueId: link.studyInstanceUid },
          ],
        });
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
        return sendRendered(reply, renderFhir(err, req.id));
      }
    },
  );
}
