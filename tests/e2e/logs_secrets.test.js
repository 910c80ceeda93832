/*
 * Logs on stderr: one access line per request (method, path, status,
 * attempts), text and JSON formats; no key or client token ever printed or
 * returned in full.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startFakeUpstream, startGateway, chat, request, auth, openai, marker, generateCalls, findSecrets, waitFor,
    T_SHORT, T_LONG, HOOK,
} from './lib/harness.js';

const KEYS = [
    'good-SECRETKEY-0001-AbCdEfGhIjKlMnOpQrSt',
    'good-SECRETKEY-0002-uVwXyZaBcDeFgHiJkLmN',
    'invalid-SECRETKEY-0003-oPqRsTuVwXyZ012345',
    'quota-SECRETKEY-0004-6789AbCdEfGhIjKlMnOp',
];
const TOKENS = ['sk-e2e-SECRET-TOKEN-aaaaaaaaaaaaaaaaaaaa', 'sk-e2e-SECRET-TOKEN-bbbbbbbbbbbbbbbbbbbb'];
const WRONG_TOKEN = 'sk-e2e-WRONG-TOKEN-cccccccccccccccccccc';

/* Access lines of `text`: those naming the method, the path, the status and
 * the attempts (debug lines about the same request do not say "attempt"). */
function accessLines(text, method, path, status) {
    return text.split('\n').filter((l) => l.includes(method) && l.includes(path) &&
        new RegExp(`\\b${status}\\b`).test(l) && /attempt/i.test(l));
}

describe('logs and secrets (text format)', () => {
    let fake;
    let gw;
    const bodies = {};
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: KEYS, tokens: TOKENS, env: { LOG_LEVEL: 'debug', MAX_FAILURES: '2' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('one access line per request with method, path, status and attempts', { timeout: T_SHORT }, async () => {
        let mark = gw.mark();
        const r = await chat(gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'log me' }] }, { headers: auth(TOKENS[0]) });
        assert.equal(r.status, 200);
        const lines = await waitFor(() => {
            const l = accessLines(gw.stderr(mark), 'POST', '/v1/chat/completions', 200);
            return l.length ? l : null;
        }, { timeoutMs: 3000, what: 'an access line (method, path, status, attempts) for POST /v1/chat/completions 200', detail: () => `stderr:\n${gw.stderr(mark)}` });
        assert.equal(lines.length, 1, `several access lines for one request:\n${lines.join('\n')}`);

        mark = gw.mark();
        const nf = await chat(gw, { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }, { headers: auth(TOKENS[1]) });
        assert.equal(nf.status, 404);
        await waitFor(() => accessLines(gw.stderr(mark), 'POST', '/v1/chat/completions', 404).length === 1,
            { timeoutMs: 3000, what: 'one access line for the 404', detail: () => `stderr:\n${gw.stderr(mark)}` });

        mark = gw.mark();
        const un = await request(`${gw.url}/v1/models`, { headers: auth(WRONG_TOKEN) });
        assert.equal(un.status, 401);
        await waitFor(() => accessLines(gw.stderr(mark), 'GET', '/v1/models', 401).length === 1,
            { timeoutMs: 3000, what: 'one access line for the 401', detail: () => `stderr:\n${gw.stderr(mark)}` });
    });

    test('the attempts count in the access line matches the upstream attempts', { timeout: T_LONG }, async () => {
        /* find a request that needed a retry (the quota key first: it cools per
         * model, so a model no earlier test used still meets it; round robin
         * starts at a random key) */
        /* request i is matched with the i-th access line since the start,
         * not with the first line after a mark taken per request: a line
         * that reaches the pipe late is never taken for another request's */
        const start = gw.mark();
        for (let i = 0; i < 8; i++) {
            const m = marker('att');
            const r = await chat(gw, { model: 'gemini-2.0-flash', messages: [{ role: 'user', content: m }] }, { headers: auth(TOKENS[0]) });
            assert.equal(r.status, 200, r.text);
            const n = generateCalls(fake, m).length;
            const lines = await waitFor(() => {
                const l = accessLines(gw.stderr(start), 'POST', '/v1/chat/completions', 200);
                return l.length > i ? l : null;
            }, { timeoutMs: 3000, what: `access line ${i + 1}`, detail: () => `stderr:\n${gw.stderr(start)}` });
            if (n < 2) continue;
            assert.match(lines[i], new RegExp(`attempts?\\W{0,3}${n}\\b`, 'i'), `expected ${n} attempts in: ${lines[i]}`);
            return;
        }
        assert.fail('no request needed a retry although the pool has a bad key');
    });

    test('keys and tokens never appear in full in logs or responses', { timeout: T_LONG }, async () => {
        const c0 = openai(gw, { apiKey: TOKENS[0] });
        const c1 = openai(gw, { prefix: '/hf/v1', apiKey: TOKENS[1] });
        /* a bit of everything: success, retries over the bad keys, streams,
         * client errors, upstream errors, auth failures, health, models */
        for (let i = 0; i < 6; i++) {
            const res = await c0.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: `s${i}` }] });
            bodies[`chat ${i}`] = JSON.stringify(res);
            const st = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `t${i}` }] },
                { prefix: '/hf/v1', headers: { 'x-goog-api-key': TOKENS[1] } });
            bodies[`stream ${i}`] = st.text;
        }
        bodies.models = JSON.stringify(await c1.models.list());
        for (const [name, body, headers] of [
            ['404', { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }, auth(TOKENS[0])],
            ['400 upstream', { model: 'bad-request', messages: [{ role: 'user', content: 'x' }] }, auth(TOKENS[0])],
            ['400 local', { messages: [] }, auth(TOKENS[0])],
            ['401', { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }] }, auth(WRONG_TOKEN)],
            ['401 goog', { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }] }, { 'x-goog-api-key': WRONG_TOKEN }],
        ]) {
            const r = await chat(gw, body, { headers });
            bodies[name] = r.text + JSON.stringify(r.headers);
        }
        const q = await request(`${gw.url}/v1/models?key=${WRONG_TOKEN}`);
        bodies['401 query'] = q.text;
        const q2 = await request(`${gw.url}/v1/models?key=${TOKENS[0]}`);
        bodies['200 query'] = q2.text;
        const h = await request(`${gw.url}/health`);
        bodies.health = h.text;
        bodies['404 route'] = (await request(`${gw.url}/v1/no/such/route`, { headers: auth(TOKENS[0]) })).text;
        await new Promise((r) => setTimeout(r, 200)); /* let the last log lines be written; not needed to pass */
        const found = findSecrets({ stderr: gw.stderr(), stdout: gw.stdoutText, ...bodies }, [...KEYS, ...TOKENS, WRONG_TOKEN]);
        assert.deepEqual(found, [], `secrets leaked:\n${found.join('\n')}`);
        assert.ok(gw.stderr().length > 0, 'nothing logged at all');
    });
});

