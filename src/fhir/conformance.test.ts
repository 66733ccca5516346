import type { Reference, Resource } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { contextAllows, referencedType } from './conformance.ts';
import { loadDefinitions } from './definitions.ts';
import { FhirError } from './errors.ts';
import { validateStructure } from './validate.ts';

loadDefinitions();

const XHTML = 'http://www.w3.org/1999/xhtml';
const order = (extra: object = {}) =>
  ({
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    subject: { reference: 'Patient/p1' },
    ...extra,
  }) as Resource;
const BIRTHPLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const BIRTHTIME = 'http://hl7.org/fhir/StructureDefinition/patient-birthTime';

/** The expressions of the issues of a refused resource, or undefined when it is accepted. */
function refusedAt(r: Resource): string[] | undefined {
  try {
    validateStructure(r);
    return undefined;
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    expect(err.statusCode).toBe(400);
    return err.issues.flatMap((i) => i.expression ?? []);
  }
}

describe('validateStructure: base rules beyond @medplum/core', () => {
  test.each<[string, Resource, string[] | undefined]>([
    ['a valid order', order(), undefined],
    ['gender in the value set', { resourceType: 'Patient', gender: 'other' } as Resource, undefined],
    ['gender robot', { resourceType: 'Patient', gender: 'robot' } as unknown as Resource, ['Patient.gender']],
    [
      'name.use outside its value set',
      { resourceType: 'Patient', name: [{ use: 'nick' }] } as unknown as Resource,
      ['Patient.name[0].use'],
    ],
    ['intent: a child code of the hierarchy', order({ intent: 'original-order' }), undefined],
    ['status outside its value set', order({ status: 'sideways' }), ['ServiceRequest.status']],
    [
      'mimetypes are not enumerable: not checked',
      { resourceType: 'Patient', photo: [{ contentType: 'x/y' }] } as Resource,
      undefined,
    ],
    ['subject pointing to an Endpoint', order({ subject: { reference: 'Endpoint/e' } }), ['ServiceRequest.subject']],
    [
      'subject as an absolute URL to an Endpoint',
      order({ subject: { reference: 'https://x.org/fhir/Endpoint/e' } }),
      ['ServiceRequest.subject'],
    ],
    [
      'subject as an absolute URL to a Patient',
      order({ subject: { reference: 'https://x.org/fhir/Patient/p/_history/2' } }),
      undefined,
    ],
    [
      'subject as urn:uuid',
      order({ subject: { reference: 'urn:uuid:0b4f8f52-2a0a-4e55-9d5b-1d6e5a1b4c11' } }),
      undefined,
    ],
    [
      'requester by Reference.type',
      order({ requester: { type: 'Endpoint', display: 'x' } }),
      ['ServiceRequest.requester'],
    ],
    [
      'note author (a choice element)',
      order({ note: [{ authorReference: { reference: 'Endpoint/e' }, text: 'x' }] }),
      ['ServiceRequest.note[0].author[x]'],
    ],
    [
      'a contained reference without a contained resource',
      order({ performer: [{ reference: '#x' }] }),
      ['ServiceRequest.performer[0]'],
    ],
    [
      'a contained resource that is referenced',
      order({ contained: [{ resourceType: 'Practitioner', id: 'a' }], requester: { reference: '#a' } }),
      undefined,
    ],
    [
      'a contained resource nobody refers to (dom-3)',
      order({ contained: [{ resourceType: 'Practitioner', id: 'a' }] }),
      ['ServiceRequest.contained[0]'],
    ],
    [
      'a contained resource that refers to its container',
      order({
        contained: [
          {
            resourceType: 'Practitioner',
            id: 'a',
            extension: [{ url: 'http://x.org/e', valueReference: { reference: '#' } }],
          },
        ],
      }),
      undefined,
    ],
    [
      'a contained resource of a wrong target type',
      order({
        contained: [
          {
            resourceType: 'Endpoint',
            id: 'e',
            status: 'active',
            connectionType: { code: 'x' },
            payloadType: [{ text: 'x' }],
            address: 'https://x',
          },
        ],
        subject: { reference: '#e' },
      }),
      ['ServiceRequest.subject'],
    ],
    [
      'a script in the narrative',
      {
        resourceType: 'Patient',
        text: { status: 'generated', div: `<div xmlns="${XHTML}"><script>x</script></div>` },
      } as Resource,
      ['Patient.text.div'],
    ],
    [
      'a known extension in its context',
      { resourceType: 'Patient', extension: [{ url: BIRTHPLACE, valueAddress: { city: 'Gent' } }] } as Resource,
      undefined,
    ],
    [
      'a known extension outside its context',
      order({ extension: [{ url: BIRTHPLACE, valueAddress: { city: 'Gent' } }] }),
      ['ServiceRequest.extension[0]'],
    ],
    [
      'a known data type extension on its type',
      {
        resourceType: 'Patient',
        name: [
          {
            family: 'x',
            extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/humanname-assembly-order', valueCode: 'NL1' }],
          },
        ],
      } as Resource,
      undefined,
    ],
    [
      'a data type extension on another type',
      {
        resourceType: 'Patient',
        address: [
          {
            city: 'x',
            extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/humanname-assembly-order', valueCode: 'NL1' }],
          },
        ],
      } as Resource,
      ['Patient.address[0].extension[0]'],
    ],
    [
      'a known extension on a primitive in its context',
      {
        resourceType: 'Patient',
        birthDate: '2000-01-01',
        _birthDate: { extension: [{ url: BIRTHTIME, valueDateTime: '2000-01-01T10:00:00Z' }] },
      } as Resource,
      undefined,
    ],
    [
      'a known extension on another primitive',
      {
        resourceType: 'Patient',
        gender: 'male',
        _gender: { extension: [{ url: BIRTHTIME, valueDateTime: '2000-01-01T10:00:00Z' }] },
      } as Resource,
      ['Patient._gender.extension[0]'],
    ],
    [
      'a primitive data type extension in a repeating element',
      {
        resourceType: 'Patient',
        name: [{ given: ['a', 'b'], _given: [null, { extension: [{ url: BIRTHTIME, valueDateTime: '2000' }] }] }],
      } as unknown as Resource,
      ['Patient.name[0]._given[1].extension[0]'],
    ],
    [
      'an unknown extension anywhere',
      order({ extension: [{ url: 'http://example.org/whatever', valueString: 'x' }] }),
      undefined,
    ],
    ['numbers as HumanNames', { resourceType: 'Patient', name: [1, 2] } as unknown as Resource, ['Patient.name[0]']],
    ['a boolean as Meta', { resourceType: 'Patient', meta: true } as unknown as Resource, ['Patient.meta']],
    [
      'an empty string as telecom',
      { resourceType: 'Patient', telecom: '' } as unknown as Resource,
      ['Patient.telecom'],
    ],
    [
      'an empty string deep inside',
      { resourceType: 'Patient', name: [{ family: 'x', given: [''] }] } as unknown as Resource,
      ['Patient.name[0].given[0]'],
    ],
  ])('%s', (_name, resource, expected) => {
    const at = refusedAt(resource);
    if (!expected) expect(at).toBeUndefined();
    else expect(at).toEqual(expect.arrayContaining(expected));
  });
});

