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
import { readFileSync } from 'node:fs';
import { bilingual, englishOnChinesePage, env, launchChromium, loadBy, parseCatalog } from './lib.mjs';

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
const ZH = parseCatalog(join(CATALOGS, 'zh-CN.toml'));
const EN = parseCatalog(join(CATALOGS, 'en.toml'));

/** The zh-CN text of `key`, placeholders filled from `args`. */
function zh(key, args = {}) {
  const text = ZH.get(key);
  if (text === undefined) throw new Error(`no key ${key} in zh-CN.toml`);
  return text.replace(/\{([a-z_]+)\}/g, (m, name) => (name in args ? String(args[name]) : m));
}

const { context, page } = await launchChromium({
  nodeModules: NODE_MODULES, chromium: CHROMIUM, profile: PROFILE, shots: SHOTS, width: 1280,
});

let stepNo = 0;
let current = 'start';
const other = bilingual(page, { en: EN, zh: ZH });

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

/** The page is Chinese: its lang attribute, and its title is `key`'s zh-CN text. */
async function chinese(key, args) {
  const lang = await page.locator('html').getAttribute('lang');
  check(lang === 'zh-CN', `html lang=${lang} on ${page.url()}`);
  const title = await h1();
  const want = zh(key, args);
  // A record's page is titled "NAME · KIND" (e.g. a project's title, then 项目).
  check(title === want || title.endsWith(` · ${want}`), `h1 "${title}" is not zh-CN ${key} "${want}"`);
}

async function fieldError(name) {
  return text(`#err-${name}`);
}

async function login(user, password) {
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', password);
  await loadBy(page, () => page.click('form.login button[type=submit]'));
}

