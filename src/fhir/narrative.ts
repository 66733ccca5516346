/**
 * Checks of the narrative XHTML (`Narrative.div`, https://hl7.org/fhir/R4/narrative.html#xhtml):
 *  - it is well-formed XML whose root is an XHTML `div` (namespace http://www.w3.org/1999/xhtml);
 *  - txt-1: only the basic HTML formatting elements and attributes; no head/body, scripts, forms, frames, objects,
 *    styles elements, event attributes (`on*`), processing instructions or DOCTYPE, and no active links
 *    (`javascript:` and the like) in `href`/`src`;
 *  - txt-2: some non-whitespace content (text, or an image).
 * The allowed elements and attributes follow the list of the HL7 FHIR validator for R4 narrative.
 * Parsed with saxes (a strict, non-validating XML parser that does not expand external entities).
 */
import { SaxesParser } from 'saxes';
import { EhrError, type ErrorCode } from '../errors/base.ts';

export const XHTML_NS = 'http://www.w3.org/1999/xhtml';

/** HTML 4.0 basic formatting elements (chapters 7-11 and 15), links and images. */
const ELEMENTS = new Set(
  (
    'p br div h1 h2 h3 h4 h5 h6 a span b em i strong small big tt dfn q var abbr acronym cite blockquote hr address ' +
    'bdo kbd sub sup ul ol li dl dt dd pre table caption colgroup col thead tr tfoot tbody th td code samp img map area ' +
    'ins del s u strike center font'
  ).split(' '),
);

/** Attributes allowed on them (no event handlers, no scripting). */
const ATTRIBUTES = new Set(
  (
    'title style class id lang dir accesskey tabindex span width height align valign char charoff abbr axis headers ' +
    'scope rowspan colspan border cellpadding cellspacing frame rules summary href name src alt shape coords start ' +
    'type value cite datetime usemap nohref compact bgcolor color size face clear hspace vspace noshade nowrap ' +
    'reversed'
  ).split(' '),
);

/** URL schemes allowed in `href` and `src` (anything else may run code when the narrative is shown). */
const SAFE_URL = /^(?:#|https?:|ftp:|mailto:|tel:|urn:|data:\s*image\/(?:png|gif|jpeg|webp|bmp);|[^:]*$)/i;

/** A narrative that breaks txt-1/txt-2 or is not well-formed XHTML; `message` says why. */
export class NarrativeError extends EhrError {
  override readonly code: ErrorCode = 'EHR_FHIR_NARRATIVE';
  override name = 'NarrativeError';
}

/** Throws a {@link NarrativeError} when `div` is not an acceptable FHIR narrative. */
export function checkNarrative(div: string): void {
  const parser = new SaxesParser({ xmlns: true, position: false });
  let problem: string | undefined;
  let depth = 0;
  let content = false;
  const fail = (why: string) => {
    problem ??= why;
  };
  parser.on('error', (err) => fail(`not well-formed XHTML: ${err.message}`));
  parser.on('doctype', () => fail('a DOCTYPE is not allowed'));
  parser.on('processinginstruction', () => fail('processing instructions are not allowed'));
  parser.on('opentag', (tag) => {
    if (depth === 0 && (tag.local !== 'div' || tag.uri !== XHTML_NS)) fail('the narrative must be an XHTML <div>');
    depth++;
    if (tag.uri !== XHTML_NS) fail(`element <${tag.name}> is not XHTML`);
    else if (!ELEMENTS.has(tag.local)) fail(`element <${tag.local}> is not allowed (txt-1)`);
    if (tag.local === 'img') content = true;
    for (const a of Object.values(tag.attributes)) {
      if (a.prefix === 'xmlns' || a.name === 'xmlns') continue;
      if (a.uri === 'http://www.w3.org/XML/1998/namespace' && a.local === 'lang') continue;
      if (a.prefix || !ATTRIBUTES.has(a.local.toLowerCase())) fail(`attribute ${a.name} is not allowed (txt-1)`);
      else if ((a.local === 'href' || a.local === 'src') && !SAFE_URL.test(a.value.trim()))
        fail(`${a.local} ${JSON.stringify(a.value.slice(0, 40))} is not allowed (txt-1)`);
    }
  });
  parser.on('closetag', () => {
    depth--;
  });
  parser.on('text', (t) => {
    if (depth > 0 && t.trim() !== '') content = true;
  });
  parser.on('cdata', (t) => {
    if (t.trim() !== '') content = true;
  });
  try {
    parser.write(div).close();
  } catch (err) {
    fail(`not well-formed XHTML: ${err instanceof Error ? err.message : 'error'}`);
  }
  if (!problem && !content) fail('the narrative has no content (txt-2)');
  if (problem) throw new NarrativeError(problem);
}
