/**
 * Benchmark only: "Orthanc directly behind a plain auth-injecting proxy", the reference the facade's OHIF time is
 * compared with. A node:http server that serves the same OHIF build and app-config.js as the facade, and forwards
 * /dicom-web/* to Orthanc unchanged except that the client's Authorization is replaced by Orthanc's Basic
 * credentials. The Host header is kept, so Orthanc builds its BulkDataURIs on this proxy's origin.
 *
 *   node bench/auth-proxy.ts <port> <orthancUrl> <basicAuthorization> <ohifDistDir> <appConfigFile>
 *
 * It is run as its own process, pinned to the client CPU like the facade.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { extname, join, normalize } from 'node:path';

const [portArg, orthancUrl, basic, distDir, appConfig] = process.argv.slice(2);
if (!portArg || !orthancUrl || !basic || !distDir || !appConfig) {
  process.stderr.write('usage: auth-proxy.ts <port> <orthancUrl> <basic> <distDir> <appConfig>\n');
  process.exit(2);
}
const upstream = new URL(orthancUrl);
// Orthanc closes idle sockets after 1 s (Keep-Alive: timeout=1): keep ours for less.
const agent = new Agent({ keepAlive: true, keepAliveMsecs: 500, maxSockets: 32, timeout: 700 });

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

function sendFile(res: import('node:http').ServerResponse, file: string): void {
  const size = statSync(file).size;
  res.writeHead(200, {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': size,
    'cache-control': 'no-cache',
  });
  createReadStream(file).pipe(res);
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const path = decodeURIComponent(url.split('?')[0] ?? '/');
  if (path.startsWith('/dicom-web/')) {
    const headers = { ...req.headers, authorization: basic };
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: url, headers, agent },
      (r) => {
        const out = { ...r.headers };
        delete out['keep-alive'];
        delete out['connection'];
        res.writeHead(r.statusCode ?? 502, out);
        r.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    // A client that leaves mid-response (wrk at the end of a run) must free the upstream socket: an abandoned,
    // paused upstream response would hold its pooled socket forever and, once maxSockets are held, stall the proxy.
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
    return;
  }
  if (path === '/app-config.js') return sendFile(res, appConfig);
  const file = normalize(join(distDir, path));
  if (file.startsWith(distDir) && existsSync(file) && statSync(file).isFile()) return sendFile(res, file);
  // SPA fallback (/viewer, /callback...): index.html.
  return sendFile(res, join(distDir, 'index.html'));
});
server.keepAliveTimeout = 5000;
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
