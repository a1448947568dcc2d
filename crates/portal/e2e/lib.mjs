// What the browser journeys (flow.mjs, results.mjs, people.mjs) share: their QIAO_E2E_*
// settings, the i18n catalogs they compare texts with, and Debian's headless Chromium through
// playwright-core.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { mkdirSync, readFileSync } from 'node:fs';

/** The setting `name`; a journey is only run through crates/qiao/tests/browser.rs. */
export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through crates/qiao/tests/browser.rs`);
  return v;
}

/** A catalog (crates/web/i18n/*.toml: flat `key = "text"` lines) as a Map. */
export function parseCatalog(path) {
  const out = new Map();
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const rest = line.slice(eq + 1).trim();
    out.set(line.slice(0, eq).trim(), JSON.parse(rest.slice(0, rest.lastIndexOf('"') + 1)));
  }
  return out;
}

/**
 * Runs `click` (a function that clicks something that loads a page) and waits for the new
 * document's load event. The listener is in place before the click, so it waits for the new
 * document: `Promise.all([page.waitForLoadState('load'), click])` resolves at once on the page
 * already loaded, and a check after it can read the old page.
 */
export async function loadBy(page, click) {
  await Promise.all([page.waitForEvent('load'), click()]);
}

/**
 * Chromium in a persistent profile with one page, `width` px wide; creates the profile and
 * screenshot folders. This machine has no internet: without these flags Chromium stalls on
 * network look-ups.
 */
export async function launchChromium({ nodeModules, chromium: executablePath, profile, shots, width }) {
  const { chromium } = await import(pathToFileURL(join(nodeModules, 'playwright-core', 'index.mjs')).href);
  mkdirSync(shots, { recursive: true });
  mkdirSync(profile, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width, height: 900 },
    locale: 'en-US',
  });
  context.setDefaultTimeout(20000);
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

/**
 * Every English catalog text (a fixed part of 12+ characters, two words or more, lowercase, differing
 * from its Chinese) that `page` shows while its `<html lang>` is zh-CN: `[]` on an English page.
 * `en` and `zh` are the parsed catalogs. Text marked `translate="no"` (recorded words) is skipped.
 */
export async function englishOnChinesePage(page, en, zh) {
  if ((await page.locator('html').getAttribute('lang')) !== 'zh-CN') return [];
  // Text shown as recorded (`translate="no"`: an audit entry's decision) is data, not UI.
  const shown = await page.evaluate(() => {
    const body = document.body.cloneNode(true);
    for (const n of body.querySelectorAll('[translate=no]')) n.remove();
    return body.textContent;
  });
  const found = [];
  for (const [key, text] of en) {
    if (zh.get(key) === text) continue;
    for (const part of text.split(/\{[a-z_]+\}/)) {
      const p = part.trim();
      // A phrase (two words or more): a one-word text may be data (the user id `investigator`).
      if (p.length >= 12 && /[a-z]{3}/.test(p) && /\S\s+\S/.test(p) && shown.includes(p)) found.push(`${key}: ${p}`);
    }
  }
  return found;
}

/**
 * Ends a journey that failed at step `current` with `error`: a screenshot of the page it failed
 * on (`file`), the error and the page's text on stderr, exit status 1.
 */
export async function failJourney({ page, context, file, current, error }) {
  try {
    await page.screenshot({ path: file, fullPage: true });
  } catch {}
  console.error(`step ${current}: ${error.stack ?? error}`);
  console.error((await page.locator('body').innerText().catch(() => '')).slice(0, 4000));
  await context.close();
  process.exit(1);
}

/**
 * Issue 17: every page a journey visits, in both languages. Returns `other(file)`, called at a
 * screenshot: when the page on screen was reached by a GET (not a form's answer, not a
 * single-use sign-in link), it opens the same page in the other language through the page's own
 * language switch (`/lang?to=…&next=…`), saves `FILE.LANG.png`, runs the zh-CN check there
 * too, and switches back (the page is loaded again in its first language, so the journey goes
 * on where it was). Returns `{lang, screenshot, render_ms, english}` or null (not a GET page).
 */
export function bilingual(page, { en, zh }) {
  let method = null;
  page.on('response', (r) => {
    try {
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) method = r.request().method();
    } catch { /* a detached frame */ }
  });
  return async function other(file) {
    const url = new URL(page.url());
    const lang = await page.locator('html').getAttribute('lang');
    if (method !== 'GET' || url.search.includes('assertion=') || !['en', 'zh-CN'].includes(lang)) return null;
    const to = lang === 'zh-CN' ? 'en' : 'zh-CN';
    const next = encodeURIComponent(url.pathname + url.search);
    await page.goto(`${url.origin}/lang?to=${to}&next=${next}`);
    const shown = await page.locator('html').getAttribute('lang');
    if (shown !== to) throw new Error(`check failed: ${url.pathname} in ${to} shows lang=${shown}`);
    const screenshot = file.replace(/\.png$/, `.${to}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    const english = await englishOnChinesePage(page, en, zh);
    const render_ms = await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0];
      return n ? Math.round((n.responseEnd - n.requestStart) * 10) / 10 : null;
    });
    await page.goto(`${url.origin}/lang?to=${lang}&next=${next}`);
    method = 'GET';
    return { lang: to, screenshot, render_ms, english };
  };
}
