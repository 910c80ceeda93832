/*
 * Streaming on the wire: OpenAI SSE framing, UTF-8 split by the upstream,
 * incremental delivery, client hang-up cancelling the upstream request,
 * upstream dying mid-stream.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
    startFakeUpstream, startGateway, chat, openai, auth, parseOpenAISse, marker, generateCalls, waitFor, health,
    UTF8_TEXT, echoText, OpenAI, T_SHORT, HOOK,
} from './lib/harness.js';

const LONG_EVENTS = 200;

/* Content of choice 0 from parsed OpenAI SSE events. */
function contentOf(events) {
    return events.filter((e) => e !== '[DONE]' && e.choices && e.choices[0])
        .map((e) => e.choices[0].delta.content || '').join('');
}

/*
 * Opens a streaming chat request and hangs up as soon as the first content
 * chunk arrived.  Resolves { firstChunkMs, received }.
 */
function streamAndHangUp(gw, body) {
    return new Promise((resolve, reject) => {
        const payload = JSON.stringify(body);
        const t0 = Date.now();
        const req = http.request(`${gw.url}/v1/chat/completions`, {
            method: 'POST',
            agent: false,
            headers: { ...auth(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        }, (res) => {
            let received = '';
            res.setEncoding('utf8');
            res.on('data', (d) => {
                received += d;
                if (/"content"\s*:\s*"[^"]+"/.test(received)) {
                    const firstChunkMs = Date.now() - t0;
                    req.destroy();
                    resolve({ status: res.statusCode, firstChunkMs, received });
                }
            });
            res.on('end', () => reject(new Error(`stream ended before any content: ${received}`)));
        });
        req.on('error', (e) => {
            if (!req.destroyed) reject(e);
        });
        req.end(payload);
    });
}

describe('streaming', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0, longStreamEvents: LONG_EVENTS, longStreamEventMs: 25 });
        gw = await startGateway(fake, { keys: ['good-st-1', 'good-st-2'] });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('OpenAI SSE framing: "data: {json}\\n\\n" events, ends with "data: [DONE]\\n\\n"', { timeout: T_SHORT }, async () => {
        const m = marker('frame');
        const r = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `frame it ${m}` }] });
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'], /^text\/event-stream/);
        assert.ok(!r.text.includes('\r'), 'CR in the OpenAI stream');
        assert.ok(r.text.endsWith('data: [DONE]\n\n'), JSON.stringify(r.text.slice(-40)));
        const blocks = r.text.split('\n\n');
        assert.equal(blocks.pop(), '');
        for (const b of blocks) {
            assert.ok(b.startsWith('data: '), `event not framed as "data: ...": ${JSON.stringify(b)}`);
            assert.ok(!b.includes('\n'), `multi-line event: ${JSON.stringify(b)}`);
            if (b !== 'data: [DONE]') JSON.parse(b.slice(6));
        }
        assert.equal(blocks.filter((b) => b === 'data: [DONE]').length, 1);
        const events = parseOpenAISse(r.text);
        assert.equal(contentOf(events), echoText(`frame it ${m}`));
        assert.equal(new Set(events.slice(0, -1).map((e) => e.id)).size, 1);
    });

    test('UTF-8 split across upstream writes arrives intact (stream)', { timeout: T_SHORT }, async () => {
        const r = await chat(gw, { model: 'utf8', stream: true, messages: [{ role: 'user', content: 'utf8 please' }] });
        assert.equal(r.status, 200);
        assert.ok(!r.text.includes('\uFFFD'), 'replacement character in the stream');
        assert.equal(contentOf(parseOpenAISse(r.text)), UTF8_TEXT);
    });

    test('UTF-8 split across upstream writes arrives intact (non-stream, openai package)', { timeout: T_SHORT }, async () => {
        const res = await openai(gw).chat.completions.create({ model: 'utf8', messages: [{ role: 'user', content: 'utf8' }] });
        assert.equal(res.choices[0].message.content, UTF8_TEXT);
        const stream = await openai(gw).chat.completions.create({ model: 'utf8', stream: true, messages: [{ role: 'user', content: 'utf8' }] });
        let text = '';
        for await (const c of stream) text += (c.choices[0] && c.choices[0].delta.content) || '';
        assert.equal(text, UTF8_TEXT);
    });

    test('chunks are relayed as they come (first chunk long before the upstream ends)', { timeout: T_SHORT }, async () => {
        fake.reset();
        const m = marker('inc');
        const got = await streamAndHangUp(gw, { model: 'long-stream', stream: true, messages: [{ role: 'user', content: m }] });
        assert.equal(got.status, 200);
        assert.ok(got.firstChunkMs < 2000, `first chunk after ${got.firstChunkMs} ms; the upstream needs ${LONG_EVENTS * 25} ms`);
        await waitFor(() => fake.stats().aborted >= 1, { timeoutMs: 3000, what: 'the upstream request to be closed' });
    });

    test('client hang-up mid-stream closes the upstream request promptly', { timeout: T_SHORT }, async () => {
        fake.reset();
        const m = marker('hang');
        await streamAndHangUp(gw, { model: 'long-stream', stream: true, messages: [{ role: 'user', content: m }] });
        const t0 = Date.now();
        await waitFor(() => fake.stats().aborted >= 1, { timeoutMs: 2000, what: 'the fake to see the upstream connection closed' });
        const rec = generateCalls(fake, m)[0];
        assert.equal(rec.aborted, true);
        assert.ok(rec.eventsSent < LONG_EVENTS, `upstream sent all ${rec.eventsSent} events`);
        assert.ok(Date.now() - t0 < 2000);
    });

    test('several hang-ups at once: all upstream requests closed, gateway still serves', { timeout: T_SHORT }, async () => {
        fake.reset();
        const ms = [1, 2, 3, 4, 5].map(() => marker('many'));
        await Promise.all(ms.map((m) => streamAndHangUp(gw, { model: 'long-stream', stream: true, messages: [{ role: 'user', content: m }] })));
        await waitFor(() => fake.stats().aborted >= 5, { timeoutMs: 3000, what: '5 aborted upstream requests' });
        assert.equal(fake.stats().active, 0);
        const h = await health(gw);
        assert.equal(h.status, 'healthy');
        const m = marker('after');
        const r = await chat(gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] });
        assert.equal(r.status, 200);
        assert.equal(r.json.choices[0].message.content, echoText(m));
    });
});

