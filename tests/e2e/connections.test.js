/*
 * Client connections (issue 6): MAX_CONNECTIONS refuses what is beyond it
 * with a clean 503, and the count behind it (gemini_balance_client_connections
 * in /metrics) goes back down however a connection ends, so the limit never
 * fills up with connections that are gone.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { request, auth, waitFor, sleep, T_LONG, suite } from './lib/harness.js';
import * as hooks from 'node:test';

const LIMIT = 4;

/* Opens a connection and resolves once it is established. */
function connect(port) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
    });
}

/* Sends raw bytes on a new connection and collects everything until the
 * server closes it. */
function exchange(port, bytes, { timeoutMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        const chunks = [];
        const timer = setTimeout(() => {
            s.destroy();
            reject(new Error('no close from the server'));
        }, timeoutMs);
        s.on('connect', () => s.write(bytes));
        s.on('data', (c) => chunks.push(c));
        s.on('error', () => {});
        s.on('close', () => {
            clearTimeout(timer);
            resolve(Buffer.concat(chunks).toString('utf8'));
        });
    });
}

/* The gauge and the refusal counter, read over a connection of its own
 * (that one counts itself).  Resolves once the gateway closed that
 * connection: it uncounts a connection before it closes the socket, so the
 * next connection of the test never finds this one still counted. */
async function counts(gw) {
    const text = await exchange(Number(new URL(gw.url).port),
        `GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth().authorization}\r\nConnection: close\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 200 /, text.slice(0, 300));
    const num = (name) => {
        const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
        assert.ok(m, `${name} missing from /metrics`);
        return Number(m[1]);
    };
    return { open: num('gemini_balance_client_connections'), refused: num('gemini_balance_client_connections_refused_total') };
}

/* Opens a connection that the gateway has surely counted: it answered a
 * request on it (kept alive).  A bare connect() resolves on the kernel's
 * handshake, before a worker accepted the socket; with two workers a later
 * connection can be accepted and counted first. */
async function counted(port) {
    const s = await connect(port);
    s.on('error', () => {});
    let got = '';
    await new Promise((resolve) => {
        s.on('data', (c) => {
            got += c.toString();
            if (got.includes('"object":"list"')) resolve();
        });
        s.on('close', resolve); /* refused, or closed before answering */
        s.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth().authorization}\r\n\r\n`);
    });
    assert.match(got, /^HTTP\/1\.1 200 /, `a connection below the limit: ${got.slice(0, 300)}`);
    return s;
}

/* Ends a connection and waits until the gateway closed its side too, which
 * it does after uncounting it. */
function hangUp(s) {
    return new Promise((resolve) => {
        if (s.destroyed) return resolve();
        s.on('close', resolve);
        s.end();
    });
}

/* Waits until only the metrics request's own connection is open. */
async function settled(gw, what) {
    await waitFor(async () => (await counts(gw)).open === 1, { timeoutMs: 8000, what });
}

