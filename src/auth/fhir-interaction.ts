/**
 * Maps a FHIR REST request (method + path under /fhir) to the interaction and resource type the scope check needs
 * (FHIR R4 RESTful API, https://hl7.org/fhir/R4/http.html). Pure. Returns undefined for requests whose type is not in
 * the URL (system search/history, batch/transaction, operations): the per-request repository checks those itself.
 */
import { parseFhirPath, pathSegments } from '../fhir/rest/rest-path.ts';
import type { Interaction } from './access.ts';

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

export interface FhirInteraction {
  readonly interaction: Interaction;
  readonly resourceType: string;
}

export function fhirInteraction(method: string, path: string): FhirInteraction | undefined {
  if (path !== '/fhir' && !path.startsWith('/fhir/')) return undefined;
  const p = parseFhirPath(pathSegments(path.slice('/fhir'.length)));
  const type = p.type;
  if (type === undefined || !TYPE.test(type) || p.depth > 4) return undefined;
  const of = (interaction: Interaction, resourceType = type): FhirInteraction => ({ interaction, resourceType });
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD') {
    if (p.kind === 'type' || p.kind === 'type-history') return p.depth <= 2 ? of('search') : undefined;
    if (p.id === undefined) return undefined;
    if (p.kind === 'instance' || p.kind === 'instance-history' || p.kind === 'vread') return of('read');
    // Compartment search: /fhir/Patient/123/ImagingStudy
    const target = p.compartment;
    if (p.kind === 'compartment' && type === 'Patient' && target && TYPE.test(target) && p.depth === 3) {
      return of('search', target);
    }
    return undefined;
  }
  if (m === 'POST') {
    if (p.kind === 'type') return of('create');
    if (p.kind === 'type-search' && p.depth === 2) return of('search');
    return undefined;
  }
  if ((m === 'PUT' || m === 'PATCH') && p.depth <= 2) return of('update');
  if (m === 'DELETE' && p.depth <= 2) return of('delete');
  return undefined;
}
