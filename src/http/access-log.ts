/**
 * The request log: one line per request, when it ends ("request completed": method, URL, client address, status,
 * response time, request id), like a web server's access log. Fastify's default writes two per request, the first
 * ("incoming request") with every header serialized and redacted; on a WADO-RS frame that was a tenth of the
 * facade's CPU. The incoming line is still written at `debug` (headers redacted by the logger's paths).
 */
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import pino, { type DestinationStream } from 'pino';

export class AccessLog extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    // Below debug, pino's debug is a no-op: nothing is serialized.
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      url: request.url,
      ip: request.ip,
      statusCode: reply.statusCode,
      responseTime: reply.elapsedTime,
    };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

/** How long a log line may wait in the buffer before it is written. */
const LOG_FLUSH_MS = 200;

/**
 * Standard output for the logger: asynchronous (sonic-boom), in writes of at least 4 KB, and at the latest every
 * {@link LOG_FLUSH_MS}; pino flushes what is left at exit. A write per line cost each request a round trip through
 * libuv's thread pool (a wake-up of another thread), more than the line itself.
 */
export function stdoutLog(): { stream: DestinationStream; stop(): void } {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const flush = () => {
    try {
      dest.flush();
    } catch {
      // Not open yet, or a write in flight: the next tick of the timer, or pino at exit, writes it.
    }
  };
  const timer = setInterval(flush, LOG_FLUSH_MS);
  timer.unref();
  return {
    stream: dest,
    stop: () => {
      clearInterval(timer);
      flush();
    },
  };
}
