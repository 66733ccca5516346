/**
 * True when a viewport canvas shows a drawn image: enough pixels that are not black. Cornerstone draws each viewport
 * into a 2D canvas (`.cornerstone-canvas`, also with its CPU fallback when WebGL is unavailable). Evaluated in the page
 * as a string: the project's TypeScript has no DOM types.
 */
export const DRAWN_IMAGE = `(() => {
  const canvases = [...document.querySelectorAll('canvas.cornerstone-canvas, .viewport-element canvas')];
  for (const c of canvases) {
    if (!c.width || !c.height) continue;
    const ctx = c.getContext('2d');
    if (!ctx) continue;
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 16) if (d[i] + d[i + 1] + d[i + 2] > 48) lit++;
    if (lit > 200) return true;
  }
  return false;
})()`;
