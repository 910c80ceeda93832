/*
 * Self-test of the fake Gemini upstream (tests/fake_upstream/server.js):
 * the other suites rely on exactly this behaviour.  No gateway involved.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
    startFakeUpstream, request, echoText, UTF8_TEXT, fixtureModelIds, waitFor, REPO_DIR, FIXTURES_DIR, T_SHORT, HOOK,
} from './lib/harness.js';

const GEN = { contents: [{ role: 'user', parts: [{ text: 'hello there' }] }] };

describe('fake upstream', () => {
    let fake;
    before(async () => {
        fake = await startFakeUpstream({ port: 0, slowMs: 300, slowEventMs: 50, longStreamEvents: 40, longStreamEventMs: 20 });
    }, HOOK);
    after(async () => fake && fake.close(), HOOK);

    const post = (model, action, key, body = GEN, query = '') => request(
        `${fake.url}/v1beta/models/${model}:${action}${query}`,
        { method: 'POST', headers: key === null ? {} : { 'x-goog-api-key': key }, body });

    test('model list is paginated and complete', { timeout: T_SHORT }, async () => {
        const ids = [];
        let token = '';
        let pages = 0;
        do {
            const r = await request(`${fake.url}/v1beta/models?pageSize=1000${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`,
                { headers: { 'x-goog-api-key': 'good-x' } });
            assert.equal(r.status, 200);
            pages++;
            ids.push(...r.json.models.map((m) => m.name.replace('models/', '')));
            token = r.json.nextPageToken;
        } while (token && pages < 100);
        assert.ok(pages >= 2, `expected at least 2 pages, got ${pages}`);
        assert.deepEqual(ids, fixtureModelIds());
        const small = await request(`${fake.url}/v1beta/models?pageSize=7`, { headers: { 'x-goog-api-key': 'good-x' } });
        assert.equal(small.json.models.length, 7);
        assert.ok(small.json.nextPageToken);
    });

    test('get one model', { timeout: T_SHORT }, async () => {
        const r = await request(`${fake.url}/v1beta/models/gemini-2.5-pro`, { headers: { 'x-goog-api-key': 'good-x' } });
        assert.equal(r.status, 200);
        assert.equal(r.json.name, 'models/gemini-2.5-pro');
    });

    test('generateContent echoes the last user text, n candidates, usage', { timeout: T_SHORT }, async () => {
        const body = { ...GEN, generationConfig: { candidateCount: 2 } };
        const r = await post('gemini-2.5-flash', 'generateContent', 'good-x', body);
        assert.equal(r.status, 200);
        assert.equal(r.json.candidates.length, 2);
        assert.equal(r.json.candidates[0].content.parts[0].text, echoText('hello there', 0));
        assert.equal(r.json.candidates[1].content.parts[0].text, echoText('hello there', 1));
        assert.equal(r.json.candidates[0].finishReason, 'STOP');
        assert.equal(r.json.usageMetadata.promptTokenCount, 2);
        assert.equal(r.json.usageMetadata.totalTokenCount,
            r.json.usageMetadata.promptTokenCount + r.json.usageMetadata.candidatesTokenCount);
    });

    test('stopSequences and maxOutputTokens are honoured', { timeout: T_SHORT }, async () => {
        let r = await post('m', 'generateContent', 'good-x', { ...GEN, generationConfig: { stopSequences: ['there'] } });
        assert.equal(r.json.candidates[0].content.parts[0].text, 'Echo: hello ');
        r = await post('m', 'generateContent', 'good-x', { ...GEN, generationConfig: { maxOutputTokens: 2 } });
        assert.equal(r.json.candidates[0].content.parts[0].text, 'Echo: hello ');
        assert.equal(r.json.candidates[0].finishReason, 'MAX_TOKENS');
    });

    test('alt=sse stream is framed data: <json>\\r\\n\\r\\n', { timeout: T_SHORT }, async () => {
        const r = await post('gemini-2.5-flash', 'streamGenerateContent', 'good-x', GEN, '?alt=sse');
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'], /^text\/event-stream/);
        assert.ok(r.text.endsWith('\r\n\r\n'));
        const events = r.text.split('\r\n\r\n').filter(Boolean);
        assert.ok(events.length >= 2);
        let text = '';
        for (const e of events) {
            assert.ok(e.startsWith('data: {"candidates": ['), e);
            const j = JSON.parse(e.slice(6));
            text += j.candidates[0].content.parts[0].text;
        }
        assert.equal(text, echoText('hello there'));
        assert.equal(JSON.parse(events.at(-1).slice(6)).candidates[0].finishReason, 'STOP');
    });

    test('stream without alt=sse is one JSON array', { timeout: T_SHORT }, async () => {
        const r = await post('gemini-2.5-flash', 'streamGenerateContent', 'good-x');
        assert.equal(r.status, 200);
        assert.ok(r.text.startsWith('[{\n'));
        assert.ok(r.text.endsWith('\n}\n]'));
        assert.ok(Array.isArray(r.json));
        assert.equal(r.json.map((e) => e.candidates[0].content.parts[0].text).join(''), echoText('hello there'));
    });

    test('key prefixes select the upstream answer', { timeout: T_SHORT }, async () => {
        const cases = [
            ['invalid-1', 400, 'INVALID_ARGUMENT', 'API_KEY_INVALID'],
            ['whatever', 400, 'INVALID_ARGUMENT', 'API_KEY_INVALID'],
            ['forbidden-1', 403, 'PERMISSION_DENIED', 'API_KEY_SERVICE_BLOCKED'],
            ['quota-1', 429, 'RESOURCE_EXHAUSTED', '"retryDelay": "26s"'],
            ['unavail-1', 503, 'UNAVAILABLE', 'overloaded'],
            ['err500-1', 500, 'INTERNAL', 'internal error'],
            [null, 403, 'PERMISSION_DENIED', 'unregistered callers'],
        ];
        for (const [key, status, st, needle] of cases) {
            const r = await post('gemini-2.5-flash', 'generateContent', key);
            assert.equal(r.status, status, `key ${key}`);
            assert.equal(r.json.error.status, st, `key ${key}`);
            assert.ok(r.text.includes(needle), `key ${key}: ${r.text}`);
        }
        const arr = await post('gemini-2.5-flash', 'streamGenerateContent', 'quota-1');
        assert.equal(arr.status, 429);
        assert.equal(arr.json[0].error.code, 429);
        const oauth = await request(`${fake.url}/v1beta/models/m:generateContent`, {
            method: 'POST', headers: { 'x-goog-api-key': 'good-1', authorization: 'Bearer x' }, body: GEN });
        assert.equal(oauth.status, 401);
    });

    test('model names select errors and special answers', { timeout: T_SHORT }, async () => {
        let r = await post('no-such-model', 'generateContent', 'good-x');
        assert.equal(r.status, 404);
        assert.match(r.json.error.message, /models\/no-such-model is not found/);
        r = await post('bad-request', 'generateContent', 'good-x');
        assert.equal(r.status, 400);
        assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
        r = await post('multi-part', 'generateContent', 'good-x');
        assert.deepEqual(r.json.candidates[0].content.parts.map((p) => p.text), ['Part one. ', 'Part two.']);
        r = await post('finish-safety', 'generateContent', 'good-x');
        assert.equal(r.json.candidates[0].finishReason, 'SAFETY');
        r = await post('thinking', 'generateContent', 'good-x');
        assert.equal(r.json.candidates[0].content.parts[0].thought, true);
    });

    test('function-call model: the fixture functionCall, then the echo of the functionResponse', { timeout: T_SHORT }, async () => {
        const fixture = fs.readFileSync(path.join(FIXTURES_DIR, 'gemini', 'generate-content-function-call.json'), 'utf8');
        let r = await post('function-call', 'generateContent', 'good-x');
        assert.equal(r.status, 200);
        assert.equal(r.text, fixture);
        r = await post('function-call', 'streamGenerateContent', 'good-x', GEN, '?alt=sse');
        const events = r.text.split('\r\n\r\n').filter(Boolean).map((e) => JSON.parse(e.slice(6)));
        assert.equal(events.length, 1);
        assert.deepEqual(events[0].candidates[0].content.parts, [{ functionCall: { args: {}, name: 'get_user_country' } }]);
        assert.equal(events[0].candidates[0].finishReason, 'STOP');
        const followUp = {
            contents: [...GEN.contents, { role: 'model', parts: [{ functionCall: { name: 'get_user_country', args: {} } }] },
                { role: 'user', parts: [{ functionResponse: { name: 'get_user_country', response: { country: 'Iceland' } } }] }],
        };
        r = await post('function-call', 'generateContent', 'good-x', followUp);
        assert.equal(r.json.candidates[0].content.parts[0].text, echoText('{"country":"Iceland"}'));
    });

    test('countTokens, embedContent, batchEmbedContents', { timeout: T_SHORT }, async () => {
        let r = await post('gemini-2.5-flash', 'countTokens', 'good-x');
        assert.equal(r.json.totalTokens, 12);
        r = await post('gemini-embedding-001', 'embedContent', 'good-x', { content: { parts: [{ text: 'x' }] } });
        assert.ok(Array.isArray(r.json.embedding.values));
        r = await post('gemini-embedding-001', 'batchEmbedContents', 'good-x', { requests: [{}, {}, {}] });
        assert.equal(r.json.embeddings.length, 3);
    });

    test('slow-* keys answer after the delay (slow-<ms>- overrides it)', { timeout: T_SHORT }, async () => {
        let r = await post('m', 'generateContent', 'slow-x');
        assert.equal(r.status, 200);
        assert.ok(r.ms >= 280, `answered after ${r.ms} ms`);
        r = await post('m', 'generateContent', 'slow-700-x');
        assert.ok(r.ms >= 680, `answered after ${r.ms} ms`);
    });

    test('die-* keys cut the connection (stream: after the first event)', { timeout: T_SHORT }, async () => {
        await assert.rejects(post('m', 'generateContent', 'die-x'));
        const got = await rawExchange(fake.port, 'die-x', 'm', 3000);
        assert.match(got.text, /^HTTP\/1\.1 200/);
        assert.equal((got.text.match(/data: /g) || []).length, 1);
        assert.ok(got.closedByPeer);
        assert.ok(fake.stats().selfDestroyed >= 2);
    });

    test('utf8 model splits multi-byte characters across writes', { timeout: T_SHORT }, async () => {
        const got = await rawExchange(fake.port, 'good-x', 'utf8', 5000);
        /* at least one HTTP chunk (one write of the fake) ends inside a
         * multi-byte character, and they came in several socket reads */
        const chunks = dechunk(Buffer.concat(got.reads));
        assert.ok(chunks.some((b) => !endsOnCharBoundary(b)), 'no write ended inside a UTF-8 sequence');
        assert.ok(got.reads.length > 4, `only ${got.reads.length} socket reads`);
        const body = Buffer.concat(chunks).toString('utf8');
        const texts = [...body.matchAll(/"text": "([^"]*)"/g)].map((m) => m[1]);
        assert.equal(texts.join(''), UTF8_TEXT);
    });

    test('records requests; client hang-up counted as aborted', { timeout: T_SHORT }, async () => {
        fake.reset();
        await post('gemini-2.5-flash', 'generateContent', 'good-rec', GEN, '?x=1');
        const recs = fake.requests();
        assert.equal(recs.length, 1);
        assert.equal(recs[0].method, 'POST');
        assert.equal(recs[0].path, '/v1beta/models/gemini-2.5-flash:generateContent?x=1');
        assert.equal(recs[0].headers['x-goog-api-key'], 'good-rec');
        assert.equal(recs[0].key, 'good-rec');
        assert.deepEqual(JSON.parse(recs[0].body), GEN);
        const over = await request(`${fake.url}/__requests`);
        assert.equal(over.json.length, 1);

        const got = rawExchange(fake.port, 'good-x', 'long-stream', 200, true);
        await got;
        await waitFor(() => fake.stats().aborted >= 1, { timeoutMs: 3000, what: 'aborted count' });
        const long = fake.requests().find((r) => r.model === 'long-stream');
        assert.equal(long.aborted, true);
        assert.ok(long.eventsSent < 40);
        const st = await request(`${fake.url}/__stats`);
        assert.equal(st.json.byKey['good-x'], 1);
        await request(`${fake.url}/__reset`, { method: 'POST' });
        assert.equal(fake.requests().length, 0);
    });

    test('CLI prints the listening line', { timeout: T_SHORT }, async () => {
        const p = spawn(process.execPath, [path.join(REPO_DIR, 'tests/fake_upstream/server.js'), '--port', '0'],
            { stdio: ['ignore', 'pipe', 'inherit'] });
        try {
            const line = await new Promise((resolve, reject) => {
                let out = '';
                p.stdout.on('data', (d) => {
                    out += d;
                    if (out.includes('\n')) resolve(out);
                });
                p.on('exit', () => reject(new Error('exited: ' + out)));
            });
            const m = /^fake-upstream listening on (http:\/\/127\.0\.0\.1:(\d+))\n$/.exec(line);
            assert.ok(m, line);
            const r = await request(`${m[1]}/v1beta/models/x:generateContent`,
                { method: 'POST', headers: { 'x-goog-api-key': 'good-1' }, body: GEN });
            assert.equal(r.status, 200);
        } finally {
            p.kill('SIGTERM');
        }
    });
});

