/**
 * The built-in server's signing keys, persisted in `signing_keys` with a `kid` (RFC 7638 thumbprint) and rotated:
 * the newest non-retired key signs; when it is older than the rotation period a new key is generated and the old one
 * is retired but stays in the JWKS until every token it signed has expired. Replicas serialise rotation with an
 * advisory lock and reload the key set when they meet an unknown `kid`.
 */
import {
  calculateJwkThumbprint,
  type CryptoKey,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';
import { type DatabasePool, type DatabaseTransactionConnection, sql } from 'slonik';

export type SigningAlg = 'RS256' | 'ES256' | 'PS256';
const ROTATION_LOCK = 746_372_004;

export interface ActiveKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly key: CryptoKey;
  readonly createdMs: number;
}

async function newKey(tx: DatabaseTransactionConnection, alg: SigningAlg): Promise<void> {
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === 'ES256' ? {} : { modulusLength: 2048 }) });
  const publicJwk = await exportJWK(pair.publicKey);
  const privateJwk = await exportJWK(pair.privateKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const pub = { ...publicJwk, kid, alg, use: 'sig' };
  await tx.query(sql.unsafe`
    INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk)
    VALUES (${kid}, ${alg}, ${sql.jsonb({ ...privateJwk, kid, alg } as never)}, ${sql.jsonb(pub as never)})`);
}

/**
 * Returns the active key, generating the first one or rotating an old one when needed.
 * `force` rotates now (CLI `bin/ehr key rotate`).
 */
export async function ensureActiveKey(
  db: DatabasePool,
  alg: SigningAlg,
  rotationDays: number,
  force = false,
): Promise<ActiveKey> {
  return db.transaction(async (tx) => {
    await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(${ROTATION_LOCK})`);
    const current = (await tx.maybeOne(sql.unsafe`
      SELECT kid, (extract(epoch FROM now() - created_at) / 86400)::float8 AS age_days
      FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1`)) as {
      kid: string;
      age_days: number;
    } | null;
    if (!current || force || current.age_days >= rotationDays) {
      await tx.query(sql.unsafe`UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL`);
      await newKey(tx, alg);
    }
    const row = (await tx.one(sql.unsafe`
      SELECT kid, alg, private_jwk, (extract(epoch FROM created_at) * 1000)::float8 AS created_ms
      FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1`)) as {
      kid: string;
      alg: SigningAlg;
      private_jwk: JWK;
      created_ms: number;
    };
    const key = (await importJWK(row.private_jwk, row.alg)) as CryptoKey;
    return { kid: row.kid, alg: row.alg, key, createdMs: Number(row.created_ms) };
  });
}

/** Public keys to publish: the active key and retired keys whose tokens may still be valid. */
export async function publishedKeys(db: DatabasePool, graceS: number): Promise<JSONWebKeySet> {
  const rows = (await db.any(sql.unsafe`
    SELECT public_jwk FROM signing_keys
    WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => ${graceS})
    ORDER BY created_at DESC`)) as readonly { public_jwk: JWK }[];
  return { keys: rows.map((r) => r.public_jwk) };
}

export interface KeyStoreOptions {
  alg: SigningAlg;
  rotationDays: number;
  /** How long a retired key stays published: the longest token lifetime plus clock leeway. */
  graceS: number;
}

/** Caches the active key and the published key set; reloads on rotation and on unknown `kid` (at most every 5 s). */
export class KeyStore {
  readonly #db: DatabasePool;
  readonly #opts: KeyStoreOptions;
  #active: ActiveKey | undefined;
  #jwks: JSONWebKeySet = { keys: [] };
  #local: ReturnType<typeof createLocalJWKSet> = createLocalJWKSet({ keys: [] });
  #loadedAt = 0;
  #checkedAt = 0;

  constructor(db: DatabasePool, opts: KeyStoreOptions) {
    this.#db = db;
    this.#opts = opts;
  }

  /**
   * The key to sign with. Re-read from the database at least every minute, so that a rotation by another replica or
   * by `bin/ehr key rotate` is followed before the retired key leaves the JWKS.
   */
  async signingKey(): Promise<ActiveKey> {
    const maxAgeMs = this.#opts.rotationDays * 86_400_000;
    const now = Date.now();
    if (!this.#active || now - this.#active.createdMs >= maxAgeMs || now - this.#checkedAt > 60_000) {
      const active = await ensureActiveKey(this.#db, this.#opts.alg, this.#opts.rotationDays);
      this.#checkedAt = now;
      if (active.kid !== this.#active?.kid) {
        this.#active = active;
        await this.reload();
      }
    }
    return this.#active!;
  }

  /** Forgets the cached active key (after a rotation in this process). */
  invalidate(): void {
    this.#checkedAt = 0;
  }

  async reload(): Promise<void> {
    this.#jwks = await publishedKeys(this.#db, this.#opts.graceS);
    this.#local = createLocalJWKSet(this.#jwks);
    this.#loadedAt = Date.now();
  }

  async jwks(): Promise<JSONWebKeySet> {
    if (Date.now() - this.#loadedAt > 60_000) await this.reload();
    return this.#jwks;
  }

  /** Key resolver for `jwtVerify`: published keys only, by `kid`. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const kid = header.kid;
    if (kid && !this.#jwks.keys.some((k) => k.kid === kid) && Date.now() - this.#loadedAt > 5_000) {
      await this.reload();
    }
    return this.#local(header, token);
  };
}
