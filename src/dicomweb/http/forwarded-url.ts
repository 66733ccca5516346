/**
 * The public base URL a request came in through, behind a trusted reverse proxy: RFC 7239 `Forwarded: host=;proto=`
 * (first element: the proxy nearest the client), else the de-facto `X-Forwarded-Host` / `X-Forwarded-Proto` (first
 * value). Only when the facade trusts its proxies (`EHR_TRUST_PROXY`); otherwise, and for any value that is not a
 * plain host[:port] or http/https, the configured `EHR_PUBLIC_BASE_URL` stands. The configured path prefix is kept.
 *
 * The DICOMweb answers (Orthanc's, the facade's own and the cached ones) are built with the configured base; a request
 * with another public base gets them rewritten by {@link publicUrlRewrite} (RetrieveURL, BulkDataURI,
 * Content-Location), so that caches stay shared between hosts.
 */
import type { IncomingHttpHeaders } from 'node:http';

const HOST =
  /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(:\d{1,5})?$/;
const PROTO = /^https?$/i;

const firstValue = (h: string | string[] | undefined): string | undefined => {
  const v = Array.isArray(h) ? h[0] : h;
  const first = v?.split(',')[0]?.trim();
  return first ? first : undefined;
};

/** The `host` and `proto` of the first element of an RFC 7239 `Forwarded` header (§4: quoted values unquoted). */
export function parseForwarded(header: string | undefined): { host?: string; proto?: string } {
  const element = header?.split(',')[0];
  if (!element) return {};
  const out: { host?: string; proto?: string } = {};
  for (const pair of element.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = pair.slice(0, eq).trim().toLowerCase();
    const value = pair
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1');
    if ((key === 'host' || key === 'proto') && value && out[key] === undefined) out[key] = value;
  }
  return out;
}

/**
 * The request's public base URL (`<proto>://<host><prefix>`), or undefined when it is the configured one (no trusted
 * forwarding header, or only invalid values).
 */
export function forwardedBase(
  headers: IncomingHttpHeaders,
  configuredBase: string,
  trustProxy: boolean,
): string | undefined {
  if (!trustProxy) return undefined;
  const raw = headers['forwarded'] as string | string[] | undefined;
  const fwd = parseForwarded(Array.isArray(raw) ? raw.join(',') : raw);
  const host = fwd.host ?? firstValue(headers['x-forwarded-host']);
  const proto = fwd.proto ?? firstValue(headers['x-forwarded-proto']);
  if (host === undefined && proto === undefined) return undefined;
  const u = new URL(configuredBase);
  const useHost = host !== undefined && HOST.test(host) ? host : u.host;
  const useProto = proto !== undefined && PROTO.test(proto) ? proto.toLowerCase() : u.protocol.replace(/:$/, '');
  const prefix = u.pathname.replace(/\/+$/, '');
  const base = `${useProto}://${useHost}${prefix}`;
  const configured = `${u.protocol}//${u.host}${prefix}`;
  return base === configured ? undefined : base;
}

/** `from` → `to` for a request whose public base differs from the configured one, or undefined. */
export function publicUrlRewrite(
  headers: IncomingHttpHeaders,
  configuredBase: string,
  trustProxy: boolean,
  path: string,
): { from: string; to: string } | undefined {
  const base = forwardedBase(headers, configuredBase, trustProxy);
  if (base === undefined) return undefined;
  const u = new URL(configuredBase);
  const configured = `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  return { from: `${configured}${path}/`, to: `${base}${path}/` };
}

/** Whether an answer of this Content-Type can carry URLs to rewrite (DICOM JSON/XML, JSON, multipart of XML). */
export function carriesUrls(contentType: string): boolean {
  return /json|xml/i.test(contentType);
}
