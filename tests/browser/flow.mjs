// The person flows of Gatehouse in a real headless Chromium, checked by a certified OpenID
// Connect relying-party library (openid-client):
//
//   1. authorization code with PKCE (S256) for a confidential client: login page, consent page,
//      code exchange with ID token validation (signature, iss, aud, nonce, state, RFC 9207 iss),
//      userinfo, a refresh, and reuse of the spent refresh token refused (the family revoked);
//   2. implicit `id_token token` in the fragment for a public client: ID token signature, nonce,
//      at_hash, then userinfo with the access token;
//   3. hybrid `code id_token` with `response_mode=form_post`: the auto-submitting page runs
//      under the page's Content-Security-Policy, and the client validates c_hash and redeems;
//   4. the user denies consent: `access_denied` back at the client with state and iss;
//   5. a pushed authorization request (RFC 9126): the library pushes the parameters, the
//      browser carries only client_id and request_uri, and the reference works once;
//   6. the device authorization grant (RFC 8628) for the public client: the library starts it
//      and polls while the browser enters the code at verification_uri_complete and allows;
//   7. signing out at the end_session endpoint ends the browser's session (prompt=none then
//      answers login_required);
//
// and, along the way, the security headers of the pages and the attributes of the cookies.
//
// Inputs (environment):
//   GATEHOUSE_ISSUER                 the issuer, e.g. http://127.0.0.1:8080
//   GATEHOUSE_CODE_CLIENT_ID         confidential client: authorization_code + refresh_token,
//   GATEHOUSE_CODE_CLIENT_SECRET     registered redirect URI http://127.0.0.1/cb
//   GATEHOUSE_PUBLIC_CLIENT_ID       public client: authorization_code + implicit + device_code,
//                                    same URI
//   GATEHOUSE_USERNAME, GATEHOUSE_PASSWORD
//   GATEHOUSE_EXPECT_NAME, GATEHOUSE_EXPECT_EMAIL   what userinfo must say about the user
//   GATEHOUSE_CODE_ALG, GATEHOUSE_PUBLIC_ALG        the ID token algorithm of each client
//   CHROMIUM                         the browser (default /usr/bin/chromium)
//   SCREENSHOT_DIR                   optional: where to save screenshots of the pages
//
// Prints a JSON summary on stdout; exits 1 with the failed step on stderr otherwise.

import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';

import * as jose from 'jose';
import * as client from 'openid-client';
import { chromium } from 'playwright-core';

const TIMEOUT_MS = 20_000;

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set`);
  }
  return value;
}

class CheckFailed extends Error {}

let step = 'start';
const passed = [];
// What the browser refused or failed to load on the way, as it reported it.
const problems = [];

function check(condition, what, detail) {
  if (!condition) {
    const suffix = detail === undefined ? '' : `: ${JSON.stringify(detail)}`;
    throw new CheckFailed(`${what}${suffix}`);
  }
  passed.push(`${step}: ${what}`);
}

/** Runs `action`, which must fail; returns the error for inspection. */
async function refused(action) {
  try {
    await action();
  } catch (error) {
    return error;
  }
  return null;
}

/** The `at_hash` / `c_hash` of a value for a SHA-256 based algorithm (OIDC Core §3.1.3.6). */
function leftHalfHash(value) {
  const digest = createHash('sha256').update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/**
 * A loopback HTTP server standing for the client's redirect URI, so every redirect ends at a
 * real page. It remembers what reached it (query and form bodies; fragments never do).
 */
async function startCallbackServer() {
  const received = [];
  const waiters = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      const entry = {
        method: request.method,
        url: request.url,
        contentType: request.headers['content-type'] ?? '',
        body,
      };
      received.push(entry);
      for (const waiter of waiters.splice(0)) waiter(entry);
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end('<!DOCTYPE html><title>Client</title><p>The client received the response.</p>');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    received,
    next(predicate) {
      const found = received.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new CheckFailed('nothing reached the redirect URI in time')),
          TIMEOUT_MS,
        );
        const waiter = (entry) => {
          if (predicate(entry)) {
            clearTimeout(timer);
            resolve(entry);
          } else {
            waiters.push(waiter);
          }
        };
        waiters.push(waiter);
      });
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The headers every Gatehouse page must carry. */
function checkPageHeaders(response, page, redirectOrigin) {
  const headers = response.headers();
  const csp = headers['content-security-policy'] ?? '';
  check(csp.includes("default-src 'none'"), `the ${page} page's CSP denies by default`, csp);
  check(csp.includes("frame-ancestors 'none'"), `the ${page} page cannot be framed (CSP)`, csp);
  if (redirectOrigin) {
    check(
      csp.includes(`form-action 'self' ${redirectOrigin}`),
      `the ${page} page's form-action allows only itself and the redirect URI's origin`,
      csp,
    );
  }
  check(headers['x-frame-options'] === 'DENY', `the ${page} page sends X-Frame-Options: DENY`,
    headers['x-frame-options']);
  check(headers['cache-control'] === 'no-store', `the ${page} page is not cached`,
    headers['cache-control']);
}

