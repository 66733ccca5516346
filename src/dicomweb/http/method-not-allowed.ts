/**
 * 405 Method Not Allowed with an `Allow` header (RFC 9110 §15.5.6, §10.2.1) for every DICOMweb resource the facade
 * serves, as Orthanc answers: `PUT /dicom-web/studies` names an existing resource with a method it does not support,
 * which is not a 404. PS3.18 §8.3.3 leaves unsupported methods to HTTP.
 *
 * {@link collectRoutes} records, through an `onRoute` hook, the methods of each route path registered in the scope;
 * {@link registerMethodNotAllowed} then adds, for each path, a route for every other method that answers 405 in its
 * `onRequest` hook (so no body is read or parsed for it).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';

/** Methods answered 405 when a path has no route for them (OPTIONS stays with CORS). */
export const CHECKED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;

/** The handlers of the 405 routes, which the `onRoute` hook must not record. */
const refusers = new WeakSet<object>();

/** Route path (relative to the scope's prefix) → methods it answers. */
export type RouteMethods = Map<string, Set<string>>;

/** Records the methods of every route registered from now on in `app` and its children. */
export function collectRoutes(app: FastifyInstance): RouteMethods {
  const routes: RouteMethods = new Map();
  const prefix = app.prefix;
  app.addHook('onRoute', (route) => {
    if (refusers.has(route.handler)) return;
    const path = route.url.startsWith(prefix) ? route.url.slice(prefix.length) : route.url;
    if (path === '*' || path === '/*') return; // the CORS preflight catch-all
    const methods = routes.get(path) ?? new Set<string>();
    for (const m of [route.method].flat()) methods.add(m.toUpperCase());
    if (methods.has('GET')) methods.add('HEAD');
    routes.set(path, methods);
  });
  return routes;
}

/** The `Allow` header value of a path: its methods in a stable order. */
export function allowHeader(methods: ReadonlySet<string>): string {
  return CHECKED_METHODS.filter((m) => methods.has(m)).join(', ');
}

/** The methods a path does not answer, which get a 405 route. */
export function missingMethods(methods: ReadonlySet<string>): HTTPMethods[] {
  return CHECKED_METHODS.filter((m) => !methods.has(m));
}

/**
 * Adds the 405 routes for the paths collected so far. `send` sends the DICOM-shaped error (status, ErrorComment,
 * Warning) of the scope.
 */
export function registerMethodNotAllowed(
  app: FastifyInstance,
  routes: RouteMethods,
  send: (reply: FastifyReply, status: number, message: string) => FastifyReply,
): void {
  for (const [path, methods] of [...routes]) {
    const missing = missingMethods(methods);
    if (missing.length === 0) continue;
    const allow = allowHeader(methods);
    const refuse = async (req: FastifyRequest, reply: FastifyReply) => {
      reply.header('allow', allow);
      // A body the client is still sending is not read: close the connection after the answer.
      if (
        req.headers['content-length'] !== '0' &&
        (req.headers['content-length'] || req.headers['transfer-encoding'])
      ) {
        reply.header('connection', 'close');
      }
      await send(reply, 405, `${req.method} is not supported on this resource; allowed: ${allow}`);
      return reply;
    };
    refusers.add(refuse);
    app.route({
      method: missing,
      url: path,
      onRequest: refuse,
      handler: refuse,
      exposeHeadRoute: false,
    });
  }
}
