// The portal's browser end-to-end flow, driven in Debian's headless Chromium by playwright-core.
//
// Run by crates/qiao/tests/browser.rs, which starts the hub, two sites and their local pages on
// loopback and passes every address and credential in QIAO_E2E_* variables. Prints one JSON line
// per step: {"step", "screenshot", "url", "render_ms", ...what it checked}. Exits non-zero at the
// first failed check, with a screenshot of the page it failed on (failed.png).
//
// Every page after the language switch must show Chinese: the checks compare the page with the
// texts of crates/web/i18n/zh-CN.toml, not with strings written here.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { mkdirSync, readFileSync } from 'node:fs';

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run this through crates/qiao/tests/browser.rs (bash scripts/test.sh)`);
  }
  return v;
}

const NODE_MODULES = env('QIAO_E2E_NODE_MODULES');
const SHOTS = env('QIAO_E2E_SCREENSHOTS');
const HUB = env('QIAO_E2E_HUB');
const SITE_A = env('QIAO_E2E_SITE_A');
const SITE_B = env('QIAO_E2E_SITE_B');
const PASSWORD = env('QIAO_E2E_PASSWORD');
const PROFILE = env('QIAO_E2E_PROFILE');
const CHROMIUM = env('QIAO_CHROMIUM');
const CATALOGS = env('QIAO_E2E_CATALOGS');
const PRESCREEN_PERSONS = Number(env('QIAO_E2E_PRESCREEN_PERSONS'));

// --- the catalogs (flat `key = "text"`, TOML basic strings) --------------------------------
function parseCatalog(path) {
  const out = new Map();
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    const rest = line.slice(eq + 1).trim();
    // A TOML basic string is a JSON string for the escapes the catalogs use.
    const end = rest.lastIndexOf('"');
    out.set(key, JSON.parse(rest.slice(0, end + 1)));
  }
  return out;
}
const ZH = parseCatalog(join(CATALOGS, 'zh-CN.toml'));
const EN = parseCatalog(join(CATALOGS, 'en.toml'));

/** The zh-CN text of `key`, placeholders filled from `args`. */
function zh(key, args = {}) {
  const text = ZH.get(key);
  if (text === undefined) throw new Error(`no key ${key} in zh-CN.toml`);
  return text.replace(/\{([a-z_]+)\}/g, (m, name) => (name in args ? String(args[name]) : m));
}

const { chromium } = await import(pathToFileURL(join(NODE_MODULES, 'playwright-core', 'index.mjs')).href);
mkdirSync(SHOTS, { recursive: true });
mkdirSync(PROFILE, { recursive: true });

// This machine has no internet: without these flags Chromium stalls on network look-ups.
const context = await chromium.launchPersistentContext(PROFILE, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
  locale: 'en-US',
});
context.setDefaultTimeout(20000);
const page = context.pages()[0] ?? (await context.newPage());

let stepNo = 0;
let current = 'start';

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/** Server time of the last navigation: request sent → response fully received (ms). */
async function renderMs() {
  return page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return n ? Math.round((n.responseEnd - n.requestStart) * 10) / 10 : null;
  });
}

async function shot(step, extra = {}) {
  stepNo += 1;
  const file = join(SHOTS, `${String(stepNo).padStart(2, '0')}-${step}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(JSON.stringify({ step, screenshot: file, url: page.url(), render_ms: await renderMs(), ...extra }));
}

const text = async (sel) => (await page.locator(sel).first().innerText()).trim();
const h1 = () => text('main h1');

/** The page is Chinese: its lang attribute, and its title is `key`'s zh-CN text. */
async function chinese(key, args) {
  const lang = await page.locator('html').getAttribute('lang');
  check(lang === 'zh-CN', `html lang=${lang} on ${page.url()}`);
  const title = await h1();
  check(title === zh(key, args), `h1 "${title}" is not zh-CN ${key} "${zh(key, args)}"`);
}

async function fieldError(name) {
  return text(`#err-${name}`);
}

async function login(user, password) {
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForLoadState('load'), page.click('form.login button[type=submit]')]);
}

async function logout() {
  await page.click('header form.inline button[type=submit]');
  await page.waitForLoadState('load');
}

