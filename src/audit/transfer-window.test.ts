import { describe, expect, test } from 'vitest';
import { framesIn } from './context.ts';
import { type RetrievalFacts, type TransferWindow, TransferWindows } from './transfer-window.ts';

/** Windows on a hand-driven clock and timer list. */
function harness(windowMs = 1000, maxOpen = 10) {
  let now = 1_700_000_000_000;
  const timers: { at: number; fn: () => void }[] = [];
  const closed: TransferWindow<string>[] = [];
  const windows = new TransferWindows<string>({
    windowMs,
    maxOpen,
    onClose: (w) => closed.push(w),
    now: () => now,
    setTimer: (fn, ms) => timers.push({ at: now + ms, fn }),
  });
  return {
    windows,
    closed,
    advance(ms: number) {
      now += ms;
      const due = timers.filter((x) => x.at <= now);
      timers.splice(0, timers.length, ...timers.filter((x) => x.at > now));
      for (const t of due) t.fn();
    },
  };
}

const frame = (instanceUid: string, frames = 1): RetrievalFacts => ({ seriesUid: 's1', instanceUid, frames });
const settled = () => new Promise((r) => setImmediate(r));

describe('framesIn', () => {
  test.each([
    ['/dicom-web/studies/1/series/2/instances/3/frames/1', 1],
    ['/dicom-web/studies/1/series/2/instances/3/frames/1,2,3', 3],
    ['/dicom-web/studies/1/series/2/instances/3/frames/4/rendered', 1],
    ['/dicom-web/studies/1/series/2/instances/3/frames/7?accept=x', 1],
    ['/dicom-web/studies/1/series/2/instances/3', 0],
    ['/dicom-web/studies/1/metadata', 0],
  ])('%s asks for %i frames', (url, n) => {
    expect(framesIn(url)).toBe(n);
  });
});

describe('TransferWindows', () => {
  test('retrievals within the window join the first; the window reports its totals when its time is up', async () => {
    const h = harness();
    const w = h.windows.open('k', 'seed', Promise.resolve());
    w.add(frame('i1'), h.windows.now());
    await settled();
    expect(w.committed).toBe(true);
    for (const i of ['i1', 'i2', 'i2']) {
      h.advance(100);
      const joined = h.windows.current('k');
      expect(joined).toBe(w);
      joined?.add(frame(i, 2), h.windows.now());
      joined?.addBytes(1000);
    }
    expect(h.closed).toEqual([]);
    h.advance(700);
    expect(h.closed).toEqual([w]);
    expect(h.windows.current('k')).toBeUndefined();
    expect(w.tally()).toMatchObject({ retrievals: 4, instances: 2, series: 1, frames: 7, bytes: 3000 });
    expect(Date.parse(w.tally().end) - Date.parse(w.tally().start)).toBe(300);
  });

  test.each([
    ['a window of one retrieval', 1, 0],
    ['a window of two', 2, 1],
  ])('%s: %i retrieval(s) → %i closing report(s)', async (_name, n, reports) => {
    const h = harness();
    const w = h.windows.open('k', 'seed', Promise.resolve());
    for (let i = 0; i < n; i++) w.add(frame(`i${i}`), h.windows.now());
    await settled();
    h.advance(1000);
    expect(h.closed).toHaveLength(reports);
  });

  test('a response still being sent when the window ends is counted before it reports', async () => {
    const h = harness();
    const w = h.windows.open('k', 'seed', Promise.resolve());
    w.add(frame('i1'), h.windows.now());
    w.add(frame('i2'), h.windows.now());
    w.inFlight = 1;
    await settled();
    h.advance(1000);
    expect(h.closed).toEqual([]);
    expect(h.windows.current('k')).toBeUndefined();
    h.windows.finished(w, 512);
    expect(h.closed).toEqual([w]);
    expect(w.tally().bytes).toBe(512);
  });

  test('a failed opening event forgets the window: the next retrieval opens a new one, nothing reports', async () => {
    const h = harness();
    const failed = Promise.reject(new Error('store down'));
    const w = h.windows.open('k', 'seed', failed);
    w.add(frame('i1'), h.windows.now());
    w.add(frame('i2'), h.windows.now());
    await settled();
    expect(h.windows.current('k')).toBeUndefined();
    await h.windows.endAll();
    expect(h.closed).toEqual([]);
  });

  test('keys are separate windows; opening beyond maxOpen ends the oldest', async () => {
    const h = harness(1000, 2);
    const a = h.windows.open('a', 'A', Promise.resolve());
    const b = h.windows.open('b', 'B', Promise.resolve());
    for (const w of [a, b]) {
      w.add(frame('i1'), 0);
      w.add(frame('i2'), 0);
    }
    await settled();
    h.windows.open('c', 'C', Promise.resolve());
    expect(h.closed).toEqual([a]);
    expect(h.windows.current('b')).toBe(b);
    expect(h.windows.size).toBe(2);
  });

  test('shutdown reports every window, also one whose opening event is still being written', async () => {
    const h = harness();
    let commit: () => void = () => undefined;
    const pending = new Promise<void>((r) => {
      commit = r;
    });
    const open = h.windows.open('a', 'A', Promise.resolve());
    const writing = h.windows.open('b', 'B', pending);
    for (const w of [open, writing]) {
      w.add(frame('i1'), 0);
      w.add(frame('i2'), 0);
      w.inFlight = 1;
    }
    await settled();
    const done = h.windows.endAll();
    expect(h.closed).toEqual([open]);
    commit();
    await done;
    expect(h.closed).toEqual([open, writing]);
  });
});
