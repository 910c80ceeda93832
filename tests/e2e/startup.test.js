/*
 * Start-up: configuration checks, the listening line, JSON list syntax,
 * graceful SIGTERM.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startFakeUpstream, startGateway, runGatewayExpectingExit, request, auth, health, T_SHORT, HOOK,
} from './lib/harness.js';

describe('start-up', () => {
    let fake;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
    }, HOOK);
    after(async () => fake && fake.close(), HOOK);

    test('refuses to start without ALLOWED_TOKENS, naming it', { timeout: T_SHORT }, async () => {
        const r = await runGatewayExpectingExit(fake, { env: { ALLOWED_TOKENS: undefined } });
        assert.notEqual(r.code, 0, `exit ${JSON.stringify(r)}`);
        assert.match(r.stderr + r.stdout, /ALLOWED_TOKENS/);
        assert.doesNotMatch(r.stderr, /listening on/);
        assert.equal(fake.requests().length, 0);
    });

    test('refuses to start with an empty ALLOWED_TOKENS list', { timeout: T_SHORT }, async () => {
        const r = await runGatewayExpectingExit(fake, { env: { ALLOWED_TOKENS: '' } });
        assert.notEqual(r.code, 0, `exit ${JSON.stringify(r)}`);
        assert.match(r.stderr + r.stdout, /ALLOWED_TOKENS/);
    });

    for (const [name, value] of [
        ['PORT', 'abc'],
        ['PORT', '70000'],
        ['MAX_RETRIES', '-1'],
        ['MAX_FAILURES', 'many'],
        ['TIME_OUT', 'soon'],
        ['WORKERS', '-3'],
        ['SAFETY_SETTINGS', 'not json'],
        ['MAX_REQUEST_BYTES', 'huge'],
        ['LOG_FORMAT', 'yaml'],
    ]) {
        test(`a bad value ${name}=${value} stops start-up with a message naming ${name}`, { timeout: T_SHORT }, async () => {
            const r = await runGatewayExpectingExit(fake, { env: { [name]: value } });
            assert.notEqual(r.code, 0, `exit ${JSON.stringify({ code: r.code, signal: r.signal })}`);
            assert.equal(r.signal, null, 'it should exit, not crash');
            assert.ok((r.stderr + r.stdout).includes(name), `message does not name ${name}:\n${r.stderr}`);
        });
    }

    test('PORT=0 listens on a free port and prints the actual URL', { timeout: T_SHORT }, async () => {
        const gw = await startGateway(fake);
        try {
            const m = /^http:\/\/127\.0\.0\.1:(\d+)$/.exec(gw.url);
            assert.ok(m, `listening URL ${gw.url}`);
            assert.notEqual(Number(m[1]), 0);
            const h = await health(gw);
            assert.equal(h.status, 'healthy');
        } finally {
            await gw.stop();
        }
    });

    test('lists in JSON form are accepted (API_KEYS, ALLOWED_TOKENS)', { timeout: T_SHORT }, async () => {
        const gw = await startGateway(fake, {
            env: { API_KEYS: '["good-json-1","good-json-2","good-json-3"]', ALLOWED_TOKENS: '["tok-json-a","tok-json-b"]' },
        });
        try {
            const h = await health(gw);
            assert.equal(h.keys.total, 3);
            for (const t of ['tok-json-a', 'tok-json-b']) {
                const r = await request(`${gw.url}/v1/models`, { headers: auth(t) });
                assert.equal(r.status, 200, `token ${t}: ${r.status} ${r.text}`);
            }
            const bad = await request(`${gw.url}/v1/models`, { headers: auth('["tok-json-a"') });
            assert.equal(bad.status, 401);
        } finally {
            await gw.stop();
        }
    });

    test('lists in comma form are trimmed', { timeout: T_SHORT }, async () => {
        const gw = await startGateway(fake, { env: { API_KEYS: 'good-c-1, good-c-2', ALLOWED_TOKENS: 'tok-c-a, tok-c-b' } });
        try {
            assert.equal((await health(gw)).keys.total, 2);
            const r = await request(`${gw.url}/v1/models`, { headers: auth('tok-c-b') });
            assert.equal(r.status, 200);
        } finally {
            await gw.stop();
        }
    });

    test('SIGTERM stops the gateway cleanly (exit 0) within 5 s', { timeout: T_SHORT }, async () => {
        const gw = await startGateway(fake);
        await health(gw);
        const t0 = Date.now();
        const exit = await gw.stop();
        assert.deepEqual(exit, { code: 0, signal: null });
        assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    });
});
