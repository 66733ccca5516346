import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoAfterUp } from './demo-command.ts';
import { type StackInfo, settingsFromEnv, stackDown, stackStatus } from '../stack/stack.ts';
import {
  readSupervisorState,
  runSupervisor,
  supervisedDown,
  supervisedUp,
  supervisorPid,
} from '../stack/supervised.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function printUrls(info: StackInfo): void {
  const base = info.facadeEnv['EHR_PUBLIC_BASE_URL'];
  console.log(`
The stack is up (data in ${info.settings.dataDir}):
  Facade          ${base}
  Staff app       ${base}/app/
  Viewer (OHIF)   ${base}/
  API docs        ${base}/docs/  (OpenAPI 3.1: ${base}/openapi.json)
  Metrics         ${base}/metrics  (admin token; or set EHR_METRICS_LISTEN, docs/metrics.md)
  Liveness        ${base}/healthz
  Readiness       ${base}/readyz
  FHIR R4         ${base}/fhir
  DICOMweb        ${base}/dicom-web
  Orthanc (admin) ${info.orthancUrl} — loopback only; user ${info.orthanc.username}, password in ${info.settings.dataDir}/secrets.json
  DICOM C-STORE   AET ${info.orthanc.aet} on port ${info.orthanc.dicomPort}

Configuration of the running facade: ${info.settings.dataDir}/facade.env
Tokens (development mode): create a user, then mint a token for it:
  bin/ehr user add alice --role admin          # prints the initial password once
  TOKEN=$(bin/ehr token --user alice --scope 'user/*.cruds')
  curl -H "Authorization: Bearer $TOKEN" ${base}/fhir/Patient
Apps use the SMART flows instead: ${base}/fhir/.well-known/smart-configuration (docs/authorization.md).
A supervisor restarts PostgreSQL, Orthanc and the facade when they exit or hang ("make status" shows restarts;
log in ${info.settings.dataDir}/supervisor.log; docs/operations.md).
Stop with "make down"; "make up" again resumes with the same data.`);
}

/** `bin/ehr stack up|down|status`: the local stack supervisor behind `make up` / `make down` / `make status`. */
export async function stackCommand(args: string[]): Promise<number> {
  const settings = settingsFromEnv(process.env, ROOT);
  switch (args[0]) {
    case 'up': {
      // A fresh data folder gets the demo once (development only; EHR_DEMO=0 skips it, docs/first-run.md).
      const fresh = !existsSync(join(settings.dataDir, 'secrets.json'));
      const info = await supervisedUp(settings, (line) => console.log(line));
      printUrls(info);
      await demoAfterUp(info.facadeEnv, settings.dataDir, fresh, (line) => console.log(line));
      return 0;
    }
    case 'down':
      await supervisedDown(settings);
      await stackDown(settings); // anything left of an unsupervised stack
      console.log('stack stopped (data kept)');
      return 0;
    case 'supervise':
      return runSupervisor(settings.dataDir);
    case 'status': {
      const rows = await stackStatus(settings);
      const sup = supervisorPid(settings) ? readSupervisorState(settings) : undefined;
      console.log(sup ? `supervisor up   pid ${sup.pid} since ${sup.startedAt}` : 'supervisor down');
      for (const r of rows) {
        const svc = sup?.services.find((s) => s.name === r.name);
        const state = svc && svc.state !== 'up' ? ` (${svc.state})` : '';
        const restarts = svc ? `\trestarts ${svc.restarts.length}` : '';
        const last = svc?.restarts.at(-1);
        console.log(
          `${r.name.padEnd(9)} ${r.up ? 'up  ' : 'down'} ${r.pid ? `pid ${r.pid}` : '       '}\tport ${r.port}${restarts}${state}${
            last ? `\tlast ${last.at}: ${last.reason}` : ''
          }`,
        );
      }
      return rows.every((r) => r.up) ? 0 : 3;
    }
    default:
      console.error('usage: bin/ehr stack up|down|status');
      return 64;
  }
}
