/**
 * The authorization endpoint (RFC 6749 §4.1, RFC 7636, SMART App Launch 2.x standalone launch):
 *   GET  /auth/authorize          validates the request, shows the login page
 *   POST /auth/authorize          checks the credentials (rate-limited), then either redirects with a code or shows
 *                                 the patient picker (`launch/patient`)
 *   POST /auth/authorize/patient  takes the picked patient and redirects with a code
 * Errors about the client or redirect_uri are shown as a page (never redirected, §4.1.2.1); others are redirected.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { jwtVerify, SignJWT } from 'jose';
import { sql } from 'slonik';
import { patientLoginScopes, patientOfUser } from '../patient-user.ts';
import { isRole } from '../policy.ts';
import { narrowScopes, parseScopes } from '../scopes.ts';
import { type ClientRecord, clientById, userById, userByUsername } from '../store.ts';
import type { ServerContext } from './context.ts';
import { OAuthError } from './errors.ts';
import { parseForm, singleParams } from './form.ts';
import { createCode } from './grant-store.ts';
import { type LoginLimits, loginBlocked, recordLoginFailure, recordLoginSuccess } from './login-limit.ts';
import { errorPage, loginPage, PAGE_HEADERS, patientPickerPage } from './pages.ts';
import { verifyPassword } from './passwords.ts';
import { maySelect, patientChoices, selectablePatients } from './patient-choice.ts';
import { isValidChallenge } from './pkce.ts';
import { EhrError, type ErrorCode } from '../../errors/base.ts';

/** A problem with client_id or redirect_uri: shown to the user, never redirected. */
export class AuthPageError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUTH_PAGE';
  override name = 'AuthPageError';
}

/** An error redirected back to the client (RFC 6749 §4.1.2.1). */
export class RedirectError extends OAuthError {
  override readonly code: ErrorCode = 'EHR_OAUTH_REDIRECT';
  readonly redirectUri: string;
  readonly state: string | undefined;
  constructor(error: string, description: string, redirectUri: string, state: string | undefined) {
    super(error, description);
    this.redirectUri = redirectUri;
    this.state = state;
  }
}

interface AuthRequest {
  readonly client: ClientRecord;
  readonly redirectUri: string;
  readonly state: string;
  readonly scope: string;
  readonly codeChallenge: string;
  readonly nonce: string | null;
  /** The authorization request's own parameters (carried through the login form). */
  readonly params: Record<string, string>;
}

const AUTH_PARAMS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'aud',
  'code_challenge',
  'code_challenge_method',
  'nonce',
  'launch',
];

async function validateRequest(ctx: ServerContext, all: Record<string, string>): Promise<AuthRequest> {
  const params = Object.fromEntries(Object.entries(all).filter(([k]) => AUTH_PARAMS.includes(k)));
  const client = params['client_id'] ? await clientById(ctx.db, params['client_id']) : undefined;
  if (!client?.active) throw new AuthPageError('Unknown client.');
  const redirectUri = params['redirect_uri'] ?? (client.redirectUris.length === 1 ? client.redirectUris[0] : undefined);
  if (!redirectUri || !client.redirectUris.includes(redirectUri)) {
    throw new AuthPageError('The redirect_uri is not registered for this client.');
  }
  const state = params['state'];
  const fail = (error: string, description: string) => new RedirectError(error, description, redirectUri, state);
  if (client.kind === 'backend') throw fail('unauthorized_client', 'backend clients use client_credentials');
  if (params['response_type'] !== 'code') throw fail('unsupported_response_type', 'response_type must be code');
  if (!state) throw fail('invalid_request', 'state is required');
  if (params['launch'] !== undefined) throw fail('invalid_request', 'EHR launch is not supported');
  if (params['aud'] !== ctx.urls.fhirBase) throw fail('invalid_request', `aud must be ${ctx.urls.fhirBase}`);
  if (params['code_challenge_method'] !== 'S256') throw fail('invalid_request', 'PKCE with S256 is required');
  const challenge = params['code_challenge'] ?? '';
  if (!isValidChallenge(challenge)) throw fail('invalid_request', 'code_challenge is malformed');
  const scope = narrowScopes(params['scope'] ?? '', client.scopeCeiling);
  if (!parseScopes(scope).resource.length) throw fail('invalid_scope', 'no requested scope can be granted');
  return {
    client,
    redirectUri,
    state,
    scope: scope.join(' '),
    codeChallenge: challenge,
    nonce: params['nonce'] ?? null,
    params,
  };
}

function redirect(reply: FastifyReply, uri: string, values: Record<string, string | undefined>): FastifyReply {
  const url = new URL(uri);
  for (const [k, v] of Object.entries(values)) if (v !== undefined) url.searchParams.set(k, v);
  return reply.header('cache-control', 'no-store').redirect(url.toString(), 303);
}

function page(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply.code(status).headers(PAGE_HEADERS).send(html);
}

function onError(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof RedirectError) {
    req.log.info({ auth: { endpoint: 'authorize', error: err.error, reason: err.message } }, 'authorization refused');
    return redirect(reply, err.redirectUri, { error: err.error, error_description: err.message, state: err.state });
  }
  if (err instanceof AuthPageError || err instanceof OAuthError) {
    req.log.info({ auth: { endpoint: 'authorize', reason: err.message } }, 'authorization refused');
    return page(reply, 400, errorPage(err.message));
  }
  throw err;
}

async function issueCode(
  ctx: ServerContext,
  reply: FastifyReply,
  r: AuthRequest,
  userId: string,
  patientId: string | null,
): Promise<FastifyReply> {
  const code = await createCode(
    ctx.db,
    {
      clientId: r.client.clientId,
      userId,
      redirectUri: r.redirectUri,
      scope: r.scope,
      patientId,
      nonce: r.nonce,
      codeChallenge: r.codeChallenge,
    },
    ctx.config.authCodeTtlS,
  );
  return redirect(reply, r.redirectUri, { code, state: r.state, iss: ctx.urls.issuer });
}

