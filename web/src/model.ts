/** Small readers over the FHIR resources the app shows (R4). */

export interface Coding {
  system?: string;
  code?: string;
  display?: string;
}
export interface Identifier {
  system?: string;
  value?: string;
  type?: { coding?: Coding[] };
}
export interface HumanName {
  family?: string;
  given?: string[];
  text?: string;
  use?: string;
}
export interface Patient {
  resourceType: 'Patient';
  id?: string;
  identifier?: Identifier[];
  name?: HumanName[];
  birthDate?: string;
  gender?: string;
  meta?: { versionId?: string };
}
export interface Practitioner {
  resourceType: 'Practitioner';
  id?: string;
  name?: HumanName[];
}
export interface Encounter {
  resourceType: 'Encounter';
  id?: string;
  status: string;
  class: Coding;
  subject?: { reference?: string };
  period?: { start?: string; end?: string };
  reasonCode?: { text?: string }[];
}
export interface ServiceRequest {
  resourceType: 'ServiceRequest';
  id?: string;
  status: string;
  intent: string;
  identifier?: Identifier[];
  code?: { coding?: Coding[]; text?: string };
  orderDetail?: { coding?: Coding[]; text?: string }[];
  subject: { reference?: string };
  encounter?: { reference?: string };
  performer?: { reference?: string; display?: string }[];
  authoredOn?: string;
  extension?: { url: string; valueCode?: string }[];
}
export interface ImagingStudy {
  resourceType: 'ImagingStudy';
  id?: string;
  status?: string;
  started?: string;
  identifier?: Identifier[];
  numberOfSeries?: number;
  numberOfInstances?: number;
  description?: string;
  modality?: Coding[];
  basedOn?: { reference?: string }[];
  series?: {
    uid: string;
    number?: number;
    modality?: Coding;
    description?: string;
    numberOfInstances?: number;
  }[];
}

const typed = (ids: Identifier[] | undefined, code: string) =>
  ids?.find((i) => i.type?.coding?.some((c) => c.code === code))?.value;

/** The MRN: the identifier of type MR (allocated by the server). */
export function mrnOf(p: Patient | undefined): string {
  return typed(p?.identifier, 'MR') ?? '';
}

/** The accession number: the identifier of type ACSN (allocated by the server). */
export function accessionOf(o: ServiceRequest | undefined): string {
  return typed(o?.identifier, 'ACSN') ?? '';
}

export function nameOf(p: Patient | undefined): string {
  const n = p?.name?.[0];
  // A name may hold only `text`, or nothing usable: never an empty string (it would be an unnamed link).
  const parts = [n?.family, (n?.given ?? []).join(' ')].filter(Boolean).join(', ');
  return parts || n?.text?.trim() || '(no name)';
}

/** The patient's name as a DICOM PN value: Family^Given (PS3.5 §6.2). */
export function dicomNameOf(p: Patient | undefined): string {
  const n = p?.name?.[0];
  return [n?.family ?? '', (n?.given ?? []).join(' ')].join('^').replace(/\^$/, '');
}

/** DICOM DA (YYYYMMDD) from a FHIR date. */
export function dicomDate(d: string | undefined): string {
  return (d ?? '').replaceAll('-', '');
}

export const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
export const LOINC = 'http://loinc.org';

/** The modality of an order: its orderDetail coded in DCM. */
export function modalityOf(o: ServiceRequest | undefined): string {
  return o?.orderDetail?.flatMap((d) => d.coding ?? []).find((c) => c.system === DCM)?.code ?? '';
}

export function procedureOf(o: ServiceRequest | undefined): string {
  const c = o?.code?.coding?.[0];
  return o?.code?.text ?? c?.display ?? c?.code ?? '';
}

/** Imaging procedures offered when ordering (LOINC), with their modality. */
export const PROCEDURES: readonly { code: string; display: string; modality: string }[] = [
  { code: '24725-4', display: 'CT Head', modality: 'CT' },
  { code: '24627-2', display: 'CT Chest', modality: 'CT' },
  { code: '24590-2', display: 'MR Brain', modality: 'MR' },
  { code: '36643-5', display: 'XR Chest 2 views', modality: 'CR' },
  { code: '24558-9', display: 'US Abdomen', modality: 'US' },
];

/** Modalities offered when ordering (DICOM PS3.3 C.7.3.1.1.1 defined terms). */
export const MODALITIES = ['CT', 'MR', 'CR', 'DX', 'US', 'NM', 'PT', 'MG', 'XA'] as const;

export const ORDER_STATUSES = ['draft', 'active', 'on-hold', 'revoked', 'completed', 'entered-in-error'] as const;
export const VISIT_CLASSES: readonly Coding[] = [
  { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
  { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP', display: 'inpatient encounter' },
  { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER', display: 'emergency' },
];
export const VISIT_STATUSES = ['planned', 'arrived', 'in-progress', 'finished', 'cancelled'] as const;

/** The facade's order workflow status extension (docs/fhir.md): e.g. `reported` once a final report exists. */
export const ORDER_STATUS_EXTENSION = 'http://imaging-ehr.local/fhir/StructureDefinition/order-status';

export function workflowStatusOf(o: ServiceRequest): string | undefined {
  return o.extension?.find((e) => e.url === ORDER_STATUS_EXTENSION)?.valueCode;
}