async function logout() {
  await loadBy(page, () => page.click('header form.inline button[type=submit]'));
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
  await loadBy(page, () => page.click('.lang-switch a[lang=zh-CN]'));
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
  check((await text('table.approvals tbody tr td:nth-child(2)')).startsWith(zh('site.query.demographics')), 'the job is a demographics query');
  // The steward reads the definition before approving (issue 17 item 7).
  await page.click('table.approvals details.narrative summary');
  const entry = await text('table.approvals details.narrative h2');
  check(entry === '队列入组事件', `the definition's narrative in Chinese: ${entry}`);
  await shot('site-a-approvals', { pending });

  current = 'site-a-deny-without-reason';
  await loadBy(page, () => page.click('form.deny button[type=submit]'));
  await chinese('site.approvals.title');
  check((await fieldError('reason')) === zh('site.approvals.reason_required'), 'the reason is required, said next to it');
  check(await page.locator('table.approvals span.state.pending').count() === 1, 'still pending');
  await shot('site-a-deny-needs-reason');

  current = 'site-a-approve';
  await loadBy(page, () => page.click('table.approvals form.inline button[type=submit]'));
  await chinese('site.approvals.title');
  check((await text('p.flash')) === zh('flash.site_approved'), 'approved flash');
  check(await page.locator('table.approvals span.state.pending').count() === 0, 'nothing pending');
  await shot('site-a-approved');

  current = 'site-a-policy-invalid';
  await page.goto(`${SITE_A}/policy`);
  await chinese('site.policy.title');
  check((await page.inputValue('#min_cell_count')) === '10', 'default threshold 10');
  check((await page.inputValue('#release')) === 'dp', 'differential privacy by default');
  await page.fill('#min_cell_count', '0');
  await page.selectOption('#release', 'shrine');
  await page.fill('#sigma', 'abc');
  await page.fill('#user_rho', '1');
  await page.selectOption('#cohort_count', 'manual');
  await loadBy(page, () => page.click('form.policy button[type=submit]'));
  await chinese('site.policy.title');
  check((await fieldError('min_cell_count')) === zh('site.policy.err_threshold'), 'threshold error next to it');
  check((await fieldError('sigma')) === zh('site.policy.err_sigma'), 'sigma error next to it');
  check((await page.inputValue('#sigma')) === 'abc', 'the typed value is kept');
  await shot('site-a-policy-rejected');
  await page.goto(`${SITE_A}/policy`);
  check((await page.inputValue('#min_cell_count')) === '10', 'nothing half-saved: threshold still 10');
  check((await page.inputValue('#cohort_count')) === 'auto', 'nothing half-saved: cohort counts still auto');
  check((await page.inputValue('#release')) === 'dp', 'nothing half-saved: still differential privacy');

  current = 'site-a-policy-saved';
  await page.fill('#min_cell_count', '11');
  await page.fill('#sigma', '8');
  await page.fill('#user_rho', '0.25');
  await loadBy(page, () => page.click('form.policy button[type=submit]'));
  await chinese('site.policy.title');
  check((await text('p.flash')) === zh('flash.site_policy_saved'), 'saved flash');
  check((await page.inputValue('#min_cell_count')) === '11', 'threshold 11 saved');
  check((await page.inputValue('#sigma')) === '8', 'sigma saved');
  check((await page.inputValue('#user_rho')) === '0.25', 'user budget saved');
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
  await loadBy(page, () => page.click('table.cohorts a.open'));
  await chinese('site.prescreen.list_title');
  const rows = await page.locator('table.prescreen tbody tr').count();
  check(rows === Math.min(PRESCREEN_PERSONS, 100), `${PRESCREEN_PERSONS} patients listed, 100 a page, found ${rows}`);
  check((await text('#list-count')).startsWith(zh('site.list.count', { rows: PRESCREEN_PERSONS, page: 1, pages: Math.ceil(PRESCREEN_PERSONS / 100) })),
    `the count of every selected row: ${await text('#list-count')}`);
  check((await text('p.local')) === zh('site.prescreen.local_only'), 'local-only notice');
  const firstDate = await text('table.prescreen tbody td:nth-child(2)');
  check(/^\d{4}年\d{1,2}月\d{1,2}日$/.test(firstDate), `index date in the zh-CN form: ${firstDate}`);
  check(await page.locator('details.narrative').count() === 1, 'the investigator can read the definition');
  await shot('site-a-prescreen-list', { rows });
  // Sorted by person, descending (the heading's link), then filtered to one person.
  await loadBy(page, () => page.click('table.prescreen th:first-child a.sort'));
  await loadBy(page, () => page.click('table.prescreen th:first-child a.sort'));
  const top = Number(await text('table.prescreen tbody td:first-child'));
  const ids = (await page.locator('table.prescreen tbody td:first-child').allInnerTexts()).map(Number);
  check(ids.every((x) => x <= top), `sorted descending: ${ids.slice(0, 5)}`);
  await page.fill('form.filter input[name=q]', String(top));
  await loadBy(page, () => page.click('form.filter button[type=submit]'));
  const filtered = (await page.locator('table.prescreen tbody td:first-child').allInnerTexts()).map(Number);
  check(filtered.includes(top) && filtered.length < rows, `filtered to the rows containing ${top}: ${filtered}`);
  const csv = await page.request.get(new URL(await page.locator('#list-csv').getAttribute('href'), page.url()).href);
  check(csv.status() === 200 && (await csv.text()).startsWith('person,index_date,end_date'), 'the selected rows as CSV');
  await shot('site-a-prescreen-sorted-filtered-zh', { filtered: filtered.length });
  // Issue 17: the investigator marks the listed candidate enrolled (the day defaults to today),
  // then filters the list by mark.
  current = 'site-a-prescreen-mark';
  const markForm = page.locator('table.prescreen tbody tr').first().locator('form.mark');
  await markForm.locator('select[name=mark]').selectOption('enrolled');
  await loadBy(page, () => markForm.locator('button[type=submit]').click());
  check((await text('p.flash.ok')) === zh('flash.mark_saved'), `mark saved: ${await text('main')}`);
  await page.selectOption('form.filter select[name=mark]', 'enrolled');
  await loadBy(page, () => page.click('form.filter button[type=submit]'));
  check((await page.locator('table.prescreen tbody tr').count()) === 1, 'one enrolled candidate');
  check((await text('table.prescreen tbody td:nth-child(5)')).startsWith(zh('site.mark.enrolled')), 'the mark shown');
  await shot('site-a-prescreen-marked-zh');
  await logout();

  // The same investigator at hospital B: not an account there.
  current = 'site-b-refused';
  await page.goto(`${SITE_B}/prescreen`);
  check(new URL(page.url()).pathname === '/login', 'site B asks to sign in');
  await loadBy(page, () => page.click('.lang-switch a[lang=zh-CN]'));
  await chinese('site.login.title');
  await login('dr.a', PASSWORD);
  check(new URL(page.url()).pathname === '/login', 'still on the login page');
  await chinese('site.login.title');
  check((await fieldError('password')) === zh('site.login.failed', { site: 'hospital-b' }),
    'refused at hospital B, said next to the field');
  await shot('site-b-investigator-of-a-refused');
}

