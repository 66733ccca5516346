import type { InstanceOutcome } from './outcome.ts';
import { stowStatus } from './outcome.ts';
import { warningHeader } from '../../errors/render.ts';

/**
 * Builds the Store Instances response (DICOM PS3.18 §10.5.3, Table 10.5.3-2) in the DICOM JSON model
 * (PS3.18 Annex F, https://dicom.nema.org/medical/dicom/current/output/html/part18.html#sect_10.5.3), plus the `Warning` header values (PS3.18 §8.4.4, RFC 7234 §5.5).
 * Every RetrieveURL points at the facade's public `/dicom-web`, never at Orthanc.
 */

type Attr = { vr: string; Value?: unknown[] };
export type DicomJson = Record<string, Attr>;

export interface StowResponse {
  status: 200 | 202 | 409;
  body: DicomJson;
  /** `Warning` header values, one per failed or warned instance (capped), ready to send. */
  warnings: string[];
}

const MAX_WARNING_HEADERS = 20;

export function studyRetrieveUrl(dicomWebBase: string, studyUid: string): string {
  return `${dicomWebBase}/studies/${studyUid}`;
}

export function instanceRetrieveUrl(dicomWebBase: string, study: string, series: string, sop: string): string {
  return `${dicomWebBase}/studies/${study}/series/${series}/instances/${sop}`;
}

const ui = (v: string | undefined): Attr => (v ? { vr: 'UI', Value: [v] } : { vr: 'UI' });

/**
 * @param dicomWebBase the facade's public DICOMweb root, e.g. `https://ehr.example/dicom-web`
 * @param targetStudy the StudyInstanceUID from the URL (`POST /studies/{uid}`), if any
 */
export function buildStowResponse(
  outcomes: readonly InstanceOutcome[],
  dicomWebBase: string,
  targetStudy?: string,
): StowResponse {
  const body: DicomJson = {};
  const stored = outcomes.filter((o) => o.kind === 'stored');
  const failures = outcomes.filter((o) => o.kind === 'failed');
  const studies = new Set(stored.map((o) => o.studyInstanceUid));
  const study = targetStudy ?? (studies.size === 1 ? [...studies][0] : undefined);
  // RetrieveURL (0008,1190) of the study: only when the response concerns exactly one study.
  if (study && (stored.length > 0 || targetStudy)) {
    body['00081190'] = { vr: 'UR', Value: [studyRetrieveUrl(dicomWebBase, study)] };
  }
  if (failures.length > 0) {
    body['00081198'] = {
      vr: 'SQ',
      Value: failures.map((f) => ({
        '00081150': ui(f.sopClassUid),
        '00081155': ui(f.sopInstanceUid),
        '00081197': { vr: 'US', Value: [f.reason] },
        '00000902': { vr: 'LO', Value: [f.comment] },
      })),
    };
  }
  if (stored.length > 0) {
    body['00081199'] = {
      vr: 'SQ',
      Value: stored.map((s) => {
        const item: DicomJson = {
          '00081150': ui(s.sopClassUid),
          '00081155': ui(s.sopInstanceUid),
          '00081190': {
            vr: 'UR',
            Value: [instanceRetrieveUrl(dicomWebBase, s.studyInstanceUid, s.seriesInstanceUid, s.sopInstanceUid)],
          },
        };
        if (s.warning) {
          item['00081196'] = { vr: 'US', Value: [s.warning.reason] };
          item['00000902'] = { vr: 'LO', Value: [s.warning.comment] };
        }
        return item;
      }),
    };
  }
  const notes = outcomes.flatMap((o) => {
    const who = o.sopInstanceUid ?? o.file ?? `part ${o.part + 1}`;
    if (o.kind === 'failed') return [`${who}: failed (0x${hex(o.reason)}): ${o.detail}`];
    if (o.warning) return [`${who}: warning (0x${hex(o.warning.reason)}): ${o.warning.detail}`];
    return [];
  });
  const warnings = notes.slice(0, MAX_WARNING_HEADERS).map(warningHeader);
  if (notes.length > MAX_WARNING_HEADERS) {
    warnings.push(warningHeader(`${notes.length - MAX_WARNING_HEADERS} more, see the response body`));
  }
  return { status: stowStatus(outcomes), body, warnings };
}

export function hex(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, '0');
}
