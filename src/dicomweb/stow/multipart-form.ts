import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Busboy, type BusboyFileStream } from '@fastify/busboy';
import { MultipartError, type MultipartPart } from './multipart-related.ts';

/**
 * `multipart/form-data` (RFC 7578) files as {@link MultipartPart}s, parsed by `@fastify/busboy`, for the browser
 * upload API. Same memory bound as `stow/multipart-related.ts`: one file is buffered up to `maxPartBytes`, a longer one is
 * drained and yielded with `overLimit`, and busboy is paused (by not reading its file stream) while a part is being
 * processed. Plain form fields are ignored.
 */
export async function* parseFormData(
  source: Readable,
  headers: IncomingHttpHeaders,
  opts: { maxPartBytes: number; maxFiles?: number },
): AsyncGenerator<MultipartPart, void, undefined> {
  let bb: ReturnType<typeof Busboy>;
  try {
    bb = Busboy({
      headers: { ...headers, 'content-type': headers['content-type'] ?? '' },
      limits: { fileSize: opts.maxPartBytes, files: opts.maxFiles ?? 100_000 },
    });
  } catch (err) {
    throw new MultipartError(`not a readable multipart/form-data body: ${(err as Error).message}`);
  }
  type Entry = { file: BusboyFileStream; filename: string | undefined; mime: string | undefined };
  const queue: Entry[] = [];
  let done = false;
  let failure: Error | undefined;
  let sourceFailure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  bb.on('file', (_field, file, filename, _enc, mime) => {
    queue.push({ file, filename: filename || undefined, mime: mime || undefined });
    notify();
  });
  bb.on('finish', () => {
    done = true;
    notify();
  });
  bb.on('error', (err: Error) => {
    failure = err;
    notify();
  });
  source.on('error', (err) => {
    sourceFailure = err;
    notify();
  });
  source.pipe(bb);

  let index = 0;
  try {
    for (;;) {
      const next = queue.shift();
      if (!next) {
        if (sourceFailure) throw sourceFailure;
        if (failure) throw new MultipartError(`not a readable multipart/form-data body: ${failure.message}`);
        if (done) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const c of next.file) {
          size += (c as Buffer).length;
          if (!next.file.truncated) chunks.push(c as Buffer);
        }
      } catch (err) {
        if (sourceFailure) throw sourceFailure;
        throw new MultipartError(`not a readable multipart/form-data body: ${(err as Error).message}`);
      }
      const overLimit = next.file.truncated;
      const body = overLimit ? null : Buffer.concat(chunks, size);
      yield {
        index: index++,
        headers: next.mime ? { 'content-type': next.mime } : {},
        mediaType: next.mime?.toLowerCase(),
        chunks: body ? [body] : null,
        body,
        size: overLimit ? Math.max(size, opts.maxPartBytes + 1) : size,
        overLimit,
        ...(next.filename ? { filename: next.filename } : {}),
      };
    }
  } finally {
    source.unpipe(bb);
  }
}
