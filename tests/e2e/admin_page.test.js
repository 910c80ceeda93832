/*
 * The admin page (src/admin/page.html) in a real browser: Debian's headless
 * Chromium driven by playwright-core (which downloads no browser).
 *
 * Two targets run the same flow:
 *   - the mock admin API of lib/admin_mock.js (the page alone, plus checks
 *     that need canned data: escaping, filters, export, delete);
 *   - the gateway itself (GB_BIN) in front of the fake upstream, with the
 *     keys good-a and invalid-b.
 * The flow: /admin redirects to the login form; a wrong token is refused; the
 * admin token logs in (HttpOnly SameSite=Strict cookie, nothing in web
 * storage); the keys table has one row per key with masked ids and no full
 * key anywhere in the page; per-row verify shows the check's result; the
 * add-keys form adds a key (row count +1); auto-refresh pauses while a form
 * is being edited; no request leaves the origin; logout goes back to the
 * login form.  Screenshots: /tmp/admin.png (gateway), /tmp/admin-phone.png
 * (gateway, phone width, dark), /tmp/admin-mock.png (mock).
 *
 * Skips cleanly when Chromium (GB_CHROMIUM, default /usr/bin/chromium) or
 * playwright-core is missing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFakeUpstream, startGateway, chat, waitFor, T_LONG, HOOK } from './lib/harness.js';
import { startAdminMock } from './lib/admin_mock.js';

const CHROMIUM = process.env.GB_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let chromium = null;
let why = null;
if (!fs.existsSync(CHROMIUM)) {
    why = `${CHROMIUM} is missing (apt-get install chromium, or set GB_CHROMIUM): admin page browser tests skipped`;
} else {
    try {
        ({ chromium } = await import('playwright-core'));
    } catch (e) {
        why = `playwright-core is not installed (cd tests/e2e && npm install): admin page browser tests skipped (${e.code || e.message})`;
    }
}

const ADMIN_TOKEN = 'adm-e2e-admin-token-4b7c1d9e2f';
const KEYS = ['good-a', 'invalid-b'];
const NEW_KEY = 'good-added-e2e-key-0123456789abcdef';
const SECRETS = [...KEYS, NEW_KEY, ADMIN_TOKEN];

/*
 * A fresh Chromium profile (launchPersistentContext passes the temp dir as
 * --user-data-dir; Playwright refuses that flag in args).
 */
