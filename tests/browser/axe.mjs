// axe-core's WCAG audit of a page, shared by the browser tests.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// axe-core runs inside the page. It is evaluated through the DevTools protocol, which the page's
// CSP (no script at all) does not govern, so the pages are audited as they are served.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'),
  'utf8');
const AXE_OPTIONS = {
  runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  // Not tagged WCAG in axe any more, yet a duplicate id breaks a label's `for`.
  rules: { 'duplicate-id': { enabled: true }, 'duplicate-id-aria': { enabled: true } },
  resultTypes: ['violations'],
};
// The rules every audit must have run, so a renamed or retired rule cannot pass silently.
const AXE_REQUIRED = ['color-contrast', 'label', 'button-name', 'link-name', 'document-title',
  'html-has-lang', 'image-alt', 'duplicate-id'];

/**
 * Audits the page as it stands with axe-core, through the test's `check(condition, what,
 * detail)`: every required rule ran, and no violation — else the element, its HTML and, for
 * contrast, the colours and the ratios.
 */
export async function audit(page, what, check) {
  if (!await page.evaluate(() => typeof window.axe === 'object')) {
    await page.evaluate(AXE_SOURCE);
  }
  const results = await page.evaluate((options) => window.axe.run(document, options)
    .then((r) => ({
      ran: [...r.violations, ...r.passes, ...r.incomplete, ...r.inapplicable].map((x) => x.id),
      violations: r.violations.map((v) => ({
        rule: v.id,
        help: v.help,
        nodes: v.nodes.map((n) => {
          const data = n.any.concat(n.all, n.none).map((c) => c.data).find((d) => d?.fgColor);
          return {
            target: n.target.join(' '),
            html: n.html,
            ...(data ? { fg: data.fgColor, bg: data.bgColor, ratio: data.contrastRatio,
              needed: data.expectedContrastRatio } : {}),
            why: n.failureSummary,
          };
        }),
      })),
    })), AXE_OPTIONS);
  const missing = AXE_REQUIRED.filter((rule) => !results.ran.includes(rule));
  check(missing.length === 0, `axe ran every required rule on the ${what} page`, missing);
  const size = page.viewportSize();
  check(results.violations.length === 0,
    `axe finds no WCAG A/AA violation on the ${what} page at ${size.width}×${size.height}`,
    results.violations);
}
