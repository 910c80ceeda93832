/*
 * Keeping long answers alive (issue 3): SSE comments while a stream waits for
 * a slow upstream, retries still possible before any content, and fake
 * streaming (FAKE_STREAM_ENABLED) answering a stream from a non-stream call.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
    startFakeUpstream, startGateway, chat, openai, parseOpenAISse, marker, generateCalls, echoText, T_SHORT, HOOK,
} from './lib/harness.js';

describe('stream keep-alives between events', () => {
    /* The comment timer is not moved on every chunk: it notes when the last
     * one went out and sleeps again for the rest of the period. */
    let fake, gw;
    test('setup', HOOK, async () => {
        fake = await startFakeUpstream({ port: 0, slowMs: 10, slowEventMs: 2500 });
        gw = await startGateway(fake, { keys: ['slow-10-ka'], env: { STREAM_KEEPALIVE_SECONDS: '1' } });
    });

    test('a silence between two events gets comments, placed between them', { timeout: T_SHORT }, async () => {
        fake.config({ slowEventMs: 2500 });
        const m = marker('kamid');
        const res = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `${m} a b c d e f` }] },
            { timeoutMs: 15000 });
        assert.equal(res.status, 200);
        const blocks = res.text.split('\n\n').filter(Boolean);
        const firstData = blocks.findIndex((b) => b.startsWith('data: '));
        const comments = blocks.map((b, i) => [b, i]).filter(([b]) => b.startsWith(': keep-alive')).map(([, i]) => i);
        assert.ok(comments.length >= 2, `expected comments in the 2.5 s gaps:\n${res.text.slice(0, 600)}`);
        assert.ok(comments.every((i) => i > firstData), 'a comment before the first event (the upstream answered at once)');
        const events = parseOpenAISse(res.text);
        assert.equal(events.at(-1), '[DONE]');
    });

    test('events closer together than the period get no comment', { timeout: T_SHORT }, async () => {
        fake.config({ slowEventMs: 600 });
        const m = marker('kaflow');
        const t0 = Date.now();
        const res = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `${m} a b c d e f` }] },
            { timeoutMs: 15000 });
        assert.equal(res.status, 200);
        assert.ok(Date.now() - t0 > 1100, 'the stream must last longer than the period');
        assert.ok(!res.text.includes(': keep-alive'), `a comment while events flowed:\n${res.text.slice(0, 600)}`);
    });

    test('teardown', HOOK, async () => {
        await gw.stop();
        await fake.close();
    });
});

describe('stream keep-alives', () => {
    let fake, gw;
    test('setup', HOOK, async () => {
        fake = await startFakeUpstream({ port: 0, slowMs: 2500, slowEventMs: 50 });
        gw = await startGateway(fake, { keys: ['slow-2500-a'], env: { STREAM_KEEPALIVE_SECONDS: '1' } });
    });

    test('a silent upstream gets SSE comments, then the real answer', { timeout: T_SHORT }, async () => {
        const m = marker('ka');
        const res = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: m }] },
            { timeoutMs: 10000 });
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'], /text\/event-stream/);
        const comments = res.text.split('\n').filter((l) => l.startsWith(': keep-alive'));
        assert.ok(comments.length >= 1, `expected keep-alive comments, got body:\n${res.text.slice(0, 300)}`);
        assert.ok(res.text.indexOf(': keep-alive') < res.text.indexOf('data: '), 'comments come before data');
        const events = parseOpenAISse(res.text);
        const text = events.filter((e) => e !== '[DONE]' && e.choices?.[0]).map((e) => e.choices[0].delta.content || '').join('');
        assert.equal(text, echoText(m));
        assert.equal(events.at(-1), '[DONE]');
    });

    test('the official SDK ignores the comments', { timeout: T_SHORT }, async () => {
        const m = marker('kasdk');
        const stream = await openai(gw, { timeoutMs: 10000 }).chat.completions.create({
            model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: m }],
        });
        let text = '';
        for await (const c of stream) text += c.choices[0]?.delta?.content || '';
        assert.equal(text, echoText(m));
    });

    test('teardown', HOOK, async () => {
        await gw.stop();
        await fake.close();
    });
});

