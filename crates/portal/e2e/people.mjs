// The people journeys of issue 17 in headless Chromium: an applicant's reference and status, the
// admin deciding with the application text and inviting a person, the invitee creating an
// account, the admin disabling it, and the alliance sign-in at a site's pages (investigator to
// the pre-screening list, steward to the grants page; a replayed link refused), and the auditor
// reading the hub's audit log. At every screenshot of a zh-CN page no English catalog string
// may show.
//
// Run by crates/qiao/tests/browser.rs (people_journeys_in_headless_chromium) against a serving
// `qiao demo`. Prints one JSON line per step: {"step", "screenshot", "url", "render_ms"}.

import { join } from 'node:path';
import { bilingual, englishOnChinesePage, env, launchChromium, loadBy, parseCatalog } from './lib.mjs';


const NODE_MODULES = env('QIAO_E2E_NODE_MODULES');
const SHOTS = env('QIAO_E2E_SCREENSHOTS');
const HUB = env('QIAO_E2E_HUB');
const SITE = env('QIAO_E2E_SITE');
const LOGINS = JSON.parse(env('QIAO_E2E_LOGINS'));
const PROFILE = env('QIAO_E2E_PROFILE');
const CHROMIUM = env('QIAO_CHROMIUM');
const CATALOGS = env('QIAO_E2E_CATALOGS');

const ZH = parseCatalog(join(CATALOGS, 'zh-CN.toml'));
const EN = parseCatalog(join(CATALOGS, 'en.toml'));
const fill = (text, args) => text.replace(/\{([a-z_]+)\}/g, (m, n) => (n in args ? String(args[n]) : m));
const zh = (key, args = {}) => fill(ZH.get(key) ?? `(no ${key})`, args);
const en = (key, args = {}) => fill(EN.get(key) ?? `(no ${key})`, args);

const { context, page } = await launchChromium({
  nodeModules: NODE_MODULES, chromium: CHROMIUM, profile: PROFILE, shots: SHOTS, width: 1280,
});

