/*
 * Raw HTTP behaviour: /health, auth (401), unknown routes, CORS, request
 * validation (bad JSON, missing fields, size limit).
 */
import { describe, test } from 'node:test';
import * as hooks from 'node:test';
import assert from 'node:assert/strict';
import {
    suite, request, chat, auth, TOKEN, marker, generateCalls, T_SHORT,
} from './lib/harness.js';

const KEYS = ['good-basic-k1-0123456789', 'good-basic-k2-0123456789', 'invalid-basic-k3-0123456789'];
const LIMIT = 65536;

/* Asserts the OpenAI error shape {"error":{"message","type","param","code"}}. */
function assertOpenAIError(r, status) {
    assert.equal(r.status, status, `status: ${r.status} ${r.text}`);
    assert.ok(r.json && typeof r.json.error === 'object' && r.json.error, `not an OpenAI error: ${r.text}`);
    for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in r.json.error, `error.${k} missing: ${r.text}`);
    assert.equal(typeof r.json.error.message, 'string');
    assert.ok(r.json.error.message.length > 0);
    assert.match(r.headers['content-type'] || '', /application\/json/);
}

describe('http basics', () => {
    const ctx = suite(hooks, { keys: KEYS, env: { MAX_REQUEST_BYTES: String(LIMIT) } });

    test('GET /health without auth: status and key counts, no key values', { timeout: T_SHORT }, async () => {
        const r = await request(`${ctx.gw.url}/health`);
        assert.equal(r.status, 200);
        assert.equal(r.json.status, 'healthy');
        assert.deepEqual(
            { total: r.json.keys.total, usable: r.json.keys.usable, cooling: r.json.keys.cooling, disabled: r.json.keys.disabled },
            { total: 3, usable: 3, cooling: 0, disabled: 0 });
        for (const k of KEYS) assert.ok(!r.text.includes(k), `health shows key ${k}`);
        assert.ok(!r.text.includes(TOKEN));
    });

    for (const [what, headers, suffix] of [
        ['no credentials', {}, ''],
        ['a wrong bearer token', auth('sk-wrong-token-0000'), ''],
        ['a wrong x-goog-api-key', { 'x-goog-api-key': 'sk-wrong-token-0000' }, ''],
        ['a wrong ?key=', {}, '?key=sk-wrong-token-0000'],
        ['a non-bearer Authorization', { authorization: `Basic ${TOKEN}` }, ''],
    ]) {
        test(`401 OpenAI error with ${what}, nothing forwarded`, { timeout: T_SHORT }, async () => {
            ctx.fake.reset();
            const m = marker('unauth');
            for (const prefix of ['/v1', '/hf/v1']) {
                const r1 = await request(`${ctx.gw.url}${prefix}/models${suffix}`, { headers });
                assertOpenAIError(r1, 401);
                const r2 = await request(`${ctx.gw.url}${prefix}/chat/completions${suffix}`, {
                    method: 'POST', headers,
                    body: { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] },
                });
                assertOpenAIError(r2, 401);
            }
            assert.deepEqual(ctx.fake.requests(), [], 'the gateway called the upstream for an unauthenticated request');
        });
    }

    for (const [what, headers, suffix] of [
        ['Authorization: Bearer', auth(), ''],
        ['x-goog-api-key', { 'x-goog-api-key': TOKEN }, ''],
        ['?key=', {}, `?key=${TOKEN}`],
        /* a parameter without '=' made evhttp's query parser give up on the whole query */
        ['?key= between parameters without =', {}, `?debug&key=${encodeURIComponent(TOKEN)}&&x`],
    ]) {
        test(`auth with ${what} is accepted`, { timeout: T_SHORT }, async () => {
            const r = await request(`${ctx.gw.url}/v1/models${suffix}`, { headers });
            assert.equal(r.status, 200, r.text);
            const m = marker('authok');
            const c = await request(`${ctx.gw.url}/v1/chat/completions${suffix}`, {
                method: 'POST', headers, body: { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] },
            });
            assert.equal(c.status, 200, c.text);
            assert.equal(c.json.choices[0].message.content, `Echo: ${m}`);
        });
    }

    test('unknown route: 404 with a JSON error', { timeout: T_SHORT }, async () => {
        for (const p of ['/nope', '/v1/nope', '/v2/chat/completions']) {
            const r = await request(`${ctx.gw.url}${p}`, { headers: auth() });
            assert.equal(r.status, 404, `${p}: ${r.status}`);
            assert.ok(r.json && r.json.error, `${p}: body is not a JSON error: ${r.text}`);
        }
    });

    /* One raw keep-alive connection: HEAD then GET /health.  A HEAD answer
     * that carried a body would be read as the start of the second answer. */
    async function headThenHealth(path, headers) {
        const { default: net } = await import('node:net');
        const { hostname, port } = new URL(ctx.gw.url);
        const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
        return new Promise((resolve, reject) => {
            const s = net.connect(Number(port), hostname);
            let text = '';
            s.setTimeout(5000, () => s.destroy(new Error(`no answer to HEAD ${path}: ${JSON.stringify(text)}`)));
            s.on('error', reject);
            s.on('data', (d) => {
                text += d.toString('latin1');
                const parts = text.split('\r\n\r\n');
                /* head 1, head 2, body 2 (the /health JSON, Content-Length framed) */
                if (parts.length >= 3) {
                    const len = Number(/content-length: *(\d+)/i.exec(parts[1])?.[1]);
                    if (parts.slice(2).join('\r\n\r\n').length >= len) {
                        s.destroy();
                        resolve(parts);
                    }
                }
            });
            s.write(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n` +
                    'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
        });
    }

    test('HEAD on the GET routes: the GET status and headers, no body', { timeout: T_SHORT }, async () => {
        for (const [path, headers] of [['/v1/models', auth()], ['/hf/v1/models', auth()], ['/', {}],
            ['/health', {}], ['/v1beta/models', { 'x-goog-api-key': TOKEN }]]) {
            const get = await request(`${ctx.gw.url}${path}`, { headers });
            assert.equal(get.status, 200, `GET ${path}: ${get.text}`);
            const parts = await headThenHealth(path, headers);
            assert.match(parts[0], /^HTTP\/1\.1 200 /, `HEAD ${path}: ${parts[0]}`);
            /* the GET's length (RFC 9110 9.3.2 allows it; a client may size a download by it) */
            assert.equal(Number(/content-length: *(\d+)/i.exec(parts[0])?.[1]), get.body.length,
                `HEAD ${path}: Content-Length: ${parts[0]}`);
            assert.equal(/content-type: *([^\r]*)/i.exec(parts[0])?.[1], get.headers['content-type'], `HEAD ${path}: Content-Type`);
            assert.match(parts[1], /^HTTP\/1\.1 200 /, `HEAD ${path} sent a body: the next answer is ${JSON.stringify(parts[1])}`);
            assert.equal(JSON.parse(parts[2]).status, 'healthy');
        }
        const denied = await headThenHealth('/v1/models', {});
        assert.match(denied[0], /^HTTP\/1\.1 401 /);
    });

    test('a wrong method: 405 with Allow, in the API error format, nothing forwarded', { timeout: T_SHORT }, async () => {
        for (const [method, path, allow] of [['GET', '/v1/chat/completions', 'POST'], ['PUT', '/v1/embeddings', 'POST'],
            ['POST', '/v1/models', 'GET, HEAD'], ['DELETE', '/hf/v1/models', 'GET, HEAD']]) {
            const r = await request(`${ctx.gw.url}${path}`, { method, headers: auth() });
            assertOpenAIError(r, 405);
            assert.equal(r.headers.allow, allow, `${method} ${path}`);
        }
        const calls = ctx.fake.requests().length;
        const r = await request(`${ctx.gw.url}/v1beta/models/gemini-2.5-flash:generateContent`,
            { method: 'PUT', headers: { 'x-goog-api-key': TOKEN }, body: { contents: [] } });
        assert.equal(r.status, 405);
        assert.equal(r.headers.allow, 'POST');
        assert.equal(r.json.error.code, 405);
        assert.equal(r.json.error.status, 'UNIMPLEMENTED', r.text); // grpc-gateway's mapping of 405
        for (const [method, path, allow] of [['GET', '/v1beta/models/gemini-2.5-flash:generateContent', 'POST'],
            ['HEAD', '/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent', 'POST'],
            ['POST', '/v1beta/models', 'GET, HEAD'], ['POST', '/v1beta/models/gemini-2.5-flash', 'GET, HEAD'],
            ['DELETE', '/v1beta/models/gemini-2.5-flash', 'GET, HEAD'], ['PUT', '/health', 'GET, HEAD'],
            ['DELETE', '/', 'GET, HEAD']]) {
            const x = await request(`${ctx.gw.url}${path}`, { method, headers: { 'x-goog-api-key': TOKEN } });
            assert.equal(x.status, 405, `${method} ${path}: ${x.status} ${x.text}`);
            assert.equal(x.headers.allow, allow, `${method} ${path}`);
        }
        assert.equal(ctx.fake.requests().length, calls, 'a refused request went upstream');
    });

    test('OPTIONS preflight on any route: 204/200 with CORS headers, no auth needed', { timeout: T_SHORT }, async () => {
        for (const p of ['/v1/chat/completions', '/hf/v1/chat/completions', '/v1/models', '/health', '/whatever/route']) {
            const r = await request(`${ctx.gw.url}${p}`, {
                method: 'OPTIONS',
                headers: {
                    origin: 'https://app.example.com',
                    'access-control-request-method': 'POST',
                    'access-control-request-headers': 'authorization, content-type',
                },
            });
            assert.ok(r.status === 204 || r.status === 200, `${p}: status ${r.status}`);
            assert.ok(r.headers['access-control-allow-origin'], `${p}: no Access-Control-Allow-Origin`);
            assert.ok(r.headers['access-control-allow-methods'], `${p}: no Access-Control-Allow-Methods`);
            assert.match(r.headers['access-control-allow-methods'], /POST/);
            assert.ok(r.headers['access-control-allow-headers'], `${p}: no Access-Control-Allow-Headers`);
            assert.match(r.headers['access-control-allow-headers'].toLowerCase(), /authorization|\*/);
        }
    });

    test('normal responses carry Access-Control-Allow-Origin: * (default)', { timeout: T_SHORT }, async () => {
        const h = await request(`${ctx.gw.url}/health`, { headers: { origin: 'https://app.example.com' } });
        assert.equal(h.headers['access-control-allow-origin'], '*');
        const m = await request(`${ctx.gw.url}/v1/models`, { headers: { ...auth(), origin: 'https://app.example.com' } });
        assert.equal(m.headers['access-control-allow-origin'], '*');
        const c = await chat(ctx.gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'cors' }] },
            { headers: { ...auth(), origin: 'https://app.example.com' } });
        assert.equal(c.status, 200);
        assert.equal(c.headers['access-control-allow-origin'], '*');
        const s = await chat(ctx.gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'cors' }] },
            { headers: { ...auth(), origin: 'https://app.example.com' } });
        assert.equal(s.status, 200);
        assert.equal(s.headers['access-control-allow-origin'], '*');
    });

    test('bad JSON: 400 OpenAI error, nothing forwarded', { timeout: T_SHORT }, async () => {
        ctx.fake.reset();
        for (const body of ['{"model": "gemini-2.5-flash", "messages": [', 'not json at all', '', '[1,2,3]', '"str"']) {
            const r = await request(`${ctx.gw.url}/v1/chat/completions`, {
                method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body,
            });
            assertOpenAIError(r, 400);
        }
        assert.equal(generateCalls(ctx.fake).length, 0);
    });

    test('missing model: 400 naming "model", nothing forwarded', { timeout: T_SHORT }, async () => {
        ctx.fake.reset();
        const r = await chat(ctx.gw, { messages: [{ role: 'user', content: 'hi' }] });
        assertOpenAIError(r, 400);
        assert.match(r.json.error.message + ' ' + r.json.error.param, /\bmodel\b/);
        assert.equal(generateCalls(ctx.fake).length, 0);
    });

    test('missing messages: 400 naming "messages", nothing forwarded', { timeout: T_SHORT }, async () => {
        ctx.fake.reset();
        const r = await chat(ctx.gw, { model: 'gemini-2.5-flash' });
        assertOpenAIError(r, 400);
        assert.match(r.json.error.message + ' ' + r.json.error.param, /\bmessages\b/);
        assert.equal(generateCalls(ctx.fake).length, 0);
    });

    test('body over MAX_REQUEST_BYTES: 413, nothing forwarded; just under: 200', { timeout: T_SHORT }, async () => {
        ctx.fake.reset();
        const big = 'x'.repeat(LIMIT + 1024);
        const m = marker('big');
        let r;
        try {
            r = await chat(ctx.gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: `${m} ${big}` }] });
        } catch (e) {
            assert.fail(`connection failed instead of a 413: ${e.message}`);
        }
        assert.equal(r.status, 413, `${r.status} ${r.text.slice(0, 200)}`);
        assert.equal(generateCalls(ctx.fake, m).length, 0);
        const small = 'y'.repeat(LIMIT - 1024);
        const ok = await chat(ctx.gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: small }] });
        assert.equal(ok.status, 200, ok.text.slice(0, 300));
    });

    test('chunked body over MAX_REQUEST_BYTES: 413 too', { timeout: T_SHORT }, async () => {
        const { default: http } = await import('node:http');
        ctx.fake.reset();
        const m = marker('chunked');
        const status = await new Promise((resolve, reject) => {
            const req = http.request(`${ctx.gw.url}/v1/chat/completions`, {
                method: 'POST', agent: false,
                headers: { ...auth(), 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
            }, (res) => {
                res.resume();
                resolve(res.statusCode);
            });
            req.on('error', (e) => reject(new Error(`connection failed instead of a 413: ${e.message}`)));
            req.write(`{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"${m} `);
            for (let i = 0; i < 8; i++) req.write('z'.repeat(LIMIT / 4));
            req.end('"}]}');
        });
        assert.equal(status, 413);
        assert.equal(generateCalls(ctx.fake, m).length, 0);
    });

    test('keep-alive: several requests on one connection', { timeout: T_SHORT }, async () => {
        const { default: http } = await import('node:http');
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
            const ports = new Set();
            for (let i = 0; i < 3; i++) {
                await new Promise((resolve, reject) => {
                    const body = JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: `ka ${i}` }] });
                    const req = http.request(`${ctx.gw.url}/v1/chat/completions`, {
                        method: 'POST', agent,
                        headers: { ...auth(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
                    }, (res) => {
                        ports.add(res.socket.localPort);
                        let t = '';
                        res.on('data', (d) => (t += d));
                        res.on('end', () => {
                            try {
                                assert.equal(res.statusCode, 200, t);
                                assert.equal(JSON.parse(t).choices[0].message.content, `Echo: ka ${i}`);
                                resolve();
                            } catch (e) {
                                reject(e);
                            }
                        });
                    });
                    req.on('error', reject);
                    req.end(body);
                });
            }
            assert.equal(ports.size, 1, 'the gateway closed the keep-alive connection between requests');
        } finally {
            agent.destroy();
        }
    });
});
