import type { CommonQueryMethods } from 'slonik';
import { describe, expect, test } from 'vitest';
import { makeSeries } from '../../../tests/helpers/dicom.ts';
import type { Access } from '../../auth/access.ts';
import { readDicomInstance } from '../../imaging/dicom-instance.ts';
import type { FhirStore, StudyToRecord } from '../../imaging/ehr-link.ts';
import type { UploadLogRow } from '../../imaging/upload-log.ts';
import type { OrthancStoredInstance } from '../../orthanc/client.ts';
import { OrthancHttpError } from '../../orthanc/errors.ts';
import type { MultipartPart } from './multipart-related.ts';
import { FailureReason } from './outcome.ts';
import { storeInstances } from './store-instances.ts';
import type { StowDeps, StowOptions } from './store-types.ts';

/**
 * The EHR transaction of a STOW-RS request (stow/record-upload.ts), with in-memory stand-ins for Orthanc and the database:
 * it starts before the last stores settled, and what it commits must be what the stores actually gave.
 */

const series = makeSeries({ patientId: 'MRN-1', accession: 'ACC-1', count: 6 });
const sops = series.sopUids;

interface World {
  deps: StowDeps;
  /** Instances Orthanc holds, by SOP Instance UID. */
  orthanc: Set<string>;
  deleted: string[];
  begun: number;
  /** Instances Orthanc had answered for when each transaction began. */
  answeredAtBegin: number[];
  rolledBack: number;
  /** What each committed transaction wrote. */
  committed: { studies: [string, string, number][]; logs: [number, number, number][] }[];
}

