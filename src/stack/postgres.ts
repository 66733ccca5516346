import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, run, StackError } from './process.ts';

/** PostgreSQL 15's binaries as Debian installs them. */
export const PG_BIN = process.env['EHR_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

export interface PgCluster {
  /** Folder holding `data/`, `run/` (socket) and `server.log`. */
  dir: string;
  port: number;
  /** Throwaway test clusters may turn fsync off; never the dev or production stack. */
  fsync: boolean;
}

const dataDir = (c: PgCluster) => join(c.dir, 'data');
const socketDir = (c: PgCluster) => join(c.dir, 'run');

/** The `postgres` system user's uid and gid (initdb and postgres refuse to run as root). */
export function postgresUser(): { uid: number; gid: number } {
  const entry = readFileSync('/etc/passwd', 'utf8').match(/^postgres:[^:]*:(\d+):(\d+):/m);
  if (!entry) throw new StackError('the postgres system user is missing: install postgresql-15');
  return { uid: Number(entry[1]), gid: Number(entry[2]) };
}

function ownByPostgres(path: string): void {
  if (!isRoot()) return;
  const { uid, gid } = postgresUser();
  chownSync(path, uid, gid);
}

/** Creates the cluster once (idempotent). Local socket connections are trusted; TCP needs a scram password. */
export async function initCluster(c: PgCluster): Promise<boolean> {
  if (existsSync(join(dataDir(c), 'PG_VERSION'))) return false;
  if (!existsSync(join(PG_BIN, 'initdb'))) throw new StackError(`PostgreSQL 15 not found in ${PG_BIN}: run make up`);
  for (const d of [c.dir, socketDir(c)]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    ownByPostgres(d);
  }
  await run(
    join(PG_BIN, 'initdb'),
    [
      '-D',
      dataDir(c),
      '-U',
      'postgres',
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
    ],
    { asPostgres: true },
  );
  return true;
}

export function clusterPid(c: PgCluster): number | undefined {
  const f = join(dataDir(c), 'postmaster.pid');
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8').split('\n')[0]);
  return Number.isFinite(pid) ? pid : undefined;
}

export async function clusterRunning(c: PgCluster): Promise<boolean> {
  try {
    await run(join(PG_BIN, 'pg_ctl'), ['-D', dataDir(c), 'status'], { asPostgres: true });
    return true;
  } catch {
    return false;
  }
}

/** The server's options (port, private socket folder, loopback only; no fsync for throwaway test clusters). */
export function serverOptions(c: PgCluster): string[] {
  const opts = [`-p ${c.port}`, `-k ${socketDir(c)}`, '-c listen_addresses=127.0.0.1'];
  if (!c.fsync) opts.push('-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off');
  return opts;
}

/** `postgres` in the foreground (for the supervisor): executable and arguments. */
export function postgresCommand(c: PgCluster): [string, string[]] {
  return [join(PG_BIN, 'postgres'), ['-D', dataDir(c), ...serverOptions(c).flatMap((o) => o.split(' '))]];
}

/** Where the private socket lives (superuser connections without a password). */
export const pgSocketDir = socketDir;

export async function startCluster(c: PgCluster): Promise<void> {
  if (await clusterRunning(c)) return;
  const opts = serverOptions(c);
  await run(
    join(PG_BIN, 'pg_ctl'),
    ['-D', dataDir(c), '-l', join(c.dir, 'server.log'), '-w', '-t', '30', '-o', opts.join(' '), 'start'],
    { asPostgres: true },
  );
}

/** Stops with `-m fast` and waits until the server has exited. */
export async function stopCluster(c: PgCluster): Promise<void> {
  if (!(await clusterRunning(c))) return;
  await run(join(PG_BIN, 'pg_ctl'), ['-D', dataDir(c), '-m', 'fast', '-w', '-t', '60', 'stop'], { asPostgres: true });
}

/** Runs SQL as the superuser over the private socket. */
export function psql(c: PgCluster, sqlText: string, database = 'postgres'): Promise<string> {
  return run(
    join(PG_BIN, 'psql'),
    [
      '-h',
      socketDir(c),
      '-p',
      String(c.port),
      '-U',
      'postgres',
      '-d',
      database,
      '-v',
      'ON_ERROR_STOP=1',
      '-tAc',
      sqlText,
    ],
    { asPostgres: true },
  );
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** Creates (or re-passwords) a login role and a database it owns. Idempotent. */
export async function ensureRoleAndDatabase(c: PgCluster, name: string, password: string): Promise<void> {
  if (!IDENT.test(name)) throw new StackError(`invalid database name ${name}`);
  const pw = password.replaceAll("'", "''");
  const roleExists = (await psql(c, `SELECT 1 FROM pg_roles WHERE rolname = '${name}'`)).trim() === '1';
  await psql(c, `${roleExists ? 'ALTER' : 'CREATE'} ROLE ${name} LOGIN PASSWORD '${pw}'`);
  const dbExists = (await psql(c, `SELECT 1 FROM pg_database WHERE datname = '${name}'`)).trim() === '1';
  if (!dbExists) await psql(c, `CREATE DATABASE ${name} OWNER ${name}`);
  await psql(c, `REVOKE ALL ON DATABASE ${name} FROM PUBLIC`);
}

export function databaseUrl(c: PgCluster, name: string, password: string): string {
  return `postgres://${name}:${encodeURIComponent(password)}@127.0.0.1:${c.port}/${name}`;
}
