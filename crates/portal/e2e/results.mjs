// The feasibility results journey (issue 17, items 2 and 3), driven in Debian's headless Chromium
// by playwright-core against `qiao demo` (its seeded project in the feasibility stage, run on
// every site: the funnels answered, the demographics waiting in each site's approval queue).
//
// Run by crates/qiao/tests/browser.rs (portal_results_in_headless_chromium), which passes the
// addresses and the sponsor's login in QIAO_E2E_* variables. Prints one JSON line per step:
// {"step", "screenshot", "url", "render_ms", ...what it checked}. Exits non-zero at the first
// failed check, with a screenshot of the page it failed on (results-failed.png).
//
// Texts are compared with crates/web/i18n/*.toml, never written here; after the switch to
// zh-CN no page may show an English catalog string.

import { join } from 'node:path';
import { bilingual, englishOnChinesePage, env, failJourney, launchChromium, loadBy, parseCatalog } from './lib.mjs';


const NODE_MODULES = env('QIAO_E2E_NODE_MODULES');
const SHOTS = env('QIAO_E2E_SCREENSHOTS');
const HUB = env('QIAO_E2E_HUB');
const USER = env('QIAO_E2E_SPONSOR');
const PASSWORD = env('QIAO_E2E_SPONSOR_PASSWORD');
const PROJECT = env('QIAO_E2E_PROJECT');
const PROFILE = env('QIAO_E2E_PROFILE');
const CHROMIUM = env('QIAO_CHROMIUM');
const CATALOGS = env('QIAO_E2E_CATALOGS');

const CAT = { en: parseCatalog(join(CATALOGS, 'en.toml')), 'zh-CN': parseCatalog(join(CATALOGS, 'zh-CN.toml')) };

/** The text of `key` in `lang`, up to its first placeholder (a prefix every rendering starts with). */
function prefix(lang, key) {
  const text = CAT[lang].get(key);
  if (text === undefined) throw new Error(`no key ${key} in ${lang}`);
  return text.split('{')[0];
}

/** The fixed (non-placeholder) parts of `key`'s text in `lang`. */
function fixedParts(lang, key) {
  return CAT[lang].get(key).split(/\{[a-z_]+\}/).map((p) => p.trim()).filter((p) => p);
}

const { context, page } = await launchChromium({
  nodeModules: NODE_MODULES, chromium: CHROMIUM, profile: PROFILE, shots: SHOTS, width: 1400,
});

