/**
 * The DICOMweb caches across facade replicas (src/dicomweb/cache/study-change-listener.ts and the
 * imaging_studies NOTIFY triggers): replica A is
 * built in this process with long TTLs (10 min), replica B is a second facade PROCESS (`node src/main.ts`) against
 * the same database and Orthanc, so that B's in-process signals cannot reach A: only PostgreSQL NOTIFY can. A change
 * made through B (STOW-RS of a new instance, an ImagingStudy moved to another patient through B's FHIR API) shows in
 * A's very next answer once A received the notification; the triggers announce exactly what changed; and while A's
 * LISTEN connection is down A serves nothing from its caches, starting from empty when it listens again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { STUDY_CHANGED_CHANNEL, type StudyChangeEvent } from '../src/dicomweb/cache/study-change-listener.ts';
import { type FacadeProcess, startFacade, stopFacade } from '../src/stack/facade.ts';
import { freePort } from '../src/stack/process.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid } from './helpers/dicom.ts';
import { type Booked, bookPatientAndOrder, multipartBody, orthanc, orthancIdOf, STOW_TYPE } from './helpers/stow.ts';

const LONG_TTL = { dicomwebCacheTtlMs: 600_000, dicomwebAccessCacheTtlMs: 600_000 };
const WAIT_MS = 10_000;
const SOP_UID = '00080018';
type Item = Record<string, { Value?: unknown[] }>;

let a: FastifyInstance;
let b: FacadeProcess;
let bUrl: string;
let db: pg.Client;
let owner: Booked;
let other: Booked;
let series: ReturnType<typeof makeSeries>;
const auth: Record<'admin' | 'owner' | 'other', { authorization: string }> = {} as never;

/** Resolves when A's listener reports an event matching `want` (register BEFORE causing it); fails after WAIT_MS. */
function nextOnA(what: string, want: (e: StudyChangeEvent) => boolean): Promise<void> {
  const listener = a.dicomWebStudyChanges;
  if (!listener) throw new Error('replica A has no study change listener');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`replica A did not see ${what} within ${WAIT_MS} ms`));
    }, WAIT_MS);
    const off = listener.observe((e) => {
      if (!want(e)) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

const studyChanged = (uid: string) => (e: StudyChangeEvent) =>
  e.kind === 'all' || (e.kind === 'study' && e.study === uid);

/**
 * Runs `change` and waits until A has heard of it and then heard nothing more of the study for {@link QUIET_MS} (one
 * upload can announce itself more than once: the ImagingStudy row and, after commit, the content epoch).
 */
async function settledOnA(uid: string, change: () => Promise<void>): Promise<void> {
  const listener = a.dicomWebStudyChanges;
  if (!listener) throw new Error('replica A has no study change listener');
  let last = 0;
  const off = listener.observe((e) => {
    if (studyChanged(uid)(e)) last = Date.now();
  });
  try {
    const seen = nextOnA('the change', studyChanged(uid));
    await change();
    await seen;
    while (Date.now() - last < QUIET_MS) await new Promise((r) => setTimeout(r, 50));
  } finally {
    off();
  }
}

const QUIET_MS = 300;

async function stowThroughB(files: Buffer[], status = 200): Promise<void> {
  const boundary = `replica-${newUid()}`;
  const res = await fetch(`${bUrl}/dicom-web/studies`, {
    method: 'POST',
    headers: { ...auth.admin, 'content-type': STOW_TYPE(boundary) },
    body: multipartBody(files, boundary),
  });
  expect(res.status, await res.text()).toBe(status);
}

const metadataPath = () => `/dicom-web/studies/${series.studyUid}/series/${series.seriesUid}/metadata`;

async function sopUidsOnA(who: keyof typeof auth = 'owner'): Promise<string[]> {
  const res = await request(a.server).get(metadataPath()).set(auth[who]);
  expect(res.status, res.text).toBe(200);
  return (JSON.parse(res.text) as Item[]).map((i) => String(i[SOP_UID]?.Value?.[0])).sort();
}

/** A's access decision for the study (study-level metadata: authorized through the study index, never cached). */
async function statusOnA(who: keyof typeof auth): Promise<number> {
  const res = await request(a.server).get(`/dicom-web/studies/${series.studyUid}/metadata`).set(auth[who]);
  return res.status;
}

const patientToken = async (patientId: string) =>
  bearer(
    await tokenFor(a, { user: { username: `rc-${patientId}`, roles: [] }, scope: 'patient/*.rs', patient: patientId }),
  );

beforeAll(async () => {
  const stack = inject('stack');
  a = await testApp(LONG_TTL);
  const port = await freePort();
  bUrl = `http://127.0.0.1:${port}`;
  b = {
    dir: mkdtempSync(join(tmpdir(), 'ehr-replica-b-')),
    port,
    env: {
      EHR_HOST: '127.0.0.1',
      EHR_PORT: String(port),
      // The same public base URL as A: tokens minted by A (keys in the shared database) are valid at B.
      EHR_PUBLIC_BASE_URL: testConfig().publicBaseUrl,
      EHR_DATABASE_URL: stack.databaseUrl,
      EHR_ORTHANC_URL: stack.orthancUrl,
      EHR_ORTHANC_USERNAME: stack.orthancUsername,
      EHR_ORTHANC_PASSWORD: stack.orthancPassword,
      EHR_CHANGE_FEED_ENABLED: 'false',
      // Unmatched uploads are stored and queued (no ImagingStudy): their only announcement is the epoch bump.
      EHR_STOW_UNMATCHED: 'hold',
      EHR_LOG_LEVEL: 'warn',
      EHR_DICOMWEB_CACHE_TTL_MS: '600000',
      EHR_DICOMWEB_ACCESS_CACHE_TTL_MS: '600000',
    },
  };
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  auth.admin = bearer(await adminToken(a));
  owner = await bookPatientAndOrder(a, auth.admin);
  other = await bookPatientAndOrder(a, auth.admin);
  auth.owner = await patientToken(owner.patientId);
  auth.other = await patientToken(other.patientId);
  await startFacade(b);
  series = makeSeries({ patientId: owner.mrn, accession: owner.accession, count: 2 });
  // A must have heard of this first upload before the tests fill its cache (a late notice would empty it again).
  await settledOnA(series.studyUid, () => stowThroughB(series.files));
}, 90_000);

afterAll(async () => {
  if (b) {
    await stopFacade(b);
    rmSync(b.dir, { recursive: true, force: true });
  }
  await db?.end();
  await a?.close();
});

describe('a change through replica B reaches replica A', () => {
  test('STOW-RS of a new instance through B into a series A has cached: A answers with it', async () => {
    const before = await sopUidsOnA();
    expect(before).toEqual([...series.sopUids].sort());
    const hits = a.dicomWebSeriesCache.stats.hits;
    expect(await sopUidsOnA()).toEqual(before);
    expect(a.dicomWebSeriesCache.stats.hits).toBe(hits + 1); // A serves it from its cache (TTL 10 min)

    const more = makeSeries({
      patientId: owner.mrn,
      accession: owner.accession,
      studyUid: series.studyUid,
      seriesUid: series.seriesUid,
      count: 1,
    });
    const seen = nextOnA('the study changed', studyChanged(series.studyUid));
    await stowThroughB(more.files);
    await seen;
    expect(await sopUidsOnA()).toEqual([...before, ...more.sopUids].sort());
  });

  test('STOW-RS through B into a held study (no ImagingStudy written): A answers with the new instance', async () => {
    const patientId = `UNKNOWN-${newUid().slice(-20)}`;
    const held = makeSeries({ patientId, count: 1 });
    await settledOnA(held.studyUid, () => stowThroughB(held.files, 202)); // stored, queued for manual linking
    const path = `/dicom-web/studies/${held.studyUid}/series/${held.seriesUid}/metadata`;
    const uids = async () => {
      const res = await request(a.server).get(path).set(auth.admin);
      expect(res.status, res.text).toBe(200);
      return (JSON.parse(res.text) as Item[]).map((i) => String(i[SOP_UID]?.Value?.[0])).sort();
    };
    expect(await uids()).toEqual(held.sopUids);
    const hits = a.dicomWebSeriesCache.stats.hits;
    expect(await uids()).toEqual(held.sopUids);
    expect(a.dicomWebSeriesCache.stats.hits).toBe(hits + 1);

    const more = makeSeries({ patientId, studyUid: held.studyUid, seriesUid: held.seriesUid, count: 1 });
    const seen = nextOnA('the held study changed', studyChanged(held.studyUid));
    await stowThroughB(more.files, 202);
    await seen;
    expect(await uids()).toEqual([...held.sopUids, ...more.sopUids].sort());
  });

  test('the ImagingStudy moved to another patient through B’s FHIR API: A’s access decision follows', async () => {
    expect(await statusOnA('owner')).toBe(200);
    expect(await statusOnA('other')).toBe(404);
    await sopUidsOnA('owner'); // the series answer is cached too: authorization must still refuse the old owner

    const row = (await a.db.one(sql.unsafe`
      SELECT id FROM imaging_studies WHERE study_instance_uid = ${series.studyUid} AND NOT deleted`)) as { id: string };
    const read = await fetch(`${bUrl}/fhir/ImagingStudy/${row.id}`, { headers: auth.admin });
    expect(read.status).toBe(200);
    const study = (await read.json()) as { subject: { reference: string } };
    study.subject = { reference: `Patient/${other.patientId}` };
    const seen = nextOnA('the study changed', studyChanged(series.studyUid));
    const put = await fetch(`${bUrl}/fhir/ImagingStudy/${row.id}`, {
      method: 'PUT',
      headers: { ...auth.admin, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(study),
    });
    expect(put.status, await put.text()).toBe(200);
    await seen;

    expect(await statusOnA('owner')).toBe(404);
    expect(await statusOnA('other')).toBe(200);
    expect((await request(a.server).get(metadataPath()).set(auth.owner)).status).toBe(404);
    expect(await sopUidsOnA('other')).toContain(series.sopUids[0]);

    // And back (the next tests expect the original owner).
    study.subject = { reference: `Patient/${owner.patientId}` };
    const back = nextOnA('the study changed', studyChanged(series.studyUid));
    const res = await fetch(`${bUrl}/fhir/ImagingStudy/${row.id}`, {
      method: 'PUT',
      headers: { ...auth.admin, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({ ...study, meta: undefined }),
    });
    expect(res.status, await res.text()).toBe(200);
    await back;
    expect(await statusOnA('owner')).toBe(200);
    expect(await statusOnA('other')).toBe(404);
  });
});

describe('the imaging_studies NOTIFY triggers', () => {
  let listener: pg.Client;
  const payloads: string[] = [];
  let sentinel = 0;
  /** The studies these tests write. */
  const ours = new Set<string>();
  const uid = () => {
    const u = newUid();
    ours.add(u);
    return u;
  };

  beforeAll(async () => {
    listener = new pg.Client({ connectionString: inject('stack').databaseUrl });
    await listener.connect();
    listener.on('notification', (m) => {
      if (m.channel === STUDY_CHANGED_CHANNEL) payloads.push(m.payload ?? '');
    });
    await listener.query(`LISTEN ${STUDY_CHANGED_CHANNEL}`);
  });
  afterAll(async () => {
    await listener?.end();
  });

  /**
   * Runs `statement`, then returns the payloads it caused (up to a sentinel notification sent after it) that name
   * this test's studies or "any study" (other writers, e.g. replica B's background epoch bumps, share the channel).
   */
  async function announced(statement: string, values: unknown[] = []): Promise<string[]> {
    payloads.length = 0;
    await db.query(statement, values);
    const mark = `sentinel-${++sentinel}`;
    await db.query('SELECT pg_notify($1, $2)', [STUDY_CHANGED_CHANNEL, mark]);
    for (let i = 0; i < 200 && !payloads.includes(mark); i++) await new Promise((r) => setTimeout(r, 10));
    expect(payloads, 'the sentinel arrived').toContain(mark);
    return payloads
      .slice(0, payloads.indexOf(mark))
      .filter((p) => ours.has(p.split(' ')[0]!) || p === '')
      .sort();
  }

  test('imaging_studies: insert, UID change (old and new), patient change, delete; rows without a UID are silent', async () => {
    const [x, y, id] = [uid(), uid(), `trg-${newUid()}`];
    expect(
      await announced(
        `INSERT INTO imaging_studies (id, version_id, last_updated, content, study_instance_uid)
         VALUES ($1, 1, now(), '{}', $2)`,
        [id, x],
      ),
    ).toEqual([x]);
    expect(await announced('UPDATE imaging_studies SET study_instance_uid = $2 WHERE id = $1', [id, y])).toEqual(
      [x, y].sort(),
    );
    expect(await announced('UPDATE imaging_studies SET patient_id = $2 WHERE id = $1', [id, 'p'])).toEqual([y]);
    expect(await announced('UPDATE imaging_studies SET study_instance_uid = NULL WHERE id = $1', [id])).toEqual([y]);
    expect(await announced('UPDATE imaging_studies SET version_id = 2 WHERE id = $1', [id])).toEqual([]);
    expect(await announced('DELETE FROM imaging_studies WHERE id = $1', [id])).toEqual([]);
    expect(
      await announced(
        `INSERT INTO imaging_studies (id, version_id, last_updated, content, study_instance_uid)
         VALUES ($1, 1, now(), '{}', $2)`,
        [id, x],
      ),
    ).toEqual([x]);
    expect(await announced('DELETE FROM imaging_studies WHERE id = $1', [id])).toEqual([x]);
  });

  test('qido_study_fills: epoch bumps announce the study, fills do not; many at once announce "any study"', async () => {
    const x = uid();
    expect(await announced('INSERT INTO qido_study_fills (study_instance_uid) VALUES ($1)', [x])).toEqual([]);
    expect(
      await announced(
        'UPDATE qido_study_fills SET filled_epoch = epoch, filled_at = now() WHERE study_instance_uid = $1',
        [x],
      ),
    ).toEqual([]);
    expect(
      await announced(
        `INSERT INTO qido_study_fills (study_instance_uid, epoch) VALUES ($1, 1)
         ON CONFLICT (study_instance_uid) DO UPDATE SET epoch = qido_study_fills.epoch + 1`,
        [x],
      ),
    ).toEqual([x]);
    const fresh = uid();
    expect(
      await announced(
        `INSERT INTO qido_study_fills (study_instance_uid, epoch) VALUES ($1, 1)
         ON CONFLICT (study_instance_uid) DO UPDATE SET epoch = qido_study_fills.epoch + 1`,
        [fresh],
      ),
    ).toEqual([fresh]);
    // A writer that tags its transaction (what a facade does for its own epoch bumps) is named after the study.
    await db.query('BEGIN');
    await db.query("SELECT set_config('ehr.study_change_origin', 'replica-x', true)");
    await db.query('UPDATE qido_study_fills SET epoch = epoch + 1 WHERE study_instance_uid = $1', [x]);
    expect(await announced('COMMIT')).toEqual([`${x} replica-x`]);
    const many = Array.from({ length: 65 }, uid);
    await db.query('INSERT INTO qido_study_fills (study_instance_uid) SELECT unnest($1::text[])', [many]);
    expect(
      await announced('UPDATE qido_study_fills SET epoch = epoch + 1 WHERE study_instance_uid = ANY($1)', [many]),
    ).toEqual(['']);
    await db.query('DELETE FROM qido_study_fills WHERE study_instance_uid = ANY($1)', [[...many, x, fresh]]);
  });
});

describe('fail safe: A’s LISTEN connection is down', () => {
  test('A serves nothing from its caches until it listens again, then starts from empty', async () => {
    const changes = a.dicomWebStudyChanges!;
    expect(changes.listening).toBe(true);
    await sopUidsOnA(); // cached
    expect(a.dicomWebSeriesCache.size).toBeGreaterThan(0);
    const pid = changes.backendPid;
    expect(pid).toBeTypeOf('number');

    const down = nextOnA('the listener going down', (e) => e.kind === 'down');
    const up = nextOnA('the listener coming back', (e) => e.kind === 'up');
    await db.query('SELECT pg_terminate_backend($1)', [pid]);
    await down;
    expect(a.dicomWebSeriesCache.enabled).toBe(false);
    expect(a.dicomWebSeriesCache.size).toBe(0);

    // Changes nobody announces to A (its notifications are lost while it is not listening) show at once.
    const before = await sopUidsOnA();
    const hits = a.dicomWebSeriesCache.stats.hits;
    const victim = before[0]!;
    const id = await orthancIdOf(victim, 'Instance');
    expect((await orthanc(`/instances/${id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await sopUidsOnA()).toEqual(before.filter((u) => u !== victim));
    expect(await statusOnA('owner')).toBe(200);
    await db.query('UPDATE imaging_studies SET patient_id = $2 WHERE study_instance_uid = $1', [
      series.studyUid,
      other.patientId,
    ]);
    try {
      expect(await statusOnA('owner')).toBe(404);
      expect(await statusOnA('other')).toBe(200);
    } finally {
      await db.query('UPDATE imaging_studies SET patient_id = $2 WHERE study_instance_uid = $1', [
        series.studyUid,
        owner.patientId,
      ]);
    }
    expect(await statusOnA('owner')).toBe(200);
    expect(a.dicomWebSeriesCache.stats.hits).toBe(hits);

    // Listening again (retry after 1 s): the cache serves again, from empty.
    await up;
    expect(changes.listening).toBe(true);
    expect(changes.backendPid).not.toBe(pid);
    const stored = a.dicomWebSeriesCache.stats.stored;
    const now = await sopUidsOnA();
    expect(a.dicomWebSeriesCache.stats.stored).toBe(stored + 1);
    expect(await sopUidsOnA()).toEqual(now);
    expect(a.dicomWebSeriesCache.stats.hits).toBe(hits + 1);
  });
});
