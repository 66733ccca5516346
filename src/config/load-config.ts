import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { type Config, configVars } from './spec.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A missing or invalid configuration value. Its message is one line naming the variable. */
export class ConfigError extends EhrError {
  override readonly code: ErrorCode = 'EHR_CONFIG';
  override name = 'ConfigError';
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`${variable} ${problem}`);
    this.variable = variable;
  }
}

const schema = {
  type: 'object',
  properties: Object.fromEntries(configVars.map((v) => [v.env, v.schema])),
  required: configVars.filter((v) => v.default === undefined).map((v) => v.env),
};

const ajv = new Ajv({ allErrors: false, coerceTypes: true, useDefaults: false });
const validate = ajv.compile(schema);

type Env = Record<string, string | undefined>;

/** Reads `NAME`, or the contents of the file named by `NAME_FILE` for secrets (Docker/Kubernetes secrets style). */
function readVar(env: Env, name: string, secret: boolean): string | undefined {
  const direct = env[name];
  if (direct !== undefined && direct !== '') return direct;
  const file = secret ? env[`${name}_FILE`] : undefined;
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`${name}_FILE`, `cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  return undefined;
}

/**
 * Builds the schema-checked configuration from environment variables. Pure apart from reading `*_FILE` secrets.
 * Throws {@link ConfigError} for the first missing or invalid variable.
 */
export function loadConfig(env: Env): Config {
  const raw: Record<string, unknown> = {};
  for (const v of configVars) {
    const value = readVar(env, v.env, v.secret === true);
    raw[v.env] = value ?? v.default;
    if (raw[v.env] === undefined) delete raw[v.env];
  }
  if (!validate(raw)) {
    const e = validate.errors?.[0];
    if (!e) throw new ConfigError('config', 'is invalid');
    if (e.keyword === 'required') {
      const name = String(e.params['missingProperty']);
      throw new ConfigError(name, 'is required but not set');
    }
    const name = e.instancePath.replace(/^\//, '');
    const shown = configVars.find((v) => v.env === name)?.secret ? '(secret)' : JSON.stringify(env[name] ?? '');
    const problem = e.keyword === 'pattern' ? 'has an invalid format' : (e.message ?? 'is invalid');
    throw new ConfigError(name, `${problem} (got ${shown})`);
  }
  const config = Object.fromEntries(configVars.map((v) => [v.key, raw[v.env]])) as unknown as Config;
  config.publicBaseUrl = config.publicBaseUrl.replace(/\/+$/, '');
  config.orthancUrl = config.orthancUrl.replace(/\/+$/, '');
  config.orthancDicomWebRoot = config.orthancDicomWebRoot.replace(/\/+$/, '');
  return config;
}

/** The configuration table of docs/configuration.md, generated from the spec. */
export function configTableMarkdown(): string {
  const rows = configVars.map((v) => {
    const def = v.default === undefined ? '**required**' : `\`${String(v.default)}\``;
    const secret = v.secret ? ` Secret: may be given as \`${v.env}_FILE\`.` : '';
    return `| \`${v.env}\` | ${def} | ${v.description}${secret} |`;
  });
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}

export const CONFIG_TABLE_START = '<!-- config-table:start -->';
export const CONFIG_TABLE_END = '<!-- config-table:end -->';
/** The configuration page, relative to the project folder. */
export const CONFIG_DOC = 'docs/configuration.md';

/** Replaces the generated configuration table between the markers of a Markdown page. */
export function withConfigTable(page: string): string {
  const start = page.indexOf(CONFIG_TABLE_START);
  const end = page.indexOf(CONFIG_TABLE_END);
  if (start < 0 || end < start) throw new Error('the page has no config-table markers');
  return `${page.slice(0, start + CONFIG_TABLE_START.length)}\n${configTableMarkdown()}\n${page.slice(end)}`;
}
