// The survival and regression journey (issue 16, item 6), driven in Debian's headless Chromium
// by playwright-core against `qiao demo --exact` (its seeded project in the feasibility stage;
// sites releasing exact aggregates, so that a federated regression runs).
//
// The sponsor attaches a comparator and an outcome cohort to the project, launches a survival
// analysis (Kaplan–Meier) and a federated Cox regression from the project page's forms (one
// refused regression form first: its bad field named), follows the regression run until it
// converges, and reads both result pages in zh-CN and en. Prints one JSON line per step:
// {"step", "screenshot", "url", ...what it read}; browser.rs compares the numbers read with an
// in-process fit over the demo's stores. Exits non-zero at the first failed check, with a
// screenshot of the page it failed on (analyses-failed.png).
//
// Texts are compared with crates/web/i18n/*.toml, never written here; on a zh-CN page no English
// catalog string may show (checked at every screenshot).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { englishOnChinesePage, env, failJourney, launchChromium, loadBy, parseCatalog } from './lib.mjs';

const SHOTS = env('QIAO_E2E_SCREENSHOTS');
const HUB = env('QIAO_E2E_HUB');
const PROJECT = env('QIAO_E2E_PROJECT');
const CATALOGS = env('QIAO_E2E_CATALOGS');
const COMPARATOR = readFileSync(env('QIAO_E2E_COMPARATOR_DEF'), 'utf8');
const OUTCOME = readFileSync(env('QIAO_E2E_OUTCOME_DEF'), 'utf8');

const CAT = { en: parseCatalog(join(CATALOGS, 'en.toml')), 'zh-CN': parseCatalog(join(CATALOGS, 'zh-CN.toml')) };

/** The fixed (non-placeholder) parts of `key`'s text in `lang`. */
function fixedParts(lang, key) {
  return CAT[lang].get(key).split(/\{[a-z0-9_]+\}/).map((p) => p.trim()).filter((p) => p);
}

