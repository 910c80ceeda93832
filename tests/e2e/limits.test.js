/*
 * Limits (issue 6): JSON nesting depth, header count, and slow clients that
 * trickle their requests while normal clients are served.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startFakeUpstream, startGateway, chat, request, auth, health, waitFor, sleep, T_LONG, HOOK } from './lib/harness.js';

describe('request limits', () => {
    let fake, gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: ['good-lim-a'], env: { MAX_JSON_DEPTH: '16', MAX_HEADERS: '40', CLIENT_TIMEOUT: '30' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    function nested(depth) {
        /* depth levels in all: the body object, messages, and (depth - 2) arrays in content */
        return `{"model":"gemini-2.5-flash","messages":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
    }

    test('a body nested deeper than MAX_JSON_DEPTH is a 400 naming the limit, nothing forwarded', { timeout: T_LONG }, async () => {
        const before = fake.requests().length;
        const deep = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: nested(17) });
        assert.equal(deep.status, 400, deep.text);
        assert.match(deep.json.error.message, /MAX_JSON_DEPTH/);
        const emb = await request(`${gw.url}/v1/embeddings`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' },
            body: `{"model":"m","input":${'['.repeat(20)}${']'.repeat(20)}}` });
        assert.equal(emb.status, 400, emb.text);
        assert.match(emb.json.error.message, /MAX_JSON_DEPTH/);
        /* at the limit the body is parsed (and refused for what it says, not its depth) */
        const ok = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: nested(16) });
        assert.equal(ok.status, 400, ok.text);
        assert.doesNotMatch(ok.json.error.message, /MAX_JSON_DEPTH/);
        assert.equal(fake.requests().length, before);
    });

    test('more headers than MAX_HEADERS is a 431', { timeout: T_LONG }, async () => {
        const headers = { ...auth() };
        for (let i = 0; i < 45; i++) headers[`x-extra-${i}`] = '1';
        const r = await request(`${gw.url}/health`, { headers });
        assert.equal(r.status, 431);
        assert.equal((await request(`${gw.url}/health`)).status, 200);
    });

    test('2,000 slow clients sending a byte a second do not keep normal clients from being served', { timeout: T_LONG }, async () => {
        const port = Number(new URL(gw.url).port);
        const slow = [];
        for (let i = 0; i < 2000; i++) {
            const s = net.connect(port, '127.0.0.1');
            s.on('error', () => {});
            slow.push(s);
        }
        await waitFor(() => slow.every((s) => !s.connecting), { timeoutMs: 20000, what: '2,000 connections' });
        assert.ok(slow.every((s) => !s.destroyed), 'a trickling connection was refused or closed');
        const text = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n';
        let pos = 0;
        const timer = setInterval(() => {
            for (const s of slow) if (!s.destroyed) s.write(text[pos % text.length]);
            pos++;
        }, 1000);
        try {
            for (let i = 0; i < 10; i++) {
                const r = await chat(gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: `normal ${i}` }] }, { timeoutMs: 5000 });
                assert.equal(r.status, 200, r.text);
                await sleep(300);
            }
            assert.equal((await health(gw)).status, 'healthy');
            assert.ok(pos >= 3, `the slow clients sent ${pos} bytes each`);
            assert.equal(slow.filter((s) => s.destroyed).length, 0, 'trickling connections closed before CLIENT_TIMEOUT');
        } finally {
            clearInterval(timer);
            for (const s of slow) s.destroy();
        }
    });
});

describe('MAX_HEADER_BYTES', () => {
    let fake, gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: ['good-lim-h'], env: { MAX_HEADER_BYTES: '2048' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('a request head over MAX_HEADER_BYTES is refused with 400 and the connection closed, one under it is served', { timeout: T_LONG }, async () => {
        const big = await request(`${gw.url}/health`, { headers: { 'x-big': 'a'.repeat(3000) } });
        assert.equal(big.status, 400);
        assert.equal(big.headers.connection, 'close');
        const fits = await request(`${gw.url}/health`, { headers: { 'x-big': 'a'.repeat(1500) } });
        assert.equal(fits.status, 200, fits.text);
    });
});
