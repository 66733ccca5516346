import { describe, expect, test } from 'vitest';
import { nameOf, type Patient } from './model.ts';

const patient = (name: Patient['name']): Patient => ({ resourceType: 'Patient', ...(name ? { name } : {}) });

describe('nameOf: never empty, since it is the text of the patient links', () => {
  test.each<[string, Patient | undefined, string]>([
    ['family and given', patient([{ family: 'Lovelace', given: ['Ada', 'King'] }]), 'Lovelace, Ada King'],
    ['family only', patient([{ family: 'Lovelace' }]), 'Lovelace'],
    ['text only', patient([{ text: 'Ada Lovelace' }]), 'Ada Lovelace'],
    ['an empty name', patient([{ use: 'official' }]), '(no name)'],
    ['blank text', patient([{ text: '  ' }]), '(no name)'],
    ['no name', patient(undefined), '(no name)'],
    ['no patient', undefined, '(no name)'],
  ])('%s', (_, p, expected) => {
    expect(nameOf(p)).toBe(expected);
  });
});
