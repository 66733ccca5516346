/**
 * Pre-compresses a static build the facade serves: the OHIF viewer (scripts/fetch-ohif.sh runs it after unpacking)
 * and the staff web app (scripts/setup.sh runs it after building web/). Next to every text or wasm file of the
 * folder it writes `<file>.br` (Brotli) and `<file>.gz` (gzip), which the facade serves to browsers that accept them
 * (@fastify/static `preCompressed`, see src/viewer/ohif-static.ts and src/webapp/plugin.ts). The OHIF build is ~50 MB
 * of JavaScript and wasm that compresses ~6×; compressing once here costs the server nothing per request.
 * Idempotent: a file whose compressed copies are newer than itself is skipped.
 *
 *   node scripts/compress-static.ts <distDir> [label]
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

/** What is worth compressing; images and woff2 fonts are compressed formats already. */
const COMPRESSIBLE = /\.(js|mjs|css|html|json|wasm|svg|txt|ttf|woff|ico|xml|webmanifest)$/i;
/** Below this size the compressed copy saves less than the round trip of looking for it. */
const MIN_BYTES = 1024;

const dist = process.argv[2];
const label = process.argv[3] ?? 'OHIF build';
if (!dist) {
  process.stderr.write('usage: node scripts/compress-static.ts <distDir> [label]\n');
  process.exit(2);
}

const fresh = (copy: string, mtimeMs: number) => {
  try {
    return statSync(copy).mtimeMs >= mtimeMs;
  } catch {
    return false;
  }
};

let written = 0;
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !COMPRESSIBLE.test(entry.name)) continue;
  const file = join(entry.parentPath, entry.name);
  const { size, mtimeMs } = statSync(file);
  if (size < MIN_BYTES || (fresh(`${file}.br`, mtimeMs) && fresh(`${file}.gz`, mtimeMs))) continue;
  const body = readFileSync(file);
  // Quality 9: within ~10 % of Brotli's best (11) at a thirtieth of its time.
  const br = brotliCompressSync(body, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 9,
      [constants.BROTLI_PARAM_SIZE_HINT]: size,
      [constants.BROTLI_PARAM_MODE]: entry.name.endsWith('.wasm')
        ? constants.BROTLI_MODE_GENERIC
        : constants.BROTLI_MODE_TEXT,
    },
  });
  writeFileSync(`${file}.br`, br);
  writeFileSync(`${file}.gz`, gzipSync(body, { level: 9 }));
  written++;
}
process.stdout.write(`[setup] ${label} pre-compressed (${written} files)\n`);
