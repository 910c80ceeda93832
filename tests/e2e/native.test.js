/*
 * The native Gemini API (issue 4), black-box: every route under /v1beta and
 * /gemini/v1beta (plus Google's /v1 model actions), token checks and token
 * removal, byte-for-byte transparency both ways, the key pool's failure
 * policy, tolerant routing, and the official @google/genai SDK pointed at
 * the gateway.  Upstream expectations come from the fake's records: what
 * it received (path, headers, raw body) and what it sent (`response`).
 */
import { describe, test, before, after } from 'node:test';
import * as hooks from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { GoogleGenAI, ApiError } from '@google/genai';
import {
    suite, startFakeUpstream, startGateway, request, marker, echoText, fixtureModelIds, waitFor, health, findSecrets,
    TOKEN, FIXTURES_DIR, T_SHORT, T_LONG, HOOK, withGateway,
} from './lib/harness.js';

const MODEL = 'gemini-2.5-flash';
const KEYS = ['good-nat-1', 'good-nat-2'];
const PREFIXES = ['/v1beta', '/gemini/v1beta'];
const JSON_CT = 'application/json; charset=UTF-8'; /* what the fake sends for JSON */
const SSE_CT = 'text/event-stream';
const LONG_EVENTS = 200;

const fixture = (name) => fs.readFileSync(path.join(FIXTURES_DIR, 'gemini', name), 'utf8');

/* x-goog-api-key header with the suite's token. */
function gkey(token = TOKEN) {
    return { 'x-goog-api-key': token };
}

/* POST a raw (string) or JSON body to the gateway. */
function post(gw, urlPath, body, { headers = gkey(), timeoutMs } = {}) {
    const h = { 'content-type': 'application/json', ...headers };
    return request(`${gw.url}${urlPath}`, { method: 'POST', headers: h, body, timeoutMs });
}

function get(gw, urlPath, { headers = gkey(), timeoutMs } = {}) {
    return request(`${gw.url}${urlPath}`, { headers, timeoutMs });
}

/* A generate request body whose user text carries the marker. */
function genBody(m, extra = {}) {
    return { contents: [{ role: 'user', parts: [{ text: m }] }], ...extra };
}

/* Upstream requests whose raw body contains mark. */
function callsWith(fake, mark) {
    return fake.requests().filter((r) => r.body.includes(mark));
}

/* The single upstream request carrying mark (asserts there is exactly one). */
function onlyCall(fake, mark) {
    const calls = callsWith(fake, mark);
    assert.equal(calls.length, 1, `expected one upstream request for ${mark}, got ${calls.length}: ${calls.map((c) => `${c.method} ${c.path} ${c.key}`)}`);
    return calls[0];
}

/* What the upstream must see of the client: the pool key in x-goog-api-key,
 * no Authorization, no key= in the query, the client's token nowhere. */
function assertClean(rec, { pool = KEYS, token = TOKEN } = {}) {
    assert.ok(pool.includes(rec.headers['x-goog-api-key']), `upstream x-goog-api-key: ${rec.headers['x-goog-api-key']}`);
    assert.equal(rec.keySource, 'header');
    assert.equal(rec.headers.authorization, undefined, 'the client\'s Authorization header reached the upstream');
    assert.doesNotMatch(rec.path, /[?&]key=/, `key= forwarded upstream: ${rec.path}`);
    const leaks = findSecrets({ path: rec.path, headers: JSON.stringify(rec.headers), body: rec.body }, [token]);
    assert.deepEqual(leaks, [], 'the client token reached the upstream');
}

/* Text of candidate 0 in a list of Gemini response objects. */
function textOf(events) {
    return events.map((e) => ((e.candidates && e.candidates[0] && e.candidates[0].content &&
        e.candidates[0].content.parts) || []).map((p) => p.text || '').join('')).join('');
}

/* Gemini SSE body (data: <json>\r\n\r\n) -> parsed events. */
function parseGeminiSse(text) {
    return text.split(/\r?\n\r?\n/).filter((b) => b.trim() !== '').map((b) => {
        const data = b.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        return JSON.parse(data);
    });
}

/* Google's error shape {"error":{"code","message","status"}}. */
function assertGoogleError(r, code, status) {
    assert.ok(r.json && r.json.error && typeof r.json.error === 'object', `not a Google error body: ${r.text}`);
    assert.equal(r.json.error.code, code, r.text);
    assert.equal(typeof r.json.error.message, 'string', r.text);
    assert.ok(r.json.error.message.length > 0);
    if (status) assert.equal(r.json.error.status, status, r.text);
    else assert.equal(typeof r.json.error.status, 'string', r.text);
}

/*
 * Opens a native SSE stream and hangs up once the first event arrived.
 * Resolves { status, received }.
 */
