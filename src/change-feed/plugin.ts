import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { studyContentChanged, studyLinksChanged } from '../imaging/study-links.ts';
import { changeFeedAudit } from './audit.ts';
import { ChangeFeedConsumer } from './consumer.ts';
import { ehrLinker } from './ehr-linker.ts';
import type { IndexDeps } from './index-study.ts';
import { Leadership } from './leadership.ts';
import { unmatchedRoutes } from './routes.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The change feed's state in this replica (for status output and tests). */
    changeFeed: { enabled: boolean; leading: () => boolean };
  }
}

/**
 * C-STORE ingest: the reconciliation-queue routes (`/api/v1/dicom/unmatched`) and, when `EHR_CHANGE_FEED_ENABLED`,
 * the consumer of Orthanc's `/changes`. The consumer starts once the app is ready, runs in the background (never in a
 * request's path) and only while this replica holds the advisory lock; it stops before the app closes its pools.
 */
export const changeFeedPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const { config } = opts;
    let deps: IndexDeps | undefined;
    const getDeps = (): IndexDeps => {
      deps ??= {
        db: app.db,
        orthanc: app.orthanc,
        linker: ehrLinker(config, app.orthanc),
        audit: changeFeedAudit(config.publicBaseUrl),
        onStudyChanged: (uid) => studyLinksChanged(uid),
        onStudyContentChanged: (uid) => studyContentChanged(uid),
      };
      return deps;
    };
    await app.register(unmatchedRoutes, { prefix: '/api/v1/dicom/unmatched', deps: getDeps });

    let leadership: Leadership | undefined;
    const stop = new AbortController();
    let running: Promise<void> | undefined;
    app.decorate('changeFeed', { enabled: config.changeFeedEnabled, leading: () => leadership?.leading ?? false });
    if (!config.changeFeedEnabled) return;

    app.addHook('onReady', async () => {
      leadership = new Leadership({
        databaseUrl: config.databaseUrl,
        retryMs: config.changeFeedLeaderRetryMs,
        connectionTimeoutMs: config.readyTimeoutMs,
        log: app.log,
      });
      const consumer = new ChangeFeedConsumer(
        getDeps(),
        {
          pollMs: config.changeFeedPollMs,
          batchSize: config.changeFeedBatchSize,
          startAt: config.changeFeedStartAt,
          deletionSweepMs: config.changeFeedDeletionSweepS * 1000,
          maxBackoffMs: 60_000,
        },
        app.log,
      );
      const lead = leadership;
      running = lead
        .run(stop.signal, (signal) => consumer.run(signal))
        .catch((err: unknown) => {
          app.log.error({ err }, 'change feed stopped unexpectedly');
        });
    });
    app.addHook('preClose', async () => {
      stop.abort();
      await running;
      await leadership?.close();
    });
  },
  { name: 'change-feed', dependencies: ['database', 'orthanc'] },
);
