import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { configVars } from '../src/config/spec.ts';
import { FACADE_ENV, FACADE_NODE_FLAGS } from '../src/stack/facade.ts';
import { RESERVED_PREFIXES, SPA_ROUTES } from '../src/viewer/routes.ts';

/**
 * Static checks of the production deployment files (docker-compose.yml, Dockerfile, .env.example, .dockerignore,
 * orthanc/orthanc.json). No Docker engine is needed: the files are parsed and their invariants asserted.
 */

const root = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

type EnvBlock = Record<string, string | number | boolean | null> | string[];
type PortEntry = string | number | { target: number | string; published?: number | string; host_ip?: string };
interface Service {
  image?: string;
  build?: unknown;
  environment?: EnvBlock;
  ports?: PortEntry[];
  networks?: string[] | Record<string, unknown>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  restart?: string;
  init?: boolean;
  depends_on?: string[] | Record<string, { condition?: string }>;
  volumes?: (string | { source?: string; target?: string })[];
}
interface Compose {
  services: Record<string, Service>;
  networks?: Record<string, { internal?: boolean } | null>;
  volumes?: Record<string, unknown>;
}

const composeText = read('docker-compose.yml');
const compose = parse(composeText) as Compose;
const services = compose.services;
const service = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`service ${name} is missing from docker-compose.yml`);
  return s;
};