function streamAndHangUp(gw, urlPath, body) {
    return new Promise((resolve, reject) => {
        const payload = JSON.stringify(body);
        const req = http.request(`${gw.url}${urlPath}`, {
            method: 'POST',
            agent: false,
            headers: { ...gkey(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        }, (res) => {
            let received = '';
            res.setEncoding('utf8');
            res.on('data', (d) => {
                received += d;
                if (/^data: .*\r?\n\r?\n/s.test(received)) {
                    req.destroy();
                    resolve({ status: res.statusCode, received });
                }
            });
            res.on('end', () => reject(new Error(`stream ended before the first event: ${received}`)));
        });
        req.setTimeout(10000, () => req.destroy(new Error('no first event within 10 s')));
        req.on('error', (e) => {
            if (!req.destroyed || e.message.startsWith('no first event')) reject(e);
        });
        req.end(payload);
    });
}


/* ------------------------------------------------------------------ */

describe('native Gemini routes', () => {
    const ctx = suite(hooks, { keys: KEYS, fake: { longStreamEvents: LONG_EVENTS, longStreamEventMs: 25 } });

    test('the request log records the tokens of native answers (non-stream and stream)', { timeout: T_SHORT }, async () => {
        const { gw } = ctx;
        const m = marker('ntok');
        const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: m }] }] });
        const h = { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' };
        const r1 = await request(`${gw.url}/v1beta/models/gemini-2.5-flash:generateContent`, { method: 'POST', headers: h, body });
        assert.equal(r1.status, 200, r1.text);
        const want1 = r1.json.usageMetadata;
        const r2 = await request(`${gw.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`, { method: 'POST', headers: h, body });
        assert.equal(r2.status, 200, r2.text);
        const events = r2.text.split('\r\n\r\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)));
        const want2 = events.filter((e) => e.usageMetadata).at(-1).usageMetadata;
        let items = [];
        await waitFor(async () => {
            const r = await request(`${gw.url}/api/logs/requests?limit=50`, { headers: { authorization: `Bearer ${TOKEN}` } });
            items = (r.json && r.json.items || []).filter((x) => x.route === 'native');
            return items.length >= 2;
        }, { timeoutMs: 5000, what: 'native rows in the request log' });
        const totals = items.slice(0, 2).map((x) => x.total_tokens).sort();
        assert.deepEqual(totals, [want1.totalTokenCount, want2.totalTokenCount].sort());
        assert.ok(items.every((x) => x.prompt_tokens > 0), JSON.stringify(items.slice(0, 2)));
    });

    for (const P of PREFIXES) {
        test(`${P}: GET /models passes pageSize and pageToken through, pages as the upstream sent them`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            fake.reset();
            const r1 = await get(gw, `${P}/models?pageSize=7`);
            assert.equal(r1.status, 200, r1.text);
            let recs = fake.requests();
            assert.equal(recs.length, 1);
            assert.equal(recs[0].method, 'GET');
            assert.equal(recs[0].path, '/v1beta/models?pageSize=7');
            assertClean(recs[0]);
            assert.equal(r1.text, recs[0].response, 'list body differs from the upstream\'s');
            assert.equal(r1.headers['content-type'], JSON_CT);
            assert.equal(r1.json.models.length, 7);
            assert.ok(r1.json.nextPageToken, 'no nextPageToken');

            const tok = encodeURIComponent(r1.json.nextPageToken);
            fake.reset();
            const r2 = await get(gw, `${P}/models?pageSize=7&pageToken=${tok}`);
            assert.equal(r2.status, 200, r2.text);
            recs = fake.requests();
            assert.equal(recs.length, 1);
            assert.equal(recs[0].path, `/v1beta/models?pageSize=7&pageToken=${tok}`);
            assert.equal(r2.text, recs[0].response);
            assert.deepEqual(r2.json.models.map((x) => x.name), fixtureModelIds().slice(7, 14).map((id) => `models/${id}`));

            /* the whole list, page by page (the fake caps pages at 20) */
            const ids = [];
            let token = '';
            let pages = 0;
            do {
                const r = await get(gw, `${P}/models?pageSize=1000${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
                assert.equal(r.status, 200, r.text);
                ids.push(...r.json.models.map((x) => x.name.replace(/^models\//, '')));
                token = r.json.nextPageToken;
                pages++;
            } while (token && pages < 20);
            assert.ok(pages >= 3, `only ${pages} pages`);
            assert.deepEqual(ids, fixtureModelIds());
        });

        test(`${P}: GET /models/{model}`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            fake.reset();
            const r = await get(gw, `${P}/models/gemini-2.5-pro`);
            assert.equal(r.status, 200, r.text);
            const recs = fake.requests();
            assert.equal(recs.length, 1);
            assert.equal(recs[0].method, 'GET');
            assert.equal(recs[0].path, '/v1beta/models/gemini-2.5-pro');
            assertClean(recs[0]);
            assert.equal(r.text, recs[0].response);
            assert.equal(r.headers['content-type'], JSON_CT);
            assert.equal(r.json.name, 'models/gemini-2.5-pro');
        });

        test(`${P}: POST :generateContent`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            const m = marker('gen');
            const payload = JSON.stringify(genBody(`say ${m}`));
            const r = await post(gw, `${P}/models/${MODEL}:generateContent`, payload);
            assert.equal(r.status, 200, r.text);
            const rec = onlyCall(fake, m);
            assert.equal(rec.method, 'POST');
            assert.equal(rec.path, `/v1beta/models/${MODEL}:generateContent`);
            assertClean(rec);
            assert.equal(rec.body, payload);
            assert.equal(r.text, rec.response, 'body differs from the upstream\'s');
            assert.equal(r.headers['content-type'], JSON_CT);
            assert.equal(r.json.candidates[0].content.parts[0].text, echoText(`say ${m}`));
        });

        test(`${P}: POST :streamGenerateContent?alt=sse is relayed byte for byte`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            const m = marker('sse');
            const text = `stream ${m} one two three four five`;
            const payload = JSON.stringify(genBody(text));
            const r = await post(gw, `${P}/models/${MODEL}:streamGenerateContent?alt=sse`, payload);
            assert.equal(r.status, 200, r.text);
            const rec = onlyCall(fake, m);
            assert.equal(rec.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
            assertClean(rec);
            assert.equal(rec.body, payload);
            assert.ok(rec.eventsSent >= 2, `the fake sent ${rec.eventsSent} events`);
            assert.ok(r.body.equals(Buffer.from(rec.response, 'utf8')),
                `SSE bytes differ:\n got      ${JSON.stringify(r.text)}\n upstream ${JSON.stringify(rec.response)}`);
            assert.equal(r.headers['content-type'], SSE_CT);
            assert.equal(textOf(parseGeminiSse(r.text)), echoText(text));
        });

        test(`${P}: POST :streamGenerateContent without alt=sse is the upstream's JSON array`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            const m = marker('arr');
            const text = `array ${m} one two three four`;
            const payload = JSON.stringify(genBody(text));
            const r = await post(gw, `${P}/models/${MODEL}:streamGenerateContent`, payload);
            assert.equal(r.status, 200, r.text);
            const rec = onlyCall(fake, m);
            assert.equal(rec.path, `/v1beta/models/${MODEL}:streamGenerateContent`);
            assertClean(rec);
            assert.ok(r.body.equals(Buffer.from(rec.response, 'utf8')),
                `array bytes differ:\n got      ${JSON.stringify(r.text)}\n upstream ${JSON.stringify(rec.response)}`);
            assert.equal(r.headers['content-type'], JSON_CT);
            assert.ok(Array.isArray(r.json) && r.json.length >= 2, r.text);
            assert.equal(textOf(r.json), echoText(text));
        });

        test(`${P}: POST :countTokens`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            const m = marker('cnt');
            const payload = JSON.stringify(genBody(`count ${m}`));
            const r = await post(gw, `${P}/models/${MODEL}:countTokens`, payload);
            assert.equal(r.status, 200, r.text);
            const rec = onlyCall(fake, m);
            assert.equal(rec.path, `/v1beta/models/${MODEL}:countTokens`);
            assertClean(rec);
            assert.equal(rec.body, payload);
            assert.equal(r.text, fixture('count-tokens.json'));
            assert.equal(r.headers['content-type'], JSON_CT);
        });

        test(`${P}: POST :embedContent`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            const m = marker('emb');
            const payload = JSON.stringify({ model: 'models/gemini-embedding-001', content: { parts: [{ text: `embed ${m}` }] } });
            const r = await post(gw, `${P}/models/gemini-embedding-001:embedContent`, payload);
            assert.equal(r.status, 200, r.text);
            const rec = onlyCall(fake, m);
            assert.equal(rec.path, '/v1beta/models/gemini-embedding-001:embedContent');
            assertClean(rec);
            assert.equal(rec.body, payload);
            assert.equal(r.text, rec.response);
            assert.equal(r.headers['content-type'], JSON_CT);
            assert.ok(Array.isArray(r.json.embedding.values) && r.json.embedding.values.length > 0);
        });

        test(`${P}: POST :batchEmbedContents`, { timeout: T_SHORT }, async () => {
            const { fake, gw } = ctx;
            const m = marker('bat');
            const payload = JSON.stringify({
                requests: ['a', 'b', 'c'].map((x) => ({ model: 'models/gemini-embedding-001', content: { parts: [{ text: `${x} ${m}` }] } })),
            });
            const r = await post(gw, `${P}/models/gemini-embedding-001:batchEmbedContents`, payload);
            assert.equal(r.status, 200, r.text);
            const rec = onlyCall(fake, m);
            assert.equal(rec.path, '/v1beta/models/gemini-embedding-001:batchEmbedContents');
            assertClean(rec);
            assert.equal(rec.body, payload);
            assert.equal(r.text, rec.response);
            assert.equal(r.json.embeddings.length, 3);
        });
    }

    test('/v1/models/{model}:generateContent (Google\'s v1 form) is served natively', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        const m = marker('v1');
        const payload = JSON.stringify(genBody(`v1 ${m}`));
        const r = await post(gw, `/v1/models/${MODEL}:generateContent`, payload);
        assert.equal(r.status, 200, r.text);
        const rec = onlyCall(fake, m);
        assert.equal(rec.path, `/v1beta/models/${MODEL}:generateContent`);
        assertClean(rec);
        assert.equal(rec.body, payload);
        assert.equal(r.text, rec.response);
        assert.equal(r.json.candidates[0].content.parts[0].text, echoText(`v1 ${m}`));
        assert.equal(r.json.object, undefined, 'answered in the OpenAI format');

        const m2 = marker('v1s');
        const s = await post(gw, `/v1/models/${MODEL}:streamGenerateContent?alt=sse`, JSON.stringify(genBody(`v1 ${m2}`)));
        assert.equal(s.status, 200, s.text);
        const rec2 = onlyCall(fake, m2);
        assert.equal(rec2.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
        assert.equal(s.text, rec2.response);
    });

    /* ---------------- auth ---------------- */

    test('auth: x-goog-api-key, ?key= and Authorization: Bearer are accepted; the token never goes upstream', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        const ways = {
            header: { headers: gkey(), query: '' },
            query: { headers: {}, query: `key=${TOKEN}` },
            bearer: { headers: { authorization: `Bearer ${TOKEN}` }, query: '' },
        };
        for (const [how, { headers, query }] of Object.entries(ways)) {
            for (const P of [...PREFIXES, '/v1']) {
                const m = marker(`au${how}`);
                const q = query ? `?${query}` : '';
                const r = await post(gw, `${P}/models/${MODEL}:generateContent${q}`, JSON.stringify(genBody(m)), { headers });
                assert.equal(r.status, 200, `${how} on ${P}: ${r.text}`);
                const rec = onlyCall(fake, m);
                assert.equal(rec.path, `/v1beta/models/${MODEL}:generateContent`, `${how} on ${P}`);
                assertClean(rec);
            }
            /* other query parameters survive, before or after key= */
            const m = marker(`aus${how}`);
            const sq = query ? `?${query}&alt=sse` : '?alt=sse';
            const s = await post(gw, `/v1beta/models/${MODEL}:streamGenerateContent${sq}`, JSON.stringify(genBody(m)), { headers });
            assert.equal(s.status, 200, s.text);
            const srec = onlyCall(fake, m);
            assert.equal(srec.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
            assertClean(srec);
            assert.equal(s.text, srec.response);

            fake.reset();
            const lq = query ? `?pageSize=3&${query}` : '?pageSize=3';
            const l = await get(gw, `/gemini/v1beta/models${lq}`, { headers });
            assert.equal(l.status, 200, l.text);
            const lrec = fake.requests();
            assert.equal(lrec.length, 1);
            assert.equal(lrec[0].path, '/v1beta/models?pageSize=3');
            assertClean(lrec[0]);
            assert.equal(l.json.models.length, 3);

            fake.reset();
            const gq = query ? `?${query}` : '';
            const g = await get(gw, `/v1beta/models/gemini-2.5-pro${gq}`, { headers });
            assert.equal(g.status, 200, g.text);
            assert.equal(fake.requests()[0].path, '/v1beta/models/gemini-2.5-pro');
            assertClean(fake.requests()[0]);
        }
    });

    test('auth: wrong or missing token -> 401 UNAUTHENTICATED in Google\'s shape, nothing forwarded', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        const bad = 'sk-wrong-token-0000';
        const creds = {
            missing: { headers: {}, query: '' },
            'wrong x-goog-api-key': { headers: gkey(bad), query: '' },
            'wrong ?key=': { headers: {}, query: `key=${bad}` },
            'wrong Bearer': { headers: { authorization: `Bearer ${bad}` }, query: '' },
            'empty x-goog-api-key': { headers: gkey(''), query: '' },
        };
        const routes = [];
        for (const P of PREFIXES) {
            routes.push(['GET', `${P}/models`], ['GET', `${P}/models/${MODEL}`],
                ['POST', `${P}/models/${MODEL}:generateContent`], ['POST', `${P}/models/${MODEL}:streamGenerateContent?alt=sse`],
                ['POST', `${P}/models/${MODEL}:streamGenerateContent`], ['POST', `${P}/models/${MODEL}:countTokens`],
                ['POST', `${P}/models/${MODEL}:embedContent`], ['POST', `${P}/models/${MODEL}:batchEmbedContents`]);
        }
        routes.push(['POST', `/v1/models/${MODEL}:generateContent`]);
        fake.reset();
        for (const [name, { headers, query }] of Object.entries(creds)) {
            for (const [method, p] of routes) {
                const sep = p.includes('?') ? '&' : '?';
                const url = query ? `${p}${sep}${query}` : p;
                const r = method === 'GET'
                    ? await get(gw, url, { headers })
                    : await post(gw, url, JSON.stringify(genBody('hi')), { headers });
                assert.equal(r.status, 401, `${name}: ${method} ${url} -> ${r.status} ${r.text}`);
                assertGoogleError(r, 401, 'UNAUTHENTICATED');
                assert.match(r.headers['content-type'] || '', /^application\/json/);
            }
        }
        assert.equal(fake.requests().length, 0, `forwarded upstream: ${fake.requests().map((x) => x.path)}`);
    });

    /* ---------------- transparency ---------------- */

    test('transparency: the upstream receives the client\'s body byte-identical (whitespace, key order, unknown fields)', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        for (const action of ['generateContent', 'streamGenerateContent?alt=sse', 'streamGenerateContent', 'countTokens']) {
            const m = marker('raw');
            const payload = `{\n\t"generationConfig" :{"temperature":0.250 ,  "maxOutputTokens": 64,"zeta":1,"alpha":2},\r\n` +
                `  "contents":[ {"parts":[{"text":"${m}  odd\\u0020spacing h\u00e9 \u{1F389}"}],"role":"user"} ] ,` +
                `"futureField": {"x": [1, 2]},   "nullish":null, "big": 12345678901234567890  }\n\n`;
            const r = await post(gw, `/v1beta/models/${MODEL}:${action}`, payload);
            assert.equal(r.status, 200, `${action}: ${r.text}`);
            const rec = onlyCall(fake, m);
            assert.equal(rec.body, payload, `${action}: body changed on the way upstream`);
            assert.equal(r.text, rec.response, `${action}: answer changed on the way back`);
        }
        /* the gateway does not parse it: malformed JSON is the upstream's business */
        const m = marker('bad');
        const broken = `{"contents": [{"parts": [{"text": "${m}"}]}], oops`;
        const r = await post(gw, `/gemini/v1beta/models/${MODEL}:generateContent`, broken);
        const rec = onlyCall(fake, m);
        assert.equal(rec.body, broken);
        assert.equal(r.status, rec.status);
        assert.equal(r.status, 400);
        assert.equal(r.text, rec.response);
    });

    test('transparency: upstream errors reach the client unchanged (status, body, content-type), no retry', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        const notFound = JSON.parse(fixture('error-404-model-not-found.json'));
        for (const P of PREFIXES) {
            fake.reset();
            let r = await post(gw, `${P}/models/no-such-model:generateContent`, JSON.stringify(genBody('x')));
            let recs = fake.requests();
            assert.equal(recs.length, 1, 'a 404 model-not-found was retried');
            assert.equal(r.status, 404, r.text);
            assert.equal(r.text, recs[0].response);
            assert.equal(r.headers['content-type'], JSON_CT);
            assert.deepEqual({ ...r.json.error, message: '' }, { ...notFound.error, message: '' }, 'not the 404 fixture\'s shape');
            assert.match(r.json.error.message, /models\/no-such-model is not found/);

            fake.reset();
            r = await get(gw, `${P}/models/no-such-model`);
            assert.equal(r.status, 404);
            assert.equal(r.text, fake.requests()[0].response);

            fake.reset();
            r = await post(gw, `${P}/models/bad-request:generateContent`, JSON.stringify(genBody('x')));
            recs = fake.requests();
            assert.equal(recs.length, 1, 'a 400 INVALID_ARGUMENT was retried');
            assert.equal(r.status, 400);
            assert.equal(r.text, fixture('error-400-invalid-argument.json'));
            assert.equal(r.headers['content-type'], JSON_CT);
            assert.equal(r.json.error.status, 'INVALID_ARGUMENT');

            fake.reset();
            r = await post(gw, `${P}/models/bad-request:streamGenerateContent?alt=sse`, JSON.stringify(genBody('x')));
            assert.equal(fake.requests().length, 1);
            assert.equal(r.status, 400);
            assert.equal(r.text, fixture('error-400-invalid-argument.json'));
            assert.equal(r.headers['content-type'], JSON_CT);

            fake.reset();
            r = await post(gw, `${P}/models/bad-request:streamGenerateContent`, JSON.stringify(genBody('x')));
            assert.equal(fake.requests().length, 1);
            assert.equal(r.status, 400);
            assert.equal(r.text, fake.requests()[0].response);
            assert.ok(Array.isArray(r.json), `array-wrapped error expected: ${r.text}`);

            fake.reset();
            r = await post(gw, `${P}/models/no-such-model:countTokens`, JSON.stringify(genBody('x')));
            assert.equal(r.status, 404);
            assert.equal(r.text, fake.requests()[0].response);
        }
    });

    /* ---------------- streaming ---------------- */

    test('client hang-up mid-stream (long-stream, alt=sse) cancels the upstream request', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        fake.reset();
        const m = marker('hang');
        const got = await streamAndHangUp(gw, '/v1beta/models/long-stream:streamGenerateContent?alt=sse', genBody(m));
        assert.equal(got.status, 200);
        await waitFor(() => fake.stats().aborted >= 1, { timeoutMs: 2000, what: 'the upstream request to be closed after the client left' });
        const rec = onlyCall(fake, m);
        assert.equal(rec.aborted, true);
        assert.ok(rec.eventsSent < LONG_EVENTS, `the upstream sent all ${rec.eventsSent} events`);
        const h = await health(gw);
        assert.equal(h.keys.disabled + h.keys.cooling, 0, 'a key was blamed for the client leaving');
    });

    test('client hang-up mid-stream without alt=sse cancels the upstream request too', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        fake.reset();
        const m = marker('hangarr');
        await new Promise((resolve, reject) => {
            const payload = JSON.stringify(genBody(m));
            const req = http.request(`${gw.url}/gemini/v1beta/models/long-stream:streamGenerateContent`, {
                method: 'POST', agent: false,
                headers: { ...gkey(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
            }, (res) => {
                let got = '';
                res.on('data', (d) => {
                    got += d;
                    if (got.includes('[1]')) {
                        req.destroy();
                        resolve();
                    }
                });
                res.on('end', () => reject(new Error(`ended early: ${got}`)));
            });
            req.on('error', (e) => {
                if (!req.destroyed) reject(e);
            });
            req.end(payload);
        });
        await waitFor(() => fake.stats().aborted >= 1, { timeoutMs: 2000, what: 'the upstream request to be closed' });
        assert.ok(onlyCall(fake, m).eventsSent < LONG_EVENTS);
    });

    /* ---------------- tolerant routing ---------------- */

    test('routing: trailing and doubled slashes, and an escaped \':\' or unreserved byte, are accepted', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        for (const p of [
            `/v1beta/models/${MODEL}:generateContent/`,
            `//v1beta//models//${MODEL}:generateContent`,
            `/gemini//v1beta/models/${MODEL}:generateContent//`,
            `/v1beta/models/${MODEL}%3AgenerateContent`,
            `/v1beta/%6Dodels/${MODEL.replace('-', '%2D')}%3agenerateContent`,
        ]) {
            const m = marker('slash');
            const r = await post(gw, p, JSON.stringify(genBody(m)));
            assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
            const rec = onlyCall(fake, m);
            assert.equal(rec.path, `/v1beta/models/${MODEL}:generateContent`, p);
            assert.equal(r.json.candidates[0].content.parts[0].text, echoText(m));
        }
        for (const p of ['/v1beta/models/', '//gemini/v1beta//models/?pageSize=2', '/v1beta/models/gemini-2.5-pro/']) {
            fake.reset();
            const r = await get(gw, p);
            assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
            const rec = fake.requests();
            assert.equal(rec.length, 1);
            assert.match(rec[0].path, /^\/v1beta\/models(\/gemini-2\.5-pro|\?pageSize=2)?$/, p);
            assert.equal(r.text, rec[0].response);
        }
    });

    test('routing: unknown paths get 404 naming the base URLs served (/v1beta and /v1)', { timeout: T_SHORT }, async () => {
        const { fake, gw } = ctx;
        fake.reset();
        const problems = [];
        for (const [method, p] of [['GET', '/v1beta/nope'], ['POST', '/v1beta/nope'], ['GET', '/gemini/v1beta/nope/deeper'],
            ['GET', '/foo'], ['POST', '/foo/bar']]) {
            const r = method === 'GET' ? await get(gw, p) : await post(gw, p, '{}');
            assert.equal(r.status, 404, `${method} ${p}: ${r.status} ${r.text}`);
            assert.ok(r.json && r.json.error && typeof r.json.error.message === 'string', `${p}: ${r.text}`);
            if (p.includes('v1beta')) assertGoogleError(r, 404, 'NOT_FOUND');
            const msg = r.json.error.message;
            if (!/\/v1beta\b/.test(msg)) problems.push(`${method} ${p}: message does not mention /v1beta: ${msg}`);
            if (!/\/v1(?![\w])/.test(msg)) problems.push(`${method} ${p}: message does not mention the /v1 base URL: ${msg}`);
        }
        assert.equal(fake.requests().length, 0, 'an unknown path was forwarded');
        assert.deepEqual(problems, []);
    });
});

