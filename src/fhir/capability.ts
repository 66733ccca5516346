import type { CapabilityStatement, StructureDefinition } from '@medplum/fhirtypes';
import { paramInfo } from './index-values.ts';
import { RESOURCES, RESOURCE_TYPES } from './registry.ts';
import { TYPE_INTERACTIONS } from './routes.ts';
import { AUDIT_EVENT_SEARCH_PARAMS } from './audit-event-params.ts';

/**
 * References this server accepts (https://hl7.org/fhir/R4/valueset-reference-handling-policy.html): relative and
 * absolute-under-our-base references must resolve to a resource the caller may see (`enforced`, `local`), contained
 * ones are checked, external absolute URLs are kept as they are (`literal`, not resolved).
 */
const REFERENCE_POLICY = ['literal', 'local', 'enforced'] as const;

/**
 * GET /fhir/metadata (https://hl7.org/fhir/R4/capabilitystatement.html), generated from the registry (types, search
 * parameters with their R4 definitions, sorts, includes), the route table that registers the interactions, and the
 * loaded profiles: there is no second hand-written list.
 */
export function capabilityStatement(
  fhirBase: string,
  profiles: ReadonlyMap<string, StructureDefinition>,
  software: { name: string; version: string },
): CapabilityStatement {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software,
    implementation: { description: 'Imaging EHR facade FHIR R4 API', url: fhirBase },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        resource: [
          ...RESOURCE_TYPES.map((type) => {
            const def = RESOURCES[type];
            const profile = profiles.get(type)?.url;
            return {
              type,
              ...(profile ? { profile, supportedProfile: [profile] } : {}),
              interaction: TYPE_INTERACTIONS.map((code) => ({ code })),
              versioning: 'versioned-update',
              readHistory: true,
              updateCreate: true,
              conditionalCreate: true,
              conditionalUpdate: false,
              conditionalDelete: 'not-supported',
              referencePolicy: [...REFERENCE_POLICY],
              searchInclude: ['*', ...def.includes.map((p) => `${type}:${p}`)],
              searchRevInclude: [...def.revIncludes],
              searchParam: [
                { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
                {
                  name: '_lastUpdated',
                  type: 'date',
                  definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated',
                },
                ...def.params.map((code) => {
                  const info = paramInfo(type, code);
                  return {
                    name: code,
                    type: info.type,
                    ...(info.definition.url ? { definition: info.definition.url } : {}),
                    ...(def.sorts[code] ? { documentation: 'also a _sort key' } : {}),
                  };
                }),
              ],
              ...(type === 'Patient'
                ? {
                    operation: [
                      {
                        name: 'everything',
                        definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything',
                      },
                    ],
                  }
                : {}),
            };
          }),
          // AuditEvent: read and search only (written by this server alone; src/audit/routes.ts).
          {
            type: 'AuditEvent',
            profile: 'http://hl7.org/fhir/StructureDefinition/AuditEvent',
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            versioning: 'no-version',
            readHistory: false,
            updateCreate: false,
            conditionalCreate: false,
            conditionalUpdate: false,
            conditionalDelete: 'not-supported',
            referencePolicy: [...REFERENCE_POLICY],
            searchParam: AUDIT_EVENT_SEARCH_PARAMS.map((p) => ({
              name: p.name,
              type: p.type,
              definition: `http://hl7.org/fhir/SearchParameter/AuditEvent-${p.name}`,
            })),
          },
        ],
        // https://hl7.org/fhir/R4/http.html#transaction, #search (system), bundle-run.ts and system-search.ts.
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
        searchParam: [
          { name: '_type', type: 'token', documentation: 'system search: the types to search, comma-separated' },
        ],
        operation: [{ name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything' }],
      },
    ],
  } as CapabilityStatement;
}
