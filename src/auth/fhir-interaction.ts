/**
 * Maps a FHIR REST request (method + path under /fhir) to the interaction and resource type the scope check needs
 * (FHIR R4 RESTful API, https://hl7.org/fhir/R4/http.html). Pure. Returns undefined for requests whose type is not in
 * the URL (system search/history, batch/transaction, operations): the per-request repository checks those itself.
 */
import type { Interaction } from './access.ts';

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

export interface FhirInteraction {
  readonly interaction: Interaction;
  readonly resourceType: string;
}

export function fhirInteraction(method: string, path: string): FhirInteraction | undefined {
  if (path !== '/fhir' && !path.startsWith('/fhir/')) return undefined;
  const segments = path
    .slice('/fhir'.length)
    .split('/')
    .filter((s) => s !== '');
  const [type, second, third, fourth] = segments;
  if (type === undefined || !TYPE.test(type) || segments.length > 4) return undefined;
  const of = (interaction: Interaction, resourceType = type): FhirInteraction => ({ interaction, resourceType });
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD') {
    if (second === undefined || second === '_history') return segments.length <= 2 ? of('search') : undefined;
    if (second.startsWith('$') || second.startsWith('_')) return undefined;
    if (third === undefined) return of('read');
    if (third === '_history') return segments.length <= 4 ? of('read') : undefined;
    // Compartment search: /fhir/Patient/123/ImagingStudy
    if (type === 'Patient' && TYPE.test(third) && fourth === undefined) return of('search', third);
    return undefined;
  }
  if (m === 'POST') {
    if (second === undefined) return of('create');
    if (second === '_search' && third === undefined) return of('search');
    return undefined;
  }
  if ((m === 'PUT' || m === 'PATCH') && third === undefined) return of('update');
  if (m === 'DELETE' && third === undefined) return of('delete');
  return undefined;
}