/* ------------------------------------------------------------------ */

describe('native Gemini routes: key pool and failure policy', () => {
    let fake;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
    }, HOOK);
    after(async () => fake && fake.close(), HOOK);

    test('invalid-* keys are retried around: the client still gets 200 with the good key\'s answer', { timeout: T_LONG }, async () => {
        await withGateway(fake, { keys: ['invalid-n', 'good-n'] }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 6; i++) {
                const m = marker('inv');
                const stream = i % 2 === 1;
                const action = stream ? 'streamGenerateContent?alt=sse' : 'generateContent';
                const r = await post(gw, `/v1beta/models/${MODEL}:${action}`, JSON.stringify(genBody(m)));
                assert.equal(r.status, 200, r.text);
                const calls = callsWith(fake, m);
                assert.equal(calls.at(-1).key, 'good-n');
                assert.ok(calls.slice(0, -1).every((c) => c.key === 'invalid-n'), `${calls.map((c) => c.key)}`);
                assert.equal(r.text, calls.at(-1).response, 'the client got something else than the good answer');
            }
            assert.ok((fake.stats().byKey['invalid-n'] || 0) >= 1, 'the invalid key was never tried');
            for (let i = 0; i < 2; i++) {
                fake.reset();
                const r = await get(gw, '/v1beta/models?pageSize=4');
                assert.equal(r.status, 200, r.text);
                assert.equal(r.text, fake.requests().at(-1).response);
            }
        });
    });

    test('429 quota-* key is cooled down, the request retried on the next key', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quota-n', 'good-n'] }, async (gw) => {
            fake.reset();
            for (let i = 0; i < 6; i++) {
                const m = marker('quo');
                const r = await post(gw, `/gemini/v1beta/models/${MODEL}:generateContent`, JSON.stringify(genBody(m)));
                assert.equal(r.status, 200, r.text);
                assert.equal(callsWith(fake, m).at(-1).key, 'good-n');
            }
            assert.equal(fake.stats().byKey['quota-n'], 1, 'a cooling key was used again');
            const h = await health(gw);
            assert.equal(h.keys.cooling, 1);
            assert.equal(h.keys.usable, 1);
        });
    });

    test('all keys unusable (cooling): 503 with Retry-After in Google\'s error shape, upstream not called', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['quota-only'] }, async (gw) => {
            const first = await post(gw, `/v1beta/models/${MODEL}:generateContent`, JSON.stringify(genBody('first')));
            assert.ok([429, 503].includes(first.status), `first request: ${first.status} ${first.text}`);
            assert.ok(first.json && first.json.error, first.text);
            assert.equal((await health(gw)).keys.cooling, 1);
            fake.reset();
            /* the 429 cooled the key for this model (cool-downs may be per model,
             * so only generate calls on the same model are checked here) */
            for (const p of [`/v1beta/models/${MODEL}:generateContent`,
                `/gemini/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`,
                `/gemini/v1beta/models/${MODEL}:streamGenerateContent`]) {
                const r = await post(gw, p, JSON.stringify(genBody('again')));
                assert.equal(r.status, 503, `POST ${p}: ${r.status} ${r.text}`);
                assertGoogleError(r, 503);
                assert.match(String(r.headers['retry-after']), /^\d+$/, `Retry-After: ${r.headers['retry-after']}`);
                assert.ok(Number(r.headers['retry-after']) > 0);
                assert.ok(r.ms < 1000, `took ${r.ms} ms`);
            }
            assert.equal(fake.requests().length, 0, 'a cooling key was used');
        });
    });

    test('all keys unusable (disabled): 503 with Retry-After in Google\'s error shape', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['invalid-only'], env: { MAX_FAILURES: '1' } }, async (gw) => {
            await post(gw, `/v1beta/models/${MODEL}:generateContent`, JSON.stringify(genBody('first')));
            assert.equal((await health(gw)).keys.disabled, 1);
            fake.reset();
            for (const [method, p] of [['POST', `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`],
                ['POST', `/gemini/v1beta/models/gemini-2.5-pro:generateContent`],
                ['POST', `/v1beta/models/${MODEL}:countTokens`], ['GET', '/v1beta/models'], ['GET', `/v1beta/models/${MODEL}`]]) {
                const r = method === 'GET' ? await get(gw, p) : await post(gw, p, JSON.stringify(genBody('again')));
                assert.equal(r.status, 503, `${method} ${p}: ${r.status} ${r.text}`);
                /* a google.rpc.Code name, which clients branch on; the gateway's reason in ErrorInfo */
                assertGoogleError(r, 503, 'UNAVAILABLE');
                assert.deepEqual(r.json.error.details, [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
                    reason: 'NO_USABLE_KEY', domain: 'gemini-balance' }], r.text);
                assert.match(String(r.headers['retry-after']), /^\d+$/, `Retry-After: ${r.headers['retry-after']}`);
            }
            assert.equal(fake.requests().length, 0);
        });
    });

    test('die-* key mid-stream (alt=sse): the stream ends with a data: {"error":...} event, no retry', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['die-only'] }, async (gw) => {
            const m = marker('die');
            const r = await post(gw, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, JSON.stringify(genBody(`${m} a b c d e f`)));
            assert.equal(r.status, 200, r.text);
            const calls = callsWith(fake, m);
            assert.equal(calls.length, 1, 'retried after bytes were sent');
            const sent = calls[0].response;
            assert.ok(sent.length > 0 && calls[0].selfDestroyed);
            assert.ok(r.text.startsWith(sent), `the upstream's first event was not relayed as is:\n got ${JSON.stringify(r.text)}\n sent ${JSON.stringify(sent)}`);
            const tail = r.text.slice(sent.length);
            const blocks = tail.split(/\r?\n\r?\n/).filter((b) => b.trim() !== '');
            assert.equal(blocks.length, 1, `expected exactly one error event after the relayed bytes: ${JSON.stringify(tail)}`);
            assert.match(blocks[0], /^data: ?\{\s*"error"\s*:/, `not an error event: ${JSON.stringify(tail)}`);
            const err = JSON.parse(blocks[0].replace(/^data: ?/, '')).error;
            assert.equal(typeof err.message, 'string');
            assert.ok(err.message.length > 0);
            assert.ok(/\r?\n\r?\n$/.test(tail), `the error event is not terminated: ${JSON.stringify(tail)}`);
        });
    });

    test('die-* key mid-stream (JSON array, no alt=sse): the connection is cut without the last chunk, so the body reads as incomplete', { timeout: T_SHORT }, async () => {
        await withGateway(fake, { keys: ['die-only'] }, async (gw) => {
            const m = marker('diearr');
            const body = JSON.stringify(genBody(`${m} a b c d e f`));
            const { default: net } = await import('node:net');
            const raw = await new Promise((resolve, reject) => {
                const s = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
                let text = '';
                const timer = setTimeout(() => reject(new Error(`still open: ${JSON.stringify(text)}`)), 5000);
                s.on('data', (d) => (text += d.toString('latin1')));
                s.on('error', reject);
                s.on('close', () => {
                    clearTimeout(timer);
                    resolve(text);
                });
                s.write(`POST /v1beta/models/${MODEL}:streamGenerateContent HTTP/1.1\r\nHost: x\r\n` +
                    `x-goog-api-key: ${TOKEN}\r\nContent-Type: application/json\r\n` +
                    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
            });
            assert.match(raw, /^HTTP\/1\.1 200 /, raw);
            assert.match(raw, /\r\nTransfer-Encoding: chunked\r\n/i);
            const calls = callsWith(fake, m);
            assert.equal(calls.length, 1, 'retried after bytes were sent');
            assert.ok(calls[0].selfDestroyed);
            /* what the upstream sent before it died is relayed, and no 0-size chunk follows */
            assert.ok(raw.includes(calls[0].response.slice(0, 20)), raw);
            assert.doesNotMatch(raw, /\r\n0\r\n\r\n$/, `a complete chunked body: ${JSON.stringify(raw.slice(-40))}`);
            /* and fetch, as SDKs use it, sees the body fail rather than end */
            await assert.rejects(async () => {
                const res = await fetch(`${gw.url}/v1beta/models/${MODEL}:streamGenerateContent`, {
                    method: 'POST', headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' }, body,
                });
                await res.text();
            });
            assert.equal((await health(gw)).status, 'healthy');
        });
    });
});