/** Signs out of the portal (if signed in) and signs in as `user`. */
async function portalLogin(user) {
  if (await page.locator('header form.inline button[type=submit]').count()) {
    await logout();
  }
  await page.goto(`${HUB}/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', PASSWORD);
  await loadBy(page, () => page.click('main form button[type=submit]'));
  check(new URL(page.url()).pathname !== '/login', `${user} signed in`);
}

/** Submits the form whose action is `action` (clicking `button`, default its submit button). */
async function submit(action, button = 'button[type=submit]') {
  await loadBy(page, () => page.locator(`form[action="${action}"] ${button}`).first().click());
}

async function saved() {
  check((await text('p.flash')) === zh('flash.saved'), `saved flash on ${page.url()}: ${await bodyExcerpt()}`);
}

async function bodyExcerpt() {
  return (await page.locator('main').innerText()).slice(0, 600);
}

/** The project page shows stage `stage` (its zh-CN name). */
async function atStage(project, stage) {
  await page.goto(`${HUB}/projects/${project}`);
  await chinese('proj.title');
  const body = await page.locator('main').innerText();
  check(body.includes(zh(`stage.${stage}`)), `project ${project} at stage ${stage}: ${body.slice(0, 400)}`);
}

const PROJECT = 'celecoxib-trial';

async function portal() {
  // 1. The portal's sign-in page, switched to Chinese with the header's link (the cookie holds
  //    for every later page of the hub).
  current = 'portal-login';
  let resp = await page.goto(`${HUB}/login`);
  check(resp.status() === 200, `portal login status ${resp.status()}`);
  check((await h1()) === EN.get('login.title'), 'English first');
  await loadBy(page, () => page.click('.lang-switch a[lang=zh-CN]'));
  await chinese('login.title');
  await shot('portal-login-zh');

  // 2. An enterprise applies to join (no account needed); a bad e-mail is refused next to the field.
  current = 'portal-apply';
  await page.goto(`${HUB}/apply`);
  await chinese('inst.apply_title');
  await page.fill('#id', 'shpharma');
  await page.fill('#name', '上海演示医药');
  await page.selectOption('#kind', 'enterprise');
  await page.fill('#region', '上海');
  // Passes the browser's own e-mail check (the form still posts), not the server's (no dot).
  await page.fill('#contact', 'bd@shpharma');
  await page.fill('#description', '创新药研发，关注骨关节炎镇痛。');
  await submit('/apply');
  await chinese('inst.apply_title');
  check((await fieldError('contact')) === zh('form.err_email'), 'bad e-mail refused next to the field');
  await shot('portal-apply-rejected-field');
  await page.fill('#contact', 'bd@shpharma.example.org');
  await submit('/apply');
  check((await text('p.flash')) === zh('flash.applied'), `applied: ${await bodyExcerpt()}`);
  await shot('portal-applied');
  // A hospital applies too (the committee's experts come from it).
  await page.goto(`${HUB}/apply`);
  await page.fill('#id', 'hospital-b-inst');
  await page.fill('#name', '演示医院 B');
  await page.selectOption('#kind', 'hospital');
  await page.fill('#region', '杭州');
  await page.fill('#contact', 'research@hospital-b.example.org');
  await page.fill('#description', '消化内科与临床试验中心。');
  await page.fill('#site', 'hospital-b');
  await submit('/apply');
  check((await text('p.flash')) === zh('flash.applied'), `hospital applied: ${await bodyExcerpt()}`);

  // 3. The alliance admin approves it.
  current = 'portal-approve-institution';
  await portalLogin('admin');
  await chinese('dashboard.title');
  await shot('portal-dashboard-admin');
  await page.goto(`${HUB}/institutions`);
  await chinese('inst.title');
  await submit('/institutions/shpharma/decide', 'button[value=approve]');
  await saved();
  await submit('/institutions/hospital-b-inst/decide', 'button[value=approve]');
  await saved();
  await shot('portal-institution-approved');

  // 4. Two committee members are appointed experts.
  current = 'portal-committee';
  for (const [user, name] of [['expert.li', '李伟'], ['expert.wang', '王芳']]) {
    await page.goto(`${HUB}/committee`);
    await chinese('cmte.title');
    await page.fill('form[action="/committee/experts"] #user', user);
    await page.fill('form[action="/committee/experts"] #name', name);
    await page.fill('form[action="/committee/experts"] #institution', 'hospital-b-inst');
    await page.fill('form[action="/committee/experts"] #fields', '药物流行病学, 消化内科');
    await page.fill('form[action="/committee/experts"] #start', '2026-01-01');
    await page.fill('form[action="/committee/experts"] #end', '2028-12-31');
    await page.fill('form[action="/committee/experts"] #letter', `QA-2026-${user}`);
    await submit('/committee/experts');
    await saved();
  }
  await shot('portal-committee-experts');

  // 5. The sponsor (of the new member) creates the project and submits it.
  current = 'portal-project-submit';
  await portalLogin('sponsor.sh');
  await page.goto(`${HUB}/projects`);
  await chinese('proj.list_title');
  await page.fill('form[action="/projects"] #id', PROJECT);
  await page.fill('form[action="/projects"] #title', '塞来昔布骨关节炎镇痛试验');
  await page.fill('form[action="/projects"] #summary', '评估40岁以上男性塞来昔布使用者的入组可行性。');
  await page.fill('form[action="/projects"] #target', '120');
  await submit('/projects');
  await saved();
  // Guidance (issue 17 item 7): where the project stands, the next step and who it waits on;
  // the cohort is attached while drafting, so the reviewers read it.
  check((await text('nav.stages li.current')) === zh('guide.step_proposal'), 'the current step is the proposal');
  check((await text('#next-step')).includes(zh('guide.next_draft')), `next step: ${await text('#next-step')}`);
  const attach = `form[action="/projects/${PROJECT}/cohorts"]`;
  await page.fill(`${attach} #name`, '塞来昔布，年龄>40，男性');
  await page.fill(`${attach} #definition`, DEFINITION);
  await submit(`/projects/${PROJECT}/cohorts`);
  await saved();
  check((await text('#next-step')).includes(zh('guide.next_submit')), 'next: submit');
  await shot('portal-draft-guidance-zh');
  await page.selectOption(`form[action="/projects/${PROJECT}/transition"] #to`, 'submitted');
  await page.fill(`form[action="/projects/${PROJECT}/transition"] #comment`, '方案 v1.0 提交学术委员会。');
  await submit(`/projects/${PROJECT}/transition`);
  await saved();
  await atStage(PROJECT, 'submitted');
  await shot('portal-project-submitted');

  // 6. The admin assigns the two reviewers.
  current = 'portal-assign-reviewers';
  await portalLogin('admin');
  await page.goto(`${HUB}/projects/${PROJECT}`);
  const assign = `form[action="/projects/${PROJECT}/reviewers"]`;
  const picker = await page.locator(`${assign} label.reviewer`).allInnerTexts();
  check(picker.some((l) => l.includes('李伟') && l.includes('药物流行病学')), `the picker shows names and expertise: ${picker}`);
  check((await text('#next-step')).includes(zh('guide.next_assign')), 'next: assign reviewers');
  await shot('portal-reviewer-picker-zh');
  await page.check(`${assign} input[name=reviewers][value="expert.li"]`);
  await page.check(`${assign} input[name=reviewers][value="expert.wang"]`);
  await page.fill(`${assign} #comment`, '两位评审人均无利益冲突。');
  await submit(`/projects/${PROJECT}/reviewers`);
  await saved();
  await atStage(PROJECT, 'under_review');
  await shot('portal-under-review');

  // 7. Both review; the second records the committee's decision.
  for (const reviewer of ['expert.li', 'expert.wang']) {
    current = `portal-review-${reviewer}`;
    await portalLogin(reviewer);
    await page.goto(`${HUB}/projects/${PROJECT}`);
    await chinese('proj.title');
    check(await page.locator('p.read-cohorts a[href="#cohort-1"]').count() === 1, 'the reviewer is pointed at the definition');
    check(await page.locator('#cohort-1 details.narrative').count() === 1, 'the reviewer can read it');
    const review = `form[action="/projects/${PROJECT}/review"]`;
    for (const input of await page.locator(`${review} input[type=number]`).all()) {
      await input.fill(await input.getAttribute('max'));
    }
    await page.selectOption(`${review} #recommend`, 'approve');
    await page.fill(`${review} #comment`, '设计合理，可在成员医院开展。');
    await submit(`/projects/${PROJECT}/review`);
    await saved();
    await shot(`portal-reviewed-${reviewer}`);
  }
  current = 'portal-decide';
  check((await text('#score-summary p.quorum')).startsWith(zh('guide.quorum_state', { done: 2, quorum: 2 })), 'the quorum is in');
  await page.locator('#score-summary').scrollIntoViewIfNeeded();
  await shot('portal-score-summary-zh');
  // The same in English, then back.
  await loadBy(page, () => page.click('.lang-switch a[lang=en]'));
  const quorumEn = await text('#score-summary p.quorum');
  check(quorumEn.startsWith(EN.get('guide.quorum_state').replace('{done}', '2').replace('{quorum}', '2')), `in English: ${quorumEn}`);
  check((await text('nav.stages li.current')) === EN.get('guide.step_review'), 'the current step is the review');
  await page.locator('#score-summary').scrollIntoViewIfNeeded();
  await shot('portal-score-summary-en');
  await loadBy(page, () => page.click('.lang-switch a[lang=zh-CN]'));
  await page.fill(`form[action="/projects/${PROJECT}/decide"] #comment`, '委员会批准。');
  await submit(`/projects/${PROJECT}/decide`, 'button[value=approve]');
  await saved();
  await atStage(PROJECT, 'approved');
  await shot('portal-approved');

  // 8. The sponsor opens feasibility, attaches the cohort, runs it, and sees the per-site funnel.
  current = 'portal-feasibility';
  await portalLogin('sponsor.sh');
  await page.goto(`${HUB}/projects/${PROJECT}`);
  await page.selectOption(`form[action="/projects/${PROJECT}/transition"] #to`, 'feasibility');
  await page.fill(`form[action="/projects/${PROJECT}/transition"] #comment`, '开始可行性评估。');
  await submit(`/projects/${PROJECT}/transition`);
  await saved();
  // A new version of the definition (renamed): the old one kept, the two compared as text.
  await page.click('#cohort-1 details.replace summary');
  const replace = `form[action="/projects/${PROJECT}/cohorts/1/replace"]`;
  await page.fill(`${replace} #name`, '塞来昔布，年龄>40，男性（第二版）');
  await page.fill(`${replace} #definition`, DEFINITION);
  await submit(`/projects/${PROJECT}/cohorts/1/replace`);
  await saved();
  await loadBy(page, () => page.click('#cohort-1 a.diff'));
  await chinese('ver.title');
  check(await page.locator('pre.diff ins').count() === 2 && await page.locator('pre.diff del').count() === 2,
    'the title line changed, in both languages');
  await shot('portal-definition-diff-zh');
  await page.goto(`${HUB}/projects/${PROJECT}`);
  await submit(`/projects/${PROJECT}/cohorts/1/run`);
  await saved();
  // The sites answer within seconds: reload until both per-site funnels are drawn.
  const deadline = Date.now() + 60000;
  let funnels = 0;
  while (Date.now() < deadline) {
    await page.goto(`${HUB}/projects/${PROJECT}`);
    funnels = await page.locator('svg[id$="-funnel-hospital-a"], svg[id$="-funnel-hospital-b"]').count();
    if (funnels === 2) break;
    await page.waitForTimeout(1000);
  }
  check(funnels === 2, `per-site funnels of hospital-a and hospital-b, found ${funnels}: ${await bodyExcerpt()}`);
  await chinese('proj.title');
  check(await page.locator('svg[id$="-funnel-total"]').count() === 1, 'the total funnel');
  const funnelTitle = await page.locator('svg[id$="-funnel-hospital-a"] > title').first().textContent();
  check(funnelTitle.startsWith(zh('feas.funnel_site').split('{')[0]), `funnel title in Chinese: ${funnelTitle}`);
  await page.locator('svg[id$="-funnel-hospital-a"]').first().scrollIntoViewIfNeeded();
  await shot('portal-feasibility-funnel', { funnels });

  // 9. Site selection: the sponsor invites both sites; hospital A's steward accepts.
  current = 'portal-invite';
  await page.selectOption(`form[action="/projects/${PROJECT}/transition"] #to`, 'site_selection');
  await page.fill(`form[action="/projects/${PROJECT}/transition"] #comment`, '邀请合格患者最多的站点。');
  await submit(`/projects/${PROJECT}/transition`);
  await saved();
  const invite = `form[action="/projects/${PROJECT}/invite"]`;
  await page.check(`${invite} input[name=sites][value="hospital-a"]`);
  await page.check(`${invite} input[name=sites][value="hospital-b"]`);
  await submit(`/projects/${PROJECT}/invite`);
  await saved();
  await shot('portal-sites-invited');
  current = 'portal-accept';
  await portalLogin('steward.hub.a');
  await page.goto(`${HUB}/projects/${PROJECT}`);
  await chinese('proj.title');
  await submit(`/projects/${PROJECT}/answer`, 'button[value=accept]');
  await saved();
  await shot('portal-site-a-accepted');
  await logout();
}

const DEFINITION = readFileSync(env('QIAO_E2E_DEFINITION'), 'utf8');

/** The investigator of hospital A opens the portal project's pre-screening list at their own
 *  site (the definition arrived with the feasibility jobs). */
async function prescreenPortalProject() {
  current = 'site-a-prescreen-portal-project';
  await page.goto(`${SITE_A}/login`);
  await chinese('site.login.title');
  await login('dr.a', PASSWORD);
  await chinese('site.prescreen.title');
  const link = page.locator(`table.cohorts a.open[href^="/prescreen/${PROJECT}/"]`);
  check(await link.count() === 1, `the portal project's cohort is listed at hospital A`);
  await loadBy(page, () => link.click());
  await chinese('site.prescreen.list_title');
  const rows = await page.locator('table.prescreen tbody tr').count();
  check(rows === Math.min(PRESCREEN_PERSONS, 100), `${PRESCREEN_PERSONS} patients listed, 100 a page, found ${rows}`);
  await shot('site-a-prescreen-portal-project', { rows });
  await logout();
}

try {
  current = 'hub-health';
  const health = await page.goto(`${HUB}/api/v1/health`);
  check(health.status() === 200, `hub health status ${health.status()}`);
  await shot('hub-health', { status: health.status() });

  await sitePages();
  await portal();
  await prescreenPortalProject();
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
