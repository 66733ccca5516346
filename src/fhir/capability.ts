import type { CapabilityStatement, StructureDefinition } from '@medplum/fhirtypes';
import { paramInfo } from './index-values.ts';
import { RESOURCES, RESOURCE_TYPES } from './registry.ts';
import { TYPE_INTERACTIONS } from './routes.ts';

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
        resource: RESOURCE_TYPES.map((type) => {
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
            searchInclude: def.includes.map((p) => `${type}:${p}`),
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
          };
        }),
      },
    ],
  } as CapabilityStatement;
}