async function screenshot(page, name) {
  const dir = process.env.SCREENSHOT_DIR;
  if (dir) await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

async function main() {
  const issuer = new URL(env('GATEHOUSE_ISSUER'));
  const codeClientId = env('GATEHOUSE_CODE_CLIENT_ID');
  const codeClientSecret = env('GATEHOUSE_CODE_CLIENT_SECRET');
  const publicClientId = env('GATEHOUSE_PUBLIC_CLIENT_ID');
  const username = env('GATEHOUSE_USERNAME');
  const password = env('GATEHOUSE_PASSWORD');
  const expectName = env('GATEHOUSE_EXPECT_NAME');
  const expectEmail = env('GATEHOUSE_EXPECT_EMAIL');
  const codeAlg = env('GATEHOUSE_CODE_ALG', 'ES256');
  const publicAlg = env('GATEHOUSE_PUBLIC_ALG', 'ES256');
  const summary = { issuer: issuer.href };

  const callback = await startCallbackServer();
  // Registered as http://127.0.0.1/cb: a loopback redirect URI may use any port (RFC 8252 §7.3).
  const redirectUri = `${callback.origin}/cb`;

  const browser = await chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const context = await browser.newContext();
    context.setDefaultTimeout(TIMEOUT_MS);
    const page = await context.newPage();
    // Anything the browser refuses (a CSP violation, a failed load) shows up as a console
    // error or a page error; Gatehouse's pages must cause none.
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const source = message.location().url || page.url();
      // Expected: the 401 of a failed login, and the favicon the browser asks for on its own.
      const expected = message.text().includes('status of 40')
        && (source.endsWith('/oauth/authorize/login') || source.endsWith('/favicon.ico'));
      if (!expected) problems.push(`${source}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`${page.url()}: ${error.message}`));
    const noBrowserProblems = () => {
      check(problems.length === 0, 'the browser reported no errors on the pages', problems);
    };
    const atCallback = (url) => url.origin === callback.origin;

    // ---------------------------------------------------------------- 1. code + PKCE
    step = 'discovery';
    const codeConfig = await client.discovery(
      issuer,
      codeClientId,
      undefined,
      client.ClientSecretBasic(codeClientSecret),
      { execute: [client.allowInsecureRequests] },
    );
    // Verify the signature of ID tokens from the token endpoint too, not only their claims.
    client.enableNonRepudiationChecks(codeConfig);
    const metadata = codeConfig.serverMetadata();
    check(metadata.issuer === issuer.href.replace(/\/$/, ''), 'the discovered issuer is ours',
      metadata.issuer);
    check(metadata.supportsPKCE('S256'), 'discovery announces PKCE S256');
    check(metadata.authorization_response_iss_parameter_supported === true,
      'discovery announces the RFC 9207 iss parameter');

    step = 'code flow: login page';
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const authorizationUrl = client.buildAuthorizationUrl(codeConfig, {
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      state,
    });
    const loginResponse = await page.goto(authorizationUrl.href);
    check(loginResponse.status() === 200, 'the login page loads', loginResponse.status());
    checkPageHeaders(loginResponse, 'login', callback.origin);
    check((await page.title()).startsWith('Sign in'), 'the login page is titled Sign in',
      await page.title());
    const stylesheetRules = await page.evaluate(() =>
      Array.from(document.styleSheets).reduce((n, sheet) => n + sheet.cssRules.length, 0));
    check(stylesheetRules > 0, 'the login page has its stylesheet', stylesheetRules);
    await screenshot(page, 'login');

    step = 'code flow: wrong password';
    await page.fill('#username', username);
    await page.fill('#password', 'not the password at all');
    await Promise.all([page.waitForURL('**/oauth/authorize/login'), page.click('#sign-in')]);
    check(await page.locator('[role=alert]').isVisible(), 'a wrong password is shown as an error');
    check(await page.locator('#username').inputValue() === username,
      'the user name is kept after a failed login');

    step = 'code flow: login';
    await page.fill('#password', password);
    const [consentResponse] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/oauth/authorize/login')),
      page.click('#sign-in'),
    ]);
    check(consentResponse.status() === 200, 'logging in leads to the consent page',
      consentResponse.status());
    const setCookie = (await consentResponse.headerValue('set-cookie')) ?? '';
    const sessionSetCookie = setCookie.split('\n').find((c) => c.startsWith('gh_session='));
    check(sessionSetCookie !== undefined, 'logging in sets the session cookie', setCookie);
    check(/;\s*HttpOnly/i.test(sessionSetCookie), 'the session cookie is HttpOnly', sessionSetCookie);
    check(/;\s*SameSite=Lax/i.test(sessionSetCookie), 'the session cookie is SameSite=Lax',
      sessionSetCookie);
    const cookies = await context.cookies(issuer.href);
    const session = cookies.find((c) => c.name === 'gh_session');
    check(session?.httpOnly === true && session?.sameSite === 'Lax',
      'the browser stored the session cookie as HttpOnly and SameSite=Lax', session);
    check(!(await page.evaluate(() => document.cookie)).includes('gh_session'),
      'page scripts cannot read the session cookie');

    step = 'code flow: consent page';
    checkPageHeaders(consentResponse, 'consent', callback.origin);
    await page.locator('#allow').waitFor();
    const consentText = await page.locator('main').innerText();
    check(consentText.includes(expectName), 'the consent page names the signed-in user',
      consentText);
    for (const scope of ['openid', 'profile', 'email']) {
      check(consentText.includes(scope), `the consent page lists the ${scope} scope`, consentText);
    }
    check(await page.locator('#deny').isVisible(), 'the consent page offers Deny');
    await screenshot(page, 'consent');
    noBrowserProblems();

    step = 'code flow: allow';
    await Promise.all([page.waitForURL(atCallback), page.click('#allow')]);
    const codeResponseUrl = new URL(page.url());
    check(codeResponseUrl.pathname === '/cb', 'the browser lands on the redirect URI',
      codeResponseUrl.href);
    check(codeResponseUrl.searchParams.get('iss') === metadata.issuer,
      'the response carries iss (RFC 9207)', codeResponseUrl.search);
    check(codeResponseUrl.searchParams.has('code') && !codeResponseUrl.hash,
      'the code comes in the query', codeResponseUrl.href);
    const seenByClient = await callback.next((e) => e.url.includes(
      `code=${encodeURIComponent(codeResponseUrl.searchParams.get('code'))}`));
    check(seenByClient.method === 'GET', 'the client received the code by GET', seenByClient);

    step = 'code flow: token exchange';
    const tokens = await client.authorizationCodeGrant(codeConfig, codeResponseUrl, {
      pkceCodeVerifier: verifier,
      expectedNonce: nonce,
      expectedState: state,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims();
    check(idClaims.aud === codeClientId || idClaims.aud?.includes?.(codeClientId),
      'the ID token is for this client', idClaims.aud);
    check(idClaims.nonce === nonce, 'the ID token carries the nonce');
    check(typeof idClaims.auth_time === 'number', 'the ID token carries auth_time', idClaims);
    check(jose.decodeProtectedHeader(tokens.id_token).alg === codeAlg,
      `the ID token is signed with ${codeAlg}`, jose.decodeProtectedHeader(tokens.id_token));
    check(typeof tokens.refresh_token === 'string', 'a refresh token is issued');
    check(tokens.token_type?.toLowerCase() === 'bearer', 'the access token is a bearer token',
      tokens.token_type);

    step = 'code flow: userinfo';
    const userinfo = await client.fetchUserInfo(codeConfig, tokens.access_token, idClaims.sub);
    check(userinfo.name === expectName, 'userinfo gives the name', userinfo);
    check(userinfo.email === expectEmail, 'userinfo gives the email address', userinfo);
    check(userinfo.preferred_username === username, 'userinfo gives the user name', userinfo);

    step = 'code flow: refresh';
    const refreshed = await client.refreshTokenGrant(codeConfig, tokens.refresh_token);
    check(typeof refreshed.refresh_token === 'string'
      && refreshed.refresh_token !== tokens.refresh_token, 'the refresh token rotates');
    check(refreshed.access_token !== tokens.access_token, 'a new access token is issued');
    if (refreshed.id_token) {
      check(refreshed.claims().sub === idClaims.sub,
        'the refreshed ID token is about the same user (OIDC Core §12.2)');
    }
    const afterRefresh = await client.fetchUserInfo(codeConfig, refreshed.access_token,
      idClaims.sub);
    check(afterRefresh.preferred_username === username, 'the refreshed access token works');

    step = 'code flow: refresh token reuse';
    const reuse = await refused(() => client.refreshTokenGrant(codeConfig, tokens.refresh_token));
    check(reuse instanceof client.ResponseBodyError && reuse.error === 'invalid_grant',
      'the spent refresh token is refused with invalid_grant', reuse?.message);
    const successor = await refused(() =>
      client.refreshTokenGrant(codeConfig, refreshed.refresh_token));
    check(successor?.error === 'invalid_grant',
      'the reuse revoked the family: the newest refresh token is refused too', successor?.message);
    const revokedAccess = await refused(() =>
      client.fetchUserInfo(codeConfig, refreshed.access_token, idClaims.sub));
    check(revokedAccess?.status === 401,
      "the reuse revoked the family's access tokens: userinfo refuses them",
      revokedAccess?.message);
    summary.code = { sub: idClaims.sub, alg: codeAlg, scope: tokens.scope };

    // ---------------------------------------------------------------- 2. implicit
    step = 'implicit: discovery';
    const implicitConfig = await client.discovery(issuer, publicClientId, undefined,
      client.None(), { execute: [client.allowInsecureRequests, client.useIdTokenResponseType] });

    step = 'implicit: consent';
    const implicitNonce = client.randomNonce();
    const implicitState = client.randomState();
    const implicitUrl = client.buildAuthorizationUrl(implicitConfig, {
      redirect_uri: redirectUri,
      response_type: 'id_token token',
      scope: 'openid profile email',
      nonce: implicitNonce,
      state: implicitState,
    });
    // The browser's session carries over: another client goes straight to its consent page.
    const implicitConsent = await page.goto(implicitUrl.href);
    check(implicitConsent.status() === 200 && await page.locator('#allow').isVisible(),
      'a signed-in user goes straight to consent for another client');
    await Promise.all([page.waitForURL(atCallback), page.click('#allow')]);

    step = 'implicit: response';
    const implicitResponseUrl = new URL(page.url());
    const fragment = new URLSearchParams(implicitResponseUrl.hash.slice(1));
    check(fragment.has('access_token') && fragment.has('id_token'),
      'the tokens come in the fragment', [...fragment.keys()]);
    check(implicitResponseUrl.search === '', 'nothing comes in the query',
      implicitResponseUrl.search);
    check(fragment.get('iss') === metadata.issuer, 'the fragment carries iss (RFC 9207)');
    const serverSaw = callback.received.at(-1);
    check(!serverSaw.url.includes('token'), 'the tokens never reached the client\'s server',
      serverSaw.url);
    const implicitClaims = await client.implicitAuthentication(implicitConfig,
      implicitResponseUrl, implicitNonce, { expectedState: implicitState });
    const implicitIdToken = fragment.get('id_token');
    const implicitHeader = jose.decodeProtectedHeader(implicitIdToken);
    check(implicitHeader.alg === publicAlg, `the ID token is signed with ${publicAlg}`,
      implicitHeader);
    // A second, independent signature check with jose against the published keys.
    const keys = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
    const verified = await jose.jwtVerify(implicitIdToken, keys, {
      issuer: metadata.issuer,
      audience: publicClientId,
      algorithms: [publicAlg],
    });
    check(verified.payload.sub === idClaims.sub, 'the same user across clients (public subject)');
    check(implicitClaims.at_hash === leftHalfHash(fragment.get('access_token')),
      'at_hash binds the ID token to the access token', implicitClaims.at_hash);
    check(fragment.get('token_type')?.toLowerCase() === 'bearer', 'a bearer access token');

    step = 'implicit: userinfo';
    const implicitUserinfo = await client.fetchUserInfo(implicitConfig,
      fragment.get('access_token'), implicitClaims.sub);
    check(implicitUserinfo.email === expectEmail, 'userinfo answers the implicit access token',
      implicitUserinfo);
    summary.implicit = { sub: implicitClaims.sub, alg: publicAlg };

    // ---------------------------------------------------------------- 3. hybrid, form_post
    step = 'form_post: authorization';
    const hybridConfig = await client.discovery(issuer, publicClientId, undefined, client.None(),
      { execute: [client.allowInsecureRequests, client.useCodeIdTokenResponseType] });
    const hybridVerifier = client.randomPKCECodeVerifier();
    const hybridNonce = client.randomNonce();
    const hybridState = client.randomState();
    const hybridUrl = client.buildAuthorizationUrl(hybridConfig, {
      redirect_uri: redirectUri,
      response_mode: 'form_post',
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(hybridVerifier),
      code_challenge_method: 'S256',
      nonce: hybridNonce,
      state: hybridState,
    });
    const formPostPage = page.waitForResponse((r) => r.url().startsWith(hybridUrl.origin
      + hybridUrl.pathname));
    // Consent was given above, so the server answers at once with the auto-submitting form;
    // its script must be allowed by the page's CSP for the browser to post it. (From a blank
    // page, so that arriving at the redirect URI means this response.)
    await page.goto('about:blank');
    await Promise.all([
      page.waitForURL(atCallback),
      page.goto(hybridUrl.href, { waitUntil: 'commit' }),
    ]);
    checkPageHeaders(await formPostPage, 'form_post', callback.origin);
    const posted = await callback.next((e) => e.method === 'POST' && e.body.includes(hybridState));
    check(posted.contentType.startsWith('application/x-www-form-urlencoded'),
      'the browser posted the response as a form', posted.contentType);
    const postedParams = new URLSearchParams(posted.body);
    check(postedParams.get('iss') === metadata.issuer, 'the posted response carries iss');
    const hybridTokens = await client.authorizationCodeGrant(hybridConfig,
      new Request(redirectUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: posted.body,
      }),
      { pkceCodeVerifier: hybridVerifier, expectedNonce: hybridNonce, expectedState: hybridState });
    check(hybridTokens.claims().sub === idClaims.sub,
      'the hybrid response (c_hash checked) redeems with PKCE for the same user');
    const hybridUser = await client.fetchUserInfo(hybridConfig, hybridTokens.access_token,
      idClaims.sub);
    check(hybridUser.preferred_username === username, 'the hybrid access token works');
    // RFC 6749 §4.1.2: a code used twice is refused, and what it gave is revoked.
    const codeReuse = await refused(() => client.authorizationCodeGrant(hybridConfig,
      new Request(redirectUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: posted.body,
      }),
      { pkceCodeVerifier: hybridVerifier, expectedNonce: hybridNonce, expectedState: hybridState }));
    check(codeReuse?.error === 'invalid_grant', 'the code cannot be redeemed twice',
      codeReuse?.message);
    const afterCodeReuse = await refused(() => client.fetchUserInfo(hybridConfig,
      hybridTokens.access_token, idClaims.sub));
    check(afterCodeReuse?.status === 401,
      'redeeming the code twice revoked the access token it gave', afterCodeReuse?.message);
    noBrowserProblems();

    // ---------------------------------------------------------------- 4. deny
    step = 'deny';
    const denyState = client.randomState();
    const denyUrl = client.buildAuthorizationUrl(codeConfig, {
      redirect_uri: redirectUri,
      scope: 'openid',
      prompt: 'consent',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      state: denyState,
    });
    await page.goto(denyUrl.href);
    await Promise.all([page.waitForURL(atCallback), page.click('#deny')]);
    const denied = await refused(() => client.authorizationCodeGrant(codeConfig,
      new URL(page.url()), { pkceCodeVerifier: 'unused', expectedState: denyState }));
    check(denied instanceof client.AuthorizationResponseError && denied.error === 'access_denied',
      'denying consent returns access_denied to the client (state and iss checked)',
      denied?.message);

    // ---------------------------------------------------------------- 5. pushed request
    step = 'pushed authorization request';
    check(metadata.pushed_authorization_request_endpoint === `${metadata.issuer}/oauth/par`,
      'discovery announces the pushed authorization request endpoint',
      metadata.pushed_authorization_request_endpoint);
    const parVerifier = client.randomPKCECodeVerifier();
    const parState = client.randomState();
    const parUrl = await client.buildAuthorizationUrlWithPAR(codeConfig, {
      redirect_uri: redirectUri,
      scope: 'openid profile',
      code_challenge: await client.calculatePKCECodeChallenge(parVerifier),
      code_challenge_method: 'S256',
      state: parState,
    });
    check([...parUrl.searchParams.keys()].sort().join(' ') === 'client_id request_uri',
      'the browser carries only client_id and request_uri', parUrl.href);
    await page.goto(parUrl.href);
    if (!atCallback(new URL(page.url()))) {
      await Promise.all([page.waitForURL(atCallback), page.click('#allow')]);
    }
    const parTokens = await client.authorizationCodeGrant(codeConfig, new URL(page.url()), {
      pkceCodeVerifier: parVerifier,
      expectedState: parState,
    });
    check(parTokens.claims().sub === idClaims.sub && parTokens.scope === 'openid profile',
      'the pushed request redeems for the same user with the pushed scopes', parTokens.scope);
    noBrowserProblems();
    const parAgain = await page.goto(parUrl.href);
    check(parAgain.status() === 400 && !atCallback(new URL(page.url())),
      'a request_uri works once; again, it is an error page', parAgain.status());
    // The browser reports the error page's status as a failed load, and nothing else.
    const refusal = problems.splice(0);
    check(refusal.every((p) => p.includes('status of 400')),
      'the refused request_uri caused nothing but its own 400', refusal);

    // ---------------------------------------------------------------- 6. device
    step = 'device authorization';
    const deviceConfig = await client.discovery(issuer, publicClientId, undefined, client.None(),
      { execute: [client.allowInsecureRequests] });
    check(typeof deviceConfig.serverMetadata().device_authorization_endpoint === 'string',
      'discovery announces the device authorization endpoint');
    const deviceStart = await client.initiateDeviceAuthorization(deviceConfig,
      { scope: 'openid profile' });
    check(/^[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}$/.test(deviceStart.user_code),
      'the user code is two groups of four unambiguous letters', deviceStart.user_code);
    const devicePolling = client.pollDeviceAuthorizationGrant(deviceConfig, deviceStart);
    const devicePage = await page.goto(deviceStart.verification_uri_complete);
    checkPageHeaders(devicePage, 'device', null);
    check(await page.locator('#user-code').innerText() === deviceStart.user_code,
      'the device page shows the code the device shows', deviceStart.user_code);
    await Promise.all([page.waitForURL('**/device'), page.click('#allow')]);
    const deviceTokens = await devicePolling;
    check(deviceTokens.claims().sub === idClaims.sub,
      'the device polled its way to an ID token for the same user');
    const deviceUser = await client.fetchUserInfo(deviceConfig, deviceTokens.access_token,
      idClaims.sub);
    check(deviceUser.preferred_username === username, 'the device\'s access token works');
    noBrowserProblems();

    // ---------------------------------------------------------------- 7. sign out
    step = 'sign out';
    const logoutState = client.randomState();
    const endSession = client.buildEndSessionUrl(codeConfig, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: redirectUri,
      state: logoutState,
    });
    const confirmation = await page.goto(endSession.href);
    check(confirmation.status() === 200 && await page.locator('#sign-out').isVisible(),
      'the end_session endpoint asks the user to confirm');
    checkPageHeaders(confirmation, 'sign-out', callback.origin);
    await Promise.all([page.waitForURL(atCallback), page.click('#sign-out')]);
    check(new URL(page.url()).searchParams.get('state') === logoutState,
      'sign-out returns to the registered post-logout address with its state', page.url());
    const afterLogout = await context.cookies(issuer.href);
    check(!afterLogout.some((c) => c.name === 'gh_session'), 'the session cookie is gone',
      afterLogout.map((c) => c.name));
    const silentState = client.randomState();
    const silent = client.buildAuthorizationUrl(codeConfig, {
      redirect_uri: redirectUri,
      scope: 'openid',
      prompt: 'none',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      state: silentState,
    });
    await Promise.all([page.waitForURL(atCallback), page.goto(silent.href)]);
    const silentResult = await refused(() => client.authorizationCodeGrant(codeConfig,
      new URL(page.url()), { pkceCodeVerifier: 'unused', expectedState: silentState }));
    check(silentResult?.error === 'login_required',
      'after signing out, prompt=none answers login_required', silentResult?.message);
    noBrowserProblems();
  } finally {
    await browser.close();
    await callback.close();
  }

  summary.checks = passed.length;
  summary.passed = passed;
  return summary;
}

main().then(
  (summary) => {
    process.stdout.write(`${JSON.stringify({ ok: true, ...summary }, null, 2)}\n`);
  },
  (error) => {
    const reason = error instanceof CheckFailed ? error.message : (error?.stack ?? String(error));
    const details = {};
    for (const key of ['error', 'error_description', 'status', 'code']) {
      if (error?.[key] !== undefined) details[key] = error[key];
    }
    if (error?.cause !== undefined && !(error.cause instanceof Error)) {
      details.cause = error.cause instanceof URLSearchParams
        ? Object.fromEntries(error.cause) : error.cause;
    }
    process.stderr.write(`browser flow failed at step "${step}": ${reason}\n`);
    if (Object.keys(details).length) process.stderr.write(`${JSON.stringify(details)}\n`);
    if (problems.length) process.stderr.write(`browser errors: ${JSON.stringify(problems)}\n`);
    process.stdout.write(`${JSON.stringify({ ok: false, step, passed }, null, 2)}\n`);
    process.exitCode = 1;
  },
);
