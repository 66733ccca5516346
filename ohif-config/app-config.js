/**
 * OHIF 3.13 configuration for the imaging EHR facade (served as /app-config.js; scripts/fetch-ohif.sh also copies it
 * over the build's own). OHIF is served from the facade's origin, so every URL below is computed from
 * window.location.origin: no CORS, no host names baked in.
 *
 * Two ways in:
 *  1. A viewer link from `GET /api/v1/dicom/viewer-url/{order_id}`:
 *       /viewer?StudyInstanceUIDs=<uid>#token=<short-lived study-scoped token>
 *     The token travels in the URL fragment, which browsers never send to a server (so it reaches no access log and,
 *     with the viewer's `Referrer-Policy: no-referrer`, no Referer header). The shim below moves it into the query
 *     string, where OHIF's own token-from-URL support (ModeRoute → updateAuthServiceAndCleanUrl) picks it up, sends it
 *     as `Authorization: Bearer` on every DICOMweb request and removes it from the address bar with
 *     history.replaceState. No OpenID Connect in this mode: the token is the whole session.
 *  2. A user opening / (the study list) or /viewer?StudyInstanceUIDs=... with no token: OHIF's oidc client logs them
 *     in at the facade's built-in authorization server (authorization code + PKCE, public client `ohif-viewer`),
 *     and the study list shows exactly what their token lets /dicom-web return.
 */
(() => {
  const origin = window.location.origin;
  const dicomWebRoot = `${origin}/dicom-web`;

  // --- viewer token: fragment → query, for OHIF's token-from-URL support ----------------------------------------
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  const fragmentToken = fragment.get('token');
  if (fragmentToken) {
    const url = new URL(window.location.href);
    url.searchParams.set('token', fragmentToken);
    fragment.delete('token');
    const rest = fragment.toString();
    url.hash = rest ? `#${rest}` : '';
    window.history.replaceState(null, '', url.toString());
  }
  const viewerTokenMode = new URLSearchParams(window.location.search).has('token');

  // --- saving from the viewer: say why a STOW-RS was refused ------------------------------------------------------
  // OHIF 3.13 reports a failed Save (SR, SEG, measurements) with dicomweb-client's generic "request failed", and its
  // DICOMweb data source never calls httpErrorHandler. The facade states the reason per instance (FailedSOPSequence
  // ErrorComment, e.g. "not authorized to store imaging for this patient"; PS3.18 §10.5.3): show it in an alert.
  const stowPath = /\/dicom-web\/studies(\/[^/?]*)?(\?.*)?$/;
  const comments = (text) => {
    try {
      const body = JSON.parse(text);
      const failed = body?.['00081198']?.Value ?? [];
      const out = failed.map((f) => f?.['00000902']?.Value?.[0]).filter(Boolean);
      if (out.length === 0 && body?.['00000902']?.Value?.[0]) out.push(body['00000902'].Value[0]);
      return [...new Set(out)];
    } catch {
      return [];
    }
  };
  const showSaveError = (status, reasons) => {
    const box = document.createElement('div');
    box.setAttribute('role', 'alert');
    box.dataset.testid = 'ehr-save-error';
    box.style.cssText =
      'position:fixed;top:12px;left:50%;transform:translateX(-50%);z-index:100000;max-width:640px;padding:12px 16px;' +
      'background:#7f1d1d;color:#fff;border-radius:6px;font:14px sans-serif;box-shadow:0 2px 12px rgba(0,0,0,.5)';
    const fallback =
      status === 401
        ? 'this session may view this study but not save to it (a viewer link is read-only; sign in to save)'
        : 'the server refused the upload';
    box.textContent = `Not saved (${status}): ${reasons.length ? reasons.join('; ') : fallback}`;
    box.addEventListener('click', () => box.remove());
    document.body.appendChild(box);
    setTimeout(() => box.remove(), 15000);
  };
  const open = XMLHttpRequest.prototype.open;
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.ehrStow = String(method).toUpperCase() === 'POST' && stowPath.test(new URL(url, origin).pathname);
    return open.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.send = function (...args) {
    if (this.ehrStow) {
      this.addEventListener('loadend', () => {
        const text = this.responseType === '' || this.responseType === 'text' ? this.responseText : '';
        const failed = this.status >= 400 || (this.status === 202 && comments(text).length > 0);
        if (failed) showSaveError(this.status, comments(text));
      });
    }
    return send.apply(this, args);
  };

  // --- logged-in use: OHIF's oidc client (oidc-client-ts; response_type 'code' always uses PKCE) --------------------
  const oidc = [
    {
      // The built-in authorization server: issuer <origin>/auth, discovery at the SMART configuration (SMART App
      // Launch 2.x), which carries the OAuth metadata oidc-client-ts needs (RFC 8414 fields).
      authority: `${origin}/auth`,
      metadataUrl: `${origin}/fhir/.well-known/smart-configuration`,
      client_id: 'ohif-viewer',
      redirect_uri: '/callback',
      post_logout_redirect_uri: '/',
      silent_redirect_uri: '/silent-refresh.html',
      response_type: 'code',
      // Read imaging, and create it: Save of SR, SEG and measurements is a STOW-RS into the open study. Whether a save
      // is accepted is the access policy's decision per user and patient (refused per instance with 0x0124).
      scope: 'openid fhirUser user/ImagingStudy.crs',
      // SMART requires the FHIR base URL as `aud` in the authorization request.
      extraQueryParams: { aud: `${origin}/fhir` },
      // No silent renew through a hidden iframe (the login page refuses framing). Access tokens are short-lived; an
      // expired session sends the user through the login again.
      automaticSilentRenew: false,
      revokeAccessTokenOnSignout: false,
      loadUserInfo: false,
    },
  ];

  window.config = {
    name: 'imaging-ehr-facade',
    routerBasename: '/',
    // Our name in place of OHIF's logo (header of the study list and of the viewer).
    whiteLabeling: {
      createLogoComponentFn: (React) =>
        React.createElement(
          'a',
          {
            href: '/',
            className: 'text-primary-light text-lg font-semibold whitespace-nowrap',
            'data-testid': 'ehr-logo',
          },
          'Imaging EHR',
        ),
    },
    extensions: [],
    modes: [],
    // The first-visit onboarding tour (shepherd popups over the viewport) is off: no tours at all.
    customizationService: [{ 'ohif.tours': { $set: [] } }],
    investigationalUseDialog: { option: 'never' },
    showStudyList: true,
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    groupEnabledModesFirst: true,
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
    showErrorDetails: 'production',
    defaultDataSourceName: 'dicomweb',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'dicomweb',
        configuration: {
          friendlyName: 'Imaging EHR facade',
          name: 'facade',
          qidoRoot: dicomWebRoot,
          wadoRoot: dicomWebRoot,
          wadoUriRoot: dicomWebRoot,
          // The facade answers includefield (comma form included), so the study list gets descriptions,
          // modalities and dates in one QIDO-RS query.
          qidoSupportsIncludeField: true,
          supportsReject: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          staticWado: false,
          singlepart: 'bulkdata,video',
          bulkDataURI: { enabled: true, relativeResolution: 'studies' },
          omitQuotationForMultipartRequest: true,
          dicomUploadEnabled: false,
        },
      },
    ],
    ...(viewerTokenMode ? {} : { oidc }),
    httpErrorHandler: (error) => {
      console.warn('DICOMweb request failed', error?.status);
    },
  };
  document.title = 'Imaging EHR viewer';
})();
