import { API_RULES, declareRules } from '../http/route-rules.ts';
import type { FastifyInstance } from 'fastify';
import { adminRoutes, meRoutes } from './admin-routes.ts';
import { meAuthorizationRoutes } from './me-authorizations.ts';
import { studyArchiveRoutes } from './study-archive.ts';
import { uploadLogRoutes } from './upload-log-routes.ts';

/**
 * The staff web app's API beyond FHIR and DICOMweb: `/api/v1/me`, the user's connected apps
 * (`/api/v1/me/authorizations`), a study's download (`/api/v1/studies/{uid}/archive`), an order's upload log and the admin API over users, grants and clients. Registered after authentication and audit (src/app.ts), so every call is authenticated and
 * audited like any other `/api` request.
 */
export async function webApiRoutes(app: FastifyInstance): Promise<void> {
  declareRules(app, API_RULES);
  await app.register(meRoutes);
  await app.register(meAuthorizationRoutes);
  await app.register(uploadLogRoutes);
  await app.register(studyArchiveRoutes);
  await app.register(adminRoutes);
}
