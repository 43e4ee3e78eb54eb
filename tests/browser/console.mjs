// The administrators' console in a real headless Chromium: an administrator signs in through
// the login page /admin leads to, opens the dashboard and the applications, creates an
// application through its form (first refused, with the message next to the field), sees its
// secret once, opens the users, their own tokens (a revocation, reached by keyboard, asking
// first), scopes, signing keys, configuration entries — a route, a scope rule, a table, an
// OAuth profile, a connection alias, a JWT provider and an OAuth provider created through
// their forms, the route edited, the
// table deleted after its confirmation — and the tools — testing the connection
// alias crm, which the test set up, through its form —, and opens the pages again at a phone's
// width. On the way it checks that every page carries the strict CSP, that nothing is loaded
// from another origin, that the browser reports no CSP violation or other error, and that the
// keyboard reaches the page with a visible focus. Each page, at both sizes, and the main ones in
// the dark colour scheme too, is audited by axe-core against WCAG 2.1 A and AA (contrast,
// labels, names of buttons and links, title, language, image text, duplicate ids): any
// violation fails the test.
//
// Inputs (environment):
//   GATEHOUSE_ISSUER                 the issuer, e.g. http://127.0.0.1:8080
//   GATEHOUSE_USERNAME, GATEHOUSE_PASSWORD   a user holding admin
//   CHROMIUM                         the browser (default /usr/bin/chromium)
//   GATEHOUSE_SCREENSHOTS            optional: the directory to save the console's screenshots in
//
// Prints a JSON summary on stdout; exits 1 with the failed step on stderr otherwise.

import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { audit } from './axe.mjs';

const TIMEOUT_MS = 20_000;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

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
// Requests to anywhere but Gatehouse.
const elsewhere = [];

function check(condition, what, detail) {
  if (!condition) {
    const suffix = detail === undefined ? '' : `: ${JSON.stringify(detail)}`;
    throw new CheckFailed(`${what}${suffix}`);
  }
  passed.push(`${step}: ${what}`);
}

const screenshots = [];
async function screenshot(page, name) {
  const dir = process.env.GATEHOUSE_SCREENSHOTS;
  if (!dir) return;
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: false });
  screenshots.push(`${name}.png`);
}

/** The headers of every console page. */
function checkHeaders(response, what) {
  const headers = response.headers();
  const csp = headers['content-security-policy'] ?? '';
  for (const directive of ["default-src 'none'", "style-src 'self'", "form-action 'self'",
    "frame-ancestors 'none'", "base-uri 'none'"]) {
    check(csp.includes(directive), `the ${what} page's CSP has ${directive}`, csp);
  }
  check(!csp.includes('script-src') && !csp.includes('unsafe'),
    `the ${what} page allows no script at all`, csp);
  check(headers['cache-control'] === 'no-store', `the ${what} page is not cached`,
    headers['cache-control']);
}

async function open(page, url, what) {
  const response = await page.goto(url);
  check(response.status() === 200, `the ${what} page loads`, response.status());
  checkHeaders(response, what);
  await audit(page, what, check);
  return response;
}

