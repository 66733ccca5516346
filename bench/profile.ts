/**
 * CPU profiles of the facade per workload (BENCH_PROFILE=1): the facade runs with `--inspect` on a private port and the
 * harness starts and stops V8's sampling profiler (the one behind `--cpu-prof`) over the inspector protocol around
 * one extra timed run of a workload, so each profile holds that workload only. Profiles are written as
 * `.cpuprofile` files (open them in Chrome DevTools or speedscope) with a text summary of where the time went.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A minimal inspector client: one WebSocket to the facade's inspector, request/response by id. */
export class Inspector {
  readonly #ws: WebSocket;
  #id = 0;
  readonly #pending = new Map<number, (r: { result?: unknown; error?: unknown }) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: unknown };
      if (msg.id !== undefined) this.#pending.get(msg.id)?.(msg);
    });
  }

  static async connect(port: number): Promise<Inspector> {
    const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const url = list[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error('the facade exposes no inspector target');
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error('inspector connection failed')), { once: true });
    });
    return new Inspector(ws);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, (r) => {
        this.#pending.delete(id);
        if (r.error) reject(new Error(`${method}: ${JSON.stringify(r.error)}`));
        else resolve(r.result as T);
      });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.#ws.close();
  }
}

/** The facade's own view of its memory (process.memoryUsage), in MB, through the inspector. */
export async function heapOf(port: number): Promise<string> {
  const insp = await Inspector.connect(port);
  try {
    const r = await insp.send<{ result: { value?: string } }>('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    const m = JSON.parse(r.result.value ?? '{}') as Record<string, number>;
    const mb = (k: string) => `${k} ${Math.round((m[k] ?? 0) / 2 ** 20)}`;
    return `${mb('heapTotal')}, ${mb('heapUsed')}, ${mb('external')}, ${mb('arrayBuffers')} MB`;
  } finally {
    insp.close();
  }
}

/** Profiles the facade while `work` runs; writes `<dir>/<name>.cpuprofile` and `<name>.txt`; returns the summary. */
export async function profileWhile(
  port: number,
  dir: string,
  name: string,
  work: () => Promise<unknown>,
): Promise<string> {
  const insp = await Inspector.connect(port);
  try {
    await insp.send('Profiler.enable');
    await insp.send('Profiler.setSamplingInterval', { interval: 200 });
    await insp.send('Profiler.start');
    await work();
    const { profile } = await insp.send<{ profile: CpuProfile }>('Profiler.stop');
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    const text = summarise(profile);
    writeFileSync(join(dir, `${name}.txt`), text);
    return text;
  } finally {
    insp.close();
  }
}

/** Where a frame's code lives: a src/ file, an npm package, Node's internals, or V8's pseudo-frames. */
export function categoryOf(f: CallFrame): string {
  if (!f.url) return f.functionName.startsWith('(') ? f.functionName : '(native)';
  const nm = f.url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = f.url.slice(nm + 14).split('/');
    return `npm:${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const src = f.url.indexOf('/src/');
  if (src >= 0) return f.url.slice(src + 1);
  if (f.url.startsWith('node:')) return f.url;
  return f.url.split('/').slice(-2).join('/');
}

/** Self time per function and per category, and inclusive time per category (the top of each list). */
export function summarise(p: CpuProfile, top = 25): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const fnSelf = new Map<string, number>();
  const catSelf = new Map<string, number>();
  const catIncl = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'}  ${categoryOf(f)}:${f.lineNumber + 1}`;
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + us);
    const cat = categoryOf(f);
    catSelf.set(cat, (catSelf.get(cat) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur);
      if (!c) break;
      const k = categoryOf(c.callFrame);
      if (!seen.has(k)) {
        seen.add(k);
        catIncl.set(k, (catIncl.get(k) ?? 0) + us);
      }
    }
  }
  const list = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`,
      )
      .join('\n');
  return [
    `profile: ${(total / 1000).toFixed(0)} ms sampled`,
    '',
    'self time by function:',
    list(fnSelf),
    '',
    'self time by module:',
    list(catSelf),
    '',
    'inclusive time by module (time with a frame of the module on the stack):',
    list(catIncl),
    '',
  ].join('\n');
}
