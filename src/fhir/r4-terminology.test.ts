import type { CodeSystem, ValueSet } from '@medplum/fhirtypes';
import { expect, test } from 'vitest';
import { expandValueSet, extensionContexts, requiredBindingValueSets } from './r4-terminology.ts';

const cs = (url: string, codes: string[], content: CodeSystem['content'] = 'complete'): CodeSystem => ({
  resourceType: 'CodeSystem',
  url,
  status: 'active',
  content,
  concept: codes.map((code) => ({ code, ...(code === 'parent' ? { concept: [{ code: 'child' }] } : {}) })),
});
const vs = (url: string, compose: ValueSet['compose']): ValueSet => ({
  resourceType: 'ValueSet',
  url,
  status: 'active',
  compose,
});
const index = new Map<string, ValueSet | CodeSystem>(
  [
    cs('urn:a', ['x', 'parent']),
    cs('urn:frag', ['y'], 'fragment'),
    vs('urn:vs:all-a', { include: [{ system: 'urn:a' }] }),
    vs('urn:vs:listed', { include: [{ system: 'urn:b', concept: [{ code: 'b1' }, { code: 'b2' }] }] }),
    vs('urn:vs:nested', { include: [{ valueSet: ['urn:vs:listed'] }, { system: 'urn:a', concept: [{ code: 'x' }] }] }),
    vs('urn:vs:excluding', {
      include: [{ system: 'urn:a' }],
      exclude: [{ system: 'urn:a', concept: [{ code: 'x' }] }],
    }),
    vs('urn:vs:filtered', { include: [{ system: 'urn:a', filter: [{ property: 'p', op: '=', value: 'v' }] }] }),
    vs('urn:vs:external', { include: [{ system: 'urn:ietf:bcp:13' }] }),
    vs('urn:vs:fragment', { include: [{ system: 'urn:frag' }] }),
  ].map((r) => [r.url ?? '', r]),
);

test.each([
  ['all codes of a complete code system, hierarchy flattened', 'urn:vs:all-a', { 'urn:a': ['child', 'parent', 'x'] }],
  ['listed codes', 'urn:vs:listed', { 'urn:b': ['b1', 'b2'] }],
  ['an included value set', 'urn:vs:nested', { 'urn:a': ['x'], 'urn:b': ['b1', 'b2'] }],
  ['an exclusion', 'urn:vs:excluding', { 'urn:a': ['child', 'parent'] }],
  ['a filter: not enumerable', 'urn:vs:filtered', undefined],
  ['an external code system: not enumerable', 'urn:vs:external', undefined],
  ['a fragment code system: not enumerable', 'urn:vs:fragment', undefined],
  ['an unknown value set', 'urn:vs:nope', undefined],
])('%s', (_name, url, expected) => {
  const got = expandValueSet(url, index);
  expect(got && Object.fromEntries([...got].map(([s, c]) => [s, [...c].sort()]))).toEqual(expected);
});

test('the extracted files hold the served types required bindings and the core extension contexts', () => {
  const vss = requiredBindingValueSets();
  expect(
    [...(vss.get('http://hl7.org/fhir/ValueSet/administrative-gender')?.values() ?? [])].flatMap((s) => [...s]).sort(),
  ).toEqual(['female', 'male', 'other', 'unknown']);
  expect(vss.has('http://hl7.org/fhir/ValueSet/request-intent')).toBe(true);
  expect(vss.has('http://hl7.org/fhir/ValueSet/mimetypes')).toBe(false);
  expect(extensionContexts().get('http://hl7.org/fhir/StructureDefinition/patient-birthPlace')).toEqual(['Patient']);
});