async function sitePages() {
  // The steward at hospital A: the login page, switched to Chinese with the header's link.
  current = 'site-a-login';
  let resp = await page.goto(`${SITE_A}/login`);
  check(resp.status() === 200, `site login status ${resp.status()}`);
  check((await h1()) === EN.get('site.login.title'), 'English first (Accept-Language en-US)');
  const headers = resp.headers();
  check(headers['content-security-policy']?.includes("default-src 'self'"), 'CSP header');
  check(headers['x-frame-options'] === 'DENY', 'X-Frame-Options');
  await Promise.all([page.waitForLoadState('load'), page.click('.lang-switch a[lang=zh-CN]')]);
  await chinese('site.login.title');
  await shot('site-a-login-zh');

  current = 'site-a-login-wrong-password';
  await login('steward.a', 'not-the-password');
  await chinese('site.login.title');
  check((await fieldError('password')) === zh('site.login.failed', { site: 'hospital-a' }),
    'the refusal next to the password field');
  await shot('site-a-login-refused');

  current = 'site-a-approvals';
  await login('steward.a', PASSWORD);
  check(new URL(page.url()).pathname === '/approvals', `steward lands on the queue: ${page.url()}`);
  await chinese('site.approvals.title');
  const pending = await page.locator('table.approvals span.state.pending').count();
  check(pending === 1, `one pending demographics job, found ${pending}`);
  check((await text('table.approvals tbody tr td:nth-child(2)')) === zh('site.query.demographics'), 'the job is a demographics query');
  await shot('site-a-approvals', { pending });

  current = 'site-a-deny-without-reason';
  await Promise.all([page.waitForLoadState('load'), page.click('form.deny button[type=submit]')]);
  await chinese('site.approvals.title');
  check((await fieldError('reason')) === zh('site.approvals.reason_required'), 'the reason is required, said next to it');
  check(await page.locator('table.approvals span.state.pending').count() === 1, 'still pending');
  await shot('site-a-deny-needs-reason');

  current = 'site-a-approve';
  await Promise.all([page.waitForLoadState('load'), page.click('table.approvals form.inline button[type=submit]')]);
  await chinese('site.approvals.title');
  check((await text('p.flash')) === zh('flash.site_approved'), 'approved flash');
  check(await page.locator('table.approvals span.state.pending').count() === 0, 'nothing pending');
  await shot('site-a-approved');

  current = 'site-a-policy-invalid';
  await page.goto(`${SITE_A}/policy`);
  await chinese('site.policy.title');
  check((await page.inputValue('#min_cell_count')) === '10', 'default threshold 10');
  await page.fill('#min_cell_count', '0');
  await page.selectOption('#dp', 'laplace');
  await page.fill('#epsilon', 'abc');
  await page.fill('#epsilon_budget', '1');
  await page.selectOption('#cohort_count', 'manual');
  await Promise.all([page.waitForLoadState('load'), page.click('form.policy button[type=submit]')]);
  await chinese('site.policy.title');
  check((await fieldError('min_cell_count')) === zh('site.policy.err_threshold'), 'threshold error next to it');
  check((await fieldError('epsilon')) === zh('site.policy.err_epsilon'), 'epsilon error next to it');
  check((await page.inputValue('#epsilon')) === 'abc', 'the typed value is kept');
  await shot('site-a-policy-rejected');
  await page.goto(`${SITE_A}/policy`);
  check((await page.inputValue('#min_cell_count')) === '10', 'nothing half-saved: threshold still 10');
  check((await page.inputValue('#cohort_count')) === 'auto', 'nothing half-saved: cohort counts still auto');

  current = 'site-a-policy-saved';
  await page.fill('#min_cell_count', '11');
  await page.selectOption('#dp', 'laplace');
  await page.fill('#epsilon', '0.5');
  await page.fill('#epsilon_budget', '2');
  await Promise.all([page.waitForLoadState('load'), page.click('form.policy button[type=submit]')]);
  await chinese('site.policy.title');
  check((await text('p.flash')) === zh('flash.site_policy_saved'), 'saved flash');
  check((await page.inputValue('#min_cell_count')) === '11', 'threshold 11 saved');
  check((await page.inputValue('#epsilon')) === '0.5', 'epsilon saved');
  await shot('site-a-policy-saved');

  current = 'site-a-audit';
  await page.goto(`${SITE_A}/audit`);
  await chinese('site.audit.title');
  const chain = await text('#chain');
  const verifiedPrefix = zh('site.audit.verified').split('{')[0];
  check(chain.startsWith(verifiedPrefix), `chain verified: ${chain}`);
  const actions = await page.locator('table.audit td code').allInnerTexts();
  for (const a of ['job.receive', 'job.queue', 'job.approve', 'policy.set', 'ui.login', 'ui.login_fail']) {
    check(actions.includes(a), `audit shows ${a}`);
  }
  await shot('site-a-audit', { entries: actions.length });

  current = 'site-a-steward-refused-prescreen';
  resp = await page.goto(`${SITE_A}/prescreen`);
  check(resp.status() === 403, `a steward is refused the pre-screening list: ${resp.status()}`);
  await chinese('site.refused.title');
  check((await text('main p.error')) === zh('site.refused.role', {
    site: 'hospital-a', user: 'steward.a', role: zh('site.role.steward'), needed: zh('site.role.investigator'),
  }), 'the refusal says who and why');
  await shot('site-a-steward-refused');
  await logout();

  current = 'site-a-prescreen';
  await login('dr.a', PASSWORD);
  check(new URL(page.url()).pathname === '/prescreen', `investigator lands on pre-screening: ${page.url()}`);
  await chinese('site.prescreen.title');
  const cohorts = await page.locator('table.cohorts tbody tr').count();
  check(cohorts === 1, `one received cohort, found ${cohorts}`);
  check((await text('table.cohorts tbody td')) === 'p-site-pages', 'of project p-site-pages');
  await shot('site-a-prescreen-index');
  await Promise.all([page.waitForLoadState('load'), page.click('table.cohorts a.open')]);
  await chinese('site.prescreen.list_title');
  const rows = await page.locator('table.prescreen tbody tr').count();
  check(rows === PRESCREEN_PERSONS, `${PRESCREEN_PERSONS} patients listed, found ${rows}`);
  check((await text('p.local')) === zh('site.prescreen.local_only'), 'local-only notice');
  const firstDate = await text('table.prescreen tbody td:nth-child(2)');
  check(/^\d{4}年\d{1,2}月\d{1,2}日$/.test(firstDate), `index date in the zh-CN form: ${firstDate}`);
  await shot('site-a-prescreen-list', { rows });
  await logout();

  // The same investigator at hospital B: not an account there.
  current = 'site-b-refused';
  await page.goto(`${SITE_B}/prescreen`);
  check(new URL(page.url()).pathname === '/login', 'site B asks to sign in');
  await Promise.all([page.waitForLoadState('load'), page.click('.lang-switch a[lang=zh-CN]')]);
  await chinese('site.login.title');
  await login('dr.a', PASSWORD);
  check(new URL(page.url()).pathname === '/login', 'still on the login page');
  await chinese('site.login.title');
  check((await fieldError('password')) === zh('site.login.failed', { site: 'hospital-b' }),
    'refused at hospital B, said next to the field');
  await shot('site-b-investigator-of-a-refused');
}

