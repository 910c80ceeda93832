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

/* Sends raw bytes, resolves everything the gateway wrote until it closed
 * the connection (or 3 s went by: then `open` is true). */
function exchange(port, raw) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let text = '';
        const timer = setTimeout(() => {
            s.destroy();
            resolve({ text, open: true });
        }, 3000);
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
            const r = await exchange(port(), raw);
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
            const r = await exchange(port(), raw);
            assert.match(r.text, /^HTTP\/1\.1 200 /, r.text);
            assert.equal(JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)).choices[0].message.content, 'Echo: framing ok');
        });
    }
});