let stepNo = 0;
let current = 'start';
const other = bilingual(page, { en: EN, zh: ZH });
const check = (cond, what) => { if (!cond) throw new Error(`check failed: ${what}`); };
async function renderMs() {
  return page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return n ? Math.round((n.responseEnd - n.requestStart) * 10) / 10 : null;
  });
}
async function shot(step, extra = {}) {
  stepNo += 1;
  const file = join(SHOTS, `people-${String(stepNo).padStart(2, '0')}-${step}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const english = await englishOnChinesePage(page, EN, ZH);
  check(english.length === 0, `English catalog strings on a zh-CN page (${step}): ${english.join(' | ')}`);
  const lang = await page.locator('html').getAttribute('lang');
  const [url, render_ms] = [page.url(), await renderMs()];
  const alt = await other(file);
  check(!alt || alt.english.length === 0, `English catalog strings on the zh-CN page (${step}): ${alt?.english.join(' | ')}`);
  console.log(JSON.stringify({ step, lang, screenshot: file, url, render_ms, alt, ...extra }));
}
const text = async (sel) => (await page.locator(sel).first().innerText()).trim();
const h1 = () => text('main h1');
const main = async () => page.locator('main').innerText();
async function click(sel) {
  await loadBy(page, () => page.locator(sel).first().click());
}
async function lang(to) {
  const link = page.locator(`.lang-switch a[lang=${to}]`);
  if (await link.count()) await click(`.lang-switch a[lang=${to}]`);
  check((await page.locator('html').getAttribute('lang')) === to, `page in ${to}`);
}
async function portalLogin(user) {
  await page.goto(`${HUB}/`);
  if (await page.locator('header form.inline button[type=submit]').count()) {
    await click('header form.inline button[type=submit]');
  }
  await page.goto(`${HUB}/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', LOGINS[user]);
  await click('main form button[type=submit]');
  check(new URL(page.url()).pathname !== '/login', `${user} signed in: ${(await main()).slice(0, 300)}`);
}

try {
  // 1. An applicant (English): the sign-in page links to the application; the reference.
  current = 'applicant';
  await page.goto(`${HUB}/login`);
  await lang('en');
  await click('#apply-link');
  check((await h1()) === en('inst.apply_title'), 'the application form');
  await page.fill('#id', 'sunrise-pharma');
  await page.fill('#name', 'Sunrise Pharma');
  await page.selectOption('#kind', 'enterprise');
  await page.fill('#region', 'Suzhou');
  await page.fill('#contact', 'bd@sunrise.example.org');
  await page.fill('#description', 'Oncology trials; wants feasibility counts for a lung cancer study.');
  await click('form[action="/apply"] button[type=submit]');
  check((await h1()) === en('apply.status_title'), `status page: ${(await main()).slice(0, 300)}`);
  const reference = (await text('#application code')).trim();
  check(/^Q-[0-9A-Z]{12}$/.test(reference), `reference ${reference}`);
  check((await text('#status')) === en('member.applied'), 'status applied');
  await shot('applicant-reference', { reference });

  // 2. The admin (Chinese) reads the application, approves, invites a sponsor researcher.
  current = 'admin';
  await portalLogin('admin');
  await lang('zh-CN');
  await page.goto(`${HUB}/institutions`);
  const row = page.locator('#inst-sunrise-pharma');
  check((await row.locator('details.application').innerText()).includes('lung cancer study'), 'the application text');
  await shot('admin-reads-application-zh');
  await loadBy(page, () => row.locator('button[name=decision][value=approve]').click());
  await page.goto(`${HUB}/admin/users`);
  check((await h1()) === zh('users.title'), 'users page in Chinese');
  await page.selectOption('#institution', 'sunrise-pharma');
  await page.selectOption('#role', 'sponsor_researcher');
  await click('form[action="/admin/users/invite"] button[type=submit]');
  const link = (await text('#link')).trim();
  check(link.startsWith(`${HUB}/join/`), `an absolute invitation link: ${link}`);
  await shot('admin-invitation-link-zh');
  await click('header form.inline button[type=submit]');

  // 3. The applicant sees the decision (Chinese).
  current = 'applicant-approved';
  await page.goto(`${HUB}/apply/status?ref=${reference}`);
  check((await text('#status')) === zh('member.approved'), 'approved, in Chinese');
  await shot('applicant-approved-zh');

  // 4. The invitee (English) creates the account and signs in.
  current = 'invitee';
  await page.goto(link);
  await lang('en');
  check((await h1()) === en('join.title'), 'join page');
  await page.fill('#username', 'li.sunrise');
  await page.fill('#password', 'short');
  await click('main form button[type=submit]');
  check((await text('#err-password')).startsWith(en('acct.err_password', { reason: '' }).trim()), 'weak password refused next to the field');
  await page.fill('#password', 'sunrise over the yangtze');
  await click('main form button[type=submit]');
  check((await text('p.flash')) === en('flash.joined'), 'account saved');
  await page.fill('input[name=username]', 'li.sunrise');
  await page.fill('input[name=password]', 'sunrise over the yangtze');
  await click('main form button[type=submit]');
  check(new URL(page.url()).pathname === '/', `signed in: ${page.url()}`);
  await shot('invitee-signed-in');
  await click('header form.inline button[type=submit]');

  // 5. The admin disables the new account.
  current = 'admin-disable';
  await portalLogin('admin');
  await page.goto(`${HUB}/admin/users`);
  await click('#user-li\\.sunrise form[action$="/disable"] button');
  check((await text('#user-li\\.sunrise')).includes(en('users.disabled')), 'disabled');
  await shot('admin-disabled-user');

  // 6. The investigator (English): project page → the site's pre-screening list.
  current = 'investigator';
  await portalLogin('investigator');
  await page.goto(`${HUB}/projects/demo-running`);
  await click('#open-prescreen');
  check((await h1()) === en('open.title'), 'hand-off page');
  await shot('investigator-open-site');
  const href = await page.locator('#open-site').getAttribute('href');
  check(href.startsWith(`${SITE}/alliance/login?assertion=`), `link to the site: ${href}`);
  await click('#open-site');
  check((await h1()) === en('site.alliance.title'), `welcome: ${(await main()).slice(0, 300)}`);
  await shot('site-alliance-welcome');
  await click('#continue');
  check((await h1()) === en('site.prescreen.title'), `pre-screening index: ${(await main()).slice(0, 300)}`);
  const lists = await page.locator('table.cohorts a.open').count();
  check(lists >= 1, 'a cohort list is offered');
  await click('table.cohorts a.open');
  const rows = await page.locator('table.prescreen tbody tr').count();
  check(rows > 0, `patients listed: ${rows}`);
  await shot('site-prescreen-via-alliance', { rows });
  // The same link again: refused (single use).
  const again = await page.goto(href);
  check(again.status() === 401, `replayed link status ${again.status()}`);
  await shot('site-alliance-replay-refused');

  // 7. The steward (Chinese) reaches the grants page at the site.
  current = 'steward';
  await portalLogin('steward');
  await lang('zh-CN');
  await page.goto(`${HUB}/sites/hospital_1/open`);
  await click('#open-site');
  // The site's pages keep their own language cookie (another host): English until switched.
  check((await h1()) === en('site.alliance.title'), 'welcome');
  await click('#continue');
  check(new URL(page.url()).pathname === '/approvals', `the steward's home: ${page.url()}`);
  await lang('zh-CN');
  await page.goto(`${SITE}/accounts`);
  check((await h1()) === zh('site.accounts.title'), 'grants page in Chinese');
  check((await text('#grants')).includes('investigator'), 'the investigator holds a role');
  await shot('site-steward-accounts-zh');

  // 8. The auditor (Chinese): the hub's audit log with the chain verified, filtered by actor,
  // times in Beijing time, and the selection as CSV.
  current = 'auditor';
  await portalLogin('auditor');
  await lang('zh-CN');
  await page.goto(`${HUB}/audit`);
  check((await h1()) === zh('audit.title'), 'audit page in Chinese');
  check((await text('#chain')).startsWith(ZH.get('audit.chain_ok').split('{')[0]), `chain verified: ${await text('#chain')}`);
  await page.fill('#actor', 'user:admin');
  await click('form.filters button[type=submit]');
  const actors = await page.locator('#audit tbody tr td:nth-child(3)').allTextContents();
  check(actors.length > 0 && actors.every((a) => a.trim() === 'user:admin'), `rows by user:admin only: ${actors.slice(0, 5)}`);
  const times = await page.locator('#audit tbody tr td:nth-child(2)').allTextContents();
  check(times.every((x) => x.endsWith('（北京时间）')), `times in Beijing time: ${times.slice(0, 3)}`);
  const csvHref = await page.locator('#csv').getAttribute('href');
  const csv = await page.request.get(`${HUB}${csvHref}`);
  check(csv.status() === 200 && csv.headers()['content-type'].startsWith('text/csv'), `CSV ${csv.status()}`);
  const csvLines = (await csv.text()).trim().split('\n');
  check(csvLines[0].startsWith('seq,time_utc,actor') && csvLines.length > actors.length
    && csvLines.slice(1).every((l) => l.includes(',user:admin,')),
    `CSV of the selection: ${csvLines.length - 1} rows for ${actors.length} shown`);
  await shot('auditor-audit-zh', { entries: actors.length });

  // 9. The auditor chooses a time zone (issue 17: the user's own setting, through the badge):
  // every time shown, and the audit filter's days, in it.
  current = 'auditor-zone';
  await click('header a.user');
  check((await h1()) === zh('settings.title'), 'settings in Chinese');
  await page.selectOption('#zone', 'Asia/Kolkata');
  await click('#zone-form button[type=submit]');
  check((await text('p.flash.ok')) === zh('flash.saved'), 'zone saved');
  check((await text('#now')).endsWith('（UTC+05:30）'), `now in the chosen zone: ${await text('#now')}`);
  await shot('auditor-zone-zh');
  await page.goto(`${HUB}/audit?actor=user%3Aadmin`);
  const zoned = await page.locator('#audit tbody tr td:nth-child(2)').allTextContents();
  check(zoned.length > 0 && zoned.every((x) => x.endsWith('（UTC+05:30）')), `times in UTC+05:30: ${zoned.slice(0, 3)}`);
  await shot('auditor-audit-zoned-zh', { entries: zoned.length });
} catch (e) {
  try { await page.screenshot({ path: join(SHOTS, 'people-failed.png'), fullPage: true }); } catch {}
  console.error(`people flow failed in ${current} (${page.url()}): ${e.stack || e}`);
  try { console.error((await page.locator('body').innerText()).slice(0, 3000)); } catch {}
  await context.close();
  process.exit(1);
}
await context.close();
