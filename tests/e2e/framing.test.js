/*
 * Request framing (issue 6, request smuggling): a head whose body a proxy in
 * front of the gateway could delimit otherwise than the gateway does is
 * refused and the connection closed, so bytes hidden in the body are never
 * read as a request of their own.  Each bad case hides `GET /health` in its
 * body: a second answer on the connection would be the smuggled request
 * served.  RFC 9112 5.1, 6.1, 6.3.
 */
import { describe, test } from 'node:test';
import * as hooks from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { suite, generateCalls, TOKEN, T_SHORT } from './lib/harness.js';

const SMUGGLED = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
const CHAT = JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'framing ok' }] });

/* Sends raw bytes and collects what comes back until the gateway closes the
 * connection or `ms` pass; open tells which. */
function rawExchange(port, raw, ms = 3000) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let text = '';
        const timer = setTimeout(() => {
            s.destroy();
            resolve({ text, open: true });
        }, ms);
        s.on('data', (d) => (text += d.toString('latin1')));
        s.on('error', reject);
        s.on('close', () => {
            clearTimeout(timer);
            resolve({ text, open: false });
        });
        s.write(raw);
    });
}

function head(extra) {
    return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        `Content-Type: application/json\r\n${extra}\r\n`;
}

function chunked(body) {
    return `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
}

describe('request framing', () => {
    const ctx = suite(hooks, { keys: ['good-framing-k1-0123456789'] });
    const port = () => Number(new URL(ctx.gw.url).port);

    /* json: the gateway answers in the API's error format; evhttp itself
     * refuses Content-Length with Transfer-Encoding, with an HTML page */
    for (const [what, raw, status, json = true] of [
        ['Content-Length values that disagree (evhttp reads the first)',
            head(`Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n`) + SMUGGLED, 400],
        ['a Content-Length with a sign',
            head(`Content-Length: +${SMUGGLED.length}\r\n`) + SMUGGLED, 400],
        ['whitespace between a field name and the colon',
            head(`Content-Length : ${SMUGGLED.length}\r\n`) + SMUGGLED, 400],
        ['a transfer coding other than chunked',
            head('Transfer-Encoding: xchunked\r\n') + SMUGGLED, 501],
        ['gzip, chunked (a coding the gateway does not decode)',
            head('Transfer-Encoding: gzip, chunked\r\n') + chunked(SMUGGLED), 501],
        ['both Content-Length and Transfer-Encoding',
            head(`Content-Length: ${SMUGGLED.length + 9}\r\nTransfer-Encoding: chunked\r\n`) + chunked(SMUGGLED), 400, false],
    ]) {
        test(`${what}: ${status}, connection closed, nothing smuggled or forwarded`, { timeout: T_SHORT }, async () => {
            const before = generateCalls(ctx.fake).length;
            const r = await rawExchange(port(), raw);
            assert.equal(r.open, false, `the connection stayed open: ${JSON.stringify(r.text)}`);
            assert.match(r.text, new RegExp(`^HTTP/1\\.1 ${status} `), r.text);
            assert.match(r.text, /\r\nConnection: close\r\n/i);
            assert.equal(r.text.match(/HTTP\/1\.1 \d{3} /g).length, 1, `a second answer: ${JSON.stringify(r.text)}`);
            if (json) {
                const err = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)).error;
                assert.equal(typeof err.message, 'string');
            }
            assert.equal(generateCalls(ctx.fake).length, before, 'the request went upstream');
        });
    }

    for (const [what, raw] of [
        ['two equal Content-Length headers', head(`Content-Length: ${CHAT.length}\r\nContent-Length: ${CHAT.length}\r\nConnection: close\r\n`) + CHAT],
        ['Transfer-Encoding: Chunked in another case', head('Transfer-Encoding: Chunked\r\nConnection: close\r\n') + chunked(CHAT)],
        ['a plain Content-Length', head(`Content-Length: ${CHAT.length}\r\nConnection: close\r\n`) + CHAT],
    ]) {
        test(`${what} is served`, { timeout: T_SHORT }, async () => {
            const r = await rawExchange(port(), raw);
            assert.match(r.text, /^HTTP\/1\.1 200 /, r.text);
            assert.equal(JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)).choices[0].message.content, 'Echo: framing ok');
        });
    }
});

describe('connection handling', () => {
    const ctx = suite(hooks, { keys: ['good-conn-k1-0123456789'], env: { ALLOWED_ORIGINS: 'http://a.example,http://b.example' } });
    const port = () => Number(new URL(ctx.gw.url).port);
    const streamBody = JSON.stringify({ model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'one zero' }] });

    for (const [what, path, body] of [
        ['OpenAI chat stream', '/v1/chat/completions', streamBody],
        ['native SSE stream', '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
            JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'one zero' }] }] })],
    ]) {
        test(`HTTP/1.0 keep-alive ${what}: Connection: close, no Content-Length, ends with the connection`, { timeout: T_SHORT }, async () => {
            const r = await rawExchange(port(), `POST ${path} HTTP/1.0\r\nConnection: keep-alive\r\n` +
                `Authorization: Bearer ${TOKEN}\r\nx-goog-api-key: ${TOKEN}\r\nContent-Type: application/json\r\n` +
                `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}` + SMUGGLED.replace('1.1', '1.0'));
            const [headPart, ...rest] = r.text.split('\r\n\r\n');
            assert.equal(r.open, false, 'the connection stayed open after the stream');
            assert.match(headPart, /^HTTP\/1\.0 200 /, r.text);
            assert.doesNotMatch(headPart, /content-length/i, `a stream announced a length: ${headPart}`);
            assert.match(headPart, /\r\nConnection: close/i);
            const bodyText = rest.join('\r\n\r\n');
            assert.match(bodyText, /^data: /);
            assert.doesNotMatch(bodyText, /HTTP\/1\.\d \d{3} /, 'the request after the stream was answered');
        });
    }

    test('HTTP/1.0 without Host is served; HTTP/1.1 needs exactly one Host (400, closed)', { timeout: T_SHORT }, async () => {
        const ok = await rawExchange(port(), 'GET /health HTTP/1.0\r\n\r\n');
        assert.match(ok.text, /^HTTP\/1\.0 200 /, ok.text);
        for (const hosts of ['', 'Host: a\r\nHost: b\r\n']) {
            const r = await rawExchange(port(), `GET /v1/models HTTP/1.1\r\n${hosts}Authorization: Bearer ${TOKEN}\r\n\r\n` + SMUGGLED);
            assert.match(r.text, /^HTTP\/1\.1 400 /, r.text);
            assert.equal(r.open, false);
            assert.equal(r.text.match(/HTTP\/1\.1 \d{3} /g).length, 1, r.text);
            assert.match(JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)).error.message, /Host/);
        }
    });

    for (const conn of ['keep-alive, close', 'TE, close', 'Close']) {
        test(`Connection: ${conn} closes after the answer`, { timeout: T_SHORT }, async () => {
            const r = await rawExchange(port(), `GET /health HTTP/1.1\r\nHost: x\r\nConnection: ${conn}\r\n\r\n` + SMUGGLED);
            assert.equal(r.open, false, `still open: ${r.text}`);
            assert.equal(r.text.match(/HTTP\/1\.1 \d{3} /g).length, 1, `the next request was answered: ${r.text}`);
        });
    }

    test('a gzip-coded body: 415 with Accept-Encoding, nothing forwarded', { timeout: T_SHORT }, async () => {
        const { gzipSync } = await import('node:zlib');
        const z = gzipSync(Buffer.from(CHAT));
        const before = generateCalls(ctx.fake).length;
        const r = await new Promise((resolve, reject) => {
            const s = net.connect(port(), '127.0.0.1');
            const chunks = [];
            s.on('data', (d) => chunks.push(d));
            s.on('error', reject);
            s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
            s.write(head(`Content-Encoding: gzip\r\nContent-Length: ${z.length}\r\n`));
            s.write(z);
        });
        assert.match(r, /^HTTP\/1\.1 415 /, r);
        assert.match(r, /\r\nAccept-Encoding: identity\r\n/i);
        assert.equal(generateCalls(ctx.fake).length, before);
    });

    test('with an ALLOWED_ORIGINS list every answer varies on Origin, refused origins included', { timeout: T_SHORT }, async () => {
        for (const [origin, allowed] of [['http://a.example', true], ['http://evil.example', false], [null, false]]) {
            const headers = origin ? { Origin: origin } : {};
            const r = await rawExchange(port(), `GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${
                Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
            const h = r.text.split('\r\n\r\n')[0];
            assert.match(h, /\r\nVary: Origin\r\n/i, `${origin}: ${h}`);
            assert.equal(/access-control-allow-origin/i.test(h), allowed, `${origin}: ${h}`);
        }
    });
});
