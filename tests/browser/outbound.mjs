// Outbound OAuth's authorization-code grant in a real headless Chromium, with a second
// Gatehouse as the external provider:
//
//   1. the OAuth tokens page of Gatehouse (after its own login) lists the profile, without a
//      token, and its Content-Security-Policy lets the form lead to the provider;
//   2. "Get OAuth token" leads to the provider's login and consent pages; denying there brings
//      the provider's access_denied back to Gatehouse's /oauth_redirect.do, shown and not
//      stored;
//   3. a second "Get OAuth token", started this time from the profile's page in the console
//      (/admin/profiles/NAME leads to the tokens page) and allowed, ends on "Token stored";
//   4. replaying that callback URL is refused: the authorization was used up;
//   5. a per-user profile gets the signed-in user's own token the same way.
// axe-core audits the pages on the way (the tokens page, the provider's login and consent, the
// answers) against WCAG 2.1 A and AA.
//
// The provider is reached as `localhost` and Gatehouse as `127.0.0.1`, so the two servers'
// cookies (which ignore ports) stay apart.
//
// Inputs (environment):
//   GATEHOUSE_CONSUMER                  Gatehouse, e.g. http://127.0.0.1:8080
//   GATEHOUSE_CONSUMER_USERNAME, GATEHOUSE_CONSUMER_PASSWORD   an administrator there
//   GATEHOUSE_PROVIDER_ORIGIN           the provider as the browser reaches it
//   GATEHOUSE_PROVIDER_USERNAME, GATEHOUSE_PROVIDER_PASSWORD   a user at the provider
//   GATEHOUSE_PROFILE                   the system-wide profile to authorize
//   GATEHOUSE_PER_USER_PROFILE          a per-user profile to authorize
//   CHROMIUM                            the browser (default /usr/bin/chromium)
//
// Prints a JSON summary on stdout; exits 1 with the failed step on stderr otherwise.

import { chromium } from 'playwright-core';

import { audit } from './axe.mjs';

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
const problems = [];

function check(condition, what, detail) {
  if (!condition) {
    const suffix = detail === undefined ? '' : `: ${JSON.stringify(detail)}`;
    throw new CheckFailed(`${what}${suffix}`);
  }
  passed.push(`${step}: ${what}`);
}

async function main() {
  const consumer = new URL(env('GATEHOUSE_CONSUMER'));
  const providerOrigin = new URL(env('GATEHOUSE_PROVIDER_ORIGIN')).origin;
  const profile = env('GATEHOUSE_PROFILE');
  const summary = { consumer: consumer.origin, provider: providerOrigin };

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
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const source = message.location().url || page.url();
      // Expected: the 400 answers this flow provokes on purpose, and the favicon.
      const expected = (message.text().includes('status of 400')
        && source.includes('/oauth_redirect.do')) || source.endsWith('/favicon.ico');
      if (!expected) problems.push(`${source}: ${message.text()}`);
    });
    const button = `#get-token-${profile}`;
    const status = `#status-${profile}`;

    step = 'tokens page';
    await page.goto(new URL('/outbound', consumer).href);
    check((await page.title()).startsWith('Sign in'), 'the tokens page asks for a login first',
      await page.title());
    await page.fill('#username', env('GATEHOUSE_CONSUMER_USERNAME'));
    await page.fill('#password', env('GATEHOUSE_CONSUMER_PASSWORD'));
    const [listing] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/outbound'),
      page.click('#sign-in'),
    ]);
    await page.waitForURL((url) => url.pathname === '/outbound');
    check(await page.locator(status).textContent() === 'no token',
      'after the login, the tokens page lists the profile without a token');
    const csp = (await listing.allHeaders())['content-security-policy'] ?? '';
    check(csp.includes(`form-action 'self' ${providerOrigin}`),
      "the page's form-action allows the provider's authorization endpoint", csp);
    await audit(page, 'tokens', check);

    step = 'deny at the provider';
    await Promise.all([
      page.waitForURL((url) => url.origin === providerOrigin),
      page.click(button),
    ]);
    const authorizeUrl = new URL(page.url());
    check(authorizeUrl.searchParams.get('code_challenge_method') === 'S256'
      && authorizeUrl.searchParams.get('state')?.length >= 43,
      'Gatehouse sends the browser to the provider with PKCE S256 and a state',
      authorizeUrl.search);
    await audit(page, "provider's login", check);
    await page.fill('#username', env('GATEHOUSE_PROVIDER_USERNAME'));
    await page.fill('#password', env('GATEHOUSE_PROVIDER_PASSWORD'));
    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/oauth/authorize/login')),
      page.click('#sign-in'),
    ]);
    await page.locator('#deny').waitFor();
    await audit(page, "provider's consent", check);
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/oauth_redirect.do'),
      page.click('#deny'),
    ]);
    const denial = await page.locator('[role=alert]').textContent();
    check(denial.includes('access_denied') && denial.includes('No token was stored'),
      "the provider's access_denied is shown and nothing is stored", denial);
    await audit(page, 'denial', check);

    step = 'allow at the provider, from the console';
    await page.goto(new URL(`/admin/profiles/${profile}`, consumer).href);
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/outbound'),
      page.click('#get-token'),
    ]);
    check(new URL(page.url()).hash === `#get-token-${profile}`,
      "the console's Get OAuth token leads to the profile's button", page.url());
    check(await page.locator(status).textContent() === 'no token',
      'after the denial the profile still has no token');
    await Promise.all([
      page.waitForURL((url) => url.origin === providerOrigin),
      page.click(button),
    ]);
    // Signed in at the provider already: its consent page comes at once.
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/oauth_redirect.do'),
      page.click('#allow'),
    ]);
    const callbackUrl = page.url();
    check(await page.locator('h1').textContent() === 'Token stored',
      'the code is redeemed and the token stored', await page.locator('main').textContent());
    await audit(page, 'token stored', check);
    await page.goto(new URL('/outbound', consumer).href);
    check(await page.locator(status).textContent() === 'token held',
      'the tokens page shows the token held');

    step = 'replay';
    const replay = await page.goto(callbackUrl);
    check(replay.status() === 400, 'the same callback a second time is refused', replay.status());

    step = 'per-user token';
    const own = env('GATEHOUSE_PER_USER_PROFILE');
    await page.goto(new URL('/outbound', consumer).href);
    check(await page.locator(`#status-${own}`).textContent() === 'no token',
      'the per-user profile is listed without a token of this user');
    // The provider may remember the consent given above and answer at once.
    await Promise.all([
      page.waitForURL((url) => url.origin === providerOrigin
        || url.pathname === '/oauth_redirect.do'),
      page.click(`#get-token-${own}`),
    ]);
    if (new URL(page.url()).origin === providerOrigin) {
      await Promise.all([
        page.waitForURL((url) => url.pathname === '/oauth_redirect.do'),
        page.click('#allow'),
      ]);
    }
    check(await page.locator('h1').textContent() === 'Token stored',
      "the user's own token is stored", await page.locator('main').textContent());

    check(problems.length === 0, 'the browser reported no errors', problems);
  } finally {
    await browser.close();
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
    process.stderr.write(`outbound browser flow failed at step "${step}": ${reason}\n`);
    if (problems.length) process.stderr.write(`browser errors: ${JSON.stringify(problems)}\n`);
    process.stdout.write(`${JSON.stringify({ ok: false, step, passed }, null, 2)}\n`);
    process.exitCode = 1;
  },
);