describe('retry after keep-alives, before any content', () => {
    /* An upstream of its own: key late-fail answers 503 after 1.5 s (so the
     * keep-alive already committed the 200 head), key ok streams an answer. */
    let up, gw, seen = [];
    test('setup', HOOK, async () => {
        up = http.createServer((req, res) => {
            let body = '';
            req.on('data', (d) => { body += d; });
            req.on('end', () => {
                const key = req.headers['x-goog-api-key'];
                seen.push(key);
                if (key === 'late-fail') {
                    setTimeout(() => {
                        res.writeHead(503, { 'content-type': 'application/json' });
                        res.end('{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}');
                    }, 1500);
                    return;
                }
                res.writeHead(200, { 'content-type': 'text/event-stream' });
                res.end('data: {"candidates": [{"content": {"parts": [{"text": "second key"}],"role": "model"},' +
                    '"finishReason": "STOP","index": 0}]}\r\n\r\n');
            });
        });
        await new Promise((r) => up.listen(0, '127.0.0.1', r));
        const base = `http://127.0.0.1:${up.address().port}`;
        gw = await startGateway({ url: base }, {
            keys: ['late-fail', 'ok'], env: { STREAM_KEEPALIVE_SECONDS: '1', BASE_URL: `${base}/v1beta` },
        });
    });

    test('a failure after the 200 head but before content is retried on another key', { timeout: T_SHORT }, async () => {
        /* the rotation starts at a random key: at most one request lands on
         * ok first, then round robin brings late-fail first */
        let res;
        for (let i = 0; i < 2; i++) {
            seen = [];
            res = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'x' }] },
                { timeoutMs: 10000 });
            if (seen[0] === 'late-fail') break;
        }
        assert.equal(res.status, 200);
        assert.match(res.text, /^: keep-alive/);
        const events = parseOpenAISse(res.text);
        const text = events.filter((e) => e !== '[DONE]' && e.choices?.[0]).map((e) => e.choices[0].delta.content || '').join('');
        assert.equal(text, 'second key');
        assert.equal(events.at(-1), '[DONE]');
        assert.deepEqual(seen, ['late-fail', 'ok']);
    });

    test('when every attempt fails after the head, the stream ends with an error event', { timeout: T_SHORT }, async () => {
        await gw.stop();
        const base = `http://127.0.0.1:${up.address().port}`;
        gw = await startGateway({ url: base }, {
            keys: ['late-fail'], env: { STREAM_KEEPALIVE_SECONDS: '1', MAX_RETRIES: '0', BASE_URL: `${base}/v1beta` },
        });
        const res = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'x' }] },
            { timeoutMs: 10000 });
        assert.equal(res.status, 200);
        const events = parseOpenAISse(res.text);
        const last = events.at(-1);
        assert.ok(last && last.error, `last event should be an error: ${res.text}`);
        assert.equal(last.error.message, 'overloaded');
        assert.equal(last.error.status, 503);
    });

    test('teardown', HOOK, async () => {
        await gw.stop();
        await new Promise((r) => up.close(r));
    });
});

describe('fake streaming', () => {
    let fake, gw;
    test('setup', HOOK, async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: ['good-a'], env: { FAKE_STREAM_ENABLED: 'true' } });
    });

    test('stream:true is answered from one non-stream upstream call, as chunks', { timeout: T_SHORT }, async () => {
        const m = marker('fs');
        const stream = await openai(gw).chat.completions.create({
            model: 'gemini-2.5-flash', stream: true, stream_options: { include_usage: true },
            messages: [{ role: 'user', content: m }],
        });
        let text = '', finish = null, usage = null, role = null;
        for await (const c of stream) {
            if (c.usage) usage = c.usage;
            const ch = c.choices[0];
            if (!ch) continue;
            role = role || ch.delta.role;
            text += ch.delta.content || '';
            finish = ch.finish_reason || finish;
        }
        assert.equal(text, echoText(m));
        assert.equal(role, 'assistant');
        assert.equal(finish, 'stop');
        assert.ok(usage && usage.total_tokens > 0);
        const calls = generateCalls(fake, m);
        assert.equal(calls.length, 1);
        assert.match(calls[0].path, /:generateContent$/);
    });

    test('teardown', HOOK, async () => {
        await gw.stop();
        await fake.close();
    });
});
