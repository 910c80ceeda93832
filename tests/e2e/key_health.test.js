/*
 * Key health (issue 5): per-model cooldowns, 429 bodies (per-day quota until
 * midnight US Pacific, retryDelay), pool-wide throttling, local rate limits,
 * strategies, persistence across restarts (DATA_DIR), re-validation of
 * disabled keys, admin API authorization and masking, /metrics and SIGHUP
 * reloads.
 *
 * Each test runs its own gateway (pool state is per process); the fake
 * upstream is shared and reset.  Persistence tests run the gateway in a
 * directory of their own (harness `dir`), so a restart finds ./data again.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
    startFakeUpstream, startGateway, runGatewayExpectingExit, chat, request, auth, marker, generateCalls,
    health, waitFor, sleep, parseOpenAISse, findSecrets, TOKEN, T_SHORT, T_LONG, HOOK, withGateway,
} from './lib/harness.js';

const FLASH = 'gemini-2.5-flash';
const PRO = 'gemini-2.5-pro';


/* One chat request; returns { r, m, calls: upstream attempts in order }. */
async function ask(fake, gw, { model = FLASH, headers, ...extra } = {}) {
    const m = marker('kh');
    const r = await chat(gw, { model, messages: [{ role: 'user', content: m }], ...extra }, headers ? { headers } : {});
    return { r, m, calls: generateCalls(fake, m) };
}

const keysOf = (calls) => calls.map((c) => c.key);
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

/* An admin call with the suite token (the admin token when AUTH_TOKEN is unset). */
function admin(gw, p, { method = 'GET', body, token = TOKEN, headers } = {}) {
    return request(`${gw.url}${p}`, { method, body, headers: headers || auth(token) });
}

/* GET /api/keys?state=all: the items. */
async function keyItems(gw, token = TOKEN) {
    const r = await admin(gw, '/api/keys?state=all&limit=1000', { token });
    assert.equal(r.status, 200, `GET /api/keys: ${r.status} ${r.text}`);
    assert.ok(Array.isArray(r.json.items), r.text);
    return r.json.items;
}

/* The /api/keys item of a key (found by its SHA-256), or undefined. */
async function keyItem(gw, key, token = TOKEN) {
    return (await keyItems(gw, token)).find((it) => it.hash === sha256(key));
}

/* Asks until `key` was tried once (or n requests); returns the attempts. */
async function askUntilTried(fake, gw, key, { n = 8, model = FLASH } = {}) {
    const all = [];
    for (let i = 0; i < n; i++) {
        const a = await ask(fake, gw, { model });
        all.push(a);
        if (a.calls.some((c) => c.key === key)) return all;
    }
    assert.fail(`${key} was never tried in ${n} requests`);
}

/* --- US Pacific time, computed independently of the gateway --------------- */

