/**
 * The request path stays short: a WADO-RS frame request passes at most three lifecycle hooks (the resource server's
 * gate, the audit's onSend, the shared onResponse), counted from the real app's route table
 * (`printRoutes({ includeHooks: true })`), so that the count cannot regrow unnoticed. Every route declares its rules
 * (src/http/route-rules.ts); the app refuses to start otherwise.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';

const FRAMES = '/dicom-web/studies/:study/series/:series/instances/:instance/frames/:frames';
const LIFECYCLE = [
  'onRequest',
  'preParsing',
  'preValidation',
  'preHandler',
  'preSerialization',
  'onSend',
  'onResponse',
];

/**
 * The lifecycle hooks (name → function names) of `method url`, read from the route tree that
 * `printRoutes({ includeHooks: true, commonPrefix: false })` prints: a node line (`├── /segment (GET)`) or a further
 * method line of the same node (`/segment (HEAD)`, indented one level deeper), each followed by its hook lines.
 */
function hooksOf(app: FastifyInstance, method: string, url: string): Record<string, string[]> {
  const tree = app.printRoutes({ includeHooks: true, commonPrefix: false });
  const stack: string[] = [];
  let current: string[] = [];
  const table = new Map<string, Record<string, string[]>>();
  for (const line of tree.split('\n')) {
    const hook = /• \((\w+)\) (\[.*\])$/.exec(line);
    if (hook) {
      for (const key of current) {
        const hooks = table.get(key) ?? {};
        if (LIFECYCLE.includes(hook[1] ?? '')) hooks[hook[1] ?? ''] = JSON.parse(hook[2] ?? '[]') as string[];
        table.set(key, hooks);
      }
      continue;
    }
    const m = /^((?:│ {3}| {4})*)(├── |└── )?(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m?.[3]) continue;
    const depth = (m[1] ?? '').length / 4;
    let path: string;
    if (m[2]) {
      path = (depth > 0 ? (stack[depth - 1] ?? '') : '') + m[3];
      stack[depth] = path;
      stack.length = depth + 1;
    } else path = stack[depth - 1] ?? m[3];
    current = (m[4] ?? '')
      .split(',')
      .map((x) => `${x.trim()} ${path}`)
      .filter((k) => !k.startsWith(' '));
  }
  const hooks = table.get(`${method} ${url}`);
  if (!hooks) throw new Error(`no route ${method} ${url}`);
  return hooks;
}

const count = (hooks: Record<string, string[]>) => Object.values(hooks).reduce((n, h) => n + h.length, 0);

describe('hooks on a WADO-RS frame request', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await testApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  test('at most three: the gate, the audit, the shared onResponse', () => {
    const hooks = hooksOf(app, 'GET', FRAMES);
    expect(count(hooks), JSON.stringify(hooks)).toBeLessThanOrEqual(3);
    expect(Object.keys(hooks).sort()).toEqual(['onRequest', 'onResponse', 'onSend']);
  });

  test('the frame route declares its rules: a token (viewer tokens too), DICOM audit and errors', () => {
    const route = app.registeredRoutes.find((r) => r.method === 'GET' && r.url === FRAMES);
    expect(route?.config?.['rules']).toEqual({ who: 'token-or-viewer', audit: 'dicom', dialect: 'dicom' });
  });

  test('every registered route declares rules', () => {
    expect(app.registeredRoutes.filter((r) => r.config?.['rules'] === undefined).map((r) => r.url)).toEqual([]);
  });
});

describe('with CORS origins and a trusted proxy configured', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await testApp({ dicomwebCorsOrigins: 'https://viewer.example', trustProxy: true });
  });
  afterAll(async () => {
    await app?.close();
  });

  test('a frame request gains only the CORS hook (frames carry no URLs to rewrite)', () => {
    const hooks = hooksOf(app, 'GET', FRAMES);
    expect(count(hooks), JSON.stringify(hooks)).toBeLessThanOrEqual(4);
    // A metadata answer carries the facade's URLs: it also gets the forwarded-host rewrite.
    const metadata = hooksOf(app, 'GET', '/dicom-web/studies/:study/series/:series/metadata');
    expect(metadata['onSend']?.length).toBe(2);
  });
});