const { context, page } = await launchChromium({
  nodeModules: env('QIAO_E2E_NODE_MODULES'), chromium: env('QIAO_CHROMIUM'), profile: env('QIAO_E2E_PROFILE'), shots: SHOTS, width: 1400,
});

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
let stepNo = 0;
async function shot(step, extra = {}) {
  stepNo += 1;
  const file = join(SHOTS, `analyses-${String(stepNo).padStart(2, '0')}-${step}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const english = await englishOnChinesePage(page, CAT.en, CAT['zh-CN']);
  check(english.length === 0, `English catalog strings on a zh-CN page (${step}): ${english.join(' | ')}`);
  console.log(JSON.stringify({ step, screenshot: file, url: page.url(), ...extra }));
}
const project = `${HUB}/projects/${PROJECT}`;
/** The launch form of analysis `kind` and its `<details>` summary. */
const launch = (kind) => [`form:has(input[name=kind][value=${kind}])`, `details:has(input[name=kind][value=${kind}]) > summary`];

/**
 * Submits the project page's form `formSel` (opening its `<details>` `detailsSel` first, if
 * any), filled by `fill`; the new URL's path.
 */
async function submitForm(formSel, fill, detailsSel = null) {
  await page.goto(project);
  if (detailsSel) await page.locator(detailsSel).click();
  const form = page.locator(formSel);
  await fill(form);
  await loadBy(page, () => form.locator('button[type=submit]').click());
  return new URL(page.url()).pathname;
}

/** The regression form filled (Cox of cohort 3 in 1 against 2) with `covariates`. */
const regression = (covariates) => async (f) => {
  await f.locator('select[name=model]').selectOption('cox');
  await f.locator('select[name=target]').selectOption('1');
  await f.locator('select[name=comparator]').selectOption('2');
  await f.locator('select[name=outcome]').selectOption('3');
  await f.locator('input[name=covariates]').fill(covariates);
};

/** `path` reloaded until `ready` holds on it (at most `tries` times, 500 ms apart). */
async function until(path, ready, tries, what) {
  for (let i = 0; i < tries; i += 1) {
    const resp = await page.goto(`${HUB}${path}`);
    check(resp.status() === 200, `${path}: ${resp.status()}`);
    if (await ready()) return;
    await page.waitForTimeout(500);
  }
  throw new Error(`${path}: ${what} did not happen`);
}

let current = 'start';
try {
  current = 'login';
  await page.goto(`${HUB}/login`);
  await page.fill('input[name=username]', env('QIAO_E2E_SPONSOR'));
  await page.fill('input[name=password]', env('QIAO_E2E_SPONSOR_PASSWORD'));
  await loadBy(page, () => page.click('main form button[type=submit]'));
  check(new URL(page.url()).pathname !== '/login', 'the sponsor signed in');

  current = 'attach';
  for (const [name, def] of [['Celecoxib (comparator)', COMPARATOR], ['GI bleed', OUTCOME]]) {
    await submitForm('form[action$="/cohorts"]', async (f) => {
      await f.locator('input[name=name]').fill(name);
      await f.locator('textarea[name=definition]').fill(def);
    });
  }
  await page.goto(project);
  check((await page.locator('form:has(input[name=kind][value=regression]) select[name=outcome] option[value="3"]').count()) === 1, 'cohort 3 attached');

  current = 'launch-survival';
  const [sForm, sDetails] = launch('survival');
  const survival = await submitForm(sForm, async (f) => {
    await f.locator('select[name=target]').selectOption('1');
    await f.locator('select[name=comparator]').selectOption('2');
    await f.locator('select[name=outcome]').selectOption('3');
  }, sDetails);
  check(/\/analyses\/\d+$/.test(survival), `survival launched: ${survival}`);

  // A refused regression form, in zh-CN: the bad covariate named at its field.
  current = 'regression-refused-zh';
  await page.goto(project);
  await loadBy(page, () => page.click('.lang-switch a[lang=zh-CN]'));
  const [rForm, rDetails] = launch('regression');
  await submitForm(rForm, regression('age, bmi'), rDetails);
  const err = await page.locator('form:has(input[name=kind][value=regression]) .field-error').allTextContents();
  check(err.some((e) => fixedParts('zh-CN', 'ana.err_covariate').every((p) => e.includes(p)) && e.includes('bmi')), `the covariate is named: ${err}`);
  await page.locator('form:has(input[name=kind][value=regression])').scrollIntoViewIfNeeded();
  await shot('regression-refused-zh', { errors: err });

  current = 'launch-regression';
  const started = Date.now();
  const reg = await submitForm(rForm, regression('age'), rDetails);
  check(/\/analyses\/\d+$/.test(reg), `regression launched: ${reg}`);

  for (const lang of ['zh-CN', 'en']) {
    if (lang === 'en') {
      await loadBy(page, () => page.click('.lang-switch a[lang=en]'));
    }
    const tag = lang === 'en' ? 'en' : 'zh';
    current = `survival-${tag}`;
    const done = fixedParts(lang, 'feas.status_done');
    await until(survival, async () => {
      const s = await page.locator('ul.statuses li').allTextContents();
      return s.length >= 2 && s.every((x) => done.every((p) => x.includes(p)));
    }, 60, 'every site answering');
    check((await page.locator('svg.km polygon.band').count()) === 2, 'two curves with their bands');
    const atRisk = await page.locator('table.at-risk tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(1, 4).map((td) => td.textContent.trim())));
    const times = await page.locator('table.at-risk thead th').evaluateAll((th) => th.slice(1, 4).map((x) => x.textContent.trim()));
    check(atRisk.length === 2 && times[0] === '0', `at-risk table: ${times} ${JSON.stringify(atRisk)}`);
    const logrank = (await page.locator('p.logrank').innerText()).trim();
    check(fixedParts(lang, 'ana.logrank').every((p) => logrank.includes(p)), `the log-rank test: ${logrank}`);
    await page.locator('svg.km').scrollIntoViewIfNeeded();
    await shot(`survival-${tag}`, { times, at_risk: atRisk, logrank });

    current = `regression-${tag}`;
    await until(reg, async () => (await page.locator('p.run-state.converged').count()) === 1
      || (await page.locator('p.run-state.failed, p.run-state.not-converged').count()) === 1, 120, 'the run ending');
    const state = (await page.locator('p.run-state').innerText()).trim();
    check((await page.locator('p.run-state.converged').count()) === 1, `the run converged: ${state} ${await page.locator('main').innerText()}`);
    const rows = await page.locator('table.coefficients tbody tr').evaluateAll((trs) => trs.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent.trim())));
    check(rows.length === 2, `two coefficients (treatment, age): ${JSON.stringify(rows)}`);
    check((await page.locator('svg.chart.forest.log circle').count()) === 2, 'the ratios on the log-axis forest plot');
    const ticks = await page.locator('svg.chart.forest.log text.tick').allTextContents();
    check(ticks.includes('1'), `a tick at 1: ${ticks}`);
    const csv = await page.request.get(`${HUB}${reg}/coefficients.csv`);
    check(csv.status() === 200 && (await csv.text()).split('\n').length >= 3, `coefficients.csv: ${csv.status()}`);
    await page.locator('svg.chart.forest').scrollIntoViewIfNeeded();
    await shot(`regression-${tag}`, { state, coefficients: rows, ticks, ms_since_launch: Date.now() - started });
  }
} catch (error) {
  await failJourney({ page, context, file: join(SHOTS, 'analyses-failed.png'), current, error });
}
await context.close();
