/**
 * Bounds the memory of dead stream chunks while large answers stream through, so that relaying
 * 1 GB stays within the facade's memory budget (RSS < 250 MB).
 *
 * Every 64 KB chunk read from a socket is a separate off-heap allocation that is freed only when V8 collects the small
 * Buffer object pointing at it. Those objects are tiny, so the young generation fills slowly, and V8 starts a
 * collection for external memory only after it has grown by 64 MB since the last full one: relaying 1 GB kept 60–80 MB
 * of chunks that had long been written to the client. The pacer runs a minor collection (a scavenge, about a
 * millisecond, which frees young chunks) after every `everyBytes` relayed or received, so dead chunks stay within that
 * budget.
 *
 * The budget also decides the CPU cost of relaying: V8 counts every chunk as external memory, and chunks left for
 * the next natural scavenge push it to start a full mark-compact of the whole heap (about 50 MB) every ~10 MB
 * relayed, marking on every core. With a scavenge every 4 MB, dead chunks are freed young and full collections become
 * rare, for about a millisecond of scavenging per 4 MB.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export type MinorGc = () => void;

/** Bytes relayed between two minor collections (the dead-chunk budget). */
export const RELAY_GC_EVERY_BYTES = 4 * 1024 * 1024;

/** V8's collector as a function, without exposing `gc` to the rest of the process; undefined if unavailable. */
export function minorGcFunction(): MinorGc | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as ((opts?: { type: 'minor' | 'major' }) => void) | undefined;
    return typeof gc === 'function' ? () => gc({ type: 'minor' }) : undefined;
  } catch {
    return undefined;
  }
}

export class GcPacer {
  readonly #everyBytes: number;
  readonly #gc: MinorGc | undefined;
  #since = 0;
  /** Collections run so far (diagnostics, tests). */
  collections = 0;

  constructor(everyBytes: number, gc: MinorGc | undefined) {
    this.#everyBytes = everyBytes;
    this.#gc = everyBytes > 0 ? gc : undefined;
  }

  /** Counts `bytes` relayed; runs a minor collection each time another `everyBytes` have passed. */
  note(bytes: number): void {
    if (!this.#gc) return;
    this.#since += bytes;
    if (this.#since < this.#everyBytes) return;
    this.#since %= this.#everyBytes;
    this.collections++;
    this.#gc();
  }
}
