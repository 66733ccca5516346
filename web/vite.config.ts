import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Served by the facade at /app/ (src/webapp/plugin.ts). No inline script or style: the page's CSP forbids both.
export default defineConfig({
  base: '/app/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
});
