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

  const settings = window.ehrViewerSettings || {};
  const idleTimeoutMs = (Number(settings.idleTimeoutS) || 1800) * 1000;
  const OIDC_CLIENT = 'ohif-viewer';

  // --- viewer token: fragment → query, for OHIF's token-from-URL support ----------------------------------------
  // The current token of a link-opened viewer is kept in this tab's sessionStorage, so that a reload goes on with it
  // (and never to the sign-in page); renewals replace it there.
  const TOKEN_KEY = 'ehr.viewer.token';
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  const fragmentToken = fragment.get('token');
  const onViewer = /^\/viewer(\/|$)/.test(window.location.pathname);
  const storedToken = onViewer ? window.sessionStorage.getItem(TOKEN_KEY) : null;
  const linkToken = fragmentToken || (new URLSearchParams(window.location.search).has('token') ? null : storedToken);
  if (fragmentToken) {
    const url = new URL(window.location.href);
    fragment.delete('token');
    const rest = fragment.toString();
    url.hash = rest ? `#${rest}` : '';
    window.history.replaceState(null, '', url.toString());
  }
  if (linkToken) {
    window.sessionStorage.setItem(TOKEN_KEY, linkToken);
    const url = new URL(window.location.href);
    url.searchParams.set('token', linkToken);
    window.history.replaceState(null, '', url.toString());
  }
  const viewerTokenMode = new URLSearchParams(window.location.search).has('token');
  if (!viewerTokenMode) window.sessionStorage.removeItem(TOKEN_KEY);

  const claimsOf = (jwt) => {
    try {
      return JSON.parse(atob(jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    } catch {
      return {};
    }
  };

  // --- messages in words ------------------------------------------------------------------------------------------
  // What went wrong, said for a person, with what to do next. A fatal one covers the viewer (the read has ended).
  const linkWords = 'Open the study again from the order.';
  const idleMinutes = Math.round(idleTimeoutMs / 60000);
  const idleWords = `${idleMinutes} minute${idleMinutes === 1 ? '' : 's'}`;
  const MESSAGES = {
    expired: viewerTokenMode
      ? `This link expired. ${linkWords}`
      : 'Your sign-in expired. Reload the page to sign in again.',
    revoked:
      "Your access to this patient's images was withdrawn, so the viewer closed. If you still need them, ask whoever manages access to imaging.",
    idle: viewerTokenMode
      ? `The viewer closed after ${idleWords} without activity. ${linkWords}`
      : `The viewer closed after ${idleWords} without activity. Reload the page to sign in again.`,
    notAvailable:
      "This study is not available to you: it does not exist, or you may not see this patient's images. Check the link, or open the study from the order.",
    unauthorized: viewerTokenMode
      ? `This link is not valid here. ${linkWords}`
      : 'You are not signed in. Reload the page to sign in.',
    forbidden: 'You may not view these images with this sign-in. Ask whoever manages access to imaging.',
    archiveDown:
      'The image archive is not answering right now, so images could not be loaded. Wait a minute and reload the page; nothing was lost.',
  };
  let ended = false;
  const show = (code, fatal) => {
    const text = MESSAGES[code] || MESSAGES.notAvailable;
    const put = () => {
      if (ended) return;
      const id = fatal ? 'ehr-viewer-message' : 'ehr-viewer-warning';
      document.querySelector(`[data-testid="${id}"]`)?.remove();
      const box = document.createElement('div');
      box.setAttribute('role', 'alert');
      box.dataset.testid = id;
      box.dataset.code = code;
      if (fatal) {
        ended = true;
        box.style.cssText =
          'position:fixed;inset:0;z-index:100001;display:flex;align-items:center;justify-content:center;' +
          'background:#050814;color:#fff;font:18px/1.5 sans-serif;padding:32px';
        const inner = document.createElement('div');
        inner.style.cssText = 'max-width:640px;text-align:center';
        const title = document.createElement('h1');
        title.style.cssText = 'font-size:24px;margin:0 0 16px;color:#5acce6';
        title.textContent = 'Imaging EHR viewer';
        const p = document.createElement('p');
        p.textContent = text;
        inner.append(title, p);
        box.append(inner);
        stopRenewal();
      } else {
        box.style.cssText =
          'position:fixed;top:12px;left:50%;transform:translateX(-50%);z-index:100000;max-width:640px;' +
          'padding:12px 16px;background:#78350f;color:#fff;border-radius:6px;font:14px sans-serif';
        box.textContent = text;
        box.addEventListener('click', () => box.remove());
      }
      document.body.appendChild(box);
    };
    if (document.body) put();
    else document.addEventListener('DOMContentLoaded', put);
  };
  /** The code of a refused request, from its status and the reason the server gave (WWW-Authenticate, JSON body). */
  const codeOf = (status, reason, path) => {
    if (status === 401) {
      if (/expired/i.test(reason)) return 'expired';
      if (/idle/i.test(reason)) return 'idle';
      if (/revoked|no longer|inactive|ended|withdrawn|renewed/i.test(reason)) return 'revoked';
      return 'unauthorized';
    }
    if (status === 403) return 'forbidden';
    if (status === 404 && /^\/dicom-web\/studies\/[^/]+(\/series(\/[^/]+\/metadata)?|\/metadata)?$/.test(path)) {
      return 'notAvailable';
    }
    if (status === 502 || status === 503 || status === 504) return 'archiveDown';
    return undefined;
  };
  const FATAL = new Set(['expired', 'revoked', 'idle', 'notAvailable', 'unauthorized']);
  const report = (status, reason, path) => {
    const code = codeOf(status, reason || '', path);
    if (code) show(code, FATAL.has(code));
  };
  // OHIF navigates to /notfoundstudy when a study cannot be loaded: say why instead of its generic sentence.
  let lastCode;
  const watchRoute = () => {
    if (window.location.pathname.startsWith('/notfoundstudy')) show(lastCode || 'notAvailable', true);
  };
  window.setInterval(watchRoute, 500);

  // --- user activity, for the idle time ---------------------------------------------------------------------------
  let lastActivity = Date.now();
  for (const type of ['pointerdown', 'pointermove', 'wheel', 'keydown', 'touchstart']) {
    window.addEventListener(type, () => (lastActivity = Date.now()), { capture: true, passive: true });
  }
  const idleMs = () => Date.now() - lastActivity;

  // --- renewal of a link's viewer token ---------------------------------------------------------------------------
  // Before the token expires, the viewer asks the facade for a fresh one (POST /api/v1/viewer/renew): same user,
  // patient, study and reach, granted only while the user still has access and was active within the idle time.
  let currentToken = viewerTokenMode ? new URLSearchParams(window.location.search).get('token') : null;
  let renewTimer;
  const origFetch = window.fetch.bind(window);
  function stopRenewal() {
    if (renewTimer) window.clearTimeout(renewTimer);
    renewTimer = undefined;
  }
  const scheduleRenewal = () => {
    if (!currentToken || ended) return;
    const { iat, exp } = claimsOf(currentToken);
    if (typeof exp !== 'number') return;
    const lifetime = (exp - (iat || exp - 600)) * 1000;
    const remaining = exp * 1000 - Date.now();
    renewTimer = window.setTimeout(renew, Math.max(1000, remaining - Math.max(lifetime * 0.4, 5000)));
  };
  const renew = async (attempt = 0) => {
    if (!currentToken || ended) return;
    let res;
    try {
      res = await origFetch(`${origin}/api/v1/viewer/renew`, {
        method: 'POST',
        headers: { authorization: `Bearer ${currentToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ idle_s: Math.floor(idleMs() / 1000) }),
        cache: 'no-store',
      });
    } catch {
      res = undefined;
    }
    if (res?.ok) {
      const body = await res.json();
      currentToken = body.token;
      window.sessionStorage.setItem(TOKEN_KEY, currentToken);
      window.dispatchEvent(new CustomEvent('ehr-viewer-renewed', { detail: { expiresAt: body.expires_at } }));
      scheduleRenewal();
      return;
    }
    if (res && res.status >= 400 && res.status < 500) {
      const body = await res.json().catch(() => ({}));
      const code = body.error === 'idle' ? 'idle' : body.error === 'study_not_available' ? 'notAvailable' : undefined;
      show(code || codeOf(res.status, body.error_description || '', '') || 'revoked', true);
      window.sessionStorage.removeItem(TOKEN_KEY);
      return;
    }
    // The facade or the network failed: try again while the token is still valid.
    const exp = claimsOf(currentToken).exp || 0;
    if (exp * 1000 > Date.now() + 2000) renewTimer = window.setTimeout(() => renew(attempt + 1), 3000);
    else show('expired', true);
  };

  // A link-opened viewer checks its link before OHIF shows anything: expired, withdrawn, or not for this study.
  if (viewerTokenMode && currentToken) {
    const studies = new URLSearchParams(window.location.search).get('StudyInstanceUIDs') || '';
    origFetch(`${origin}/api/v1/viewer/session?studies=${encodeURIComponent(studies)}`, {
      headers: { authorization: `Bearer ${currentToken}` },
      cache: 'no-store',
    })
      .then(async (res) => {
        if (res.ok) return scheduleRenewal();
        const body = await res.json().catch(() => ({}));
        const reason = `${res.headers.get('www-authenticate') || ''} ${body.error_description || ''}`;
        const code = body.error === 'study_not_available' ? 'notAvailable' : codeOf(res.status, reason, '');
        lastCode = code || 'notAvailable';
        show(lastCode, true);
      })
      .catch(() => scheduleRenewal());
  }

  // --- signed-in viewer: the freshest access token of OHIF's OpenID Connect session --------------------------------
  // oidc-client-ts renews the session with its refresh token (rotated at every use); requests take the newest token.
  const oidcKey = `oidc.user:${origin}/auth:${OIDC_CLIENT}`;
  const oidcUser = () => {
    try {
      return JSON.parse(window.sessionStorage.getItem(oidcKey) || window.localStorage.getItem(oidcKey) || 'null');
    } catch {
      return null;
    }
  };
  const freshBearer = () => {
    if (viewerTokenMode) return currentToken;
    return oidcUser()?.access_token || null;
  };
  let idleEnded = false;
  const endIdleSession = () => {
    if (idleEnded || viewerTokenMode || !oidcUser()) return;
    idleEnded = true;
    const refresh = oidcUser()?.refresh_token;
    if (refresh) {
      // Ends the grant at the server (RFC 7009): its refresh and access tokens stop working.
      origFetch(`${origin}/auth/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: refresh, client_id: OIDC_CLIENT }).toString(),
      }).catch(() => undefined);
    }
    window.sessionStorage.removeItem(oidcKey);
    window.localStorage.removeItem(oidcKey);
    show('idle', true);
  };
  window.setInterval(() => {
    if (idleMs() >= idleTimeoutMs) {
      // A link-opened viewer stops renewing and says why; a signed-in one also ends its grant.
      if (viewerTokenMode) show('idle', true);
      else endIdleSession();
    }
  }, 5000);

  // Every request with a bearer token carries the current one (a renewed link token, a refreshed sign-in), and a
  // refused DICOMweb request is put into words.
  const setHeader = XMLHttpRequest.prototype.setRequestHeader;
  XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
    if (String(name).toLowerCase() === 'authorization' && /^Bearer /i.test(String(value))) {
      const fresh = freshBearer();
      if (fresh) return setHeader.call(this, name, `Bearer ${fresh}`);
    }
    return setHeader.call(this, name, value);
  };
  const xhrOpen = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    const path = new URL(url, origin).pathname;
    if (path.startsWith('/dicom-web')) {
      this.addEventListener('loadend', () => {
        if (this.status < 400 || String(method).toUpperCase() === 'POST') return;
        let reason = this.getResponseHeader('www-authenticate') || '';
        try {
          if (this.responseType === '' || this.responseType === 'text') {
            reason += ` ${JSON.parse(this.responseText).error_description || ''}`;
          }
        } catch {}
        lastCode = codeOf(this.status, reason, path) || lastCode;
        report(this.status, reason, path);
      });
    }
    return xhrOpen.call(this, method, url, ...rest);
  };
  window.fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? String(input) : input.url, origin);
    const blockedRefresh =
      url.pathname === '/auth/token' && idleMs() >= idleTimeoutMs && String(init?.body || '').includes('refresh_token');
    if (blockedRefresh) {
      endIdleSession();
      throw new TypeError('the viewer session ended after inactivity');
    }
    if (url.origin === origin && url.pathname.startsWith('/dicom-web') && init?.headers) {
      const headers = new Headers(init.headers);
      const fresh = freshBearer();
      if (fresh && /^Bearer /i.test(headers.get('authorization') || ''))
        headers.set('authorization', `Bearer ${fresh}`);
      init = { ...init, headers };
    }
    const res = await origFetch(input, init);
    if (url.pathname.startsWith('/dicom-web') && res.status >= 400 && (init?.method || 'GET') !== 'POST') {
      const reason = res.headers.get('www-authenticate') || '';
      lastCode = codeOf(res.status, reason, url.pathname) || lastCode;
      report(res.status, reason, url.pathname);
    }
    return res;
  };

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
      scope: 'openid fhirUser online_access user/ImagingStudy.crs',
      // SMART requires the FHIR base URL as `aud` in the authorization request.
      extraQueryParams: { aud: `${origin}/fhir` },
      // Renewed before the access token expires with the refresh token that `online_access` brings (rotated at every
      // use; each refresh rechecks the user), never through a hidden iframe (the login page refuses framing). An idle
      // session is ended above.
      automaticSilentRenew: true,
      accessTokenExpiringNotificationTimeInSeconds: 30,
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
    // Refused requests are put into words by the request hooks above.
    httpErrorHandler: (error) => {
      console.warn('DICOMweb request failed', error?.status);
    },
  };
  document.title = 'Imaging EHR viewer';
})();