describe('upstream dies mid-stream', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: ['die-only'], env: { MAX_RETRIES: '3' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('the stream ends with a data: {"error":...} event, no retry after the first byte', { timeout: T_SHORT }, async () => {
        const m = marker('die');
        const r = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `${m} words after` }] });
        assert.equal(r.status, 200);
        const blocks = r.text.split('\n\n').filter(Boolean);
        const errIdx = blocks.findIndex((b) => /^data: \{\s*"error"\s*:/.test(b));
        assert.ok(errIdx >= 0, `no error event in ${JSON.stringify(r.text)}`);
        const err = JSON.parse(blocks[errIdx].slice(6)).error;
        assert.equal(typeof err.message, 'string');
        /* OpenAI's error object: code is a string, as in the non-stream answer */
        assert.deepEqual({ type: err.type, code: err.code, param: err.param }, { type: 'server_error', code: 'upstream_error', param: null });
        const before = parseOpenAISse(blocks.slice(0, errIdx).join('\n\n') + '\n\n');
        assert.ok(before.length >= 1, 'no chunk before the error');
        assert.equal(before[0].choices[0].delta.role, 'assistant');
        assert.ok(contentOf(before).startsWith('Echo: '), `content before the error: ${contentOf(before)}`);
        assert.ok(blocks.slice(errIdx + 1).every((b) => b === 'data: [DONE]'), 'content after the error event');
        assert.equal(generateCalls(fake, m).length, 1, 'retried after bytes were sent');
    });

    test('the openai package raises an APIError for it', { timeout: T_SHORT }, async () => {
        const stream = await openai(gw).chat.completions.create({
            model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: 'die please' }],
        });
        let text = '';
        await assert.rejects(async () => {
            for await (const c of stream) text += (c.choices[0] && c.choices[0].delta.content) || '';
        }, (e) => e instanceof OpenAI.APIError);
        assert.ok(text.startsWith('Echo: '), text);
    });
});

