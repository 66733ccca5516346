import { describe, expect, test } from 'vitest';
import { orthancId } from '../../orthanc/orthanc-ids.ts';
import type { OrthancProxy } from '../../orthanc/proxy.ts';
import { ResourceMembership } from './resource-membership.ts';
import { type LinkedStudy, linkedStudy } from './linked-orthanc-studies.ts';

const X = '1.2.3';
const S = '1.2.3.1';
const I1 = '1.2.3.1.1';
const I2 = '1.2.3.1.2';
const ids = (patientId: string) => ({
  study: orthancId({ patientId, study: X }),
  series: orthancId({ patientId, study: X, series: S }),
  instance: (sop: string) => orthancId({ patientId, study: X, series: S, instance: sop }),
});

/** Orthanc's native resources as `GET /studies/{id}` and `GET /series/{id}` answer them, for a fake proxy. */
function fakeOrthanc(resources: Map<string, unknown>) {
  const asked: string[] = [];
  const proxy = {
    async getJson(path: string) {
      asked.push(path);
      await new Promise((r) => setTimeout(r, 1));
      const json = resources.get(path);
      return json === undefined ? { status: 404, json: { HttpStatus: 404 } } : { status: 200, json };
    },
  } as unknown as OrthancProxy;
  return { proxy, asked };
}

/** Orthanc holds A's study X (series S: I1) and a foreign study X under OTHER (series S: I2). */
function world() {
  const a = ids('MRN-A');
  const other = ids('OTHER');
  return new Map<string, unknown>([
    [`/studies/${a.study}`, { PatientMainDicomTags: { PatientID: 'MRN-A' } }],
    [`/series/${a.series}`, { Instances: [a.instance(I1)] }],
    [`/studies/${other.study}`, { PatientMainDicomTags: { PatientID: 'OTHER' } }],
    [`/series/${other.series}`, { Instances: [other.instance(I2)] }],
  ]);
}

const byMrn = linkedStudy(X, null, ['MRN-A']) as LinkedStudy;
const byRecordedId = linkedStudy(X, orthancId({ patientId: 'MRN-A', study: X }), ['MRN-Q']) as LinkedStudy;
const foreignOnly = linkedStudy(X, null, ['NOBODY']) as LinkedStudy;

describe('ResourceMembership.exists: the addressed resource is in a linked Orthanc study', () => {
  test.each([
    ['the study', byMrn, {}, true],
    ['its series', byMrn, { series: S }, true],
    ['its instance', byMrn, { series: S, instance: I1 }, true],
    ["the foreign study's instance in the same series UID", byMrn, { series: S, instance: I2 }, false],
    ['an unknown series', byMrn, { series: '9.9' }, false],
    ['recorded id only (moved): the study', byRecordedId, {}, true],
    ['recorded id only (moved): the instance', byRecordedId, { series: S, instance: I1 }, true],
    ['recorded id only (moved): the foreign instance', byRecordedId, { series: S, instance: I2 }, false],
    ['no Orthanc study under the linked identifiers', foreignOnly, { series: S }, false],
  ])('%s → %s', async (_name, linked, within, expected) => {
    const { proxy } = fakeOrthanc(world());
    expect(await new ResourceMembership(proxy, 60_000).exists(linked, { study: X, ...within })).toBe(expected);
  });
});

describe('ResourceMembership: what it asks Orthanc', () => {
  test('one series lookup answers every instance of the series, also when asked at once', async () => {
    const { proxy, asked } = fakeOrthanc(world());
    const r = new ResourceMembership(proxy, 60_000);
    const checks = await Promise.all([1, 2, 3].map(() => r.exists(byMrn, { study: X, series: S, instance: I1 })));
    expect(checks).toEqual([true, true, true]);
    expect(await r.exists(byMrn, { study: X, series: S })).toBe(true);
    expect(asked).toEqual([`/series/${ids('MRN-A').series}`]);
  });

  test('an instance missing from a known series is asked for again (it may be new)', async () => {
    const resources = world();
    const { proxy, asked } = fakeOrthanc(resources);
    const r = new ResourceMembership(proxy, 60_000);
    const a = ids('MRN-A');
    expect(await r.exists(byMrn, { study: X, series: S, instance: '1.2.3.1.9' })).toBe(false);
    resources.set(`/series/${a.series}`, { Instances: [a.instance(I1), a.instance('1.2.3.1.9')] });
    expect(await r.exists(byMrn, { study: X, series: S, instance: '1.2.3.1.9' })).toBe(true);
    expect(asked).toHaveLength(2);
  });

  test.each([
    ['an invalidation of the study', (r: ResourceMembership) => r.invalidate(X), 2],
    ['an invalidation of every study', (r: ResourceMembership) => r.invalidate(), 2],
    ['a suspension (nothing kept: every check asks)', (r: ResourceMembership) => r.suspend(), 3],
  ])('after %s the next check asks Orthanc again', async (_name, act, lookups) => {
    const { proxy, asked } = fakeOrthanc(world());
    const r = new ResourceMembership(proxy, 60_000);
    await r.exists(byMrn, { study: X });
    act(r);
    await r.exists(byMrn, { study: X });
    await r.exists(byMrn, { study: X });
    expect(asked).toHaveLength(lookups);
  });

  test('an answer other than 200 or 404 is an error, not a permit', async () => {
    const proxy = { getJson: async () => ({ status: 500, json: null }) } as unknown as OrthancProxy;
    await expect(new ResourceMembership(proxy, 60_000).exists(byMrn, { study: X })).rejects.toThrow(/failed to answer/);
  });
});