async function openBrowser({ viewport = { width: 1280, height: 900 }, colorScheme = 'light' } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gb-chromium-'));
    let ctx;
    try {
        ctx = await chromium.launchPersistentContext(dir, {
            executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport, colorScheme,
            acceptDownloads: true, timeout: 30000,
        });
    } catch (e) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw e;
    }
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(10000);
    const b = {
        ctx, page, pageErrors: [], foreign: [], dialogs: [],
        async close() {
            await ctx.close().catch(() => {});
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
    page.on('pageerror', (e) => b.pageErrors.push(e.message));
    page.on('dialog', (d) => {
        b.dialogs.push(d.message());
        /* tests set b.onDialog to answer; confirm() is accepted by default */
        (b.onDialog ? b.onDialog(d) : d.accept()).catch(() => {});
    });
    return b;
}

const rows = (page) => page.locator('#keys tbody tr[data-idx]');
const rowById = (page, id) => rows(page).filter({ has: page.locator('a.kid', { hasText: id }) });

/* Every text of the page a person or a script could read: the DOM as HTML
 * (attributes too), the visible text, and the values of form fields. */
async function pageTexts(page) {
    return {
        html: await page.content(),
        text: await page.evaluate(() => document.body.innerText),
        fields: await page.evaluate(() => [...document.querySelectorAll('input,textarea')].map((e) => e.value).join('\n')),
    };
}

async function assertNoSecrets(page, secrets) {
    const t = await pageTexts(page);
    for (const s of secrets) {
        for (const [where, text] of Object.entries(t)) {
            assert.ok(!text.includes(s), `the page's ${where} contains the secret ${JSON.stringify(s)}`);
        }
    }
}

/*
 * The shared flow, as sequential tests of the enclosing describe.  env():
 * { base, browser, screenshot, ids: [masked id of KEYS[0], of KEYS[1]],
 *   newId: masked id NEW_KEY gets }.
 */
function adminFlow(env, { real }) {
    test('/admin without a session leads to the login form', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { base, browser: { page } } = env();
        const resp = await page.goto(`${base}/admin`);
        assert.equal(resp.status(), 200);
        assert.match(new URL(page.url()).pathname, /^\/admin\/login\/?$/, `ended at ${page.url()}`);
        await page.locator('#tok').waitFor({ state: 'visible' });
        assert.equal(await page.locator('#app').isVisible(), false, 'the dashboard shows without a session');
        assert.equal(await page.locator('#tok').getAttribute('type'), 'password');
    });

    test('a wrong token is refused with a message', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser: { page } } = env();
        await page.fill('#tok', 'not-the-admin-token');
        await page.click('#lb');
        await page.locator('#lerr').filter({ hasText: /\S/ }).waitFor();
        assert.match(await page.locator('#lerr').innerText(), /wrong|token|refused/i);
        assert.match(new URL(page.url()).pathname, /^\/admin\/login/);
        assert.equal(await page.locator('#app').isVisible(), false);
    });

    test('the admin token logs in: keys table with masked ids, cookie session only', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { base, browser, ids } = env();
        const { page, ctx } = browser;
        await page.fill('#tok', ADMIN_TOKEN);
        await Promise.all([page.waitForURL((u) => /^\/admin\/?$/.test(u.pathname)), page.click('#lb')]);
        await waitFor(async () => (await rows(page).count()) === 2, {
            timeoutMs: 8000, what: 'two rows in the keys table',
            detail: () => `rows: ${rows(page).count()}`,
        });
        const texts = await rows(page).allInnerTexts();
        for (const id of ids) assert.ok(texts.some((x) => x.includes(id)), `no row shows ${id}:\n${texts.join('\n---\n')}`);
        assert.equal(await rows(page).first().locator('a.kid').innerText(), ids[0]);
        await assertNoSecrets(page, SECRETS);
        assert.match(await page.locator('#pool').innerText(), /2 total/);
        assert.match(await page.locator('.note').innerText(), /this instance's/);

        const cookies = await ctx.cookies(base);
        const sess = cookies.find((c) => c.name === 'gb_session');
        assert.ok(sess, `no gb_session cookie: ${JSON.stringify(cookies)}`);
        assert.equal(sess.httpOnly, true, 'the session cookie is not HttpOnly');
        assert.equal(sess.sameSite, 'Strict', 'the session cookie is not SameSite=Strict');
        assert.ok(!sess.value.includes(ADMIN_TOKEN), 'the cookie carries the token');
        const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
        assert.equal(stored, '[{},{}]', `web storage is used: ${stored}`);
        assert.equal(await page.evaluate(() => document.cookie), '', 'the session cookie is readable by scripts');
    });

    test('stats, chart and logs sections render', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser: { page } } = env();
        await page.locator('#cards .stat').first().waitFor();
        assert.match(await page.locator('#cards').innerText(), /Requests[\s\S]*Success rate[\s\S]*Total tokens/);
        assert.equal(await page.locator('#chart svg g').count(), 24, 'the chart has no 24 hourly bars');
        /* the gateway saw one chat request before the page opened: the store
         * writes asynchronously, so refresh until it shows */
        await waitFor(async () => {
            const txt = await page.locator('#reqs tbody').innerText();
            if (txt.includes('gemini-2.5-flash')) return true;
            await page.click('#rf');
            return false;
        }, { timeoutMs: 8000, intervalMs: 500, what: 'a logged request in the recent requests table' });
        assert.ok(await page.locator('#pm tbody tr').count() >= 1);
    });

    test('per-row verify shows the upstream check', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser: { page }, ids } = env();
        await rowById(page, ids[0]).locator('button[data-act=verify]').click();
        const good = rowById(page, ids[0]).locator('.vres');
        await waitFor(async () => /valid/.test(await good.innerText().catch(() => '')), {
            timeoutMs: 10000, what: `a verify result on ${ids[0]}`,
        });
        assert.match(await good.innerText(), /^valid \(HTTP 200\)$/);

        await rowById(page, ids[1]).locator('button[data-act=verify]').click();
        const bad = rowById(page, ids[1]).locator('.vres');
        await waitFor(async () => /failed/.test(await bad.innerText().catch(() => '')), {
            timeoutMs: 10000, what: `a verify result on ${ids[1]}`,
        });
        assert.match(await bad.innerText(), /^failed: HTTP 400 \S/);
        assert.doesNotMatch(await bad.innerText(), /400 400/);
        await assertNoSecrets(page, SECRETS);
    });

    test('auto-refresh pauses while the add-keys form is edited', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser: { page } } = env();
        await page.fill('#at', 'draft');
        await waitFor(async () => /paused/.test(await page.locator('#upd').innerText()), {
            timeoutMs: 3000, what: 'the "paused while editing" note',
        });
        await page.fill('#at', '');
        await page.locator('#at').blur();
        await waitFor(async () => /next in/.test(await page.locator('#upd').innerText()), {
            timeoutMs: 3000, what: 'auto-refresh to resume',
        });
    });

    test('the add-keys form adds a key and reports duplicates', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser: { page }, newId } = env();
        await page.fill('#at', `${NEW_KEY}\n${KEYS[0]}`);
        await page.click('#ab');
        await waitFor(async () => (await rows(page).count()) === 3, { timeoutMs: 8000, what: 'three rows after adding a key' });
        assert.equal(await page.locator('#ares').innerText(), `Added 1 (${newId}) · 1 duplicate(s) · 0 invalid`);
        assert.equal(await page.locator('#at').inputValue(), '', 'the textarea still holds the keys');
        assert.equal(await rows(page).nth(2).locator('a.kid').innerText(), newId);
        assert.match(await page.locator('#pool').innerText(), /3 total/);
        await assertNoSecrets(page, SECRETS);
    });

    test('disable and enable a key', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser: { page }, newId } = env();
        const row = () => rowById(page, newId);
        await row().locator('button[data-act=disable]').click();
        await waitFor(async () => (await row().getAttribute('data-state')) === 'disabled', { timeoutMs: 5000, what: 'the key disabled' });
        await row().locator('button[data-act=enable]').click();
        await waitFor(async () => (await row().getAttribute('data-state')) === 'usable', { timeoutMs: 5000, what: 'the key enabled' });
    });

    test('screenshot', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser, screenshot } = env();
        await browser.page.screenshot({ path: screenshot, fullPage: true });
        assert.ok(fs.statSync(screenshot).size > 10000);
    });

    test('delete asks first; cancel keeps the key, OK deletes it', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser, newId } = env();
        const { page } = browser;
        const n = browser.dialogs.length;
        browser.onDialog = (d) => d.dismiss();
        await rowById(page, newId).locator('button[data-act=delete]').click();
        await waitFor(() => browser.dialogs.length === n + 1, { what: 'a confirm dialog' });
        assert.match(browser.dialogs[n], new RegExp(`Delete key ${newId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
        await page.click('#rf');
        await page.waitForTimeout(300);
        assert.equal(await rows(page).count(), 3, 'a dismissed confirm deleted the key');
        browser.onDialog = null;
        await rowById(page, newId).locator('button[data-act=delete]').click();
        await waitFor(async () => (await rows(page).count()) === 2, { timeoutMs: 5000, what: 'two rows after the delete' });
        await waitFor(async () => /2 total/.test(await page.locator('#pool').innerText()),
            { timeoutMs: 5000, what: 'the pool summary after the delete' });
    });

    test('only the page\'s own origin was contacted, and no script error', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { browser } = env();
        assert.deepEqual(browser.foreign, [], 'requests to other origins');
        assert.deepEqual(browser.pageErrors, [], 'uncaught errors in the page');
    });

    test('logout ends the session', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { base, browser: { page, ctx } } = env();
        await Promise.all([page.waitForURL((u) => /^\/admin\/login/.test(u.pathname)), page.click('#lo')]);
        await page.locator('#tok').waitFor({ state: 'visible' });
        await page.goto(`${base}/admin`);
        assert.match(new URL(page.url()).pathname, /^\/admin\/login/);
        const left = (await ctx.cookies(base)).filter((c) => c.name === 'gb_session' && c.value);
        assert.deepEqual(left, [], 'the session cookie is still set after logout');
        if (real) {
            /* the old session is also dead on the server side */
            const r = await page.request.get(`${base}/api/status`);
            assert.equal(r.status(), 401);
        }
    });
}

function watchOrigin(b, base) {
    const origin = new URL(base).origin;
    b.page.on('request', (r) => {
        const u = r.url();
        if (!u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')) b.foreign.push(u);
    });
}

describe('admin page against the mock admin API', () => {
    const ctx = { base: null, browser: null, mock: null };
    before(async () => {
        if (why) return;
        ctx.mock = await startAdminMock({ token: ADMIN_TOKEN, keys: KEYS });
        ctx.base = ctx.mock.url;
        ctx.browser = await openBrowser();
        watchOrigin(ctx.browser, ctx.base);
    }, HOOK);
    after(async () => {
        if (ctx.browser) await ctx.browser.close();
        if (ctx.mock) await ctx.mock.close();
    }, HOOK);

    adminFlow(() => ({
        base: ctx.base, browser: ctx.browser, screenshot: '/tmp/admin-mock.png',
        ids: ['#0***', '#1***'], newId: '#2...cdef',
    }), { real: false });

    test('API strings are shown as text, never parsed as HTML', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { page } = ctx.browser;
        const evil = '<img src=x onerror="window.__xss=1"><b id=pwn>bold</b>';
        ctx.mock.state.keys[1].last_error = evil;
        ctx.mock.state.errors[0].message = evil;
        ctx.mock.state.requests[0].model = evil;
        await page.fill('#tok', ADMIN_TOKEN);
        await Promise.all([page.waitForURL((u) => /^\/admin\/?$/.test(u.pathname)), page.click('#lb')]);
        await waitFor(async () => (await page.locator('#keys tbody').innerText()).includes(evil), {
            timeoutMs: 8000, what: 'the raw error text in the keys table',
        });
        await waitFor(async () => (await page.locator('#errs tbody').innerText()).includes(evil), { what: 'the raw text in the errors table' });
        assert.ok((await page.locator('#reqs tbody').innerText()).includes(evil));
        assert.equal(await page.locator('#pwn').count(), 0, 'markup from the API became elements');
        assert.equal(await page.evaluate(() => window.__xss), undefined, 'a handler from the API ran');
    });

    test('state filter and search query the API and narrow the table', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { page } = ctx.browser;
        await page.selectOption('#kst', 'disabled');
        await waitFor(async () => (await rows(page).count()) === 1, { timeoutMs: 5000, what: 'one disabled key' });
        assert.equal(await rows(page).first().getAttribute('data-state'), 'disabled');
        assert.ok(ctx.mock.calls.some((c) => c.includes('state=disabled')));
        await page.selectOption('#kst', 'all');
        await page.fill('#kq', '#0');
        await waitFor(async () => (await rows(page).count()) === 1, { timeoutMs: 5000, what: 'one key matching #0' });
        assert.ok(ctx.mock.calls.some((c) => c.includes('q=%230')));
        await page.fill('#kq', '');
        await waitFor(async () => (await rows(page).count()) === 2, { timeoutMs: 5000, what: 'all keys again' });
    });

    test('bulk verify posts the right bodies', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { page } = ctx.browser;
        const n = ctx.mock.calls.length;
        await page.click('#va');
        await page.locator('#msg', { hasText: /Checking 2/ }).waitFor();
        await page.click('#vd');
        await page.locator('#msg', { hasText: /disabled key/ }).waitFor();
        assert.equal(ctx.mock.calls.slice(n).filter((c) => c === 'POST /api/keys/verify').length, 2);
    });

    test('export asks first, then downloads the full keys as a file', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const b = ctx.browser;
        const n = ctx.mock.calls.length;
        b.onDialog = (d) => d.dismiss();
        await b.page.click('#ex');
        await waitFor(() => /FULL API keys/.test(b.dialogs.at(-1) || ''), { what: 'the export confirm' });
        await b.page.waitForTimeout(200);
        assert.ok(!ctx.mock.calls.slice(n).includes('GET /api/keys/export'), 'export ran without a confirm');
        b.onDialog = null;
        const [dl] = await Promise.all([b.page.waitForEvent('download'), b.page.click('#ex')]);
        assert.equal(dl.suggestedFilename(), 'gemini-keys.txt');
        const text = fs.readFileSync(await dl.path(), 'utf8');
        assert.deepEqual(text.trim().split('\n'), KEYS);
        await assertNoSecrets(b.page, SECRETS);
    });

    test('a session lost mid-use brings the login form back in place', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { page, ctx: bctx } = ctx.browser;
        await bctx.clearCookies();
        await page.click('#rf');
        await page.locator('#tok').waitFor({ state: 'visible' });
        assert.equal(await page.locator('#app').isVisible(), false);
        await page.fill('#tok', ADMIN_TOKEN);
        await page.click('#lb');
        await waitFor(async () => (await rows(page).count()) === 2, { timeoutMs: 5000, what: 'the table after logging in again' });
    });

    test('/admin/login with a live session goes on to /admin', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { page } = ctx.browser;
        await page.goto(`${ctx.base}/admin/login`);
        await page.waitForURL((u) => /^\/admin\/?$/.test(u.pathname));
        await waitFor(async () => (await rows(page).count()) === 2, { timeoutMs: 5000, what: 'the keys table' });
    });

    test('phone width: the page fits the screen', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const { page } = ctx.browser;
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForTimeout(300);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
        await page.setViewportSize({ width: 1280, height: 900 });
    });
});

describe('admin page against the gateway', () => {
    const ctx = { fake: null, gw: null, browser: null };
    before(async () => {
        if (why) return;
        ctx.fake = await startFakeUpstream({ port: 0 });
        ctx.gw = await startGateway(ctx.fake, { keys: KEYS, env: { AUTH_TOKEN: ADMIN_TOKEN, MAX_FAILURES: '1' } });
        /* one request, for the stats and the request log */
        const r = await chat(ctx.gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hello admin page' }] });
        assert.equal(r.status, 200, r.text);
        ctx.browser = await openBrowser();
        watchOrigin(ctx.browser, ctx.gw.url);
    }, HOOK);
    after(async () => {
        if (ctx.browser) {
            if (!why) {
                /* a phone-sized, dark look at the same gateway, for people */
                const p = await openBrowser({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' }).catch(() => null);
                if (p) {
                    try {
                        const res = await p.page.request.post(`${ctx.gw.url}/api/login`, { data: { token: ADMIN_TOKEN } });
                        if (res.ok()) {
                            await p.page.goto(`${ctx.gw.url}/admin`);
                            await p.page.locator('#keys tbody tr[data-idx]').first().waitFor({ timeout: 5000 });
                            await p.page.screenshot({ path: '/tmp/admin-phone.png', fullPage: true });
                        }
                    } catch {
                        /* only a picture */
                    }
                    await p.close();
                }
            }
            await ctx.browser.close();
        }
        if (ctx.gw) await ctx.gw.stop();
        if (ctx.fake) await ctx.fake.close();
    }, HOOK);

    adminFlow(() => ({
        base: ctx.gw.url, browser: ctx.browser, screenshot: '/tmp/admin.png',
        ids: ['#0***', '#1***'], newId: '#2...cdef',
    }), { real: true });

    test('the gateway never logged a full key or the admin token', { timeout: T_LONG }, async (t) => {
        if (why) return t.skip(why);
        const out = ctx.gw.output();
        for (const s of SECRETS) assert.ok(!out.includes(s) || s.length < 12, `the gateway printed ${JSON.stringify(s)}`);
    });
});