async function main() {
  const issuer = new URL(env('GATEHOUSE_ISSUER'));
  const username = env('GATEHOUSE_USERNAME');
  const password = env('GATEHOUSE_PASSWORD');
  const at = (path) => new URL(path, issuer).href;

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
      '--hide-scrollbars',
    ],
  });
  try {
    const context = await browser.newContext({ viewport: DESKTOP });
    context.setDefaultTimeout(TIMEOUT_MS);
    const page = await context.newPage();
    page.on('request', (request) => {
      if (new URL(request.url()).origin !== issuer.origin) elsewhere.push(request.url());
    });
    // A CSP violation is reported as a console error; so is any failed load.
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const source = message.location().url || page.url();
      // The browser asks for a favicon on its own; the 422 of a refused form is expected.
      const expected = message.text().includes('status of 4')
        && (source.endsWith('/favicon.ico') || /\/admin\/(applications|routes)$/.test(source));
      if (!expected) problems.push(`${source}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`${page.url()}: ${error.message}`));

    step = 'sign in';
    const login = await page.goto(at('/admin'));
    check(login.status() === 200, 'without a session, /admin shows the login page', login.status());
    check((await page.title()).startsWith('Sign in'), 'the login page is titled Sign in',
      await page.title());
    await audit(page, 'login', check);
    await page.fill('#username', username);
    await page.fill('#password', password);
    const [dashboard] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/admin'),
      page.click('#sign-in'),
    ]);
    await page.waitForURL(at('/admin'));
    check(dashboard.status() === 200, 'signing in leads back to the dashboard', dashboard.status());
    checkHeaders(dashboard, 'dashboard');
    await audit(page, 'dashboard', check);

    step = 'dashboard';
    check(await page.locator('h1').innerText() === 'Dashboard', 'the dashboard is shown');
    const applications = Number(await page.locator('#count-applications').innerText());
    check(applications >= 1, 'the dashboard counts the applications', applications);
    check((await page.locator('#database-health').innerText()).includes('answering'),
      'the dashboard says the database answers');
    check((await page.locator('#keys-health').innerText()).includes('signing'),
      'the dashboard says a key signs');
    const rules = await page.evaluate(() =>
      Array.from(document.styleSheets).reduce((n, sheet) => n + sheet.cssRules.length, 0));
    check(rules > 0, 'the stylesheet applies', rules);
    step = 'keyboard';
    await page.keyboard.press('Tab');
    const skip = await page.evaluate(() => ({
      text: document.activeElement?.textContent,
      outline: getComputedStyle(document.activeElement).outlineStyle,
    }));
    check(skip.text === 'Skip to content', 'the first Tab reaches the skip link', skip);
    check(skip.outline !== 'none', 'the focused link shows its focus', skip);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => ({
      text: document.activeElement?.textContent,
      outline: getComputedStyle(document.activeElement).outlineStyle,
    }));
    check(focused.outline !== 'none', 'a focused navigation link shows its focus', focused);
    await page.locator('main').click({ position: { x: 1, y: 1 } });
    await screenshot(page, 'console-dashboard');

    step = 'applications';
    await open(page, at('/admin/applications'), 'applications');
    check(await page.locator('tbody tr').count() === applications,
      'the list shows every application', await page.locator('tbody tr').count());
    await screenshot(page, 'console-applications');
    await page.fill('#q', 'photo');
    await Promise.all([page.waitForURL(/q=photo/), page.click('form.search button')]);
    check(await page.locator('tbody tr').count() === 1, 'a search narrows the list');

    step = 'create: refused';
    await Promise.all([page.waitForURL(at('/admin/new/applications')),
      page.click('#new-application')]);
    const unlabelled = await page.evaluate(() =>
      Array.from(document.querySelectorAll('main input:not([type=hidden]), main select, main textarea'))
        .filter((input) => !input.labels || input.labels.length === 0)
        .map((input) => input.name));
    check(unlabelled.length === 0, 'every input of the form has a label', unlabelled);
    await page.fill('#name', 'Inventory API');
    await page.fill('#description', 'The stock service the shops call.');
    await page.check('#grant_types-client_credentials');
    await page.fill('#access_token_lifespan', '0');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#save'),
    ]);
    check(refused.status() === 422, 'the registry refuses a lifespan of 0', refused.status());
    check(await page.locator('#access_token_lifespan-error').isVisible(),
      'the message is next to the lifespan');
    check(await page.locator('#name').inputValue() === 'Inventory API',
      'what was typed is kept');
    await audit(page, 'refused application', check);
    await page.locator('#access_token_lifespan').scrollIntoViewIfNeeded();
    await screenshot(page, 'console-application-refused');

    step = 'create';
    await page.fill('#access_token_lifespan', '900');
    const [created] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#save'),
    ]);
    check(created.status() === 303, 'the form redirects once it is saved', created.status());
    await page.waitForURL(/\/admin\/applications\/[0-9a-f]{32}$/);
    const secret = await page.locator('#new-secret').inputValue();
    check(secret.length >= 32, 'the new secret is shown', secret.length);
    check((await page.locator('#flash').innerText()).includes('Inventory API created'),
      'the page says the application was created');
    await audit(page, 'new application', check);
    await screenshot(page, 'console-application');
    await page.reload();
    check(await page.locator('#new-secret').count() === 0, 'a reload shows the secret no more');

    step = 'users';
    await open(page, at('/admin/users'), 'users');
    check(await page.locator('tbody tr').count() >= 1, 'the users are listed');
    await screenshot(page, 'console-users');
    await open(page, at('/admin/new/users'), 'new user');

    step = 'tokens';
    await open(page, at(`/admin/users/${encodeURIComponent(username)}`), 'user');
    const [tokens] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/tokens')),
      page.click('#tokens'),
    ]);
    check(tokens.status() === 200, 'a user\'s page leads to their tokens', tokens.status());
    checkHeaders(tokens, 'tokens');
    await audit(page, 'tokens', check);
    check(await page.locator('tbody tr').count() >= 1, 'the signed-in session is listed');
    await screenshot(page, 'console-tokens');
    const revoke = page.locator('a.revoke').first();
    check(((await revoke.getAttribute('aria-label')) ?? '').startsWith('Revoke the '),
      'each revoke link says what it revokes');
    await revoke.focus();
    await Promise.all([page.waitForURL(/\/tokens\/revoke\?handle=/), page.keyboard.press('Enter')]);
    check(await page.locator('#confirm').isVisible(), 'a revocation asks for a confirmation');
    await audit(page, 'revocation', check);
    await Promise.all([page.waitForURL(/\/tokens$/), page.click('#cancel')]);
    await open(page, at('/admin/scopes'), 'scopes');
    await open(page, at('/admin/new/scopes'), 'new scope');
    await open(page, at('/admin/scopes/useraccount'), 'scope');
    await open(page, at('/admin/keys'), 'signing keys');
    for (const section of ['scope-rules', 'routes', 'tables', 'profiles', 'aliases', 'providers', 'jwt-providers']) {
      await open(page, at(`/admin/${section}`), section);
      await open(page, at(`/admin/new/${section}`), `new ${section}`);
    }

    step = 'entry';
    // A configuration entry's form is one input per field, refused next to the field too.
    await open(page, at('/admin/new/routes'), 'new route');
    await page.fill('#name', 'stock');
    await page.fill('#prefix', '/api/stock');
    await page.fill('#upstream', 'ftp://stock.example.org');
    const [refusedRoute] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#save'),
    ]);
    check(refusedRoute.status() === 422, 'the registry refuses an ftp upstream', refusedRoute.status());
    check(await page.locator('#upstream-error').isVisible(), 'the message is next to the upstream');
    await audit(page, 'refused route', check);
    await page.fill('#upstream', 'https://stock.example.org');
    await Promise.all([page.waitForURL(at('/admin/routes/stock')), page.click('#save')]);
    await page.fill('#timeout_seconds', '20');
    await Promise.all([page.waitForURL(at('/admin/routes/stock')), page.click('#save')]);
    check((await page.locator('#flash').innerText()).includes('stock saved'),
      'the page says the route was saved');
    // The other kinds through their forms too, each shown as saved after the redirect; the
    // profile obtains its tokens from the provider crm the test set up, and the alias sends
    // the profile's.
    for (const [section, one, name, fields, secrets = {}] of [
      ['scope-rules', 'Scope rule', 'stock-read',
        { methods: 'GET\nHEAD', path: '/api/stock/**', scopes: 'useraccount' }],
      ['tables', 'Table', 'incidents', { read_roles: 'staff', write_roles: 'oncall' }],
      ['profiles', 'OAuth profile', 'stock', { provider: 'crm', scopes: 'useraccount' }],
      ['aliases', 'Connection alias', 'stock',
        { base_url: 'https://stock.example.org/api', profile: 'stock', allowed_roles: 'integration' }],
      ['jwt-providers', 'JWT provider', 'partner',
        { issuer: 'https://idp.example.org', jwks_url: 'https://idp.example.org/jwks' }],
      // A secret is sent but never shown again.
      ['providers', 'OAuth provider', 'stock-idp',
        { token_url: 'https://stock.example.org/token', client_id: 'gatehouse' },
        { client_secret: 'stock-idp-secret' }],
    ]) {
      await open(page, at(`/admin/new/${section}`), `new ${section}`);
      await page.fill('#name', name);
      for (const [field, value] of Object.entries({ ...fields, ...secrets })) {
        await page.fill(`#${field}`, value);
      }
      await Promise.all([page.waitForURL(at(`/admin/${section}/${name}`)), page.click('#save')]);
      check((await page.locator('#flash').innerText()).includes(`${one} ${name} created`),
        `the page says the ${section} entry was created`);
      const saved = {};
      for (const field of Object.keys(fields)) saved[field] = await page.locator(`#${field}`).inputValue();
      check(JSON.stringify(saved) === JSON.stringify(fields), `the ${section} entry shows what was sent`,
        saved);
      for (const secret of Object.values(secrets)) {
        check(!(await page.content()).includes(secret), `the ${section} entry does not show its secret`);
      }
    }
    await open(page, at('/admin/tables/incidents'), 'table');
    await Promise.all([page.waitForURL(at('/admin/tables/incidents/delete')), page.click('#delete')]);
    await audit(page, 'deletion', check);
    await Promise.all([page.waitForURL(at('/admin/tables')), page.click('#confirm')]);
    check((await page.locator('#flash').innerText()).includes('Table incidents deleted'),
      'the list says the table was deleted');
    check(await page.locator('a[href="/admin/tables/incidents"]').count() === 0,
      'the deleted table is listed no more');

    step = 'tools';
    await open(page, at('/admin/tools'), 'tools');
    await screenshot(page, 'console-tools');
    await open(page, at('/admin/tools/access?method=GET&path=%2Fapi%2Fnow%2Ftable%2Fincident'),
      'who may call this');
    check(await page.locator('#answer').isVisible(), 'who may call a path is answered');
    await screenshot(page, 'console-tool-access');
    await open(page, at('/admin/tools/token'), 'why was this token refused');
    await page.fill('#token', 'gh_at_never-issued');
    const [inspected] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#inspect'),
    ]);
    check(inspected.status() === 200, 'a token is checked', inspected.status());
    check(await page.locator('#verdict').innerText() === 'Refused', 'an unknown token is refused',
      await page.locator('#verdict').innerText());
    await audit(page, 'token report', check);
    await page.locator('#report').scrollIntoViewIfNeeded();
    await screenshot(page, 'console-tool-token');
    const [aliasTool] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/admin/tools/alias'),
      page.goto(at('/admin/tools')).then(() => page.click('#tool-alias')),
    ]);
    check(aliasTool.status() === 200, 'the tools page leads to the alias test', aliasTool.status());
    checkHeaders(aliasTool, 'alias test');
    await audit(page, 'alias test', check);
    await page.selectOption('#alias', 'crm');
    await page.fill('#path', '/whoami');
    const [tested] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#test'),
    ]);
    check(tested.status() === 200, 'the alias test answers directly', tested.status());
    checkHeaders(tested, 'alias test report');
    check(await page.locator('#verdict').innerText() === 'Answered', 'the API behind the alias answered',
      await page.locator('#verdict').innerText());
    const steps = await page.locator('#steps tbody tr').allInnerTexts();
    check(steps.length === 2 && steps[0].includes('newly obtained from the provider')
      && steps[1].includes('answered HTTP 200'), 'the steps are the token obtained and the answer', steps);
    check((await page.locator('#preview').innerText()).includes('integration-svc'),
      'the start of the answer is shown');
    await audit(page, 'alias report', check);
    await page.locator('#probe').scrollIntoViewIfNeeded();
    await screenshot(page, 'console-tool-alias');

    step = 'dark';
    // The stylesheet follows the reader's colour scheme: the dark one must meet AA as well.
    await page.emulateMedia({ colorScheme: 'dark' });
    for (const [path, what] of [['/admin', 'dashboard'], ['/admin/applications', 'applications'],
      ['/admin/new/applications', 'new application'],
      [`/admin/users/${encodeURIComponent(username)}`, 'user'],
      [`/admin/users/${encodeURIComponent(username)}/tokens`, 'tokens'], ['/admin/keys', 'signing keys'],
      ['/admin/profiles', 'profiles'], ['/admin/new/providers', 'new provider'],
      ['/admin/tools', 'tools']]) {
      await open(page, at(path), `${what} (dark)`);
    }
    await page.emulateMedia({ colorScheme: 'light' });

    step = 'phone';
    await page.setViewportSize(PHONE);
    await open(page, at('/admin'), 'dashboard');
    const overflow = await page.evaluate(() =>
      document.documentElement.scrollWidth - document.documentElement.clientWidth);
    check(overflow <= 0, 'the dashboard fits a phone\'s width', overflow);
    await screenshot(page, 'console-phone-dashboard');
    await open(page, at('/admin/applications'), 'applications');
    await screenshot(page, 'console-phone-applications');
    await open(page, at('/admin/new/applications'), 'new application');
    await open(page, at(`/admin/users/${encodeURIComponent(username)}/tokens`), 'tokens');
    await open(page, at('/admin/tools'), 'tools');

    check(elsewhere.length === 0, 'nothing was requested from another origin', elsewhere);
    check(problems.length === 0, 'the browser reported no CSP violation or other error',
      problems);
  } finally {
    await browser.close();
  }
  return { checks: passed.length, passed, screenshots };
}

main().then(
  (summary) => {
    process.stdout.write(`${JSON.stringify({ ok: true, ...summary }, null, 2)}\n`);
  },
  (error) => {
    const reason = error instanceof CheckFailed ? error.message : (error?.stack ?? String(error));
    process.stderr.write(`console flow failed at step "${step}": ${reason}\n`);
    if (problems.length) process.stderr.write(`browser errors: ${JSON.stringify(problems)}\n`);
    process.stdout.write(`${JSON.stringify({ ok: false, step, passed }, null, 2)}\n`);
    process.exitCode = 1;
  },
);