test.each([
  [{ reference: 'Patient/1' }, 'Patient'],
  [{ reference: 'https://x/fhir/Patient/1/_history/3' }, 'Patient'],
  [{ reference: '#c' }, undefined],
  [{ reference: 'urn:uuid:1' }, undefined],
  [{ type: 'Group' }, 'Group'],
  [{ display: 'x' }, undefined],
])('referencedType(%j)', (ref, type) => {
  expect(referencedType(ref as Reference)).toBe(type);
});

test.each([
  ['Element', 'HumanName', ['Patient.name', 'HumanName'], false, true],
  ['Patient', 'Patient', ['Patient'], true, true],
  ['Patient', 'ServiceRequest', ['ServiceRequest'], true, false],
  ['Resource', 'Patient', ['Patient'], true, true],
  ['Resource', 'HumanName', ['Patient.name', 'HumanName'], false, false],
  ['Patient.name', 'HumanName', ['Patient.name', 'HumanName'], false, true],
  ['Patient.contact', 'PatientContact', ['Patient.contact', 'Patient.contact'], false, true],
  ['CodeSystem.concept', 'CodeSystemConcept', ['CodeSystem.concept.concept', 'CodeSystem.concept'], false, true],
  [
    'ElementDefinition.binding',
    'ElementDefinitionBinding',
    ['StructureDefinition.snapshot.element.binding', 'ElementDefinition.binding'],
    false,
    true,
  ],
  ['Quantity', 'Age', ['Patient.x', 'Age'], false, true],
  ['Observation.value[x]', 'Quantity', ['Observation.value[x]', 'Quantity'], false, true],
])('contextAllows(%s, %s, %j)', (context, type, paths, isResource, allowed) => {
  expect(contextAllows(context, type, paths, isResource)).toBe(allowed);
});
