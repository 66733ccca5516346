import type { DatabasePool } from 'slonik';
import type { Config } from '../../config/spec.ts';
import type { KeyStore } from '../signing-keys.ts';
import type { AuthUrls } from './discovery.ts';
import type { MintContext } from './tokens.ts';

/** What the authorization server's route modules share. */
export interface ServerContext {
  readonly db: DatabasePool;
  readonly config: Config;
  readonly keys: KeyStore;
  readonly urls: AuthUrls;
  readonly mint: MintContext;
  /** Drops this process's caller cache after a revocation (other processes learn it by NOTIFY). */
  readonly invalidateCallers: () => void;
}
