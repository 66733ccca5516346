import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive, StackError, terminate, waitFor } from './process.ts';

export const ORTHANC_BIN = process.env['EHR_ORTHANC_BIN'] ?? '/usr/sbin/Orthanc';
export const ORTHANC_PLUGINS_DIR = process.env['EHR_ORTHANC_PLUGINS'] ?? '/usr/share/orthanc/plugins';

export interface OrthancInstance {
  dir: string;
  httpPort: number;
  dicomPort: number;
  aet: string;
  username: string;
  password: string;
  db: { host: string; port: number; database: string; username: string; password: string };
}

/**
 * Orthanc's configuration: PostgreSQL index and storage (no DICOM bytes on disk), DICOMweb, GDCM, UTF-8,
 * HTTP Basic auth with the facade's generated credentials, and no remote HTTP access.
 */
export function orthancConfig(o: OrthancInstance): Record<string, unknown> {
  return {
    Name: 'EHR-Orthanc',
    HttpPort: o.httpPort,
    DicomPort: o.dicomPort,
    DicomAet: o.aet,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: true,
    RegisteredUsers: { [o.username]: o.password },
    DefaultEncoding: 'Utf8',
    StorageDirectory: join(o.dir, 'storage'),
    IndexDirectory: join(o.dir, 'index'),
    Plugins: [
      'libOrthancDicomWeb.so',
      'libOrthancPostgreSQLIndex.so',
      'libOrthancPostgreSQLStorage.so',
      'libOrthancGdcm.so',
    ].map((p) => join(ORTHANC_PLUGINS_DIR, p)),
    PostgreSQL: {
      EnableIndex: true,
      EnableStorage: true,
      Host: o.db.host,
      Port: o.db.port,
      Database: o.db.database,
      Username: o.db.username,
      Password: o.db.password,
      Lock: false,
    },
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: true, WadoRoot: '/wado', StudiesMetadata: 'Full' },
    StableAge: 5,
    SaveJobs: false,
    HttpTimeout: 120,
  };
}

export const orthancPidFile = (o: OrthancInstance) => join(o.dir, 'orthanc.pid');

export function orthancPid(o: OrthancInstance): number | undefined {
  if (!existsSync(orthancPidFile(o))) return undefined;
  const pid = Number(readFileSync(orthancPidFile(o), 'utf8'));
  return Number.isFinite(pid) && pidAlive(pid) ? pid : undefined;
}

/** Whether Orthanc answers `GET /system` with our credentials within `timeoutMs`. */
export async function answers(o: OrthancInstance, timeoutMs = 1000): Promise<boolean> {
  const auth = Buffer.from(`${o.username}:${o.password}`).toString('base64');
  const res = await fetch(`http://127.0.0.1:${o.httpPort}/system`, {
    headers: { authorization: `Basic ${auth}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.body?.cancel();
  return res.ok;
}

/** Writes Orthanc's configuration file; returns its path and the log file's. */
export function prepareOrthanc(o: OrthancInstance): { configPath: string; logPath: string } {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const configPath = join(o.dir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(orthancConfig(o), null, 2), { mode: 0o600 });
  return { configPath, logPath: join(o.dir, 'orthanc.log') };
}

/** Starts Orthanc in the background (idempotent) and waits until `/system` answers with our credentials. */
export async function startOrthanc(o: OrthancInstance): Promise<number> {
  const running = orthancPid(o);
  if (running) return running;
  if (!existsSync(ORTHANC_BIN)) throw new StackError(`Orthanc not found at ${ORTHANC_BIN}: run make up`);
  const { configPath, logPath } = prepareOrthanc(o);
  const out = openSync(join(o.dir, 'orthanc.stdout.log'), 'a');
  const child = spawn(ORTHANC_BIN, [`--logfile=${logPath}`, configPath], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  const pid = child.pid;
  if (!pid) throw new StackError('Orthanc could not be spawned');
  child.unref();
  writeFileSync(orthancPidFile(o), String(pid));
  try {
    await waitFor(
      `Orthanc on port ${o.httpPort}`,
      async () => {
        if (!pidAlive(pid)) throw new StackError('exited');
        return answers(o);
      },
      30_000,
    );
  } catch {
    await terminate(pid, 5000);
    const tail = existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').filter(Boolean).slice(-5) : [];
    throw new StackError(`Orthanc failed to start (see ${logPath}): ${tail.join(' | ')}`);
  }
  return pid;
}

/** Stops Orthanc and waits until it has exited (it takes a few seconds after SIGTERM). */
export async function stopOrthanc(o: OrthancInstance): Promise<void> {
  const pid = orthancPid(o);
  if (pid) await terminate(pid, 30_000);
  rmSync(orthancPidFile(o), { force: true });
}
