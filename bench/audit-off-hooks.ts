/**
 * Preloaded (`node --import`) into the benchmark's second facade only, to measure the audit trail's cost: when
 * src/app.ts imports `./audit/plugin.ts`, it gets bench/audit-off-plugin.ts instead (same exports, but the plugin
 * only gives each request its audit context and never stores an event). Nothing in src/ changes, and the normal
 * facade of the same run keeps the real plugin.
 */
import { registerHooks } from 'node:module';

const replacement = new URL('./audit-off-plugin.ts', import.meta.url).href;

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === './audit/plugin.ts' && context.parentURL?.endsWith('/src/app.ts')) {
      return { url: replacement, shortCircuit: true };
    }
    return nextResolve(specifier, context);
  },
});
