/*
 * Errors as the openai package sees them: 401, upstream 400/404 returned at
 * once (no retry, no key penalty), 503 when no key is configured.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startFakeUpstream, startGateway, openai, chat, OpenAI, marker, generateCalls, health, T_SHORT, HOOK,
} from './lib/harness.js';

const KEYS = ['good-err-1', 'good-err-2', 'good-err-3'];

describe('errors through the openai package', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: KEYS, env: { MAX_FAILURES: '1' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    for (const prefix of ['/v1', '/hf/v1']) {
        test(`${prefix}: wrong token -> AuthenticationError (401)`, { timeout: T_SHORT }, async () => {
            fake.reset();
            const client = openai(gw, { prefix, apiKey: 'sk-not-allowed-123' });
            await assert.rejects(
                client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }] }),
                (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
            await assert.rejects(client.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
            assert.equal(fake.requests().length, 0);
        });
    }

    test('upstream 400 INVALID_ARGUMENT -> BadRequestError (400), upstream message, no retry', { timeout: T_SHORT }, async () => {
        const m = marker('bad');
        await assert.rejects(
            openai(gw).chat.completions.create({ model: 'bad-request', messages: [{ role: 'user', content: m }] }),
            (e) => {
                assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name} ${e.status} ${e.message}`);
                assert.equal(e.status, 400);
                assert.match(e.message, /Thinking level MINIMAL is not supported/);
                return true;
            });
        assert.equal(generateCalls(fake, m).length, 1, 'a bad request was retried');
    });

    test('upstream 404 unknown model -> NotFoundError (404), no retry', { timeout: T_SHORT }, async () => {
        const m = marker('nf');
        await assert.rejects(
            openai(gw).chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: m }] }),
            (e) => {
                assert.ok(e instanceof OpenAI.NotFoundError, `${e.constructor.name} ${e.status} ${e.message}`);
                assert.equal(e.status, 404);
                assert.match(e.message, /no-such-model/);
                return true;
            });
        assert.equal(generateCalls(fake, m).length, 1, 'a 404 was retried');
    });

    test('upstream 404 on a stream request -> NotFoundError before any chunk', { timeout: T_SHORT }, async () => {
        const m = marker('nfs');
        await assert.rejects(
            openai(gw).chat.completions.create({ model: 'no-such-model', stream: true, messages: [{ role: 'user', content: m }] }),
            (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
        assert.equal(generateCalls(fake, m).length, 1);
    });

    test('raw: upstream error in OpenAI error shape', { timeout: T_SHORT }, async () => {
        const r = await chat(gw, { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
        assert.equal(r.status, 404);
        for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in r.json.error, `error.${k} missing: ${r.text}`);
        assert.match(r.json.error.message, /not found/);
        /* as OpenAI (and the gateway's own /v1/models/{id}) says it */
        assert.equal(r.json.error.code, 'model_not_found', r.text);
    });

    test('client errors do not penalise keys (MAX_FAILURES=1)', { timeout: T_SHORT }, async () => {
        for (let i = 0; i < 4; i++) {
            await chat(gw, { model: 'bad-request', messages: [{ role: 'user', content: 'x' }] });
            await chat(gw, { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
        }
        const h = await health(gw);
        assert.equal(h.keys.disabled, 0);
        assert.equal(h.keys.cooling, 0);
        assert.equal(h.keys.usable, KEYS.length);
        const m = marker('after');
        const res = await openai(gw).chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] });
        assert.equal(res.choices[0].message.content, `Echo: ${m}`);
    });
});

describe('no API keys configured', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: [] });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('chat -> APIError 503 "no API keys configured", at once, nothing forwarded', { timeout: T_SHORT }, async () => {
        const t0 = Date.now();
        await assert.rejects(
            openai(gw).chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }] }),
            (e) => {
                assert.ok(e instanceof OpenAI.APIError, String(e));
                assert.equal(e.status, 503);
                assert.match(e.message, /no API keys configured/);
                return true;
            });
        assert.ok(Date.now() - t0 < 2000);
        const r = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'x' }] });
        assert.equal(r.status, 503);
        assert.match(r.json.error.message, /no API keys configured/);
        assert.equal(generateCalls(fake).length, 0);
        const h = await health(gw);
        assert.equal(h.keys.total, 0);
    });
});
