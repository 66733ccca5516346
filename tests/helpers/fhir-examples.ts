import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Resource } from '@medplum/fhirtypes';

/** Fetched by scripts/setup.sh (`npm pack hl7.fhir.r4.examples@4.0.1`). */
export const EXAMPLES_DIR = fileURLToPath(new URL('../../.tools/fhir-examples/package/', import.meta.url));

/** Creation order: referenced types first. */
export const EXAMPLE_TYPES = [
  'Patient',
  'Organization',
  'Location',
  'Practitioner',
  'PractitionerRole',
  'Endpoint',
  'Encounter',
  'ServiceRequest',
  'ImagingStudy',
  'Observation',
  'DiagnosticReport',
] as const;
type ExampleType = (typeof EXAMPLE_TYPES)[number];

export interface PreparedExamples {
  /** Examples after adjustment, in creation order. */
  examples: Resource[];
  /** Minimal stubs for referenced resources that are not examples themselves (created first). */
  stubs: Resource[];
  /** What was changed, per example, for the record. */
  changes: Map<string, string[]>;
  /** Examples in a reference cycle (Patient.link both ways): a stub with their id is created first, then updated. */
  prestubbed: Set<string>;
}

const OURS = new Set<string>(EXAMPLE_TYPES);

/** The subject of stubs that need one (itself a stub, created first). */
const STUB_SUBJECT = 'examples-stub-subject';