/** A service's environment as a map (compose accepts a map or a `KEY=value` list). */
function envOf(name: string): Record<string, string> {
  const env = service(name).environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((line) => {
        const i = line.indexOf('=');
        return i < 0 ? [line, ''] : [line.slice(0, i), line.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** The networks a service joins (`default` when none is named). */
function networksOf(name: string): string[] {
  const n = service(name).networks;
  if (!n) return ['default'];
  return Array.isArray(n) ? n : Object.keys(n);
}

const isInternal = (network: string): boolean => compose.networks?.[network]?.internal === true;
const membersOf = (network: string): string[] => Object.keys(services).filter((s) => networksOf(s).includes(network));

interface Port {
  raw: string;
  hostIp: string | undefined;
  published: string | undefined;
  target: [number, number];
}

function range(spec: string): [number, number] {
  const [a, b] = spec.split('-').map(Number);
  return [a ?? Number.NaN, b ?? a ?? Number.NaN];
}

/** Parses compose's short (`[ip:][published:]target[/proto]`) and long port syntaxes. */
function parsePort(entry: PortEntry): Port {
  if (typeof entry === 'object') {
    return {
      raw: JSON.stringify(entry),
      hostIp: entry.host_ip,
      published: entry.published === undefined ? undefined : String(entry.published),
      target: range(String(entry.target)),
    };
  }
  const raw = String(entry);
  let rest = raw.replace(/\/\w+$/, '');
  let hostIp: string | undefined;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIp = v6[1];
    rest = v6[2] ?? '';
  }
  const parts = rest.split(':');
  if (parts.length === 3) hostIp = parts.shift();
  const target = parts.pop() ?? '';
  const published = parts.pop() || undefined;
  return { raw, hostIp, published, target: range(target) };
}

const portsOf = (name: string): Port[] => (service(name).ports ?? []).map(parsePort);
const loopback = new Set(['127.0.0.1', '::1', 'localhost']);
const isPublic = (p: Port): boolean => !p.hostIp || !loopback.has(p.hostIp);
const targets = (p: Port, port: number): boolean => p.target[0] <= port && port <= p.target[1];

interface Interpolation {
  name: string;
  modifier: string;
}

/** Every `${VAR…}` / `$VAR` that compose interpolates in `text` (`$$` is a literal dollar). */
function interpolations(text: string): Interpolation[] {
  const found: Interpolation[] = [];
  for (const m of text.matchAll(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (m[0] === '$$') continue;
    const name = m[1] ?? m[3] ?? '';
    const modifier = m[2] ?? '';
    found.push({ name, modifier });
    found.push(...interpolations(modifier));
  }
  return found;
}

/** Interpolations in the parsed document (keys and string values; YAML comments are not interpolated by compose). */
function collectInterpolations(node: unknown): Interpolation[] {
  if (typeof node === 'string') return interpolations(node);
  if (Array.isArray(node)) return node.flatMap(collectInterpolations);
  if (node && typeof node === 'object') {
    return Object.entries(node).flatMap(([k, v]) => [...interpolations(k), ...collectInterpolations(v)]);
  }
  return [];
}

const used = collectInterpolations(compose);
const usedNames = [...new Set(used.map((i) => i.name))].sort();
const secretName = /PASSWORD|SECRET|TOKEN|PRIVATE|_KEY$/;

function parseDotenv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(t);
    if (!m) throw new Error(`.env.example: cannot parse line ${JSON.stringify(line)}`);
    vars.set(m[1] ?? '', (m[2] ?? '').replace(/^(['"])(.*)\1$/, '$2'));
  }
  return vars;
}

const envExampleText = read('.env.example');
const envExample = parseDotenv(envExampleText);

describe('docker-compose.yml services', () => {
  test.each(['ehr-postgres', 'orthanc-postgres', 'orthanc', 'facade', 'ohif'])('defines service %s', (name) => {
    expect(Object.keys(services)).toContain(name);
    expect(service(name).image ?? service(name).build).toBeTruthy();
  });

  test.each(['ehr-postgres', 'orthanc-postgres'])('%s runs postgres:15 with a named volume for its data', (name) => {
    expect(service(name).image).toMatch(/^postgres:15(\.|-|$)/);
    const mounts = (service(name).volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
    const data = mounts.find((m) => m.split(':')[1] === '/var/lib/postgresql/data');
    expect(data, `${name} keeps its data in a volume`).toBeDefined();
    expect(Object.keys(compose.volumes ?? {})).toContain(data?.split(':')[0]);
  });

  test('orthanc runs the orthancteam image pinned to a release tag', () => {
    // orthancteam tags are YY.M.P (never `latest`): 23.4.0 onward ship Orthanc 1.12.x.
    expect(service('orthanc').image).toMatch(/^orthancteam\/orthanc:\d{2}\.\d{1,2}\.\d+$/);
  });

  test.each(['ehr-postgres', 'orthanc-postgres', 'orthanc', 'facade'])('%s has an enabled healthcheck', (name) => {
    const hc = service(name).healthcheck;
    expect(hc?.disable).not.toBe(true);
    const cmd = hc?.test;
    expect(cmd, `${name}.healthcheck.test`).toBeDefined();
    expect(Array.isArray(cmd) ? cmd[0] : cmd).not.toBe('NONE');
  });

  test.each([
    ['ehr-postgres', 'pg_isready'],
    ['orthanc-postgres', 'pg_isready'],
    ['facade', '/readyz'],
  ])('%s healthcheck uses %s', (name, needle) => {
    const cmd = service(name).healthcheck?.test ?? [];
    expect((Array.isArray(cmd) ? cmd : [cmd]).join(' ')).toContain(needle);
  });

  // `restart:` alone only restarts containers that exit; a hung one is merely marked unhealthy. Each healthcheck
  // therefore kills its container's processes after repeated liveness failures, and `init: true` makes the container
  // exit with them (the comment at the top of docker-compose.yml explains the choice).
  test.each(['ehr-postgres', 'orthanc-postgres', 'orthanc', 'facade'])(
    '%s restarts when it exits and when it hangs (restart policy, init, killing healthcheck)',
    (name) => {
      const s = service(name);
      expect(s.restart).toMatch(/^(unless-stopped|always)$/);
      expect(s.init).toBe(true);
      const cmd = (Array.isArray(s.healthcheck?.test) ? s.healthcheck.test : [s.healthcheck?.test ?? '']).join(' ');
      if (name === 'facade') expect(cmd).toContain('src/health/container-probe.ts');
      else expect(cmd).toMatch(/kill -9 -1/);
    },
  );

  test.each(['ehr-postgres', 'orthanc-postgres'])(
    '%s healthcheck kills only on "no response" (pg_isready exit 2), never during recovery',
    (name) => {
      const cmd = ((service(name).healthcheck?.test ?? []) as string[]).join(' ');
      expect(cmd).toMatch(/if \[ \$\$rc -ne 2 \]; then rm -f \/tmp\/hung-checks; exit \$\$rc; fi/);
    },
  );

  test('the facade probe script exists in the image sources and is not killed for a dependency being down', () => {
    const probe = read('src/health/container-probe.ts');
    expect(probe).toContain("process.kill(-1, 'SIGKILL')");
    expect(read('Dockerfile')).toMatch(/COPY --from=source \/src\/src \.\/src/);
  });

  test.each([
    ['facade', 'ehr-postgres'],
    ['facade', 'orthanc'],
    ['orthanc', 'orthanc-postgres'],
  ])('%s waits for %s to be healthy', (name, dependency) => {
    const deps = service(name).depends_on;
    expect(deps && !Array.isArray(deps) ? deps[dependency]?.condition : undefined).toBe('service_healthy');
  });
});

describe('docker-compose.yml exposure', () => {
  test.each(['ehr-postgres', 'orthanc-postgres'])('%s publishes no port beyond loopback', (name) => {
    expect(
      portsOf(name)
        .filter(isPublic)
        .map((p) => p.raw),
    ).toEqual([]);
  });

  test("orthanc's HTTP port 8042 is not published beyond loopback", () => {
    expect(
      portsOf('orthanc')
        .filter((p) => targets(p, 8042) && isPublic(p))
        .map((p) => p.raw),
    ).toEqual([]);
  });

  test('orthanc publishes nothing but DICOM 4242 beyond loopback', () => {
    for (const p of portsOf('orthanc').filter(isPublic)) expect(p.target, p.raw).toEqual([4242, 4242]);
  });

  test('the facade publishes 8000', () => {
    expect(portsOf('facade').some((p) => targets(p, 8000) && p.published === '8000')).toBe(true);
  });

  test('the ohif placeholder publishes 3001', () => {
    expect(portsOf('ohif').some((p) => p.published === '3001')).toBe(true);
  });

  test('the frontend (staff web app) publishes 3000 and joins only the edge network', () => {
    expect(portsOf('frontend').some((p) => p.published === '3000')).toBe(true);
    expect(networksOf('frontend')).toEqual(['edge']);
  });

  // Docker silently drops the published ports of a container whose networks are all internal.
  test.each(Object.keys(services))('%s publishes ports only if it joins a non-internal network', (name) => {
    if (portsOf(name).length > 0) expect(networksOf(name).some((n) => !isInternal(n))).toBe(true);
  });
});

describe('docker-compose.yml networks', () => {
  test('at least one network is internal: true', () => {
    expect(Object.keys(compose.networks ?? {}).filter(isInternal).length).toBeGreaterThan(0);
  });

  test.each(Object.keys(services))('%s joins only declared networks', (name) => {
    for (const n of networksOf(name)) expect(Object.keys(compose.networks ?? {}), `${name} → ${n}`).toContain(n);
  });

  test.each(['ehr-postgres', 'orthanc-postgres'])('%s is only on internal networks', (name) => {
    expect(networksOf(name).filter((n) => !isInternal(n))).toEqual([]);
  });

  test('orthanc is on an internal network, and any other network it joins has no other member', () => {
    expect(networksOf('orthanc').some(isInternal)).toBe(true);
    for (const n of networksOf('orthanc').filter((x) => !isInternal(x))) expect(membersOf(n), n).toEqual(['orthanc']);
  });

  test.each([
    ['facade', 'ehr-postgres'],
    ['facade', 'orthanc'],
    ['orthanc', 'orthanc-postgres'],
  ])('%s reaches %s over an internal network', (a, b) => {
    expect(networksOf(a).filter((n) => isInternal(n) && networksOf(b).includes(n)).length).toBeGreaterThan(0);
  });

  test.each(['ehr-postgres', 'orthanc-postgres', 'orthanc'])('%s shares no network with ohif', (name) => {
    expect(networksOf(name).filter((n) => networksOf('ohif').includes(n))).toEqual([]);
  });
});

describe('facade environment matches src/config/spec.ts', () => {
  const env = envOf('facade');
  const known = new Set(configVars.flatMap((v) => (v.secret ? [v.env, `${v.env}_FILE`] : [v.env])));

  test.each(Object.keys(env).filter((k) => k.startsWith('EHR_')))('%s is a known config variable', (name) => {
    expect(known.has(name)).toBe(true);
  });

  test.each(configVars.filter((v) => v.default === undefined).map((v) => v.env))('required %s is set', (name) => {
    expect(env[name] || env[`${name}_FILE`]).toBeTruthy();
  });

  test.each([
    ['EHR_MODE', 'production'],
    ['EHR_HOST', '0.0.0.0'],
    ['EHR_ORTHANC_URL', 'http://orthanc:8042'],
  ])('%s is %s', (name, value) => {
    expect(env[name]).toBe(value);
  });

  test('EHR_DATABASE_URL uses the ehr-postgres service and its own credentials', () => {
    const pg = envOf('ehr-postgres');
    expect(env['EHR_DATABASE_URL']).toBe(
      `postgres://${pg['POSTGRES_USER']}:${pg['POSTGRES_PASSWORD']}@ehr-postgres:5432/${pg['POSTGRES_DB']}`,
    );
  });

  test("the facade's Orthanc credentials are a registered Orthanc user", () => {
    const users = JSON.parse(envOf('orthanc')['ORTHANC__REGISTERED_USERS'] ?? '{}') as Record<string, string>;
    const username =
      env['EHR_ORTHANC_USERNAME'] ?? String(configVars.find((v) => v.env === 'EHR_ORTHANC_USERNAME')?.default);
    expect(users[username]).toBeDefined();
    expect(users[username]).toBe(env['EHR_ORTHANC_PASSWORD']);
  });

  test("EHR_ORTHANC_DICOMWEB_ROOT matches Orthanc's DicomWeb.Root", () => {
    const orthanc = JSON.parse(read('orthanc/orthanc.json')) as { DicomWeb: { Root: string } };
    const root =
      env['EHR_ORTHANC_DICOMWEB_ROOT'] ?? configVars.find((v) => v.env === 'EHR_ORTHANC_DICOMWEB_ROOT')?.default;
    expect(String(root).replace(/\/+$/, '')).toBe(orthanc.DicomWeb.Root.replace(/\/+$/, ''));
  });
});

describe('orthanc configuration', () => {
  const config = JSON.parse(read('orthanc/orthanc.json')) as Record<string, unknown>;
  const pg = config['PostgreSQL'] as Record<string, unknown>;
  const dicomWeb = config['DicomWeb'] as Record<string, unknown>;

  test('docker-compose mounts orthanc/orthanc.json into /etc/orthanc', () => {
    const mounts = (service('orthanc').volumes ?? []).map((v) =>
      typeof v === 'string' ? v : `${v.source}:${v.target}`,
    );
    expect(mounts.some((m) => /^\.\/orthanc(\/orthanc\.json)?:\/etc\/orthanc(\/orthanc\.json)?(:ro)?$/.test(m))).toBe(
      true,
    );
  });

  test.each([
    ['DicomWeb.Enable', dicomWeb?.['Enable'], true],
    ['DicomWeb.Root', dicomWeb?.['Root'], '/dicom-web/'],
    ['PostgreSQL.EnableIndex', pg?.['EnableIndex'], true],
    ['PostgreSQL.EnableStorage', pg?.['EnableStorage'], true],
    ['PostgreSQL.Host', pg?.['Host'], 'orthanc-postgres'],
    ['DefaultEncoding', config['DefaultEncoding'], 'Utf8'],
    ['AuthenticationEnabled', config['AuthenticationEnabled'], true],
    ['RemoteAccessAllowed', config['RemoteAccessAllowed'], true],
  ])('orthanc.json sets %s', (_key, actual, expected) => {
    expect(actual).toBe(expected);
  });

  test('orthanc.json holds no credentials (they come from the environment)', () => {
    expect(config['RegisteredUsers']).toBeUndefined();
    expect(pg?.['Password']).toBeUndefined();
    expect(pg?.['Username']).toBeUndefined();
  });

  test.each(['DICOM_WEB_PLUGIN_ENABLED', 'POSTGRESQL_PLUGIN_ENABLED', 'GDCM_PLUGIN_ENABLED'])(
    'orthanc enables %s',
    (name) => {
      expect(envOf('orthanc')[name]).toBe('true');
    },
  );

  test.each([
    ['ORTHANC__POSTGRESQL__USERNAME', 'POSTGRES_USER'],
    ['ORTHANC__POSTGRESQL__PASSWORD', 'POSTGRES_PASSWORD'],
    ['ORTHANC__POSTGRESQL__DATABASE', 'POSTGRES_DB'],
  ])('orthanc %s matches orthanc-postgres %s', (orthancVar, pgVar) => {
    const value = envOf('orthanc-postgres')[pgVar];
    expect(value).toBeTruthy();
    expect(envOf('orthanc')[orthancVar]).toBe(value);
  });

  test.each(['POSTGRES_USER', 'POSTGRES_PASSWORD'])('the two databases do not share %s', (name) => {
    expect(envOf('ehr-postgres')[name]).not.toBe(envOf('orthanc-postgres')[name]);
  });
});

describe('secrets come only from .env', () => {
  test.each(usedNames)('%s is listed in .env.example', (name) => {
    expect(envExample.has(name)).toBe(true);
  });

  test.each(usedNames.filter((n) => secretName.test(n)))('secret %s is required (:?) wherever used', (name) => {
    for (const i of used.filter((u) => u.name === name)) expect(i.modifier, name).toMatch(/^:?\?/);
  });

  const credentialKeys = Object.keys(services).flatMap((s) =>
    Object.keys(envOf(s))
      .filter((k) => secretName.test(k) || k === 'ORTHANC__REGISTERED_USERS')
      .map((k) => [s, k] as const),
  );
  test.each(credentialKeys)('%s %s is interpolated from .env, not written in the file', (s, key) => {
    const value = envOf(s)[key] ?? '';
    expect(interpolations(value).length).toBeGreaterThan(0);
    // Only the interpolations themselves may carry secret material.
    const literal = value.replace(/\$\{[^}]*\}/g, '');
    expect(literal).not.toMatch(/[A-Za-z0-9+/=_-]{12,}/);
  });

  test('.env.example says its values are placeholders', () => {
    const header = envExampleText
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .join('\n');
    expect(header).toMatch(/placeholder/i);
    expect(header).toContain('change-me');
  });

  test.each([...envExample.keys()].filter((k) => secretName.test(k)))(
    '.env.example %s is a change-me placeholder',
    (k) => {
      expect(envExample.get(k)).toContain('change-me');
    },
  );

  test.each([...envExample.entries()])('.env.example %s does not look like a real secret', (_k, value) => {
    if (!value.includes('change-me')) expect(value).not.toMatch(/^[A-Za-z0-9+/=_-]{20,}$/);
  });

  test.each([
    ['.gitignore', '.env'],
    ['.dockerignore', '.env'],
  ])('%s excludes %s', (file, entry) => {
    const lines = read(file)
      .split('\n')
      .map((l) => l.trim().replace(/^\//, '').replace(/\/$/, ''));
    expect(lines).toContain(entry);
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  /** Instructions with continuations joined and comments dropped. */
  const instructions = text
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const lastFrom = instructions.map((i) => /^FROM\s/i.test(i)).lastIndexOf(true);
  const finalStage = instructions.slice(lastFrom + 1);
  const find = (keyword: string, list = finalStage) => list.filter((i) => i.toUpperCase().startsWith(`${keyword} `));

  test('is multi-stage on node:24-bookworm-slim', () => {
    expect(find('FROM', instructions).length).toBeGreaterThanOrEqual(2);
    expect(text).toContain('node:24-bookworm-slim');
  });

  test('installs production dependencies from the lock file', () => {
    expect(find('RUN', instructions).some((i) => /npm ci\b.*--omit=dev/.test(i))).toBe(true);
  });

  test('the final stage runs as a non-root USER', () => {
    const user = find('USER').at(-1)?.split(/\s+/)[1];
    expect(user).toBeDefined();
    expect(['root', '0', '0:0']).not.toContain(user);
  });

  test('the final stage has a HEALTHCHECK against /readyz', () => {
    const hc = find('HEALTHCHECK');
    expect(hc.length).toBe(1);
    expect(hc[0]).toContain('/readyz');
  });

  test('starts with node src/main.ts', () => {
    const cmd = find('CMD')
      .at(-1)
      ?.replace(/^CMD\s+/i, '');
    expect(JSON.parse(cmd ?? 'null')).toEqual(['node', 'src/main.ts']);
  });

  test('the final stage bounds memory as the local stack does (src/stack/facade.ts)', () => {
    const env = find('ENV').join(' ');
    for (const [k, v] of Object.entries(FACADE_ENV)) expect(env.split(/\s+/)).toContain(`${k}=${v}`);
    expect(/NODE_OPTIONS="([^"]*)"/.exec(env)?.[1]?.split(' ')).toEqual([...FACADE_NODE_FLAGS]);
  });

  test('`npm start` bounds memory as the local stack does (src/stack/facade.ts)', () => {
    const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts['start'] ?? '';
    const words = start.split(/\s+/);
    for (const [k, v] of Object.entries(FACADE_ENV)) expect(words).toContain(`${k}=${v}`);
    const node = words.indexOf('node');
    expect(words.slice(node + 1, node + 1 + FACADE_NODE_FLAGS.length)).toEqual([...FACADE_NODE_FLAGS]);
    expect(words.at(-1)).toBe('src/main.ts');
  });

  test.each(['node_modules', 'package.json', 'src', 'migrations', 'fhir-profiles'])(
    'the final stage copies %s',
    (path) => {
      expect(find('COPY').some((i) => i.split(/\s+/).includes(`./${path}`))).toBe(true);
    },
  );

  const dockerignore = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  test.each(['node_modules', '.data', '.tools', '.git', 'test-artifacts', 'dist', '.env'])(
    '.dockerignore excludes %s',
    (entry) => {
      expect(dockerignore).toContain(entry);
    },
  );

  test.each(['src', 'migrations', 'package.json', 'package-lock.json'])(
    '.dockerignore keeps %s in the build context',
    (entry) => {
      expect(dockerignore.filter((l) => !l.startsWith('!') && (l === entry || l === `${entry}/` || l === '*'))).toEqual(
        [],
      );
    },
  );
});

describe('the ohif service serves the viewer like the facade does', () => {
  const nginx = read('ohif-config/nginx.conf');
  const dockerfile = read('ohif-config/Dockerfile');
  /** Each `location ~ <regex> { ... }` block of nginx.conf with its body. */
  const regexLocations = [...nginx.matchAll(/location ~ "?([^"{\s]+)"? \{([^}]*)\}/g)].map((m) => ({
    re: new RegExp(m[1] ?? '$^'),
    body: m[2] ?? '',
  }));
  const proxied = (path: string) =>
    regexLocations.some((l) => l.re.test(path) && l.body.includes('proxy_pass http://facade:8000;'));
  const spaFallback = (path: string) =>
    regexLocations.some((l) => l.re.test(path) && l.body.includes('try_files /index.html =404;'));

  test('ohif is built from ohif-config/Dockerfile, waits for a healthy facade and has a healthcheck', () => {
    const ohif = service('ohif');
    expect((ohif.build as { dockerfile?: string } | undefined)?.dockerfile).toBe('ohif-config/Dockerfile');
    const deps = ohif.depends_on;
    expect(deps && !Array.isArray(deps) ? deps['facade']?.condition : undefined).toBe('service_healthy');
    expect(ohif.healthcheck?.test).toBeDefined();
  });

  test('the image fetches the pinned, integrity-checked OHIF build and adds our configuration', () => {
    expect(dockerfile).toMatch(/RUN scripts\/fetch-ohif\.sh/);
    expect(read('scripts/fetch-ohif.sh')).toMatch(/OHIF_VERSION=3\.13\.2/);
    expect(read('scripts/fetch-ohif.sh')).toMatch(/OHIF_INTEGRITY='sha512-/);
    expect(dockerfile).toContain('COPY ohif-config/app-config.js /usr/share/nginx/html/app-config.js');
    expect(dockerfile).toContain('COPY ohif-config/nginx.conf /etc/nginx/conf.d/default.conf');
  });

  test.each(RESERVED_PREFIXES.flatMap((p) => [[p], [`${p}/x`]]))('%s is passed to the facade', (path) => {
    expect(proxied(path)).toBe(true);
    expect(spaFallback(path)).toBe(false);
  });

  test.each(SPA_ROUTES.flatMap((r) => [[r], [`${r}/dicomweb`]]))('%s falls back to index.html', (path) => {
    expect(spaFallback(path)).toBe(true);
    expect(proxied(path)).toBe(false);
  });

  test.each(['/fhirx', '/apis', '/viewers', '/app.bundle.0f6159c501addfe9.js'])(
    '%s is neither proxied nor SPA',
    (p) => {
      expect(proxied(p) || spaFallback(p)).toBe(false);
    },
  );
});
