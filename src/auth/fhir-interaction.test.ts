import { expect, test } from 'vitest';
import { fhirInteraction } from './fhir-interaction.ts';

test.each([
  ['GET', '/fhir/Patient', 'search', 'Patient'],
  ['GET', '/fhir/Patient/', 'search', 'Patient'],
  ['HEAD', '/fhir/Patient/123', 'read', 'Patient'],
  ['POST', '/fhir/ImagingStudy/_search', 'search', 'ImagingStudy'],
  ['GET', '/fhir/ImagingStudy/_history', 'search', 'ImagingStudy'],
  ['GET', '/fhir/Patient/123', 'read', 'Patient'],
  ['GET', '/fhir/Patient/123/_history', 'read', 'Patient'],
  ['GET', '/fhir/Patient/123/_history/2', 'read', 'Patient'],
  ['GET', '/fhir/Patient/123/ImagingStudy', 'search', 'ImagingStudy'],
  ['POST', '/fhir/Observation', 'create', 'Observation'],
  ['PUT', '/fhir/Observation/1', 'update', 'Observation'],
  ['PUT', '/fhir/Observation', 'update', 'Observation'],
  ['PATCH', '/fhir/Observation/1', 'update', 'Observation'],
  ['delete', '/fhir/Observation/1', 'delete', 'Observation'],
])('%s %s → %s %s', (method, path, interaction, resourceType) => {
  expect(fhirInteraction(method, path)).toEqual({ interaction, resourceType });
});

test.each([
  ['GET', '/fhir'],
  ['POST', '/fhir'],
  ['GET', '/fhir/_history'],
  ['GET', '/fhir/metadata'],
  ['GET', '/fhir/Patient/$everything'],
  ['GET', '/fhir/Patient/1/$everything'],
  ['POST', '/fhir/Patient/1'],
  ['GET', '/fhir/Patient/1/_history/2/x'],
  ['GET', '/fhirPatient'],
  ['GET', '/dicom-web/studies'],
  ['GET', '/fhir/Observation/1/Patient'],
])('%s %s is left to the repository', (method, path) => {
  expect(fhirInteraction(method, path)).toBeUndefined();
});