/** Signs in to the hub's portal. */
async function portalLogin(user) {
  await page.goto(`${HUB}/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForLoadState('load'), page.click('main form button[type=submit]')]);
}

async function portal() {
  // The alliance admin: the portal's sign-in page, switched to Chinese, then the dashboard.
  current = 'portal-login';
  const resp = await page.goto(`${HUB}/login`);
  check(resp.status() === 200, `portal login status ${resp.status()}`);
  check((await h1()) === EN.get('login.title'), 'English first');
  await Promise.all([page.waitForLoadState('load'), page.click('.lang-switch a[lang=zh-CN]')]);
  await chinese('login.title');
  await shot('portal-login-zh');

  current = 'portal-dashboard';
  await portalLogin('admin');
  await chinese('dashboard.title');
  await shot('portal-dashboard-admin');
}

try {
  current = 'hub-health';
  const health = await page.goto(`${HUB}/api/v1/health`);
  check(health.status() === 200, `hub health status ${health.status()}`);
  await shot('hub-health', { status: health.status() });

  await portal();
  await sitePages();
} catch (e) {
  try {
    await page.screenshot({ path: join(SHOTS, 'failed.png'), fullPage: true });
  } catch {}
  console.error(`flow failed in ${current} (${page.url()}): ${e.stack || e}`);
  try {
    console.error((await page.locator('body').innerText()).slice(0, 3000));
  } catch {}
  await context.close();
  process.exit(1);
}
await context.close();
