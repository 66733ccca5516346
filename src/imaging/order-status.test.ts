import type { ServiceRequest } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { ORDER_STATUS_EXTENSION, orderOnReport } from './order-status.ts';

const order = (status: ServiceRequest['status'], reported = false): ServiceRequest => ({
  resourceType: 'ServiceRequest',
  status,
  intent: 'order',
  subject: { reference: 'Patient/p' },
  ...(reported ? { extension: [{ url: ORDER_STATUS_EXTENSION, valueCode: 'reported' }] } : {}),
});

describe('orderOnReport: the founding design status "reported"', () => {
  test.each<[ServiceRequest['status'], boolean]>([
    ['active', true],
    ['on-hold', true],
    ['unknown', true],
    ['completed', true],
  ])('%s becomes completed + reported', (status, changes) => {
    const next = orderOnReport(order(status));
    expect(next !== undefined).toBe(changes);
    expect(next?.status).toBe('completed');
    expect(next?.extension).toEqual([{ url: ORDER_STATUS_EXTENSION, valueCode: 'reported' }]);
  });

  test.each<[ServiceRequest['status']]>([['draft'], ['revoked'], ['entered-in-error']])('%s is left alone', (s) => {
    expect(orderOnReport(order(s))).toBeUndefined();
  });

  test('an order already reported does not change again', () => {
    expect(orderOnReport(order('completed', true))).toBeUndefined();
  });
});