/* ------------------------------------------------------------------ */

describe('native Gemini API through the official @google/genai SDK', () => {
    const ctx = suite(hooks, { keys: KEYS });
    /* every fetch the SDK makes: { url, method, body } */
    let seen = [];
    let realFetch;
    before(() => {
        realFetch = globalThis.fetch;
        globalThis.fetch = (input, init = {}) => {
            seen.push({ url: String(input && input.url ? input.url : input), method: init.method || 'GET', body: init.body });
            return realFetch(input, init);
        };
    });
    after(() => {
        globalThis.fetch = realFetch;
    });

    for (const base of ['', '/gemini']) {
        const label = base ? 'baseUrl gw/gemini' : 'baseUrl gw';
        const sdk = (apiKey = TOKEN) => new GoogleGenAI({
            apiKey, httpOptions: { baseUrl: `${ctx.gw.url}${base}`, timeout: 10000 },
        });
        /* the only SDK request since the last reset; asserts its URL */
        const sdkCall = (expectUrlPath) => {
            assert.equal(seen.length, 1, `SDK requests: ${seen.map((s) => s.url)}`);
            assert.equal(seen[0].url, `${ctx.gw.url}${base}${expectUrlPath}`);
            return seen[0];
        };
        const fresh = () => {
            seen = [];
            ctx.fake.reset();
        };

        test(`SDK (${label}): models.generateContent`, { timeout: T_SHORT }, async () => {
            fresh();
            const m = marker('sdkg');
            const res = await sdk().models.generateContent({ model: MODEL, contents: `hello ${m}` });
            assert.equal(res.text, echoText(`hello ${m}`));
            const call = sdkCall(`/v1beta/models/${MODEL}:generateContent`);
            const rec = onlyCall(ctx.fake, m);
            assert.equal(rec.path, `/v1beta/models/${MODEL}:generateContent`);
            assertClean(rec);
            assert.equal(rec.body, call.body, 'the SDK\'s body changed on the way upstream');
            assert.equal(res.usageMetadata.totalTokenCount, JSON.parse(rec.response).usageMetadata.totalTokenCount);
        });

        test(`SDK (${label}): models.generateContentStream`, { timeout: T_SHORT }, async () => {
            fresh();
            const m = marker('sdks');
            const prompt = `stream ${m} one two three four five six`;
            const stream = await sdk().models.generateContentStream({ model: MODEL, contents: prompt });
            let text = '';
            let chunks = 0;
            for await (const c of stream) {
                chunks++;
                text += c.text || '';
            }
            assert.equal(text, echoText(prompt));
            assert.ok(chunks >= 2, `${chunks} chunks`);
            sdkCall(`/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
            const rec = onlyCall(ctx.fake, m);
            assert.equal(rec.path, `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`);
            assertClean(rec);
            assert.equal(rec.eventsSent, chunks);
        });

        test(`SDK (${label}): models.countTokens`, { timeout: T_SHORT }, async () => {
            fresh();
            const m = marker('sdkc');
            const res = await sdk().models.countTokens({ model: MODEL, contents: `count ${m}` });
            assert.equal(res.totalTokens, JSON.parse(fixture('count-tokens.json')).totalTokens);
            sdkCall(`/v1beta/models/${MODEL}:countTokens`);
            assert.equal(onlyCall(ctx.fake, m).path, `/v1beta/models/${MODEL}:countTokens`);
        });

        test(`SDK (${label}): models.embedContent, one and several contents`, { timeout: T_SHORT }, async () => {
            const model = 'gemini-embedding-001';
            for (const n of [1, 3]) {
                fresh();
                const m = marker('sdke');
                const contents = n === 1 ? `embed ${m}` : Array.from({ length: n }, (_, i) => `embed ${i} ${m}`);
                const res = await sdk().models.embedContent({ model, contents });
                assert.equal(res.embeddings.length, n);
                for (const e of res.embeddings) assert.ok(Array.isArray(e.values) && e.values.length > 0);
                assert.equal(seen.length, 1);
                const action = /:(embedContent|batchEmbedContents)$/.exec(seen[0].url);
                assert.ok(action, `SDK hit ${seen[0].url}`);
                sdkCall(`/v1beta/models/${model}:${action[1]}`);
                const rec = onlyCall(ctx.fake, m);
                assert.equal(rec.path, `/v1beta/models/${model}:${action[1]}`);
                assert.equal(rec.body, seen[0].body);
                assertClean(rec);
                if (action[1] === 'batchEmbedContents') assert.equal(JSON.parse(rec.body).requests.length, n);
            }
        });

        test(`SDK (${label}): models.list iterates every page`, { timeout: T_SHORT }, async () => {
            fresh();
            const pager = await sdk().models.list();
            const names = [];
            for await (const model of pager) {
                names.push(model.name);
                if (names.length > 500) break;
            }
            assert.deepEqual(names, fixtureModelIds().map((id) => `models/${id}`));
            const recs = ctx.fake.requests();
            assert.ok(recs.length >= 3, `${recs.length} upstream list calls`);
            assert.equal(recs.length, seen.length);
            for (let i = 0; i < recs.length; i++) {
                assert.equal(recs[i].method, 'GET');
                assert.match(recs[i].path, /^\/v1beta\/models(\?|$)/);
                assertClean(recs[i]);
                const u = new URL(seen[i].url);
                assert.equal(`${u.origin}${u.pathname}`, `${ctx.gw.url}${base}/v1beta/models`);
                assert.equal(recs[i].path, `/v1beta/models${u.search}`, 'the query changed on the way upstream');
                if (i > 0) assert.ok(u.searchParams.get('pageToken'), `page ${i} without pageToken: ${seen[i].url}`);
            }
        });

        test(`SDK (${label}): models.get`, { timeout: T_SHORT }, async () => {
            fresh();
            const res = await sdk().models.get({ model: 'gemini-2.5-pro' });
            assert.equal(res.name, 'models/gemini-2.5-pro');
            sdkCall('/v1beta/models/gemini-2.5-pro');
            const recs = ctx.fake.requests();
            assert.equal(recs.length, 1);
            assert.equal(recs[0].path, '/v1beta/models/gemini-2.5-pro');
            assertClean(recs[0]);
        });

        test(`SDK (${label}): tool calling round trip (functionCall, then functionResponse)`, { timeout: T_SHORT }, async () => {
            fresh();
            const m = marker('sdkt');
            const ai = sdk();
            const tools = [{
                functionDeclarations: [{
                    name: 'get_user_country',
                    description: 'The country the user is in.',
                    parameters: { type: 'OBJECT', properties: { precise: { type: 'BOOLEAN' } } },
                }],
            }];
            const question = { role: 'user', parts: [{ text: `Where am I? ${m}` }] };
            const res1 = await ai.models.generateContent({ model: 'function-call', contents: [question], config: { tools } });
            assert.ok(res1.functionCalls && res1.functionCalls.length === 1, JSON.stringify(res1));
            assert.equal(res1.functionCalls[0].name, 'get_user_country');
            assert.deepEqual(res1.functionCalls[0].args, {});
            const call1 = sdkCall('/v1beta/models/function-call:generateContent');
            const rec1 = onlyCall(ctx.fake, m);
            assert.equal(rec1.response, fixture('generate-content-function-call.json'));
            assert.equal(rec1.body, call1.body);
            assert.deepEqual(JSON.parse(rec1.body).tools[0].functionDeclarations[0].name, 'get_user_country');

            fresh();
            const functionResponse = { name: 'get_user_country', response: { country: 'Iceland', ref: m } };
            const res2 = await ai.models.generateContent({
                model: 'function-call',
                contents: [question, res1.candidates[0].content, { role: 'user', parts: [{ functionResponse }] }],
                config: { tools },
            });
            assert.equal(res2.text, echoText(JSON.stringify(functionResponse.response)));
            const call2 = sdkCall('/v1beta/models/function-call:generateContent');
            const rec2 = onlyCall(ctx.fake, m);
            assert.equal(rec2.body, call2.body, 'the functionResponse request changed on the way upstream');
            const sentContents = JSON.parse(rec2.body).contents;
            assert.equal(sentContents.length, 3);
            assert.deepEqual(sentContents[1].parts[0].functionCall, { name: 'get_user_country', args: {} });
            assert.deepEqual(sentContents[2].parts[0].functionResponse, functionResponse);
            assertClean(rec2);
        });

        test(`SDK (${label}): a wrong key -> ApiError with status 401, nothing forwarded`, { timeout: T_SHORT }, async () => {
            fresh();
            const ai = sdk('sk-not-an-allowed-token');
            await assert.rejects(ai.models.generateContent({ model: MODEL, contents: 'hi' }),
                (e) => e instanceof ApiError && e.status === 401);
            await assert.rejects(ai.models.get({ model: MODEL }), (e) => e instanceof ApiError && e.status === 401);
            await assert.rejects(async () => {
                for await (const c of await ai.models.generateContentStream({ model: MODEL, contents: 'hi' })) void c;
            }, (e) => e instanceof ApiError && e.status === 401);
            assert.ok(seen.every((s) => s.url.startsWith(`${ctx.gw.url}${base}/v1beta/models/`)), seen.map((s) => s.url).join(' '));
            assert.equal(ctx.fake.requests().length, 0);
        });
    }
});