const INTERACTION_TTL_S = 300;

export async function authorizeRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const action = `${ctx.urls.authorize}`;
  const pickAction = `${ctx.urls.authorize}/patient`;
  const limits: LoginLimits = {
    maxPerUser: ctx.config.authLoginMaxFailuresPerUser,
    maxPerIp: ctx.config.authLoginMaxFailuresPerIp,
    windowS: ctx.config.authLoginWindowS,
  };
  const interactionAud = `${ctx.urls.issuer}/interaction`;

  app.get('/auth/authorize', async (req, reply) => {
    try {
      const r = await validateRequest(ctx, singleParams(req.query));
      return page(reply, 200, loginPage(action, r.params, r.client.name));
    } catch (err) {
      return onError(req, reply, err);
    }
  });

  app.post('/auth/authorize', async (req, reply) => {
    try {
      const form = parseForm(String(req.body ?? ''));
      const r = await validateRequest(ctx, form);
      const username = (form['username'] ?? '').slice(0, 128);
      const password = (form['password'] ?? '').slice(0, 1024);
      if (await loginBlocked(ctx.db, username, req.ip, limits)) {
        req.log.warn({ auth: { endpoint: 'authorize', username, ip: req.ip } }, 'login refused: too many failures');
        return page(reply, 429, loginPage(action, r.params, r.client.name, 'Too many failed sign-ins. Try later.'));
      }
      const user = await userByUsername(ctx.db, username);
      const ok = (await verifyPassword(password, user?.passwordHash ?? null)) && user?.active === true;
      if (!ok || !user) {
        await recordLoginFailure(ctx.db, username, req.ip, limits);
        req.log.info({ auth: { endpoint: 'authorize', username, ip: req.ip } }, 'login failed');
        return page(reply, 401, loginPage(action, r.params, r.client.name, 'Wrong user name or password.'));
      }
      await recordLoginSuccess(ctx.db, username);
      req.log.info({ auth: { endpoint: 'authorize', user: user.id, client: r.client.clientId } }, 'login succeeded');
      // A patient login: its own Patient is the context, its scopes the patient-context read-only form of the grant.
      const ownPatient = patientOfUser(user);
      if (ownPatient) {
        const scope = patientLoginScopes(r.scope);
        if (!parseScopes(scope).resource.length) {
          throw new RedirectError('invalid_scope', 'no requested scope can be granted', r.redirectUri, r.state);
        }
        req.log.info({ auth: { endpoint: 'authorize', user: user.id, patient: ownPatient } }, 'patient login');
        return issueCode(ctx, reply, { ...r, scope }, user.id, ownPatient);
      }
      if (!parseScopes(r.scope).launchPatient) return issueCode(ctx, reply, r, user.id, null);
      const filter = await selectablePatients(ctx.db, user);
      const key = await ctx.keys.signingKey();
      const interaction = await new SignJWT({ req: r.params })
        .setProtectedHeader({ alg: key.alg, kid: key.kid })
        .setIssuer(ctx.urls.issuer)
        .setAudience(interactionAud)
        .setSubject(user.id)
        .setIssuedAt()
        .setExpirationTime(`${INTERACTION_TTL_S}s`)
        .setJti(randomUUID())
        .sign(key.key);
      const admin = user.roles.filter(isRole).includes('admin');
      return page(reply, 200, patientPickerPage(pickAction, interaction, await patientChoices(ctx.db, filter), admin));
    } catch (err) {
      return onError(req, reply, err);
    }
  });

  app.post('/auth/authorize/patient', async (req, reply) => {
    try {
      const form = parseForm(String(req.body ?? ''));
      let claims: Record<string, unknown>;
      try {
        ({ payload: claims } = await jwtVerify(form['interaction'] ?? '', ctx.keys.getKey, {
          issuer: ctx.urls.issuer,
          audience: interactionAud,
          algorithms: ['RS256', 'ES256', 'PS256'],
          requiredClaims: ['jti', 'sub', 'exp'],
        }));
      } catch {
        throw new AuthPageError('The sign-in has expired. Start again from the application.');
      }
      const r = await validateRequest(ctx, (claims['req'] ?? {}) as Record<string, string>);
      const user = await userById(ctx.db, String(claims['sub']));
      if (!user?.active) throw new AuthPageError('The user is no longer active.');
      const patientId = form['patient'] ?? form['patient_id'] ?? '';
      const filter = await selectablePatients(ctx.db, user);
      if (!(await maySelect(ctx.db, filter, patientId))) {
        const admin = user.roles.filter(isRole).includes('admin');
        const choices = await patientChoices(ctx.db, filter);
        const html = patientPickerPage(pickAction, String(form['interaction']), choices, admin, 'Choose one of these.');
        return page(reply, 400, html);
      }
      const once = await ctx.db.maybeOne(sql.unsafe`
        INSERT INTO client_assertion_jtis (client_id, jti, expires_at)
        VALUES ('@interaction', ${String(claims['jti'])}, to_timestamp(${Number(claims['exp'])}))
        ON CONFLICT DO NOTHING RETURNING jti`);
      if (once === null) throw new AuthPageError('This sign-in was already used. Start again from the application.');
      req.log.info({ auth: { endpoint: 'authorize', user: user.id, patient: patientId } }, 'patient selected');
      return issueCode(ctx, reply, r, user.id, patientId);
    } catch (err) {
      return onError(req, reply, err);
    }
  });
}
