import { describe, expect, test } from 'vitest';
import {
  API_RULES,
  assertRulesDeclared,
  dicomWebRules,
  FHIR_RULES,
  isAuditedRoute,
  OAUTH_RULES,
  publicRoute,
  type RouteRules,
  undeclaredRoutes,
  uploadRules,
} from './route-rules.ts';

describe('DICOMweb routes declare who may call them by method', () => {
  test.each([
    ['GET', '/dicom-web/studies', 'token-or-viewer', 'dicom'],
    [
      ['GET', 'HEAD'],
      '/dicom-web/studies/:study/series/:series/instances/:instance/frames/:frames',
      'token-or-viewer',
      'dicom',
    ],
    ['POST', '/dicom-web/studies', 'token', 'dicom'],
    [['PUT', 'DELETE', 'PATCH'], '/dicom-web/studies', 'token', 'dicom'],
    ['OPTIONS', '/dicom-web/*', 'cors-preflight', undefined],
  ] as const)('%s %s → %s', (method, url, who, audit) => {
    const rules = dicomWebRules({ method: method as string | string[], url });
    expect(rules.who).toBe(who);
    expect(rules.dialect).toBe('dicom');
    expect(isAuditedRoute(rules) ? rules.audit : undefined).toBe(audit);
  });
});

describe('surface rules', () => {
  test.each([
    ['FHIR', FHIR_RULES, 'token', 'fhir', 'fhir'],
    ['API', API_RULES, 'token', 'api', 'plain'],
    ['OAuth', OAUTH_RULES, 'anyone', 'auth', 'oauth'],
    ['STOW-RS', uploadRules('dicom', 'dicom'), 'token', 'dicom', 'dicom'],
    ['a public file', publicRoute('no patient data'), 'anyone', undefined, 'plain'],
  ] as const)('%s', (_name, rules: RouteRules, who, audit, dialect) => {
    expect(rules.who).toBe(who);
    expect(isAuditedRoute(rules) ? rules.audit : undefined).toBe(audit);
    expect(rules.dialect).toBe(dialect);
  });

  test('uploads defer 100 Continue to their handler', () => {
    expect(uploadRules('api', 'plain').body).toBe('deferred-continue');
    expect(FHIR_RULES.body).toBeUndefined();
  });
});

describe('deny by default', () => {
  const routes = [
    { method: 'GET', url: '/healthz', config: { rules: publicRoute('probe') } },
    { method: 'GET', url: '/forgotten', config: {} },
    { method: 'POST', url: '/also-forgotten' },
  ];
  test('routes without rules are named and refused at start-up', () => {
    expect(undeclaredRoutes(routes)).toEqual(['GET /forgotten', 'POST /also-forgotten']);
    expect(() => assertRulesDeclared(routes)).toThrow(/GET \/forgotten, POST \/also-forgotten/);
    expect(() => assertRulesDeclared(routes.slice(0, 1))).not.toThrow();
  });
});