function stub(type: ExampleType, id: string): Resource {
  const subject = { reference: `Patient/${STUB_SUBJECT}` };
  switch (type) {
    case 'Patient':
    case 'Practitioner':
    case 'Organization':
    case 'Location':
    case 'PractitionerRole':
      return { resourceType: type, id } as Resource;
    case 'Observation':
    case 'DiagnosticReport':
      return { resourceType: type, id, status: 'final', code: { text: 'stub' }, subject } as Resource;
    case 'Encounter':
      return {
        resourceType: 'Encounter',
        id,
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        subject,
      };
    case 'ServiceRequest':
      return { resourceType: 'ServiceRequest', id, status: 'active', intent: 'order', code: { text: 'stub' }, subject };
    case 'Endpoint':
      return {
        resourceType: 'Endpoint',
        id,
        status: 'active',
        connectionType: {
          system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type',
          code: 'dicom-wado-rs',
        },
        payloadType: [{ text: 'DICOM' }],
        address: 'https://example.org/dicom-web',
      };
    case 'ImagingStudy':
      return {
        resourceType: 'ImagingStudy',
        id,
        status: 'available',
        subject,
        identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:2.25.${Date.now()}` }],
      };
  }
}

/**
 * The examples that reference types this server does not serve, with those types: the only examples changed before
 * loading (docs/fhir.md "HL7 R4 examples" names them with the reason).
 */
export const EXCEPTIONS: Readonly<Record<string, readonly string[]>> = {
  'DiagnosticReport/ultrasound': ['Media'],
  'Encounter/f203': ['Account', 'Appointment', 'Condition', 'EpisodeOfCare'],
  'ImagingStudy/example-xr': ['Procedure'],
  'Observation/example-TPMT-haplotype-one': ['MolecularSequence'],
  'Observation/example-TPMT-haplotype-two': ['MolecularSequence'],
  'Observation/example-diplotype1': ['Specimen'],
  'Observation/example-genetics-1': ['Specimen'],
  'Observation/example-genetics-4': ['Specimen'],
  'Observation/example-haplotype1': ['MolecularSequence', 'Specimen'],
  'Observation/example-haplotype2': ['MolecularSequence', 'Specimen'],
  'Observation/example-phenotype': ['Specimen'],
  'Observation/gcs-qa': ['QuestionnaireResponse'],
  'Observation/herd1': ['Group', 'Specimen'],
  'Observation/satO2': ['DeviceMetric', 'Procedure'],
  'Patient/mom': ['RelatedPerson'],
  'PractitionerRole/example': ['HealthcareService'],
  'ServiceRequest/ambulation': ['CarePlan'],
  'ServiceRequest/physiotherapy': ['CarePlan'],
};

/**
 * Examples whose base64Binary values contain whitespace (line wrapping): R4's regex for base64Binary allows it, the
 * validator (@medplum/core) does not; the whitespace is removed before loading (docs/fhir.md "HL7 R4 examples").
 */
export const BASE64_WRAPPED: readonly string[] = ['DiagnosticReport/gingival-mass'];

/**
 * References in the examples that R4 itself does not allow at their element (the element's targetProfile does not
 * list the type): removed before loading (docs/fhir.md "HL7 R4 examples").
 */
export const INVALID_REFERENCES: Readonly<Record<string, readonly string[]>> = {
  'Observation/clinical-gender': ['Observation.performer[0]'],
};

/**
 * Loads every R4 example of our types and makes it storable here:
 *  - references to types this server does not serve (Specimen, Condition, ...) cannot resolve, so the
 *    `reference` is removed (the `display`/`identifier` of the Reference stay; a bare Reference keeps a display);
 *  - references between our types are kept and their targets are created first (as stubs when they are not examples);
 *  - a ServiceRequest without `subject` (required in R4 and by our profile) gets `Patient/example`.
 * Absolute references to other servers and contained (`#id`) references are kept as they are.
 */
export function prepareExamples(): PreparedExamples {
  const changes = new Map<string, string[]>();
  const examples: Resource[] = [];
  const files = readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.json'));
  for (const type of EXAMPLE_TYPES) {
    for (const f of files.filter((x) => x.startsWith(`${type}-`)).sort()) {
      const r = JSON.parse(readFileSync(`${EXAMPLES_DIR}${f}`, 'utf8')) as Resource;
      if (r.resourceType === type) examples.push(r);
    }
  }
  const have = new Set(examples.map((r) => `${r.resourceType}/${r.id}`));
  const needed = new Map<string, Resource>([[`Patient/${STUB_SUBJECT}`, stub('Patient', STUB_SUBJECT)]]);
  for (const r of examples) {
    const key = `${r.resourceType}/${r.id}`;
    const log: string[] = [];
    const walk = (v: unknown, path: string): void => {
      if (Array.isArray(v)) {
        v.forEach((x, i) => {
          walk(x, `${path}[${i}]`);
        });
      } else if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (typeof o['data'] === 'string' && typeof o['contentType'] === 'string' && /\s/.test(o['data'])) {
          o['data'] = o['data'].replace(/\s+/g, '');
          log.push(`removed whitespace from base64 at ${path}.data`);
        }
        const ref = o['reference'];
        if (typeof ref === 'string' && INVALID_REFERENCES[key]?.includes(path)) {
          delete o['reference'];
          o['display'] ??= ref;
          log.push(`removed invalid reference ${ref} at ${path}`);
        } else if (typeof ref === 'string' && !ref.startsWith('#') && !/^https?:/.test(ref)) {
          const [t, id] = ref.split('/') as [string, string];
          const target = `${t}/${id}`;
          if (!OURS.has(t)) {
            delete o['reference'];
            if (Object.keys(o).length === 0) o['display'] = ref;
            log.push(`removed reference ${ref} at ${path}`);
          } else if (!have.has(target) && !needed.has(target)) {
            needed.set(target, stub(t as ExampleType, id));
          }
        }
        for (const [k, x] of Object.entries(o)) if (k !== 'reference') walk(x, `${path}.${k}`);
      }
    };
    walk(r, r.resourceType);
    if (r.resourceType === 'ServiceRequest' && !r.subject) {
      r.subject = { reference: 'Patient/example' };
      log.push('added subject Patient/example');
    }
    if (log.length) changes.set(key, log);
  }
  const stubs = [...needed.values()].sort(
    (a, b) =>
      EXAMPLE_TYPES.indexOf(a.resourceType as ExampleType) - EXAMPLE_TYPES.indexOf(b.resourceType as ExampleType),
  );
  const prestubbed = new Set<string>();
  const ordered = orderByDependencies(examples, prestubbed);
  for (const key of prestubbed) {
    const [t, id] = key.split('/') as [ExampleType, string];
    stubs.push(stub(t, id));
  }
  return { examples: ordered, stubs, changes, prestubbed };
}

/** Orders examples so that a referenced example comes before the one referring to it (type order otherwise). */
function orderByDependencies(list: Resource[], cycles: Set<string>): Resource[] {
  const byKey = new Map(list.map((r) => [`${r.resourceType}/${r.id}`, r]));
  const out: Resource[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const deps = (r: Resource) =>
    [...JSON.stringify(r).matchAll(/"reference":"([A-Za-z]+\/[A-Za-z0-9\-.]+)[/"]/g)]
      .map((m) => m[1] as string)
      .filter((k) => byKey.has(k) && k !== `${r.resourceType}/${r.id}`);
  const visit = (key: string) => {
    if (state.get(key) === 'visiting') cycles.add(key);
    if (state.get(key)) return;
    state.set(key, 'visiting');
    const r = byKey.get(key) as Resource;
    for (const d of deps(r)) visit(d);
    state.set(key, 'done');
    out.push(r);
  };
  for (const r of list) visit(`${r.resourceType}/${r.id}`);
  return out;
}
