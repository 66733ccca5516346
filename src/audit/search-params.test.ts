import { describe, expect, test } from 'vitest';
import { AUDIT_EVENT_SEARCH_PARAMS } from '../fhir/audit-event-params.ts';
import { implementsParam } from './search.ts';

describe('AuditEvent search parameters', () => {
  test.each(AUDIT_EVENT_SEARCH_PARAMS.map((p) => [p.name]))(
    '%s, listed in the CapabilityStatement, is implemented',
    (name) => {
      expect(implementsParam(name)).toBe(true);
    },
  );

  test.each([['address'], ['site'], ['_text']])('%s is not', (name) => {
    expect(implementsParam(name)).toBe(false);
  });
});
