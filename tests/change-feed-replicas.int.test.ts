import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LEADER_APPLICATION_NAME } from '../src/change-feed/leadership.ts';
import {
  type Booked,
  book,
  cStore,
  ehrState,
  eventually,
  FAST_FEED,
  makeStudy,
  resetFeedCursor,
  type TestStudy,
} from './helpers/change-feed.ts';
import { fhirServer } from './helpers/fhir.ts';

/**
 * Restart and replicas: the cursor makes a restarted facade resume without gaps or duplicates, and the advisory
 * lock lets exactly one of several facades consume, with takeover when the leader goes away.
 */

const apps: FastifyInstance[] = [];
/** Each facade's admin token (tokens are bound to the issuing facade's URL). */
const auths = new WeakMap<FastifyInstance, { authorization: string }>();

async function start(): Promise<FastifyInstance> {
  const server = await fhirServer(FAST_FEED);
  apps.push(server.app);
  auths.set(server.app, server.auth);
  return server.app;
}

async function stop(app: FastifyInstance): Promise<void> {
  await app.close();
  apps.splice(apps.indexOf(app), 1);
}

async function sendMatching(app: FastifyInstance, n: number): Promise<{ booked: Booked; study: TestStudy }[]> {
  const out: { booked: Booked; study: TestStudy }[] = [];
  for (let i = 0; i < n; i++) {
    const booked = await book(app, auths.get(app)!);
    out.push({ booked, study: await makeStudy(booked.mrn, booked.accession, 1) });
  }
  await cStore(out.flatMap((o) => o.study.files));
  return out;
}

/** Waits until each study is linked, then checks it was linked exactly once. */
async function expectIndexedOnce(app: FastifyInstance, sent: { booked: Booked; study: TestStudy }[]) {
  for (const { booked, study } of sent) {
    const state = await eventually(`study ${study.studyUid} linked`, async () => {
      const s = await ehrState(app, study.studyUid);
      return s.study && s.orders.length === 1 ? s : undefined;
    });
    expect(state.orders.map((o) => o.id)).toEqual([booked.orderId]);
    expect(state.logs).toHaveLength(1);
    const feed = (await app.db.one(sql.unsafe`
      SELECT times_indexed FROM change_feed_studies WHERE study_instance_uid = ${study.studyUid}`)) as {
      times_indexed: number;
    };
    expect(feed.times_indexed).toBe(1);
  }
}

beforeAll(async () => {
  await resetFeedCursor();
});

afterAll(async () => {
  for (const app of [...apps]) await app.close();
});

describe('restart', () => {
  test('changes that arrive while the facade is stopped are indexed after restart, each exactly once', async () => {
    const first = await start();
    await eventually('the first facade to lead', async () => first.changeFeed.leading());
    const before = await sendMatching(first, 1);
    await expectIndexedOnce(first, before);

    await stop(first);
    // While no consumer runs (a facade with the consumer off books the orders): two studies arrive and become stable.
    const during = await (async () => {
      const helper = await fhirServer({ changeFeedEnabled: false });
      apps.push(helper.app);
      const out: { booked: Booked; study: TestStudy }[] = [];
      for (let i = 0; i < 2; i++) {
        const booked = await book(helper.app, helper.auth);
        out.push({ booked, study: await makeStudy(booked.mrn, booked.accession, 1) });
      }
      await cStore(out.flatMap((o) => o.study.files));
      await new Promise((r) => setTimeout(r, 6000)); // past Orthanc's StableAge while nobody consumes
      await stop(helper.app);
      return out;
    })();

    const restarted = await start();
    await expectIndexedOnce(restarted, [...before, ...during]);
    await stop(restarted);
  });
});

describe('two facades on the same databases', () => {
  test('exactly one consumes; no study is linked twice; the other takes over when the leader goes', async () => {
    const a = await start();
    const b = await start();
    const leader = await eventually('a leader', async () =>
      a.changeFeed.leading() ? a : b.changeFeed.leading() ? b : undefined,
    );
    const standby = leader === a ? b : a;
    expect(standby.changeFeed.leading()).toBe(false);

    const sent = await sendMatching(leader, 3);
    await expectIndexedOnce(leader, sent);
    expect([a.changeFeed.leading(), b.changeFeed.leading()].filter(Boolean)).toHaveLength(1);

    // The leader's database session dies (as when its process is killed): the lock is released, the standby leads.
    await standby.db.query(sql.unsafe`
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${LEADER_APPLICATION_NAME}`);
    await eventually('the leader to notice', async () => !leader.changeFeed.leading() || standby.changeFeed.leading());
    await stop(leader);
    await eventually('the standby to take over', async () => standby.changeFeed.leading());
    const after = await sendMatching(standby, 2);
    await expectIndexedOnce(standby, [...sent, ...after]);
  });
});