const laFmt = new Intl.DateTimeFormat('en-US', {
    timeZone: 'America/Los_Angeles', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
function laParts(t) {
    const p = Object.fromEntries(laFmt.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
    return { y: +p.year, mo: +p.month, d: +p.day, h: +p.hour, mi: +p.minute, s: +p.second };
}
/* The first midnight in America/Los_Angeles after t (ms). */
function pacificMidnightAfter(t) {
    const p = laParts(t);
    const next = new Date(Date.UTC(p.y, p.mo - 1, p.d + 1));
    for (const offH of [7, 8]) { /* PDT / PST */
        const cand = Date.UTC(next.getUTCFullYear(), next.getUTCMonth(), next.getUTCDate(), offH);
        const q = laParts(cand);
        if (q.h === 0 && q.mi === 0 && q.s === 0 && q.d === next.getUTCDate()) return cand;
    }
    throw new Error(`no Pacific midnight found after ${new Date(t).toISOString()}`);
}

/* --- Prometheus text ---------------------------------------------------- */

function parseMetrics(text) {
    const out = [];
    for (const line of text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
        const labels = {};
        if (m[2]) {
            for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
        }
        out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
}
/* The value of the sample with exactly these labels (0 when absent). */
function sample(samples, name, labels = {}) {
    const want = JSON.stringify(Object.entries(labels).sort());
    const s = samples.find((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === want);
    return s ? s.value : 0;
}

/* A directory for a gateway that will be restarted; removed by the test. */
function tempDir() {
    return fs.mkdtempSync(path.join(os.tmpdir(), 'gb-e2e-persist-'));
}

describe('key health', () => {
    let fake;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
    }, HOOK);
    after(async () => fake && fake.close(), HOOK);

    /* ------------------------------------------------------------------ */
    /* cooldowns                                                           */

    test('per-model cooldown: a key that 429s for model A still serves model B', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quotapro-a', 'good-b'] }, async (gw) => {
            fake.reset();
            const t0 = Date.now();
            const first = await askUntilTried(fake, gw, 'quotapro-a', { model: PRO });
            const t1 = Date.now();
            for (const a of first) assert.equal(a.r.status, 200, a.r.text);
            const hit = first.at(-1).calls;
            assert.deepEqual(keysOf(hit), ['quotapro-a', 'good-b'], 'the 429 was not retried on the other key');
            assert.equal(hit[0].status, 429);

            /* model B (flash) still rotates over both keys */
            fake.reset();
            const flashKeys = [];
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, gw, { model: FLASH });
                assert.equal(r.status, 200, r.text);
                assert.equal(calls.length, 1);
                flashKeys.push(calls[0].key);
            }
            assert.equal(flashKeys.filter((k) => k === 'quotapro-a').length, 2,
                `requests for ${FLASH} did not use the key cooling for ${PRO}: ${flashKeys}`);

            /* model A skips it */
            fake.reset();
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, gw, { model: PRO });
                assert.equal(r.status, 200, r.text);
                assert.deepEqual(keysOf(calls), ['good-b'], `a key cooling for ${PRO} was used for it`);
            }

            const h = await health(gw);
            assert.deepEqual(h.keys, { total: 2, usable: 1, cooling: 1, disabled: 0 });
            const it = await keyItem(gw, 'quotapro-a');
            assert.equal(it.state, 'cooling');
            assert.equal(it.cooldowns.length, 1, JSON.stringify(it));
            assert.equal(it.cooldowns[0].model, PRO);
            /* the fixture's retryDelay is 26s */
            assert.ok(it.cooldowns[0].until_ms >= t0 + 26000 - 50 && it.cooldowns[0].until_ms <= t1 + 26000 + 50,
                `until_ms ${it.cooldowns[0].until_ms} not ~26 s after the 429 (${t0}..${t1})`);
            assert.equal((await keyItem(gw, 'good-b')).state, 'usable');
        });
    });

    test('per-day quota 429 (QuotaFailure ...PerDay...): cooled until the next midnight US Pacific', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quotaday-x', 'good-a'] }, async (gw) => {
            fake.reset();
            const t0 = Date.now();
            const tries = await askUntilTried(fake, gw, 'quotaday-x');
            const t1 = Date.now();
            assert.equal(tries.at(-1).r.status, 200, tries.at(-1).r.text);
            assert.match(tries.at(-1).calls[0].response, /PerDay/, 'the fake did not answer the per-day body');

            const it = await keyItem(gw, 'quotaday-x');
            assert.equal(it.state, 'cooling', JSON.stringify(it));
            assert.equal(it.cooldowns.length, 1, JSON.stringify(it));
            assert.equal(it.cooldowns[0].model, FLASH);
            const expected = new Set([pacificMidnightAfter(t0), pacificMidnightAfter(t1)]);
            assert.ok(expected.has(it.cooldowns[0].until_ms),
                `until_ms ${it.cooldowns[0].until_ms} (${new Date(it.cooldowns[0].until_ms).toISOString()}) is not ` +
                `the next Pacific midnight ${[...expected].map((t) => new Date(t).toISOString())} ` +
                '(a per-day quota must not be cooled for its retryDelay of 26 s)');

            fake.reset();
            for (let i = 0; i < 3; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200);
                assert.deepEqual(keysOf(calls), ['good-a']);
            }
        });
    });

    test('per-minute 429 with retryDelay "26s": cooled for about 26 s', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quota-x', 'good-a'] }, async (gw) => {
            fake.reset();
            const t0 = Date.now();
            await askUntilTried(fake, gw, 'quota-x');
            const t1 = Date.now();
            const it = await keyItem(gw, 'quota-x');
            assert.equal(it.state, 'cooling');
            assert.equal(it.cooldowns.length, 1, JSON.stringify(it));
            const until = it.cooldowns[0].until_ms;
            assert.ok(until >= t0 + 26000 - 50 && until <= t1 + 26000 + 50,
                `until_ms is now+${until - t1} ms, expected ~26000`);
            assert.match(it.last_error, /429/, `last_error: ${it.last_error}`);
            assert.equal(it.failures, 0, 'a 429 counted as a failure');
        });
    });

    /* ------------------------------------------------------------------ */
    /* pool-wide throttling                                                */

    test('pool-wide throttling: 429 from >= 3 keys within 10 s -> 429 + Retry-After, keys not blamed', { timeout: T_SHORT }, async () => {
        const keys = ['quota-t1', 'quota-t2', 'quota-t3', 'quota-t4'];
        await withGateway(fake, { keys }, async (gw) => {
            fake.reset();
            const mark = gw.mark();
            const burst = await Promise.all([0, 1, 2, 3].map(() => ask(fake, gw)));
            const seen = new Set(fake.requests().filter((q) => q.status === 429).map((q) => q.key));
            assert.ok(seen.size >= 3, `only ${seen.size} keys answered 429`);
            for (const { r } of burst) {
                assert.equal(r.status, 429, `burst answer ${r.status} (expected 429, not 503): ${r.text}`);
                assert.match(String(r.headers['retry-after']), /^\d+$/, `Retry-After: ${r.headers['retry-after']}`);
                assert.ok(Number(r.headers['retry-after']) >= 1 && Number(r.headers['retry-after']) <= 60);
                assert.ok(r.json && r.json.error, r.text);
            }
            const st = await admin(gw, '/api/status');
            assert.equal(st.status, 200);
            assert.equal(st.json.throttled, true, `status: ${st.text}`);
            assert.ok(st.json.throttle_ms_left > 0);

            /* while throttled: answered at once, upstream not called */
            const n = fake.requests().length;
            const more = await ask(fake, gw);
            assert.equal(more.r.status, 429, more.r.text);
            assert.ok(more.r.headers['retry-after']);
            assert.equal(fake.requests().length, n, 'the upstream was called while the pool is throttled');

            /* the keys are not blamed */
            const h = await health(gw);
            assert.deepEqual(h.keys, { total: 4, usable: 4, cooling: 0, disabled: 0 }, 'keys were cooled for a pool-wide throttle');
            for (const it of await keyItems(gw)) assert.equal(it.state, 'usable', JSON.stringify(it));

            const lines = gw.stderr(mark).split('\n').filter((l) => /upstream is throttling the gateway/.test(l));
            assert.equal(lines.length, 1, `throttling log lines:\n${lines.join('\n')}\n---\n${gw.stderr(mark)}`);
            assert.match(lines[0], /429 from \d+ of 4 usable keys/);

            /* the throttle ends (first backoff 2 s) */
            await waitFor(async () => (await admin(gw, '/api/status')).json.throttled === false,
                { timeoutMs: 5000, what: 'the throttle to end' });
        });
    });

    /* ------------------------------------------------------------------ */
    /* local limits and strategies                                         */

    test('KEY_RPM_LIMIT=2: 4 requests over 2 keys, the 5th gets 503 + Retry-After without an upstream call', { timeout: T_LONG }, async () => {
        /* the minute window is the wall-clock minute: do not straddle it */
        const inMinute = Date.now() % 60000;
        if (inMinute > 50000) await sleep(60000 - inMinute + 200);
        await withGateway(fake, { keys: ['good-r1', 'good-r2'], env: { KEY_RPM_LIMIT: '2' } }, async (gw) => {
            fake.reset();
            const used = [];
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, `request ${i + 1}: ${r.status} ${r.text}`);
                assert.equal(calls.length, 1);
                used.push(calls[0].key);
            }
            assert.deepEqual(used.slice().sort(), ['good-r1', 'good-r1', 'good-r2', 'good-r2'], `keys used: ${used}`);
            const fifth = await ask(fake, gw);
            assert.equal(fifth.r.status, 503, fifth.r.text);
            const ra = Number(fifth.r.headers['retry-after']);
            assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After: ${fifth.r.headers['retry-after']}`);
            assert.equal(fifth.calls.length, 0);
            assert.equal(generateCalls(fake).length, 4, 'the upstream saw a 5th call');
            const h = await health(gw);
            assert.deepEqual({ usable: h.keys.usable, disabled: h.keys.disabled }, { usable: 0, disabled: 0 });
            const items = await keyItems(gw);
            for (const it of items) assert.equal(it.minute_count, 2, JSON.stringify(it));
        });
    });

    test('KEY_STRATEGY=least_used spreads the load evenly', { timeout: T_LONG }, async () => {
        const keys = ['good-l1', 'good-l2', 'good-l3'];
        await withGateway(fake, { keys, env: { KEY_STRATEGY: 'least_used' } }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 30; i++) {
                const { r } = await ask(fake, gw);
                assert.equal(r.status, 200);
            }
            const by = fake.stats().byKey;
            for (const k of keys) assert.ok((by[k] || 0) >= 8 && (by[k] || 0) <= 12, `per key: ${JSON.stringify(by)}`);
        });
    });

    test('KEY_STRATEGY=random spreads the load, not in a fixed rotation', { timeout: T_LONG }, async () => {
        const keys = ['good-x1', 'good-x2', 'good-x3'];
        await withGateway(fake, { keys, env: { KEY_STRATEGY: 'random' } }, async (gw) => {
            fake.reset();
            const seq = [];
            for (let i = 0; i < 60; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200);
                seq.push(calls[0].key);
            }
            const by = fake.stats().byKey;
            for (const k of keys) assert.ok((by[k] || 0) >= 5, `per key: ${JSON.stringify(by)}`);
            /* round robin never picks the same key twice in a row; 60 random
             * picks over 3 keys do with probability 1 - (2/3)^59 */
            assert.ok(seq.some((k, i) => i > 0 && k === seq[i - 1]), `a strict rotation: ${seq.join(' ')}`);
        });
    });

    test('a bad KEY_STRATEGY stops start-up naming the variable', { timeout: T_SHORT }, async () => {
        const r = await runGatewayExpectingExit(fake, { env: { KEY_STRATEGY: 'fastest' } });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /KEY_STRATEGY/);
        assert.doesNotMatch(r.stderr, /listening on/);
    });

    /* ------------------------------------------------------------------ */
    /* persistence                                                         */

    test('persistence: a disabled key stays disabled after a restart', { timeout: T_LONG }, async () => {
        const dir = tempDir();
        const opts = { dir, keys: ['invalid-p1', 'good-a'], env: { MAX_FAILURES: '2' } };
        try {
            await withGateway(fake, opts, async (gw) => {
                fake.reset();
                for (let i = 0; i < 10 && (await health(gw)).keys.disabled === 0; i++) await ask(fake, gw);
                assert.equal((await health(gw)).keys.disabled, 1);
            });
            assert.ok(fs.existsSync(path.join(dir, 'data', 'gemini-balance.db')), 'no database in ./data');
            await withGateway(fake, opts, async (gw) => {
                fake.reset();
                assert.match(gw.stderr(), /restored the state of \d+ keys/);
                const it = await keyItem(gw, 'invalid-p1');
                assert.equal(it.state, 'disabled', JSON.stringify(it));
                assert.ok(it.failures >= 2, JSON.stringify(it));
                assert.deepEqual((await health(gw)).keys, { total: 2, usable: 1, cooling: 0, disabled: 1 });
                for (let i = 0; i < 4; i++) {
                    const { r, calls } = await ask(fake, gw);
                    assert.equal(r.status, 200);
                    assert.deepEqual(keysOf(calls), ['good-a'], 'the disabled key was called after the restart');
                }
                assert.equal(fake.stats().byKey['invalid-p1'] || 0, 0);
            });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test('persistence: a cooldown keeps cooling after a restart', { timeout: T_LONG }, async () => {
        const dir = tempDir();
        const opts = { dir, keys: ['quota-p2', 'good-a'] };
        let before;
        try {
            await withGateway(fake, opts, async (gw) => {
                fake.reset();
                await askUntilTried(fake, gw, 'quota-p2');
                before = await keyItem(gw, 'quota-p2');
                assert.equal(before.state, 'cooling');
            });
            await withGateway(fake, opts, async (gw) => {
                fake.reset();
                const it = await keyItem(gw, 'quota-p2');
                assert.equal(it.state, 'cooling', `after the restart: ${JSON.stringify(it)}`);
                assert.deepEqual(it.cooldowns, before.cooldowns);
                assert.equal((await health(gw)).keys.cooling, 1);
                for (let i = 0; i < 4; i++) {
                    const { r, calls } = await ask(fake, gw);
                    assert.equal(r.status, 200);
                    assert.deepEqual(keysOf(calls), ['good-a'], 'the cooling key was called after the restart');
                }
            });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test('persistence: a key added through POST /api/keys survives a restart; a key removed from API_KEYS is gone', { timeout: T_LONG }, async () => {
        const dir = tempDir();
        const ADDED = 'good-added-persist-7781';
        try {
            await withGateway(fake, { dir, keys: ['good-a', 'good-gone', 'quota-gone'] }, async (gw) => {
                fake.reset();
                const add = await admin(gw, '/api/keys', { method: 'POST', body: { keys: `${ADDED}\n` } });
                assert.equal(add.status, 200, add.text);
                assert.equal(add.json.added.length, 1, add.text);
                /* give quota-gone a stored row (a cooldown) too */
                await askUntilTried(fake, gw, 'quota-gone');
                assert.equal((await health(gw)).keys.total, 4);
            });
            await withGateway(fake, { dir, keys: ['good-a'] }, async (gw) => {
                fake.reset();
                const h = await health(gw);
                assert.equal(h.keys.total, 2, `after the restart: ${JSON.stringify(h)}`);
                const exp = await admin(gw, '/api/keys/export');
                assert.equal(exp.status, 200);
                assert.deepEqual(exp.json.keys.slice().sort(), ['good-a', ADDED].sort());
                const it = await keyItem(gw, ADDED);
                assert.ok(it, 'the added key is not listed');
                assert.equal(it.from_admin, true);
                const used = new Set();
                for (let i = 0; i < 4; i++) {
                    const { r, calls } = await ask(fake, gw);
                    assert.equal(r.status, 200);
                    for (const c of calls) used.add(c.key);
                }
                assert.deepEqual([...used].sort(), ['good-a', ADDED].sort(), `keys used: ${[...used]}`);
                /* deleting it through the API makes it go for good */
                const del = await admin(gw, `/api/keys/${it.idx}`, { method: 'DELETE' });
                assert.equal(del.status, 200, del.text);
            });
            await withGateway(fake, { dir, keys: ['good-a'] }, async (gw) => {
                assert.equal((await health(gw)).keys.total, 1);
                assert.deepEqual((await admin(gw, '/api/keys/export')).json.keys, ['good-a']);
            });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test('persistence: the request log and the error log survive a restart', { timeout: T_LONG }, async () => {
        const dir = tempDir();
        const opts = { dir, keys: ['invalid-log-9', 'good-log-9'], env: { MAX_FAILURES: '100' } };
        let reqBefore;
        let errBefore;
        try {
            await withGateway(fake, opts, async (gw) => {
                fake.reset();
                for (let i = 0; i < 3; i++) assert.equal((await ask(fake, gw)).r.status, 200);
                const rq = await waitFor(async () => {
                    const r = await admin(gw, '/api/logs/requests?limit=100');
                    return r.status === 200 && r.json.items.length >= 3 ? r : null;
                }, { timeoutMs: 5000, what: '3 request log rows' });
                reqBefore = rq.json.items;
                const er = await admin(gw, '/api/logs/errors?limit=100');
                assert.equal(er.status, 200, er.text);
                errBefore = er.json.items;
                assert.ok(errBefore.length >= 1, `error log: ${er.text}`);
                assert.ok(errBefore.some((e) => e.status === 400 && /API_KEY_INVALID/.test(e.reason)), er.text);
            });
            await withGateway(fake, opts, async (gw) => {
                const rq = await admin(gw, '/api/logs/requests?limit=100');
                assert.equal(rq.status, 200, rq.text);
                const ids = new Set(rq.json.items.map((x) => x.id));
                for (const row of reqBefore) assert.ok(ids.has(row.id), `request log row ${JSON.stringify(row)} lost in the restart`);
                const mine = rq.json.items.filter((x) => x.route === 'chat' && x.model === FLASH && x.status === 200);
                assert.ok(mine.length >= 3, rq.text);
                const er = await admin(gw, '/api/logs/errors?limit=100');
                assert.equal(er.status, 200);
                const eids = new Set(er.json.items.map((x) => x.id));
                for (const row of errBefore) assert.ok(eids.has(row.id), `error log row ${JSON.stringify(row)} lost in the restart`);
                const leaks = findSecrets({ requests: rq.text, errors: er.text }, ['invalid-log-9', 'good-log-9']);
                assert.deepEqual(leaks, []);
            });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test('persistence: SIGKILL under load leaves a consistent database; the gateway starts and serves', { timeout: T_LONG }, async (t) => {
        const dir = tempDir();
        const opts = { dir, keys: ['good-k1', 'good-k2', 'invalid-k3'], env: { MAX_FAILURES: '100' } };
        try {
            const gw = await startGateway(fake, opts);
            let stop = false;
            try {
                fake.reset();
                let ok = 0;
                const worker = async () => {
                    while (!stop) {
                        try {
                            const { r } = await ask(fake, gw);
                            if (r.status === 200) ok++;
                        } catch {
                            /* the kill cuts requests */
                        }
                    }
                };
                const load = Array.from({ length: 8 }, worker);
                await sleep(1500);
                assert.ok(ok > 0, 'no request succeeded under load');
                gw.proc.kill('SIGKILL');
                const ex = await gw.exited;
                stop = true;
                await Promise.all(load);
                assert.equal(ex.signal, 'SIGKILL', `the gateway exited by itself under load: ${JSON.stringify(ex)}; stderr tail:\n${gw.stderr().slice(-3000)}`);
            } finally {
                stop = true;
                await gw.stop();
            }
            const db = path.join(dir, 'data', 'gemini-balance.db');
            assert.ok(fs.existsSync(db), 'no database');
            const which = spawnSync('sh', ['-c', 'command -v sqlite3'], { encoding: 'utf8' });
            if (which.status === 0) {
                const ic = spawnSync('sqlite3', [db, 'PRAGMA integrity_check'], { encoding: 'utf8', timeout: 10000 });
                assert.equal(ic.status, 0, ic.stderr);
                assert.equal(ic.stdout.trim(), 'ok', `integrity_check: ${ic.stdout} ${ic.stderr}`);
            } else {
                t.diagnostic('sqlite3 CLI not installed: integrity_check skipped');
            }
            await withGateway(fake, opts, async (gw2) => {
                assert.equal((await health(gw2)).keys.total, 3);
                const { r } = await ask(fake, gw2);
                assert.equal(r.status, 200, r.text);
                const rq = await admin(gw2, '/api/logs/requests?limit=1000');
                assert.equal(rq.status, 200, rq.text);
                /* records are committed at least every 500 ms: 1.5 s of load left some */
                assert.ok(rq.json.items.filter((x) => x.status === 200).length >= 1, `request log after SIGKILL: ${rq.text.slice(0, 500)}`);
            });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    /* ------------------------------------------------------------------ */
    /* re-validation                                                       */

    test('re-validation: POST /api/keys/{idx}/verify brings back a key the upstream accepts again', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['revive-1', 'good-a'], env: { MAX_FAILURES: '1' } }, async (gw) => {
            fake.reset();
            await askUntilTried(fake, gw, 'revive-1');
            assert.equal((await health(gw)).keys.disabled, 1);
            const idx = (await keyItem(gw, 'revive-1')).idx;

            /* still rejected: the check says so and the key stays disabled */
            let v = await admin(gw, `/api/keys/${idx}/verify`, { method: 'POST' });
            assert.equal(v.status, 200, v.text);
            assert.equal(v.json.ok, false, v.text);
            assert.equal((await keyItem(gw, 'revive-1')).state, 'disabled');

            fake.reset();
            fake.keyState('revive-1', 'good');
            v = await admin(gw, `/api/keys/${idx}/verify`, { method: 'POST' });
            assert.equal(v.status, 200, v.text);
            assert.equal(v.json.ok, true, v.text);
            const probes = fake.requests();
            assert.equal(probes.length, 1, JSON.stringify(probes.map((p) => p.path)));
            assert.equal(probes[0].method, 'POST');
            assert.equal(probes[0].path, '/v1beta/models/gemini-2.5-flash-lite:generateContent');
            assert.equal(probes[0].key, 'revive-1');
            assert.equal(probes[0].keySource, 'header', 'the probe key is not in x-goog-api-key');
            assert.equal((await keyItem(gw, 'revive-1')).state, 'usable');
            assert.deepEqual((await health(gw)).keys, { total: 2, usable: 2, cooling: 0, disabled: 0 });

            fake.reset();
            fake.keyState('revive-1', 'good');
            const used = [];
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200);
                used.push(...keysOf(calls));
            }
            assert.ok(used.includes('revive-1'), `the revived key is not used: ${used}`);
        });
    });

    test('re-validation: CHECK_INTERVAL_SECONDS=1 re-enables a revived key without any admin call (probe on TEST_MODEL)', { timeout: T_SHORT }, async () => {
        await withGateway(fake, {
            keys: ['revive-2', 'good-a'],
            env: { MAX_FAILURES: '1', CHECK_INTERVAL_SECONDS: '1', TEST_MODEL: 'gemini-2.0-flash' },
        }, async (gw) => {
            fake.reset();
            await askUntilTried(fake, gw, 'revive-2');
            assert.equal((await health(gw)).keys.disabled, 1);
            fake.keyState('revive-2', 'good');
            await waitFor(async () => {
                const h = await health(gw);
                return h.keys.usable === 2 && h.keys.disabled === 0;
            }, { timeoutMs: 5000, intervalMs: 100, what: 'the background re-check to re-enable revive-2' });
            const probes = fake.requests().filter((q) => q.key === 'revive-2' && q.status === 200);
            assert.ok(probes.length >= 1);
            assert.equal(probes[0].path, '/v1beta/models/gemini-2.0-flash:generateContent');
            assert.equal(probes[0].keySource, 'header');
            assert.match(gw.stderr(), /re-checking \d+ disabled keys/);
            fake.reset();
            fake.keyState('revive-2', 'good');
            const used = [];
            for (let i = 0; i < 4; i++) used.push(...keysOf((await ask(fake, gw)).calls));
            assert.ok(used.includes('revive-2'), `keys used: ${used}`);
        });
    });

    /* ------------------------------------------------------------------ */
    /* admin API                                                           */

    describe('admin API authorization', () => {
        const ADMIN = 'admin-e2e-token-Zq8w1x7v3u5t9s2r';
        const CLIENT = TOKEN;
        const KEYS = ['good-SECRETK-0001-AbCdEfGhIjKlMnOp', 'invalid-SECRETK-0002-QrStUvWxYz012345'];
        const ADDED = 'good-SECRETK-0003-added6789abcdefgh';
        let gw;
        before(async () => {
            gw = await startGateway(fake, { keys: KEYS, tokens: [CLIENT], env: { AUTH_TOKEN: ADMIN, MAX_FAILURES: '1' } });
            fake.reset();
            /* some traffic, so keys have state and the logs have rows */
            for (let i = 0; i < 3; i++) assert.equal((await ask(fake, gw)).r.status, 200);
            await waitFor(async () => {
                const r = await admin(gw, '/api/logs/errors', { token: ADMIN });
                return r.status === 200 && r.json.items.length > 0;
            }, { timeoutMs: 5000, what: 'an error log row' });
        }, HOOK);
        after(async () => gw && gw.stop(), HOOK);

        const ROUTES = [
            ['GET', '/api/status'], ['GET', '/api/keys'], ['GET', '/api/keys/export'], ['GET', '/api/stats'],
            ['GET', '/api/logs/requests'], ['GET', '/api/logs/errors'], ['GET', '/api/keys/0'],
            ['POST', '/api/keys', { keys: ADDED }], ['POST', '/api/keys/verify', { all: true }],
            ['POST', '/api/keys/0/verify'], ['POST', '/api/keys/0/enable'], ['POST', '/api/keys/0/disable'],
            ['POST', '/api/keys/0/reset'], ['DELETE', '/api/keys/0'],
        ];
        const LEAKS = [...KEYS, ADDED, ...KEYS.map(sha256), 'usable', 'cooling', 'disabled', '"state"', 'SECRETK'];

        for (const [who, headers] of [['no token', {}], ['a client token', auth(CLIENT)], ['a wrong Bearer', auth('nope-nope-nope')]]) {
            test(`every admin route with ${who}: 401 (pages: 302 to /admin/login), nothing leaked, nothing changed`, { timeout: T_SHORT }, async () => {
                for (const [method, p, body] of ROUTES) {
                    const r = await request(`${gw.url}${p}`, { method, headers, body });
                    assert.equal(r.status, 401, `${method} ${p} with ${who}: ${r.status} ${r.text}`);
                    assert.deepEqual(findSecrets({ [`${method} ${p}`]: r.text }, LEAKS), []);
                }
                for (const p of ['/admin', '/keys', '/admin/keys']) {
                    const r = await request(`${gw.url}${p}`, { headers });
                    assert.equal(r.status, 302, `GET ${p} with ${who}: ${r.status}`);
                    assert.equal(r.headers.location, '/admin/login');
                    assert.deepEqual(findSecrets({ [p]: r.text }, LEAKS), []);
                }
                /* nothing happened */
                const exp = await admin(gw, '/api/keys/export', { token: ADMIN });
                assert.deepEqual(exp.json.keys, KEYS, 'an unauthorized call changed the pool');
                const k0 = await admin(gw, '/api/keys/0', { token: ADMIN });
                assert.equal(k0.json.state, 'usable', 'an unauthorized call changed key 0');
            });
        }

        test('POST /api/login with a client token or a wrong token: 401, no cookie', { timeout: T_SHORT }, async () => {
            for (const token of [CLIENT, 'wrong', '']) {
                const r = await request(`${gw.url}/api/login`, { method: 'POST', body: { token } });
                assert.equal(r.status, 401, `login with ${JSON.stringify(token)}: ${r.status}`);
                assert.equal(r.headers['set-cookie'], undefined);
            }
        });

        test('login cookie: HttpOnly, SameSite=Strict, not the token; authorizes; logout invalidates it', { timeout: T_SHORT }, async () => {
            const r = await request(`${gw.url}/api/login`, { method: 'POST', body: { token: ADMIN } });
            assert.equal(r.status, 200, r.text);
            const sc = [].concat(r.headers['set-cookie'] || []);
            assert.equal(sc.length, 1, `Set-Cookie: ${sc}`);
            assert.match(sc[0], /;\s*HttpOnly/i);
            assert.match(sc[0], /;\s*SameSite=Strict/i);
            assert.ok(!sc[0].includes(ADMIN), 'the cookie holds the admin token');
            const pair = sc[0].split(';')[0];
            assert.match(pair, /^gb_session=[0-9a-f]{32,}$/);
            const cookie = { cookie: pair };
            const k = await request(`${gw.url}/api/keys`, { headers: cookie });
            assert.equal(k.status, 200, k.text);
            assert.equal((await request(`${gw.url}/admin`, { headers: cookie })).status, 200);
            const out = await request(`${gw.url}/api/logout`, { method: 'POST', headers: cookie });
            assert.equal(out.status, 200);
            const after = await request(`${gw.url}/api/keys`, { headers: cookie });
            assert.equal(after.status, 401, 'the session still works after logout');
            assert.equal((await request(`${gw.url}/admin`, { headers: cookie })).status, 302);
        });

        test('with the admin token every route works; keys are masked everywhere but in the export', { timeout: T_SHORT }, async () => {
            const texts = {};
            for (const [method, p, body] of ROUTES) {
                if (p === '/api/keys/export' || method === 'DELETE') continue;
                const r = await request(`${gw.url}${p}`, { method, headers: auth(ADMIN), body });
                assert.ok(r.status === 200 || r.status === 202, `${method} ${p}: ${r.status} ${r.text}`);
                assert.ok(r.json !== undefined, `${method} ${p}: not JSON: ${r.text.slice(0, 200)}`);
                texts[`${method} ${p}`] = r.text;
            }
            assert.equal(JSON.parse(texts['POST /api/keys']).added.length, 1, texts['POST /api/keys']);
            assert.equal(JSON.parse(texts['POST /api/keys/0/verify']).ok, true, texts['POST /api/keys/0/verify']);
            assert.ok(JSON.parse(texts['POST /api/keys/verify']).started >= 1);
            const page = await request(`${gw.url}/admin`, { headers: auth(ADMIN) });
            assert.equal(page.status, 200);
            assert.match(String(page.headers['content-type']), /text\/html/);
            texts['GET /admin'] = page.text;
            const m = await request(`${gw.url}/metrics`, { headers: auth(ADMIN) });
            texts['GET /metrics'] = m.text;
            const rawKeys = await admin(gw, '/api/keys?state=all', { token: ADMIN });
            texts['GET /api/keys?state=all'] = rawKeys.text;
            assert.equal(rawKeys.json.total, 3);
            assert.deepEqual(findSecrets(texts, [...KEYS, ADDED]), [], 'a full key in an admin answer');

            const exp = await admin(gw, '/api/keys/export', { token: ADMIN });
            assert.equal(exp.status, 200);
            assert.deepEqual(exp.json.keys.slice().sort(), [...KEYS, ADDED].sort());

            const del = await admin(gw, '/api/keys/0', { method: 'DELETE', token: ADMIN });
            assert.equal(del.status, 200, del.text);
            const exp2 = await admin(gw, '/api/keys/export', { token: ADMIN });
            assert.ok(!exp2.json.keys.includes(KEYS[0]));
            assert.equal((await health(gw)).keys.total, 2);
        });
    });

    /* ------------------------------------------------------------------ */
    /* /metrics                                                            */

    test('/metrics: Prometheus text counting requests and attempts, open by default, no key inside', { timeout: T_SHORT }, async () => {
        const keys = ['invalid-met-1', 'good-met-2'];
        await withGateway(fake, { keys, env: { MAX_FAILURES: '100' } }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 3; i++) assert.equal((await ask(fake, gw)).r.status, 200);
            assert.equal((await ask(fake, gw, { model: 'no-such-model' })).r.status, 404);
            const r = await request(`${gw.url}/metrics`);
            assert.equal(r.status, 200, r.text);
            assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
            const s = parseMetrics(r.text);
            assert.equal(sample(s, 'gemini_balance_requests_total', { route: 'chat', model: FLASH, status: '200' }), 3, r.text);
            assert.equal(sample(s, 'gemini_balance_requests_total', { route: 'chat', model: 'no-such-model', status: '404' }), 1, r.text);
            const up = fake.requests();
            const ok = up.filter((q) => q.status === 200).length;
            const invalid = up.filter((q) => q.status === 400).length;
            const client = up.filter((q) => q.status === 404).length;
            assert.ok(invalid >= 1 && ok >= 3);
            assert.equal(sample(s, 'gemini_balance_upstream_attempts_total', { outcome: 'ok' }), ok, r.text);
            assert.equal(sample(s, 'gemini_balance_upstream_attempts_total', { outcome: 'key_invalid' }), invalid, r.text);
            assert.equal(sample(s, 'gemini_balance_upstream_attempts_total', { outcome: 'client_error' }), client, r.text);
            assert.equal(sample(s, 'gemini_balance_upstream_attempts_total', { outcome: 'rate_limited' }), 0);
            assert.equal(sample(s, 'gemini_balance_keys_total'), 2);
            assert.deepEqual(findSecrets({ metrics: r.text }, keys), []);
        });
    });

    test('/metrics with METRICS_TOKEN: 401 without it or with a client token, 200 with it or the admin token', { timeout: T_SHORT }, async () => {
        const ADMIN = 'admin-met-token-3f9a8b7c6d5e';
        await withGateway(fake, { env: { METRICS_TOKEN: 'm', AUTH_TOKEN: ADMIN } }, async (gw) => {
            assert.equal((await request(`${gw.url}/metrics`)).status, 401);
            assert.equal((await request(`${gw.url}/metrics`, { headers: auth(TOKEN) })).status, 401);
            assert.equal((await request(`${gw.url}/metrics`, { headers: auth('x') })).status, 401);
            const m = await request(`${gw.url}/metrics`, { headers: auth('m') });
            assert.equal(m.status, 200);
            assert.match(m.text, /gemini_balance_requests_total/);
            assert.equal((await request(`${gw.url}/metrics`, { headers: auth(ADMIN) })).status, 200);
        });
    });

    /* ------------------------------------------------------------------ */
    /* SIGHUP                                                              */

    test('SIGHUP: a new API_KEYS in .env takes effect; a stream started before completes', { timeout: T_LONG }, async () => {
        await withGateway(fake, {
            keys: [], env: { API_KEYS: undefined }, files: { '.env': 'API_KEYS=good-old-1\n' },
        }, async (gw) => {
            fake.reset();
            assert.equal((await health(gw)).keys.total, 1);
            const m = marker('long');
            const streaming = chat(gw, { model: 'long-stream', stream: true, messages: [{ role: 'user', content: m }] }, { timeoutMs: 20000 });
            await waitFor(() => generateCalls(fake, m).some((c) => c.eventsSent > 0), { timeoutMs: 5000, what: 'the long stream to start' });

            const mark = gw.mark();
            fs.writeFileSync(path.join(gw.dir, '.env'), 'API_KEYS=good-new-1,good-new-2\n');
            gw.proc.kill('SIGHUP');
            await gw.waitForStderr(/reloaded the configuration/, { since: mark, timeoutMs: 5000 });
            assert.equal(generateCalls(fake, m)[0].finished, false, 'the stream ended before the reload: nothing tested');
            assert.deepEqual((await health(gw)).keys, { total: 2, usable: 2, cooling: 0, disabled: 0 });
            const used = new Set();
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
                for (const c of calls) used.add(c.key);
            }
            assert.deepEqual([...used].sort(), ['good-new-1', 'good-new-2']);

            const s = await streaming;
            assert.equal(s.status, 200, s.text.slice(0, 300));
            const events = parseOpenAISse(s.text);
            assert.equal(events.at(-1), '[DONE]', `the stream did not end with [DONE]: ${s.text.slice(-300)}`);
            const text = events.slice(0, -1).map((e) => (e.choices && e.choices[0] && e.choices[0].delta.content) || '').join('');
            assert.ok(text.startsWith('[0][1]') && text.endsWith('[199]'), `stream text: ${text.slice(0, 40)}...${text.slice(-40)}`);
            const call = generateCalls(fake, m);
            assert.equal(call.length, 1);
            assert.equal(call[0].key, 'good-old-1');
        });
    });

    test('SIGHUP with a broken .env: the old configuration stays and "reload failed" is logged', { timeout: T_SHORT }, async () => {
        await withGateway(fake, {
            keys: [], env: { API_KEYS: undefined }, files: { '.env': 'API_KEYS=good-keep-1\n' },
        }, async (gw) => {
            fake.reset();
            const mark = gw.mark();
            fs.writeFileSync(path.join(gw.dir, '.env'), 'API_KEYS=good-broken-1\nKEY_STRATEGY=bogus\nMAX_FAILURES=abc\n');
            gw.proc.kill('SIGHUP');
            await gw.waitForStderr(/reload failed/, { since: mark, timeoutMs: 5000 });
            assert.equal((await health(gw)).keys.total, 1);
            for (let i = 0; i < 3; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
                assert.deepEqual(keysOf(calls), ['good-keep-1']);
            }
            assert.equal(gw.exit, null, 'the gateway exited');
        });
    });
    test('SIGHUP several times in a row: every reload is handled, the gateway keeps running', { timeout: T_SHORT }, async () => {
        await withGateway(fake, {
            keys: [], env: { API_KEYS: undefined }, files: { '.env': 'API_KEYS=good-burst-1\n' },
        }, async (gw) => {
            await sleep(100);
            fs.writeFileSync(path.join(gw.dir, '.env'), 'API_KEYS=good-burst-1,good-burst-2\n');
            /* e.g. a config tool reloading twice: a SIGHUP may arrive while the
             * previous reload runs */
            for (let i = 0; i < 30 && !gw.exit; i++) {
                gw.proc.kill('SIGHUP');
                await sleep(1);
            }
            await sleep(300);
            assert.equal(gw.exit, null, `the gateway died of repeated SIGHUPs: ${JSON.stringify(gw.exit)}`);
            await gw.waitForStderr(/reloaded the configuration/, { timeoutMs: 2000 });
            assert.equal((await health(gw)).keys.total, 2);
            assert.equal((await ask(fake, gw)).r.status, 200);
        });
    });

    test('SIGTERM right after a SIGHUP: the gateway drains and exits 0 (not killed by the signal)', { timeout: T_LONG }, async () => {
        /* a few rounds: the SIGTERM must be handled whenever it comes */
        for (let round = 0; round < 5; round++) {
            const gw = await startGateway(fake, {
                keys: [], env: { API_KEYS: undefined }, files: { '.env': 'API_KEYS=good-term-1\n' },
            });
            let ex;
            try {
                await sleep(50);
                gw.proc.kill('SIGHUP');
                gw.proc.kill('SIGTERM');
                const timer = sleep(5000).then(() => 'timeout');
                ex = await Promise.race([gw.exited, timer]);
            } finally {
                await gw.stop().catch(() => {});
            }
            assert.notEqual(ex, 'timeout', 'the gateway did not stop on SIGTERM');
            assert.deepEqual(ex, { code: 0, signal: null }, `round ${round + 1}: exit after SIGHUP + SIGTERM; stderr tail:\n${gw.stderr().slice(-1500)}`);
        }
    });
});