describe('client hang-up while the upstream is silent', () => {
    /* The upstream sends nothing for seconds, so only watching the client
     * connection (not a failed write) can tell the gateway the client left. */
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0, slowMs: 6000, slowEventMs: 6000 });
        gw = await startGateway(fake, { keys: ['slow-hang'], env: { TIME_OUT: '60' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('non-stream: hang-up before the upstream answered closes the upstream request', { timeout: T_SHORT }, async () => {
        fake.reset();
        fake.config({ slowMs: 6000 });
        const m = marker('hangns');
        const payload = JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] });
        const req = http.request(`${gw.url}/v1/chat/completions`, {
            method: 'POST', agent: false,
            headers: { ...auth(), 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        });
        req.on('error', () => {});
        req.end(payload);
        await waitFor(() => generateCalls(fake, m).length === 1, { timeoutMs: 3000, what: 'the upstream request' });
        req.destroy();
        const t0 = Date.now();
        await waitFor(() => fake.stats().aborted >= 1, {
            timeoutMs: 1500, what: 'the gateway to close the upstream request after the client left (upstream silent for 6 s)',
        });
        assert.ok(Date.now() - t0 < 1500);
        assert.equal(generateCalls(fake, m)[0].aborted, true);
    });

    test('stream: hang-up between two upstream events closes the upstream request', { timeout: T_SHORT }, async () => {
        fake.reset();
        fake.config({ slowMs: 10, slowEventMs: 6000 });
        const m = marker('hangst');
        await streamAndHangUp(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `${m} a b c d e f` }] });
        await waitFor(() => fake.stats().aborted >= 1, {
            timeoutMs: 1500, what: 'the gateway to close the upstream request after the client left (next event in 6 s)',
        });
        const rec = generateCalls(fake, m)[0];
        assert.equal(rec.aborted, true);
        assert.equal(rec.eventsSent, 1);
        const h = await health(gw);
        assert.equal(h.keys.disabled + h.keys.cooling, 0, 'the key was blamed for the client leaving');
    });
});

describe('stream idle timeout (STREAM_IDLE_TIMEOUT)', () => {
    /* TIME_OUT is far away, so only the idle timeout can end these. */
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0, slowMs: 10, slowEventMs: 2500 });
        gw = await startGateway(fake, {
            keys: ['slow-idle'], env: { STREAM_IDLE_TIMEOUT: '1', TIME_OUT: '60', MAX_RETRIES: '0' },
        });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('an upstream silent for longer mid-stream is cut: error event, upstream request closed', { timeout: T_SHORT }, async () => {
        fake.reset();
        fake.config({ slowMs: 10, slowEventMs: 2500 });
        const m = marker('idlecut');
        const t0 = Date.now();
        const r = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `${m} a b c d e f` }] });
        const ms = Date.now() - t0;
        assert.equal(r.status, 200);
        const blocks = r.text.split('\n\n').filter(Boolean);
        const errIdx = blocks.findIndex((b) => /^data: \{\s*"error"\s*:/.test(b));
        assert.ok(errIdx >= 1, `no error event after a chunk in ${JSON.stringify(r.text)}`);
        assert.ok(contentOf(parseOpenAISse(blocks.slice(0, errIdx).join('\n\n') + '\n\n')).startsWith('Echo: '));
        /* cut about 1 s after the first event, long before the second (2.5 s) */
        assert.ok(ms >= 900 && ms < 2400, `stream ended after ${ms} ms`);
        await waitFor(() => generateCalls(fake, m).length === 1 && generateCalls(fake, m)[0].aborted === true, {
            timeoutMs: 1500, what: 'the upstream request to be closed',
        });
        assert.equal(generateCalls(fake, m)[0].eventsSent, 1);
    });

    test('events closer together than the timeout flow on, however long the stream', { timeout: T_SHORT }, async () => {
        fake.reset();
        fake.config({ slowMs: 10, slowEventMs: 700 });
        const m = marker('idleok');
        const t0 = Date.now();
        const r = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: `${m} a b c d e f` }] });
        const ms = Date.now() - t0;
        assert.equal(r.status, 200);
        assert.ok(!/"error"/.test(r.text), r.text);
        const events = parseOpenAISse(r.text);
        assert.equal(events[events.length - 1], '[DONE]');
        assert.ok(contentOf(events).includes(m), contentOf(events));
        const rec = generateCalls(fake, m)[0];
        assert.ok(rec.eventsSent >= 3, `only ${rec.eventsSent} events: the test needs a stream longer than the timeout`);
        assert.ok(ms > 1300, `the stream took only ${ms} ms`);
    });

    test('an upstream silent before its first byte: a clear error well before TIME_OUT', { timeout: T_SHORT }, async () => {
        fake.reset();
        fake.config({ slowMs: 4000, slowEventMs: 300 });
        const m = marker('idlehead');
        const t0 = Date.now();
        const r = await chat(gw, { model: 'gemini-2.5-flash', stream: true, messages: [{ role: 'user', content: m }] });
        const ms = Date.now() - t0;
        assert.ok(r.status >= 500, `status ${r.status}: ${r.text}`);
        assert.ok(JSON.parse(r.text).error.message, r.text);
        assert.ok(ms >= 900 && ms < 3000, `answered after ${ms} ms`);
        await waitFor(() => generateCalls(fake, m).length === 1 && generateCalls(fake, m)[0].aborted === true, {
            timeoutMs: 1500, what: 'the upstream request to be closed',
        });
    });
});
