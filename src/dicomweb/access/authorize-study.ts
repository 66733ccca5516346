/**
 * Who may see which study over DICOMweb, decided per request before anything is asked of Orthanc: the caller's
 * imaging access and the per-study authorization that gives the same 404 for "unknown" and "not yours".
 */
import type { FastifyRequest } from 'fastify';
import type { PatientFilter } from '../../auth/access.ts';
import { imagingAccess } from '../../auth/imaging-access.ts';
import { DicomWebError, StudyNotFoundError } from '../errors.ts';
import type { ResourceMembership } from './resource-membership.ts';
import type { StudyIndex } from './study-index.ts';
import { type StudyRestriction, studyRestriction, withStudyLimit } from './study-restriction.ts';

/** What {@link authorizeStudy} reads: the EHR's study index and the Orthanc resources of linked studies. */
export interface StudyAccessContext {
  readonly index: StudyIndex;
  readonly resources: ResourceMembership;
}

/** What a caller may see over DICOMweb: its readable patients and its granular ImagingStudy restrictions. */
export interface ImagingView {
  readonly filter: PatientFilter;
  readonly restriction: StudyRestriction;
}

/**
 * The caller's readable patients for imaging and its SMART v2 granular restrictions, from the shared policy
 * (`src/auth/imaging-access.ts`); 401 without an access context. `ImagingStudy?modality=` restrictions are applied to
 * the study index ({@link studyRestriction}); any other restriction parameter fails closed (nothing is visible). A
 * viewer token's study limit is ANDed in the same way ({@link withStudyLimit}).
 */
export function imagingView(req: FastifyRequest): ImagingView {
  const access = req.access;
  if (!access) throw new DicomWebError(401, 'Authentication required');
  const imaging = imagingAccess(access);
  const restriction = withStudyLimit(studyRestriction(imaging.restrictions()), imaging.studies());
  if (restriction.kind === 'deny') {
    req.log.info({ decision: 'deny', reason: restriction.reason, who: access.agent.who }, 'dicomweb access');
  }
  return { filter: imaging.readablePatients(), restriction };
}

/**
 * Throws the uniform 404 unless the caller may read the study (unknown, unlinked and other patients' alike) and, for a
 * caller restricted to linked studies, unless the addressed study, series or instance (`within`) belongs to the Orthanc
 * study the EHR links under the UID, not to another Orthanc study sharing it (resource-membership.ts).
 */
export async function authorizeStudy(
  req: FastifyRequest,
  ctx: StudyAccessContext,
  studyUid: string,
  within: { series?: string | undefined; instance?: string | undefined } = {},
): Promise<void> {
  const { filter, restriction } = imagingView(req);
  const grant = await ctx.index.grant(filter, studyUid, restriction);
  const allowed =
    grant.kind === 'any' ||
    (grant.kind === 'linked' && (await ctx.resources.exists(grant.study, { study: studyUid, ...within })));
  req.log.info(
    {
      decision: allowed ? 'permit' : 'deny',
      study: studyUid,
      ...(grant.kind === 'linked' && !allowed ? { reason: 'not in the linked Orthanc study', ...within } : {}),
      who: req.access.agent.who,
      ...(restriction.kind === 'sql' ? { restriction: restriction.key } : {}),
    },
    'dicomweb access',
  );
  if (!allowed) throw new StudyNotFoundError();
}