describe('MAX_CONNECTIONS', () => {
    const ctx = suite(hooks, { keys: ['good-conn-a'], env: { MAX_CONNECTIONS: String(LIMIT), CLIENT_TIMEOUT: '2', MAX_REQUEST_BYTES: '4096' } });

    test('beyond the limit a connection gets a 503 JSON error and is closed; below it again, service resumes', { timeout: T_LONG }, async () => {
        const { gw } = ctx;
        const port = Number(new URL(gw.url).port);
        await settled(gw, 'a quiet gateway');
        const before = (await counts(gw)).refused;
        const held = [];
        for (let i = 0; i < LIMIT; i++) held.push(await counted(port));
        const text = await exchange(port, 'GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n');
        const [head, body] = text.split('\r\n\r\n');
        assert.match(head, /^HTTP\/1\.1 503 /, text);
        assert.match(head, /\r\nConnection: close/i);
        assert.match(head, /\r\nContent-Type: application\/json/i);
        const err = JSON.parse(body).error;
        assert.equal(err.code, 503);
        assert.equal(err.status, 'UNAVAILABLE');
        assert.match(err.message, /MAX_CONNECTIONS/);
        await Promise.all(held.map(hangUp));
        await settled(gw, 'the held connections to be uncounted');
        const after = await counts(gw);
        assert.equal(after.refused, before + 1);
        const ok = await request(`${gw.url}/v1/models`, { headers: auth() });
        assert.equal(ok.status, 200, ok.text);
    });

    test('the count goes back down however connections end', { timeout: T_LONG }, async () => {
        const { gw } = ctx;
        const port = Number(new URL(gw.url).port);
        const chatBody = JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] });
        const post = (body, extra = '') =>
            `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${auth().authorization.slice(7)}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
        await settled(gw, 'a quiet gateway');
        /* three rounds, each more than the limit, so a connection that stayed
         * counted would show as a refusal */
        for (let round = 0; round < 3; round++) {
            const ends = [];
            /* answered, the client asked to close */
            ends.push(exchange(port, post(chatBody, 'Connection: close\r\n')).then((t) => assert.match(t, /^HTTP\/1\.1 200 /, t)));
            /* a request line that is not HTTP: 400 from the parser */
            ends.push(exchange(port, 'BLAH\r\n\r\n'));
            /* a body over MAX_REQUEST_BYTES: 413 */
            ends.push(exchange(port, post('x'.repeat(5000))).then((t) => assert.match(t, /^HTTP\/1\.1 413 /, t)));
            await Promise.all(ends);
            /* hung up halfway through the head */
            const half = await connect(port);
            half.write('GET /v1/models HTTP/1.1\r\nHo');
            await sleep(50);
            half.destroy();
            /* hung up mid-stream */
            const mid = await connect(port);
            mid.on('error', () => {});
            const streamBody = JSON.stringify({ model: 'long-stream', stream: true, messages: [{ role: 'user', content: 'hi' }] });
            await new Promise((resolve) => {
                mid.on('data', (c) => {
                    if (c.toString().includes('data: ')) resolve();
                });
                mid.write(post(streamBody));
            });
            mid.destroy();
            /* kept alive after an answer, then closed by the client */
            const kept = await connect(port);
            await new Promise((resolve) => {
                kept.on('data', (c) => {
                    if (c.toString().includes('"object":"list"')) resolve();
                });
                kept.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${auth().authorization.slice(7)}\r\n\r\n`);
            });
            kept.end();
            /* idle until CLIENT_TIMEOUT closes it */
            const idle = await connect(port);
            idle.on('error', () => {});
            await new Promise((resolve) => idle.on('close', resolve));
            await settled(gw, `every connection of round ${round} to be uncounted`);
        }
        assert.equal((await counts(gw)).refused, 1, 'only the refusal of the first test');
    });

    /* evhttp's own timeout restarts with every byte; CLIENT_TIMEOUT (2 s
     * here) must bound the whole request, or a slowloris client keeps its
     * connection for ever */
    for (const [what, first] of [['a new connection', false], ['a kept-alive connection after an answer', true]]) {
        test(`${what} trickling its request a byte at a time is closed at CLIENT_TIMEOUT`, { timeout: T_LONG }, async () => {
            const { gw } = ctx;
            const s = await connect(Number(new URL(gw.url).port));
            s.on('error', () => {});
            const closed = new Promise((resolve) => s.on('close', resolve));
            let got = '';
            s.on('data', (c) => (got += c.toString()));
            if (first) {
                s.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth().authorization}\r\n\r\n`);
                await waitFor(() => got.includes('"object":"list"'), { what: 'the first answer' });
            }
            const head = 'GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
            let i = 0;
            const t0 = Date.now();
            const timer = setInterval(() => {
                if (!s.destroyed) s.write(head[i++ % head.length]);
            }, 100);
            const outcome = await Promise.race([closed.then(() => 'closed'), sleep(10000).then(() => 'still open')]);
            clearInterval(timer);
            s.destroy();
            assert.equal(outcome, 'closed', `still open after ${Date.now() - t0} ms of trickling`);
            assert.ok(Date.now() - t0 >= 1500, `closed after ${Date.now() - t0} ms, before CLIENT_TIMEOUT`);
            await settled(gw, 'the trickler to be uncounted');
        });
    }
});
