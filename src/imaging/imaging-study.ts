import type {
  Coding,
  ImagingStudy,
  ImagingStudySeries,
  ImagingStudySeriesInstance,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import type { DicomInstance } from './dicom-instance.ts';

/**
 * DICOM instances → FHIR R4 ImagingStudy (https://hl7.org/fhir/R4/imagingstudy.html and its DICOM mapping,
 * https://hl7.org/fhir/R4/imagingstudy-mappings.html#dicom). Pure. Merging is by UID, so storing the same
 * instances again changes nothing and counts nothing twice.
 */

export const DICOM_UID_SYSTEM = 'urn:dicom:uid';
/** DICOM Controlled Terminology (PS3.16), the code system of Modality values. */
export const DCM_SYSTEM = 'http://dicom.nema.org/resources/ontology/DCM';

export interface StudyLink {
  /** FHIR ids. */
  patientId: string;
  orderId: string;
  /** Our DICOMweb Endpoint resource id. */
  endpointId: string;
}

/** `urn:oid:` form for UIDs in FHIR (identifier values and sopClass codes). */
export const oid = (uid: string): string => `urn:oid:${uid}`;

/**
 * FHIR dateTime from DICOM StudyDate/StudyTime/TimezoneOffsetFromUTC. FHIR requires a time zone whenever a time is
 * given, so without (0008,0201) only the date is used.
 */
export function studyStarted(date?: string, time?: string, tz?: string): string | undefined {
  const d = date && /^(\d{4})(\d{2})(\d{2})$/.exec(date);
  if (!d) return undefined;
  const day = `${d[1]}-${d[2]}-${d[3]}`;
  const t = time && /^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$/.exec(time);
  const z = tz && /^([+-])(\d{2})(\d{2})$/.exec(tz);
  if (!t || !z) return day;
  const frac = t[4] ? `.${t[4]}` : '';
  return `${day}T${t[1]}:${t[2] ?? '00'}:${t[3] ?? '00'}${frac}${z[1]}${z[2]}:${z[3]}`;
}

function modalityCoding(code: string | undefined): Coding {
  return { system: DCM_SYSTEM, code: code ?? 'OT' };
}

function instanceOf(i: DicomInstance): ImagingStudySeriesInstance {
  return {
    uid: i.sopInstanceUid,
    sopClass: { system: 'urn:ietf:rfc:3986', code: oid(i.sopClassUid) },
    ...(i.instanceNumber !== undefined && i.instanceNumber >= 0 ? { number: i.instanceNumber } : {}),
  };
}

function addRef<T extends Resource>(list: Reference<T>[] | undefined, reference: string): Reference<T>[] {
  const refs = list ?? [];
  return refs.some((r) => r.reference === reference) ? refs : [...refs, { reference }];
}

const byNumberThenUid = <T extends { number?: number; uid: string }>(a: T, b: T) =>
  (a.number ?? Number.MAX_SAFE_INTEGER) - (b.number ?? Number.MAX_SAFE_INTEGER) || a.uid.localeCompare(b.uid);

/**
 * Creates or updates the ImagingStudy of one DICOM study with `instances` (all of that study). Existing series and
 * instances are kept; new ones are added; counts are recomputed from the merged result.
 */
export function mergeImagingStudy(
  existing: ImagingStudy | undefined,
  instances: readonly DicomInstance[],
  link: StudyLink,
): ImagingStudy {
  const first = instances[0];
  const studyUid = first?.studyInstanceUid ?? studyUidOf(existing);
  if (!studyUid) throw new Error('mergeImagingStudy needs instances or an existing study');
  if (instances.some((i) => i.studyInstanceUid !== studyUid)) throw new Error('instances of several studies');

  const series = new Map<string, ImagingStudySeries>();
  for (const s of existing?.series ?? []) series.set(s.uid, { ...s, instance: [...(s.instance ?? [])] });
  for (const i of instances) {
    let s = series.get(i.seriesInstanceUid);
    if (!s) {
      s = {
        uid: i.seriesInstanceUid,
        modality: modalityCoding(i.modality),
        ...(i.seriesNumber !== undefined && i.seriesNumber >= 0 ? { number: i.seriesNumber } : {}),
        ...(i.seriesDescription ? { description: i.seriesDescription } : {}),
        ...(i.bodyPartExamined ? { bodySite: { system: DCM_SYSTEM, display: i.bodyPartExamined } } : {}),
        instance: [],
      };
      series.set(s.uid, s);
    }
    if (!s.instance!.some((x) => x.uid === i.sopInstanceUid)) s.instance!.push(instanceOf(i));
  }
  const allSeries = [...series.values()]
    .map((s) => ({ ...s, instance: [...(s.instance ?? [])].sort(byNumberThenUid), numberOfInstances: 0 }))
    .map((s) => ({ ...s, numberOfInstances: s.instance.length }))
    .sort(byNumberThenUid);
  const modalities = [...new Set(allSeries.map((s) => s.modality.code!))].map((code) => modalityCoding(code));
  const dated = instances.find((i) => i.studyDate);
  const started = existing?.started ?? studyStarted(dated?.studyDate, dated?.studyTime, dated?.timezoneOffset);
  const description = existing?.description ?? instances.find((i) => i.studyDescription)?.studyDescription;

  return {
    ...(existing ?? {}),
    resourceType: 'ImagingStudy',
    identifier: [
      ...(existing?.identifier ?? []).filter((id) => id.system !== DICOM_UID_SYSTEM),
      { system: DICOM_UID_SYSTEM, value: oid(studyUid) },
    ],
    status: 'available',
    subject: { reference: `Patient/${link.patientId}` },
    basedOn: addRef(existing?.basedOn, `ServiceRequest/${link.orderId}`),
    endpoint: addRef(existing?.endpoint, `Endpoint/${link.endpointId}`),
    ...(started ? { started } : {}),
    ...(description ? { description } : {}),
    modality: modalities,
    numberOfSeries: allSeries.length,
    numberOfInstances: allSeries.reduce((n, s) => n + s.numberOfInstances, 0),
    series: allSeries,
  };
}

/** The StudyInstanceUID of an ImagingStudy (its `urn:dicom:uid` identifier). */
export function studyUidOf(study: ImagingStudy | undefined): string | undefined {
  const v = study?.identifier?.find((id) => id.system === DICOM_UID_SYSTEM)?.value;
  return v?.startsWith('urn:oid:') ? v.slice(8) : v;
}