describe('logs (LOG_FORMAT=json)', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: KEYS.slice(0, 2), tokens: TOKENS, env: { LOG_FORMAT: 'json', LOG_LEVEL: 'info' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('the access line is one JSON object with method, path, status, attempts', { timeout: T_SHORT }, async () => {
        const mark = gw.mark();
        const r = await chat(gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'json log' }] }, { headers: auth(TOKENS[0]) });
        assert.equal(r.status, 200);
        const line = (await waitFor(() => {
            const l = accessLines(gw.stderr(mark), 'POST', '/v1/chat/completions', 200);
            return l.length ? l : null;
        }, { timeoutMs: 3000, what: 'a JSON access line', detail: () => `stderr:\n${gw.stderr(mark)}` }))[0];
        let obj;
        assert.doesNotThrow(() => {
            obj = JSON.parse(line);
        }, `not JSON: ${line}`);
        const values = Object.values(obj).map(String);
        assert.ok(values.includes('POST'), line);
        assert.ok(values.includes('/v1/chat/completions'), line);
        assert.ok(values.includes('200'), line);
        assert.ok(Object.keys(obj).some((k) => /attempt/i.test(k)), `no attempts field: ${line}`);
        for (const l of gw.stderr().split('\n').filter((x) => x.trim())) {
            assert.doesNotThrow(() => JSON.parse(l), `a log line is not JSON: ${l}`);
        }
        assert.deepEqual(findSecrets({ stderr: gw.stderr() }, [...KEYS, ...TOKENS]), []);
    });
});
