import { test } from 'vitest';
import { testApp } from './helpers/app.ts';
test('dump', async () => {
  const app = await testApp();
  const out = app.printRoutes({ includeHooks: true, commonPrefix: false, method: 'GET' });
  console.log(out.split('\n').filter((l) => /GET\)|• \(on(Request|Send|Response)\)|preHandler/.test(l)).slice(0, 400).join('\n'));
  await app.close();
});