interface Behaviour {
  /** SOP Instance UIDs Orthanc refuses. */
  fail?: readonly string[];
  /** Delay of each store (ms), by SOP Instance UID; 0 when absent. */
  delay?: Readonly<Record<string, number>>;
  /** Instances Orthanc already has. */
  existing?: readonly string[];
  /** Recording the studies throws (a database failure). */
  recordFails?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function world(b: Behaviour): World {
  const w: World = {
    orthanc: new Set(b.existing ?? []),
    deleted: [],
    begun: 0,
    answeredAtBegin: [],
    rolledBack: 0,
    committed: [],
    deps: undefined as never,
  };
  let answered = 0;
  type Writes = World['committed'][number];
  const writesOf = (x: unknown) => (x as { writes: Writes }).writes;
  const lookup = {
    findPatientByMrn: async (mrn: string) =>
      mrn === 'MRN-1' ? { resource: { resourceType: 'Patient', id: 'p1' } } : undefined,
    findOrderByAccession: async (acc: string) =>
      acc === 'ACC-1'
        ? {
            resource: {
              resourceType: 'ServiceRequest',
              id: 'o1',
              status: 'active',
              subject: { reference: 'Patient/p1' },
            },
          }
        : undefined,
    findImagingStudyByStudyUid: async () => undefined,
    orderBridge: async () => ({ study_instance_uid: null }),
  } as unknown as FhirStore;
  w.deps = {
    orthanc: {
      storeInstance: async (body): Promise<OrthancStoredInstance> => {
        const sop = readDicomInstance(body).sopInstanceUid;
        await sleep(b.delay?.[sop] ?? 0);
        answered++;
        if (b.fail?.includes(sop)) throw new OrthancHttpError(500, '/instances', 'refused');
        const had = w.orthanc.has(sop);
        w.orthanc.add(sop);
        return {
          ID: sop,
          ParentPatient: 'P',
          ParentStudy: `orthanc-${series.studyUid}`,
          ParentSeries: 'S',
          Path: `/instances/${sop}`,
          Status: had ? 'AlreadyStored' : 'Success',
        };
      },
      deleteInstance: async (id) => {
        w.orthanc.delete(id);
        w.deleted.push(id);
      },
    },
    lookup,
    transaction: async (_patientIds, fn) => {
      w.begun++;
      w.answeredAtBegin.push(answered);
      const writes: Writes = { studies: [], logs: [] };
      // lockStudies (advisory locks) is the only plain SQL besides the stand-ins below.
      const handle = { writes, query: async () => ({ rows: [] }) };
      try {
        const out = await fn(handle as unknown as FhirStore, handle as unknown as CommonQueryMethods);
        w.committed.push(writes);
        return out;
      } catch (err) {
        w.rolledBack++;
        throw err;
      }
    },
    recordStudies: async (store, studies: StudyToRecord[]) => {
      if (b.recordFails) throw new Error('database down');
      writesOf(store).studies.push(
        ...studies.map((s) => [s.studyInstanceUid, s.orthancStudyId, s.instances.length] as [string, string, number]),
      );
      return studies.map((s) => ({
        studyInstanceUid: s.studyInstanceUid,
        imagingStudyId: 'is1',
        orderId: s.orderId,
        numberOfInstances: s.instances.length,
      }));
    },
    insertLogs: async (tx, rows: UploadLogRow[]) => {
      writesOf(tx).logs.push(
        ...rows.map((r) => [r.numberStored, r.numberNew, r.numberFailed] as [number, number, number]),
      );
    },
  };
  return w;
}

const access: Access = {
  kind: 'user',
  agent: { who: 'Practitioner/tester', sub: 'tester', roles: ['admin'] },
  allows: () => true,
  patientFilter: () => ({ all: true }),
  restrictions: () => [],
};

const silent = { error: () => {}, warn: () => {} };

async function* partsOf(files: readonly Buffer[]): AsyncGenerator<MultipartPart> {
  for (const [index, f] of files.entries()) {
    yield {
      index,
      headers: {},
      mediaType: 'application/dicom',
      chunks: [f],
      body: f,
      size: f.length,
      overLimit: false,
    };
  }
}

async function upload(w: World, earlyRecordWaitMs?: number) {
  // Fresh copies: the pipeline zeroes the preamble in place.
  const files = series.files.map((f) => Buffer.from(f));
  const opts: StowOptions = {
    access,
    requestId: 'req-1',
    source: 'stow',
    maxInstanceBytes: 10_000_000,
    unmatched: 'reject',
    concurrency: 2,
    acceptPart: () => true,
    log: silent,
    ...(earlyRecordWaitMs !== undefined ? { earlyRecordWaitMs } : {}),
  };
  const result = await storeInstances(partsOf(files), w.deps, opts);
  return result.outcomes.map((o) => (o.kind === 'stored' ? 'stored' : o.reason));
}

const studyRow = (n: number) => [series.studyUid, `orthanc-${series.studyUid}`, n];
const F = FailureReason.ProcessingFailure;

describe('the EHR transaction of an upload', () => {
  test.each([
    {
      name: 'every store succeeds: one transaction, begun before the last store answered',
      b: { delay: { [sops[5]!]: 30 } },
      outcomes: ['stored', 'stored', 'stored', 'stored', 'stored', 'stored'],
      begun: 1,
      committed: [{ studies: [studyRow(6)], logs: [[6, 6, 0]] }],
    },
    {
      name: 'the last store fails after the transaction began: rolled back, recorded again without it',
      b: { delay: { [sops[5]!]: 30 }, fail: [sops[5]!] },
      outcomes: ['stored', 'stored', 'stored', 'stored', 'stored', F],
      begun: 2,
      committed: [{ studies: [studyRow(5)], logs: [[5, 5, 1]] }],
    },
    {
      name: 'an early store fails: the transaction counts without it from the start',
      b: { fail: [sops[0]!] },
      outcomes: [F, 'stored', 'stored', 'stored', 'stored', 'stored'],
      begun: 1,
      committed: [{ studies: [studyRow(5)], logs: [[5, 5, 1]] }],
    },
    {
      name: 'a repeated instance counts as stored, not as new',
      b: { existing: [sops[2]!] },
      outcomes: ['stored', 'stored', 'stored', 'stored', 'stored', 'stored'],
      begun: 1,
      committed: [{ studies: [studyRow(6)], logs: [[6, 5, 0]] }],
    },
  ])('$name', async ({ b, outcomes, begun, committed }) => {
    const w = world(b);
    expect(await upload(w)).toEqual(outcomes);
    expect(w.begun).toBe(begun);
    expect(w.answeredAtBegin[0]).toBeLessThan(6);
    expect(w.rolledBack).toBe(begun - 1);
    expect(w.committed).toEqual(committed);
    expect(w.orthanc.size).toBe(outcomes.filter((o) => o === 'stored').length);
  });

  test('stores slower than the wait: the early transaction gives up and the upload is recorded after them', async () => {
    const w = world({ delay: { [sops[4]!]: 80, [sops[5]!]: 80 } });
    expect(await upload(w, 20)).toEqual(Array(6).fill('stored'));
    expect([w.begun, w.rolledBack]).toEqual([2, 1]);
    expect(w.committed).toEqual([{ studies: [studyRow(6)], logs: [[6, 6, 0]] }]);
  });

  test('the EHR cannot record: every newly stored instance is deleted again and reported 0x0110', async () => {
    const w = world({ recordFails: true, existing: [sops[1]!] });
    expect(await upload(w)).toEqual(Array(6).fill(F));
    expect(w.deleted.sort()).toEqual(sops.filter((s) => s !== sops[1]).sort());
    expect([...w.orthanc]).toEqual([sops[1]]);
    // Only the upload log is committed, in a transaction of its own.
    expect(w.committed).toEqual([{ studies: [], logs: [[0, 0, 6]] }]);
  });
});
