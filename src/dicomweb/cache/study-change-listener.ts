/**
 * Cross-replica invalidation of the DICOMweb caches: the series cache (Orthanc's series answers) and the study index
 * (study → patients for authorization) of this process drop a study when ANY process changes it. Triggers of migration
 * 012 NOTIFY {@link STUDY_CHANGED_CHANNEL} with the StudyInstanceUID ('' for "any study") on every change of an
 * ImagingStudy row (old and new UID) and every explicit study-content invalidation (the QIDO study index epoch, bumped
 * by each facade for STOW-RS and change-feed content changes without a new ImagingStudy version); a
 * {@link NotifyListener} delivers them after commit. The in-process signals (src/imaging/study-links.ts) still
 * invalidate this process's caches at once. The echo of this process's own epoch bumps is skipped (they carry
 * {@link STUDY_CHANGE_ORIGIN}); the echo of its own ImagingStudy writes arrives too and costs at most a cache miss.
 *
 * Deny-stale: the caches start suspended and serve only while the LISTEN is active; losing it suspends them (they
 * drop everything), listening again resumes them from empty.
 *
 * Not here: the QIDO study index (qido/study-answers-store.ts) keeps its validity in the database (ImagingStudy row and version,
 * epoch), so every replica agrees without a signal.
 */
import { randomUUID } from 'node:crypto';
import { type ListenerLog, NotifyListener } from '../../db/notify-listener.ts';

export const STUDY_CHANGED_CHANNEL = 'ehr_study_changed';

/**
 * This process's tag for its own epoch bumps (StudyAnswersStore `origin`): the in-process signals reach every app of the
 * process, which invalidated its caches before the bump, so the bump's notification is skipped here (otherwise it
 * would drop, a few ms later, answers fetched after the change).
 */
export const STUDY_CHANGE_ORIGIN = randomUUID();

/** What a study-keyed cache offers to the listener. */
export interface StudyCache {
  /** Drops the study (every study when undefined). */
  invalidate(studyUid?: string): void;
  /** Stop serving, drop everything. */
  suspend(): void;
  /** Serve again, from empty. */
  resume(): void;
}

/** DICOM UIDs: digits and dots, at most 64 characters (PS3.5 §9.1). */
const UID = /^[0-9.]{1,64}$/;

export interface StudyChangeNotice {
  /** The study, or undefined for "any study". */
  readonly study: string | undefined;
  /** The writer's origin tag ('' when untagged). */
  readonly origin: string;
}

/**
 * Reads a payload `<uid>[ <origin>]`: the study is undefined for "any study" ('' by contract, and anything that is not
 * a DICOM UID: an ImagingStudy identifier no study in Orthanc can have drops everything rather than risking a missed
 * key).
 */
export function parseStudyPayload(payload: string): StudyChangeNotice {
  const space = payload.indexOf(' ');
  const uid = space < 0 ? payload : payload.slice(0, space);
  const origin = space < 0 ? '' : payload.slice(space + 1);
  return { study: UID.test(uid) ? uid : undefined, origin };
}

export interface StudyChangeListenerOptions {
  readonly databaseUrl: string;
  readonly caches: readonly StudyCache[];
  readonly log: ListenerLog;
  readonly retryMs?: number;
  readonly heartbeatMs?: number;
}

/** What the listener did, for observers (diagnostics and tests). */
export type StudyChangeEvent =
  | { readonly kind: 'study'; readonly study: string }
  | { readonly kind: 'all' }
  | { readonly kind: 'up' }
  | { readonly kind: 'down' };

export class StudyChangeListener {
  readonly #listener: NotifyListener;
  readonly #caches: readonly StudyCache[];
  readonly #observers = new Set<(e: StudyChangeEvent) => void>();

  constructor(opts: StudyChangeListenerOptions) {
    this.#caches = opts.caches;
    for (const c of this.#caches) c.suspend();
    this.#listener = new NotifyListener({
      databaseUrl: opts.databaseUrl,
      log: opts.log,
      channels: [STUDY_CHANGED_CHANNEL],
      name: 'ehr-study-listener',
      subject: 'DICOMweb caches',
      ...(opts.retryMs === undefined ? {} : { retryMs: opts.retryMs }),
      ...(opts.heartbeatMs === undefined ? {} : { heartbeatMs: opts.heartbeatMs }),
      handlers: {
        onNotify: (_channel, payload) => {
          const { study, origin } = parseStudyPayload(payload);
          if (origin === STUDY_CHANGE_ORIGIN) return;
          for (const c of this.#caches) c.invalidate(study);
          this.#emit(study === undefined ? { kind: 'all' } : { kind: 'study', study });
        },
        onUp: () => {
          for (const c of this.#caches) c.resume();
          this.#emit({ kind: 'up' });
        },
        onDown: () => {
          for (const c of this.#caches) c.suspend();
          this.#emit({ kind: 'down' });
        },
      },
    });
  }

  /** Is the signal up (the caches may serve)? */
  get listening(): boolean {
    return this.#listener.listening;
  }

  /** The server process id of the LISTEN connection (tests cut it to prove the fail-safe). */
  get backendPid(): number | undefined {
    return this.#listener.backendPid;
  }

  /** LISTENs (retrying in the background on failure; the caches stay suspended meanwhile). */
  async start(): Promise<void> {
    await this.#listener.start();
  }

  /** Stops listening; the caches stay suspended. */
  async stop(): Promise<void> {
    await this.#listener.stop();
    this.#observers.clear();
  }

  /** Observes what the listener applied, after the caches did; returns the unsubscribe function. */
  observe(fn: (e: StudyChangeEvent) => void): () => void {
    this.#observers.add(fn);
    return () => {
      this.#observers.delete(fn);
    };
  }

  #emit(e: StudyChangeEvent): void {
    for (const fn of this.#observers) fn(e);
  }
}