let stepNo = 0;
const other = bilingual(page, { en: CAT.en, zh: CAT['zh-CN'] });
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
async function renderMs() {
  return page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return n ? Math.round((n.responseEnd - n.requestStart) * 10) / 10 : null;
  });
}
async function shot(step, extra = {}) {
  stepNo += 1;
  const file = join(SHOTS, `results-${String(stepNo).padStart(2, '0')}-${step}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const english = await englishStrings();
  check(english.length === 0, `English catalog strings on a zh-CN page (${step}): ${english.join(' | ')}`);
  const lang = await page.locator('html').getAttribute('lang');
  const [url, render_ms] = [page.url(), await renderMs()];
  const alt = await other(file);
  check(!alt || alt.english.length === 0, `English catalog strings on the zh-CN page (${step}): ${alt?.english.join(' | ')}`);
  console.log(JSON.stringify({ step, lang, screenshot: file, url, render_ms, alt, ...extra }));
}
const body = async () => page.locator('main').innerText();

/** Every English catalog string shown while the page is zh-CN (checked at every screenshot). */
const englishStrings = () => englishOnChinesePage(page, CAT.en, CAT['zh-CN']);

/** The results of the project's cohort, reloaded until every site's funnel is drawn. */
async function results(lang) {
  const project = `${HUB}/projects/${PROJECT}`;
  let funnels = 0;
  for (let i = 0; i < 60; i += 1) {
    const resp = await page.goto(project);
    check(resp.status() === 200, `${project}: ${resp.status()}`);
    funnels = await page.locator('svg[id*="-funnel-"]:not([id$="-funnel-total"])').count();
    if (funnels >= 2 && (await page.locator('svg[id$="-funnel-total"]').count()) === 1) break;
    await page.waitForTimeout(500);
  }
  check(funnels >= 2, `per-site funnels drawn: ${funnels}`);
  // The funnel starts at the persons with a qualifying event, then the rules, then the final cohort.
  const bars = await page.locator('svg[id$="-funnel-total"] g.bar > title').allTextContents();
  check(bars.length >= 2, `total funnel bars: ${bars}`);
  check(bars[0].startsWith(prefix(lang, 'feas.step_initial')), `first bar is the qualifying events: ${bars[0]}`);
  check(bars[bars.length - 1].startsWith(prefix(lang, 'feas.step_final')), `last bar is the final cohort: ${bars}`);
  check(/\(100%\)|（100%）|100%/.test(bars[0]), `the first bar is 100%: ${bars[0]}`);
  // Where the project stands and what comes next (issue 17 item 7).
  const step = (await page.locator('nav.stages li.current').innerText()).trim();
  check(step === CAT[lang].get('guide.step_feasibility'), `current step: ${step}`);
  const next = await page.locator('#next-step').innerText();
  check(next.includes(CAT[lang].get('guide.next_select')), `next step: ${next}`);
  // One notation, explained in a legend.
  const text = await body();
  check(text.includes(CAT[lang].get('feas.legend_withheld')), 'the legend of the notation');
  // Who each site's pending demographics wait on (or that it answered).
  const statuses = await page.locator('table.sites tbody td:nth-child(3)').allTextContents();
  const says = (s, key) => fixedParts(lang, key).every((p) => s.includes(p));
  check(
    statuses.length >= 2 &&
      statuses.every((s) => ['feas.status_done', 'feas.status_waiting_steward', 'feas.status_not_picked'].some((k) => says(s, k))),
    `per-site demographics status names who it waits on: ${statuses}`,
  );
  check(statuses.some((s) => says(s, 'feas.status_waiting_steward')), `some site waits for its data steward: ${statuses}`);
  return { bars, statuses };
}

/**
 * Launches a characterization (cohort 1, the covariates a site under differential privacy
 * releases named) and an incidence analysis (cohort 1 in cohort 1, two times at risk, by gender)
 * from the project page's forms; returns their result pages' paths.
 */
async function launchAnalyses() {
  const project = `${HUB}/projects/${PROJECT}`;
  const fills = {
    characterization: async (f) => {
      await f.locator('select[name=target]').selectOption('1');
      await f.locator('textarea[name=covariates]').fill('8507001,8532001');
    },
    incidence: async (f) => {
      await f.locator('select[name=target]').selectOption('1');
      await f.locator('select[name=outcome]').selectOption('1');
      await f.locator('textarea[name=tars]').fill('start+0:end+0\nstart+0:start+365');
      await f.locator('input[name=strata][value=gender]').check();
    },
  };
  const paths = {};
  for (const [kind, fill] of Object.entries(fills)) {
    await page.goto(project);
    await page.locator(`details:has(input[name=kind][value=${kind}]) > summary`).click();
    const form = page.locator(`form:has(input[name=kind][value=${kind}])`);
    await fill(form);
    await loadBy(page, () => form.locator('button[type=submit]').click());
    const path = new URL(page.url()).pathname;
    check(/\/analyses\/\d+$/.test(path), `${kind} launched: ${page.url()}`);
    paths[kind] = path;
  }
  return paths;
}

/** An analysis result page in `lang`, reloaded until every site answered; `drawn` must be on it. */
async function analysisPage(lang, path, drawn) {
  const done = fixedParts(lang, 'feas.status_done');
  let statuses = [];
  for (let i = 0; i < 60; i += 1) {
    const resp = await page.goto(`${HUB}${path}`);
    check(resp.status() === 200, `${path}: ${resp.status()}`);
    statuses = await page.locator('ul.statuses li').allTextContents();
    if (statuses.length >= 2 && statuses.every((s) => done.every((p) => s.includes(p)))) break;
    await page.waitForTimeout(300);
  }
  check(statuses.length >= 2 && statuses.every((s) => done.every((p) => s.includes(p))), `every site answered ${path}: ${statuses}`);
  for (const sel of drawn) check((await page.locator(sel).count()) >= 1, `${path}: ${sel} shown`);
  const text = await body();
  check(text.includes(prefix(lang, 'ana.sdc')), `${path}: says the disclosure control applied`);
  return statuses;
}

let current = 'start';
try {
  current = 'login';
  await page.goto(`${HUB}/login`);
  await page.fill('input[name=username]', USER);
  await page.fill('input[name=password]', PASSWORD);
  await loadBy(page, () => page.click('main form button[type=submit]'));
  check(new URL(page.url()).pathname !== '/login', `${USER} signed in`);

  current = 'favicon';
  const icon = await page.request.get(`${HUB}/favicon.ico`);
  check(icon.status() === 200 && icon.headers()['content-type'] === 'image/svg+xml', `favicon: ${icon.status()}`);
  check((await page.locator('link[rel=icon]').count()) === 1, 'the pages link the favicon');

  current = 'results-en';
  const en = await results('en');
  // At 1400 px the page uses the width; nothing scrolls sideways.
  const wide = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(wide[0] <= wide[1], `no horizontal scroll at 1400 px: ${wide}`);
  await page.locator('svg[id$="-funnel-total"]').first().scrollIntoViewIfNeeded();
  await shot('results-funnel-en', { bars: en.bars, statuses: en.statuses });

  current = 'results-390';
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const narrow = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  const wideOnes = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.scroll, table'))
    .slice(0, 8).map((e) => `${e.tagName.toLowerCase()}.${e.className?.baseVal ?? e.className}:${Math.round(e.getBoundingClientRect().right)}`));
  check(narrow[0] <= narrow[1] + 1, `tables scroll inside their container at 390 px: ${narrow}; too wide: ${wideOnes}`);
  await shot('results-phone-en', { scroll_width: narrow[0] });
  await page.setViewportSize({ width: 1400, height: 900 });

  current = 'results-zh';
  await loadBy(page, () => page.click('.lang-switch a[lang=zh-CN]'));
  const lang = await page.locator('html').getAttribute('lang');
  check(lang === 'zh-CN', `html lang=${lang}`);
  const zh = await results('zh-CN');
  const english = await englishStrings();
  check(english.length === 0, `English catalog strings on a zh-CN page: ${english.join(' | ')}`);
  await page.locator('svg[id$="-funnel-total"]').first().scrollIntoViewIfNeeded();
  await shot('results-funnel-zh', { bars: zh.bars, statuses: zh.statuses });

  // Issue 15: the network analyses from the project page, their result pages in zh-CN and en.
  current = 'analyses-launch';
  const started = Date.now();
  const paths = await launchAnalyses();
  const pages = [
    ['char', paths.characterization, ['table.covariates', 'table.population']],
    ['inc', paths.incidence, ['table.incidence', 'svg.forest[id^="rate-"] line.whisker']],
  ];
  for (const l of ['zh-CN', 'en']) {
    if (l === 'en') {
      await loadBy(page, () => page.click('.lang-switch a[lang=en]'));
    }
    for (const [name, path, drawn] of pages) {
      current = `analysis-${name}-${l}`;
      const statuses = await analysisPage(l, path, drawn);
      if (l === 'zh-CN') {
        const eng = await englishStrings();
        check(eng.length === 0, `English catalog strings on ${path} in zh-CN: ${eng.join(' | ')}`);
      }
      await shot(`analysis-${name}-${l === 'en' ? 'en' : 'zh'}`, { statuses, ms_since_launch: Date.now() - started });
    }
  }
} catch (error) {
  await failJourney({ page, context, file: join(SHOTS, 'results-failed.png'), current, error });
}
await context.close();
