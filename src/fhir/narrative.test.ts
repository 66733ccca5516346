import { expect, test } from 'vitest';
import { checkNarrative, NarrativeError } from './narrative.ts';

const div = (inner: string) => `<div xmlns="http://www.w3.org/1999/xhtml">${inner}</div>`;

test.each([
  ['plain text', div('Ann Doe'), undefined],
  ['basic formatting', div('<p><b>Ann</b> <i>Doe</i><br/></p><ul><li>x</li></ul>'), undefined],
  [
    'a table with attributes',
    div('<table border="1"><tr><td colspan="2" style="color:red">1</td></tr></table>'),
    undefined,
  ],
  ['a link and an anchor', div('<a href="https://example.org">x</a><a name="top">t</a>'), undefined],
  ['an image only', div('<img src="#photo" alt=""/>'), undefined],
  ['a data: PNG image', div('<img src="data:image/png;base64,iVBORw0KGgo=" alt="x"/>'), undefined],
  ['xml:lang', div('<p xml:lang="fr">bonjour</p>'), undefined],
  ['XML entities', div('a &lt; b &amp; c &#233;'), undefined],
  ['a script', div('<p>x</p><script>alert(1)</script>'), /script/],
  ['an event attribute', div('<p onclick="alert(1)">x</p>'), /onclick/],
  ['an event attribute in upper case', div('<p ONMOUSEOVER="alert(1)">x</p>'), /ONMOUSEOVER/],
  ['a javascript: link', div('<a href="javascript:alert(1)">x</a>'), /href/],
  ['a javascript: link with spaces', div('<a href=" JavaScript:alert(1)">x</a>'), /href/],
  ['an SVG data image', div('<img src="data:image/svg+xml;base64,PHN2Zz4=" alt="x"/>'), /src/],
  ['an iframe', div('<iframe src="https://example.org"></iframe>'), /iframe/],
  ['a form', div('<form><input/></form>'), /form/],
  ['a style element', div('<style>p{}</style><p>x</p>'), /style/],
  ['an object', div('<object data="x"></object>'), /object/],
  ['a foreign namespace', div('<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>'), /not XHTML/],
  ['a root that is not a div', '<p xmlns="http://www.w3.org/1999/xhtml">x</p>', /div/],
  ['a div without the XHTML namespace', '<div>x</div>', /div/],
  ['not well-formed', div('<p>open'), /well-formed/],
  ['an HTML entity', div('a&nbsp;b'), /well-formed/],
  ['a DOCTYPE', `<!DOCTYPE div [<!ENTITY x "y">]>${div('&x;')}`, /DOCTYPE|well-formed/],
  ['a processing instruction', div('<?php echo 1 ?>x'), /processing/],
  ['whitespace only (txt-2)', div('  <p> </p> '), /no content/],
  ['empty (txt-2)', div(''), /no content/],
  ['not XML at all', 'hello', /well-formed|div/],
])('%s', (_name, xhtml, refused) => {
  let err: unknown;
  try {
    checkNarrative(xhtml);
  } catch (e) {
    err = e;
  }
  if (!refused) expect(err).toBeUndefined();
  else {
    expect(err).toBeInstanceOf(NarrativeError);
    expect((err as Error).message).toMatch(refused);
  }
});
