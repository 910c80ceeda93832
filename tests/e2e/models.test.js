/*
 * GET /v1/models and /hf/v1/models: every upstream page, "-search" twins for
 * SEARCH_MODELS, the OpenAI list shape, and the cache.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startFakeUpstream, startGateway, openai, request, auth, modelListCalls, fixtureModelIds, TOKEN, T_SHORT, HOOK,
} from './lib/harness.js';

const KEYS = ['good-models-1', 'good-models-2'];

async function listIds(gw, prefix) {
    const ids = [];
    const page = await openai(gw, { prefix }).models.list();
    for await (const m of page) {
        assert.equal(m.object, 'model', JSON.stringify(m));
        assert.equal(m.owned_by, 'google', JSON.stringify(m));
        assert.equal(typeof m.created, 'number', JSON.stringify(m));
        ids.push(m.id);
    }
    return ids;
}

describe('model list', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: KEYS });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('all upstream pages, ids without "models/", -search twins (openai package, /v1)', { timeout: T_SHORT }, async () => {
        const ids = await listIds(gw, '/v1');
        const expected = [...fixtureModelIds(), 'gemini-2.5-flash-search', 'gemini-2.5-pro-search'];
        assert.deepEqual([...ids].sort(), [...expected].sort());
        assert.ok(!ids.some((id) => id.startsWith('models/')));
        const calls = modelListCalls(fake);
        assert.ok(calls.length >= 2, `the gateway fetched ${calls.length} page(s); the fake needs at least 2`);
        assert.ok(calls.slice(1).every((c) => /[?&]pageToken=/.test(c.path)), calls.map((c) => c.path).join(' '));
        for (const c of calls) {
            assert.ok(KEYS.includes(c.headers['x-goog-api-key']), 'list fetched without a pool key');
            assert.equal(c.headers.authorization, undefined);
            assert.ok(!c.path.includes('key='), c.path);
            assert.ok(!c.path.includes(TOKEN));
        }
    });

    test('/hf/v1/models gives the same list', { timeout: T_SHORT }, async () => {
        const v1 = await listIds(gw, '/v1');
        const hf = await listIds(gw, '/hf/v1');
        assert.deepEqual([...hf].sort(), [...v1].sort());
    });

    test('raw shape: {"object":"list","data":[...]}', { timeout: T_SHORT }, async () => {
        const r = await request(`${gw.url}/v1/models`, { headers: auth() });
        assert.equal(r.status, 200);
        assert.equal(r.json.object, 'list');
        assert.ok(Array.isArray(r.json.data));
        const flash = r.json.data.find((m) => m.id === 'gemini-2.5-flash');
        assert.ok(flash);
        assert.equal(flash.object, 'model');
        assert.equal(flash.owned_by, 'google');
    });

    test('the list is cached: a second call does not hit the upstream', { timeout: T_SHORT }, async () => {
        await listIds(gw, '/v1');
        fake.reset();
        await listIds(gw, '/v1');
        await listIds(gw, '/hf/v1');
        assert.equal(modelListCalls(fake).length, 0, 'the model list was fetched again');
    });

    test('SEARCH_MODELS chooses the -search twins', { timeout: T_SHORT }, async () => {
        const g2 = await startGateway(fake, { keys: KEYS, env: { SEARCH_MODELS: '["gemini-2.0-flash","gemini-3-pro-preview"]' } });
        try {
            const ids = await listIds(g2, '/v1');
            assert.ok(ids.includes('gemini-2.0-flash-search'));
            assert.ok(ids.includes('gemini-3-pro-preview-search'));
            assert.ok(!ids.includes('gemini-2.5-flash-search'));
            assert.ok(!ids.includes('gemini-2.5-pro-search'));
            assert.equal(ids.filter((i) => i.endsWith('-search')).length, 2);
        } finally {
            await g2.stop();
        }
    });
});
