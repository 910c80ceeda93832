/*
 * Key pool and failure policy (DESIGN.md section 5): rotation, bad keys
 * disabled after MAX_FAILURES, 429 cool-down, 5xx / timeout / connection
 * errors retried without blame, MAX_RETRIES, no usable key -> 503.
 * Each test runs its own gateway (pool state is per process).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startFakeUpstream, startGateway, chat, parseOpenAISse, marker, generateCalls, health, T_SHORT, T_LONG, HOOK, withGateway,
} from './lib/harness.js';

const MODEL = 'gemini-2.5-flash';


/* One chat request; returns { r, m, calls: upstream attempts in order }. */
async function ask(fake, gw, extra = {}) {
    const m = marker('fo');
    const r = await chat(gw, { model: MODEL, messages: [{ role: 'user', content: m }], ...extra });
    return { r, m, calls: generateCalls(fake, m) };
}

function keysOf(calls) {
    return calls.map((c) => c.key);
}

describe('failover', () => {
    let fake;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
    }, HOOK);
    after(async () => fake && fake.close(), HOOK);

    test('rotation: consecutive requests use the next key of the pool', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['good-a', 'good-b'] }, async (gw) => {
            const used = [];
            for (let i = 0; i < 6; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
                assert.equal(calls.length, 1);
                used.push(calls[0].key);
            }
            assert.deepEqual(new Set(used), new Set(['good-a', 'good-b']), `keys used: ${used}`);
            for (let i = 1; i < used.length; i++) assert.notEqual(used[i], used[i - 1], `same key twice in a row: ${used}`);
        });
    });

    test('invalid key (400 API_KEY_INVALID): retried on the next key, disabled after MAX_FAILURES (default 3)', { timeout: T_LONG }, async () => {
        await withGateway(fake, { keys: ['invalid-x', 'good-a'] }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 20 && (await health(gw)).keys.disabled === 0; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
                assert.equal(calls.at(-1).key, 'good-a');
                if (calls.length > 1) assert.deepEqual(keysOf(calls), ['invalid-x', 'good-a']);
            }
            const k = (await health(gw)).keys;
            assert.deepEqual({ total: k.total, usable: k.usable, disabled: k.disabled, cooling: k.cooling },
                { total: 2, usable: 1, disabled: 1, cooling: 0 });
            assert.equal(fake.stats().byKey['invalid-x'], 3, 'invalid key not tried exactly MAX_FAILURES times');
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200);
                assert.deepEqual(keysOf(calls), ['good-a'], 'a disabled key was used');
            }
        });
    });

    test('forbidden key (403): failure counted, disabled at MAX_FAILURES=1', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['forbidden-x', 'good-a'], env: { MAX_FAILURES: '1' } }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 4; i++) {
                const { r } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
            }
            assert.equal(fake.stats().byKey['forbidden-x'], 1);
            const h = await health(gw);
            assert.equal(h.keys.disabled, 1);
            assert.equal(h.keys.usable, 1);
        });
    });

    test('429: key cooled down (retryDelay 26s), request retried on the next key', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quota-x', 'good-a'] }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 6; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
                assert.equal(calls.at(-1).key, 'good-a');
            }
            assert.equal(fake.stats().byKey['quota-x'], 1, 'a cooling key was used again');
            const h = await health(gw);
            assert.equal(h.keys.cooling, 1);
            assert.equal(h.keys.disabled, 0);
            assert.equal(h.keys.usable, 1);
        });
    });

    test('429 on a stream before the first byte: retried, stream succeeds', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quota-s', 'good-a'] }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 3; i++) {
                const { r, m, calls } = await ask(fake, gw, { stream: true });
                assert.equal(r.status, 200, r.text);
                const events = parseOpenAISse(r.text);
                assert.equal(events.at(-1), '[DONE]');
                const text = events.slice(0, -1).map((e) => (e.choices[0] && e.choices[0].delta.content) || '').join('');
                assert.equal(text, `Echo: ${m}`);
                assert.equal(calls.at(-1).key, 'good-a');
            }
            assert.equal(fake.stats().byKey['quota-s'], 1);
        });
    });

    test('503 upstream: retried after a short backoff, key not blamed', { timeout: T_LONG }, async () => {
        await withGateway(fake, { keys: ['unavail-x', 'good-a'], env: { MAX_FAILURES: '2' } }, async (gw) => {
            fake.reset();
            const gaps = [];
            for (let i = 0; i < 20 && (fake.stats().byKey['unavail-x'] || 0) < 4; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
                assert.equal(calls.at(-1).key, 'good-a');
                for (let j = 1; j < calls.length; j++) {
                    if (calls[j - 1].key === 'unavail-x') gaps.push(calls[j].time - calls[j - 1].time);
                }
            }
            assert.ok((fake.stats().byKey['unavail-x'] || 0) >= 4, 'the 503 key was not tried often enough');
            const h = await health(gw);
            assert.deepEqual({ disabled: h.keys.disabled, cooling: h.keys.cooling, usable: h.keys.usable },
                { disabled: 0, cooling: 0, usable: 2 }, 'a key was penalised for a 503');
            assert.ok(gaps.length > 0);
            assert.ok(Math.min(...gaps) >= 50, `retry after a 503 came after ${Math.min(...gaps)} ms (no backoff)`);
        });
    });

    test('only 503 keys: client gets 503 after MAX_RETRIES+1 attempts (default 3) over different keys', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['unavail-1', 'unavail-2'] }, async (gw) => {
            const { r, calls } = await ask(fake, gw);
            assert.equal(r.status, 503, r.text);
            assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', r.text);
            assert.equal(calls.length, 4, `upstream attempts: ${calls.length}`);
            assert.deepEqual(new Set(keysOf(calls)), new Set(['unavail-1', 'unavail-2']));
            for (let i = 1; i < calls.length; i++) assert.notEqual(calls[i].key, calls[i - 1].key, `${keysOf(calls)}`);
        });
    });

    test('MAX_RETRIES=1 limits the attempts to 2', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['unavail-1', 'unavail-2', 'unavail-3'], env: { MAX_RETRIES: '1' } }, async (gw) => {
            const { r, calls } = await ask(fake, gw);
            assert.equal(r.status, 503);
            assert.equal(calls.length, 2);
            assert.notEqual(calls[0].key, calls[1].key);
        });
    });

    test('all attempts fail with 403: client gets the last upstream status', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['forbidden-1', 'forbidden-2'], env: { MAX_RETRIES: '2', MAX_FAILURES: '100' } }, async (gw) => {
            const { r, calls } = await ask(fake, gw);
            assert.equal(calls.length, 3);
            assert.equal(r.status, 403, r.text);
        });
    });

    test('no usable key (all cooling): 503 at once with Retry-After, upstream not called', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quota-only'] }, async (gw) => {
            const first = await ask(fake, gw);
            assert.equal(first.calls.length, 1);
            assert.ok([429, 503].includes(first.r.status), `first request: ${first.r.status}`);
            /* the upstream's 429 reaches the client with when the pool has a key again
             * (retryDelay 26s): the openai SDK waits that long instead of hammering */
            assert.ok(Number(first.r.headers['retry-after']) >= 20, `Retry-After: ${first.r.headers['retry-after']}`);
            assert.match(String(first.r.headers['access-control-expose-headers']), /retry-after/i);
            assert.equal((await health(gw)).keys.cooling, 1);
            const { r, calls } = await ask(fake, gw);
            assert.equal(r.status, 503, r.text);
            assert.equal(calls.length, 0, 'a cooling key was used');
            assert.ok(r.ms < 1000, `took ${r.ms} ms`);
            assert.match(String(r.headers['retry-after']), /^\d+$/, `Retry-After: ${r.headers['retry-after']}`);
            assert.ok(Number(r.headers['retry-after']) > 0);
            assert.ok(r.json && r.json.error, r.text);
        });
    });

    test('no usable key (all disabled): 503 at once with Retry-After', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['invalid-only'], env: { MAX_FAILURES: '1' } }, async (gw) => {
            await ask(fake, gw);
            assert.equal((await health(gw)).keys.disabled, 1);
            const { r, calls } = await ask(fake, gw);
            assert.equal(r.status, 503, r.text);
            assert.equal(calls.length, 0);
            assert.ok(r.headers['retry-after'], 'no Retry-After');
            const s = await ask(fake, gw, { stream: true });
            assert.equal(s.r.status, 503);
        });
    });

    test('connection dropped without an answer: retried on another key', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['die-x', 'good-a'] }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 4; i++) {
                const { r, m } = await ask(fake, gw);
                assert.equal(r.status, 200, r.text);
                assert.equal(r.json.choices[0].message.content, `Echo: ${m}`);
            }
            assert.ok(fake.stats().byKey['die-x'] >= 1);
            assert.equal((await health(gw)).keys.disabled, 0);
        });
    });

    test('upstream timeout (TIME_OUT=1 s): cut and retried on another key', { timeout: T_LONG }, async () => {
        await withGateway(fake, { keys: ['slow-4000-x', 'good-a'], env: { TIME_OUT: '1' } }, async (gw) => {
            fake.reset();
            let hit = null;
            for (let i = 0; i < 4 && !hit; i++) {
                const res = await ask(fake, gw);
                assert.equal(res.r.status, 200, res.r.text);
                if (res.calls.length > 1) hit = res;
            }
            assert.ok(hit, 'the slow key was never tried');
            assert.deepEqual(keysOf(hit.calls), ['slow-4000-x', 'good-a']);
            assert.ok(hit.r.ms >= 900, `answered after ${hit.r.ms} ms, before the timeout`);
            assert.ok(hit.r.ms < 3500, `answered after ${hit.r.ms} ms: the timeout was not applied`);
            assert.ok(fake.stats().aborted >= 1, 'the gateway did not close the timed-out upstream request');
        });
    });

    test('success resets the consecutive failure count (MAX_FAILURES=2)', { timeout: T_SHORT }, async () => {
        /* flaky-* keys fail (400 API_KEY_INVALID) on every other request, so
         * the key never fails twice in a row */
        await withGateway(fake, { keys: ['flaky-x'], env: { MAX_FAILURES: '2', MAX_RETRIES: '1' } }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 6; i++) {
                const { r, calls } = await ask(fake, gw);
                assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.text}`);
                assert.deepEqual(keysOf(calls), ['flaky-x', 'flaky-x']);
            }
            const h = await health(gw);
            assert.equal(h.keys.disabled, 0, 'key disabled although every failure was followed by a success');
            assert.equal(h.keys.usable, 1);
        });
    });

    /* a name that does not resolve, and TLS spoken to a plain-HTTP port */
    for (const [what, baseUrl] of [
        ['DNS failure', () => 'http://no-such-host.invalid/v1beta'],
        ['TLS error', (fake) => `${fake.url.replace('http://', 'https://')}/v1beta`],
    ]) {
        test(`upstream ${what}: a clear 5xx OpenAI error, soon, no key blamed`, { timeout: T_SHORT }, async () => {
            const plain = await startFakeUpstream({ port: 0 });
            const gw = await startGateway(null, { keys: ['good-a', 'good-b'], env: { BASE_URL: baseUrl(plain), MAX_RETRIES: '1' } });
            try {
                const r = await chat(gw, { model: MODEL, messages: [{ role: 'user', content: 'anyone?' }] });
                assert.ok(r.status >= 500 && r.status <= 599, `status ${r.status} ${r.text}`);
                assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', r.text);
                assert.match(r.json.error.message, /upstream|resolve|TLS|SSL|connect/i, r.text);
                assert.ok(r.ms < 5000, `took ${r.ms} ms`);
                const h = await health(gw);
                assert.equal(h.keys.disabled, 0, 'a key was blamed for a transport error');
                assert.equal(h.keys.cooling, 0);
            } finally {
                await gw.stop();
                await plain.close();
            }
        });
    }

    test('upstream unreachable (connection refused): 5xx OpenAI error, soon', { timeout: T_SHORT }, async () => {
        const dead = await startFakeUpstream({ port: 0 });
        const deadUrl = dead.url;
        await dead.close(); /* nothing listens there any more */
        const gw = await startGateway(null, { keys: ['good-a', 'good-b'], env: { BASE_URL: `${deadUrl}/v1beta`, MAX_RETRIES: '2' } });
        try {
            const r = await chat(gw, { model: MODEL, messages: [{ role: 'user', content: 'anyone?' }] });
            assert.ok(r.status >= 500 && r.status <= 599, `status ${r.status}`);
            assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', r.text);
            assert.ok(r.ms < 5000, `took ${r.ms} ms`);
            const h = await health(gw);
            assert.equal(h.keys.disabled, 0, 'a key was blamed for a connection error');
            assert.equal(h.keys.cooling, 0);
        } finally {
            await gw.stop();
        }
    });
});
