/**
 * `Expect` handling on the HTTP server (RFC 9110 §10.1.1). `100-continue`: the request is served at once and its
 * `100 Continue` is held; the resource server's gate sends it as soon as it knows the route
 * ({@link continueUnlessDeferred}), unless the route's rules declare `body: 'deferred-continue'` (the uploads), whose
 * handler sends it only once the request passed its checks (auth, media type, size), so that a refused upload is
 * never sent. An empty `Expect:` (sent by some DICOMweb clients) is no expectation: Node would answer 417, we serve
 * the request. Any other expectation still gets 417.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { RouteRules } from './route-rules.ts';

const kPending = Symbol('ehr.pendingContinue');
const kInstalled = Symbol('ehr.expectInstalled');

type Held = IncomingMessage & { [kPending]?: boolean };

export function installExpectHandling(server: Server): void {
  const s = server as Server & { [kInstalled]?: boolean };
  if (s[kInstalled]) return;
  s[kInstalled] = true;
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    (req as Held)[kPending] = true;
    server.emit('request', req, res);
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    if (String(req.headers.expect ?? '').trim() === '') {
      server.emit('request', req, res);
      return;
    }
    res.writeHead(417, { 'content-type': 'text/plain', connection: 'close' });
    res.end('Expectation Failed: only 100-continue is supported\n');
  });
}

/** Sends the held `100 Continue` now (the upload passed its checks); nothing when none is held. */
export function continueIfExpected(req: { raw: IncomingMessage }, res: ServerResponse): void {
  const raw = req.raw as Held;
  if (raw[kPending]) {
    raw[kPending] = false;
    res.writeContinue();
  }
}

/** The gate: sends the held `100 Continue` at once unless the route defers it to its handler. */
export function continueUnlessDeferred(
  req: { raw: IncomingMessage },
  res: ServerResponse,
  rules: RouteRules | undefined,
): void {
  if (rules?.body !== 'deferred-continue') continueIfExpected(req, res);
}
