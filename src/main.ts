import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config/load-config.ts';
import { listenMetrics } from './metrics/listen.ts';

/**
 * Process entry: config → buildApp → listen, with graceful shutdown on SIGTERM/SIGINT.
 * An optional `.env` (or the file named by EHR_ENV_FILE) is read first; real environment variables win.
 */
async function main(): Promise<void> {
  const envFile = process.env['EHR_ENV_FILE'] ?? '.env';
  if (existsSync(envFile)) process.loadEnvFile(envFile);

  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ehr: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  const app = await buildApp(config);
  let metrics: Server | undefined;
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    metrics?.close();
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  await app.listen({ host: config.host, port: config.port });
  if (config.metricsListen) {
    metrics = await listenMetrics(config.metricsListen);
    app.log.info({ metricsListen: config.metricsListen }, 'metrics listener up');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`ehr: failed to start: ${(err as Error).message}\n`);
  process.exit(1);
});