/* The chunk payloads of a raw chunked HTTP response (headers skipped). */
function dechunk(raw) {
    let p = raw.indexOf('\r\n\r\n') + 4;
    const out = [];
    while (p < raw.length) {
        const eol = raw.indexOf('\r\n', p);
        if (eol < 0) break;
        const size = parseInt(raw.subarray(p, eol).toString('latin1'), 16);
        if (!size) break;
        out.push(raw.subarray(eol + 2, eol + 2 + size));
        p = eol + 2 + size + 2;
    }
    return out;
}

function endsOnCharBoundary(b) {
    /* walk back over continuation bytes to the lead byte */
    let i = b.length - 1;
    let n = 0;
    while (i >= 0 && (b[i] & 0xc0) === 0x80) {
        i--;
        n++;
    }
    if (i < 0) return false;
    const lead = b[i];
    const need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
    return need === n;
}

/* A raw HTTP/1.1 streaming exchange; returns every socket read separately. */
function rawExchange(port, key, model, maxMs, hangUpAfterFirst = false) {
    return new Promise((resolve, reject) => {
        const body = JSON.stringify(GEN);
        const s = net.connect(port, '127.0.0.1');
        const reads = [];
        let closedByPeer = false;
        const finish = () => {
            clearTimeout(timer);
            resolve({ reads, text: Buffer.concat(reads).toString('utf8'), closedByPeer });
        };
        const timer = setTimeout(() => {
            s.destroy();
            finish();
        }, maxMs);
        s.on('connect', () => {
            s.write(`POST /v1beta/models/${model}:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
                `x-goog-api-key: ${key}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        });
        s.on('data', (d) => {
            reads.push(d);
            if (hangUpAfterFirst && Buffer.concat(reads).includes('data: ')) {
                s.destroy();
                finish();
            }
        });
        s.on('end', () => {
            closedByPeer = true;
        });
        s.on('close', () => {
            closedByPeer = closedByPeer || !hangUpAfterFirst;
            finish();
        });
        s.on('error', (e) => (e.code === 'ECONNRESET' ? (closedByPeer = true) : reject(e)));
    });
}
