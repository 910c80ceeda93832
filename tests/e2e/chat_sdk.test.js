/*
 * Chat completions through the official `openai` package, on /v1 and /hf/v1:
 * non-stream, stream, n=2, stop, max_tokens, include_usage, finish reasons.
 * Expected texts come from the fake upstream's echo rule (echoText).
 */
import { describe, test, before, after } from 'node:test';
import * as hooks from 'node:test';
import assert from 'node:assert/strict';
import {
    suite, openai, echoText, marker, generateCalls, startFakeUpstream, startGateway, GROUNDING, T_SHORT, HOOK,
} from './lib/harness.js';

const MODEL = 'gemini-2.5-flash';

/* Usage the fake reported for the request carrying `mark` (its last event). */
function upstreamUsage(fake, mark) {
    const calls = generateCalls(fake, mark);
    assert.equal(calls.length, 1, `expected one upstream call for ${mark}, got ${calls.length}`);
    const resp = calls[0].response;
    let um;
    if (calls[0].path.includes(':streamGenerateContent')) {
        const events = resp.split('\r\n\r\n').filter(Boolean).map((e) => JSON.parse(e.slice(6)));
        um = events.at(-1).usageMetadata;
    } else {
        um = JSON.parse(resp).usageMetadata;
    }
    return { prompt_tokens: um.promptTokenCount, completion_tokens: um.candidatesTokenCount, total_tokens: um.totalTokenCount };
}

/* Collects a stream: chunks, per-index content, per-index finish reasons. */
async function collect(stream) {
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const content = {};
    const finish = {};
    for (const c of chunks) {
        for (const ch of c.choices || []) {
            if (ch.delta && typeof ch.delta.content === 'string') content[ch.index] = (content[ch.index] || '') + ch.delta.content;
            if (ch.finish_reason) finish[ch.index] = ch.finish_reason;
        }
    }
    return { chunks, content, finish };
}

describe('chat completions with the openai package', () => {
    const ctx = suite(hooks, { keys: ['good-sdk-1', 'good-sdk-2'] });

    for (const prefix of ['/v1', '/hf/v1']) {
        test(`${prefix}: non-stream completion`, { timeout: T_SHORT }, async () => {
            const m = marker('ns');
            const res = await openai(ctx.gw, { prefix }).chat.completions.create({
                model: MODEL, messages: [{ role: 'user', content: `hello ${m}` }],
            });
            assert.equal(res.object, 'chat.completion');
            assert.equal(typeof res.id, 'string');
            assert.ok(res.id.length > 0);
            assert.equal(typeof res.created, 'number');
            assert.equal(res.model, MODEL);
            assert.equal(res.choices.length, 1);
            assert.equal(res.choices[0].index, 0);
            assert.equal(res.choices[0].message.role, 'assistant');
            assert.equal(res.choices[0].message.content, echoText(`hello ${m}`));
            assert.equal(res.choices[0].finish_reason, 'stop');
            const u = upstreamUsage(ctx.fake, m);
            assert.equal(res.usage.prompt_tokens, u.prompt_tokens);
            assert.equal(res.usage.completion_tokens, u.completion_tokens);
            assert.equal(res.usage.total_tokens, u.total_tokens);
        });

        test(`${prefix}: stream, one id, role first, finish_reason last, full content`, { timeout: T_SHORT }, async () => {
            const m = marker('st');
            const stream = await openai(ctx.gw, { prefix }).chat.completions.create({
                model: MODEL, stream: true, messages: [{ role: 'user', content: `stream me please ${m}` }],
            });
            const { chunks, content, finish } = await collect(stream);
            assert.ok(chunks.length >= 2, `only ${chunks.length} chunks`);
            const ids = new Set(chunks.map((c) => c.id));
            assert.equal(ids.size, 1, `several ids: ${[...ids]}`);
            assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
            assert.ok(chunks.every((c) => c.model === MODEL), 'chunk model is not the requested one');
            assert.equal(chunks[0].choices[0].delta.role, 'assistant');
            const withChoices = chunks.filter((c) => c.choices && c.choices.length);
            assert.equal(withChoices.at(-1).choices[0].finish_reason, 'stop');
            for (const c of withChoices.slice(0, -1)) assert.equal(c.choices[0].finish_reason ?? null, null);
            assert.equal(content[0], echoText(`stream me please ${m}`));
            assert.deepEqual(finish, { 0: 'stop' });
            assert.ok(!chunks.some((c) => c.choices && c.choices.length === 0), 'usage chunk without include_usage');
        });
    }

    test('stream_options.include_usage adds a usage chunk (choices []) before [DONE]', { timeout: T_SHORT }, async () => {
        const m = marker('usage');
        const stream = await openai(ctx.gw).chat.completions.create({
            model: MODEL, stream: true, stream_options: { include_usage: true },
            messages: [{ role: 'user', content: `count my tokens ${m}` }],
        });
        const { chunks, content } = await collect(stream);
        const last = chunks.at(-1);
        assert.deepEqual(last.choices, []);
        assert.ok(last.usage, 'last chunk has no usage');
        const u = upstreamUsage(ctx.fake, m);
        assert.equal(last.usage.prompt_tokens, u.prompt_tokens);
        assert.equal(last.usage.completion_tokens, u.completion_tokens);
        assert.equal(last.usage.total_tokens, u.total_tokens);
        assert.equal(chunks.filter((c) => c.choices.length === 0).length, 1);
        assert.equal(content[0], echoText(`count my tokens ${m}`));
    });

    test('n=2: two choices with their own texts', { timeout: T_SHORT }, async () => {
        const m = marker('n2');
        const res = await openai(ctx.gw).chat.completions.create({
            model: MODEL, n: 2, messages: [{ role: 'user', content: `twice ${m}` }],
        });
        assert.equal(res.choices.length, 2);
        const byIndex = Object.fromEntries(res.choices.map((c) => [c.index, c]));
        assert.equal(byIndex[0].message.content, echoText(`twice ${m}`, 0));
        assert.equal(byIndex[1].message.content, echoText(`twice ${m}`, 1));
        assert.equal(byIndex[0].finish_reason, 'stop');
        assert.equal(byIndex[1].finish_reason, 'stop');
    });

    test('n=2 stream: both choices complete, each with role first and finish_reason', { timeout: T_SHORT }, async () => {
        const m = marker('n2s');
        const stream = await openai(ctx.gw).chat.completions.create({
            model: MODEL, n: 2, stream: true, messages: [{ role: 'user', content: `twice streamed ${m}` }],
        });
        const { chunks, content, finish } = await collect(stream);
        assert.equal(content[0], echoText(`twice streamed ${m}`, 0));
        assert.equal(content[1], echoText(`twice streamed ${m}`, 1));
        assert.deepEqual(finish, { 0: 'stop', 1: 'stop' });
        for (const idx of [0, 1]) {
            const first = chunks.find((c) => c.choices.some((ch) => ch.index === idx));
            assert.equal(first.choices.find((ch) => ch.index === idx).delta.role, 'assistant', `choice ${idx}`);
        }
    });

    test('stop sequences: the text ends before the stop word', { timeout: T_SHORT }, async () => {
        const m = marker('stop');
        const res = await openai(ctx.gw).chat.completions.create({
            model: MODEL, stop: ['STOPHERE'], messages: [{ role: 'user', content: `keep this STOPHERE drop ${m}` }],
        });
        assert.equal(res.choices[0].message.content, 'Echo: keep this ');
        assert.equal(res.choices[0].finish_reason, 'stop');
        const sent = JSON.parse(generateCalls(ctx.fake, m)[0].body);
        assert.deepEqual(sent.generationConfig.stopSequences, ['STOPHERE']);
    });

    test('max_tokens: truncated text, finish_reason "length"', { timeout: T_SHORT }, async () => {
        const m = marker('len');
        const res = await openai(ctx.gw).chat.completions.create({
            model: MODEL, max_tokens: 2, messages: [{ role: 'user', content: `one two three ${m}` }],
        });
        assert.equal(res.choices[0].message.content, 'Echo: one ');
        assert.equal(res.choices[0].finish_reason, 'length');
    });

    test('max_tokens stream: finish_reason "length" on the last content chunk', { timeout: T_SHORT }, async () => {
        const m = marker('lens');
        const stream = await openai(ctx.gw).chat.completions.create({
            model: MODEL, max_tokens: 2, stream: true, messages: [{ role: 'user', content: `one two three ${m}` }],
        });
        const { content, finish } = await collect(stream);
        assert.equal(content[0], 'Echo: one ');
        assert.deepEqual(finish, { 0: 'length' });
    });

    test('every text part is used (multi-part candidate)', { timeout: T_SHORT }, async () => {
        const res = await openai(ctx.gw).chat.completions.create({
            model: 'multi-part', messages: [{ role: 'user', content: 'parts' }],
        });
        assert.equal(res.choices[0].message.content, 'Part one. Part two.');
        const stream = await openai(ctx.gw).chat.completions.create({
            model: 'multi-part', stream: true, messages: [{ role: 'user', content: 'parts' }],
        });
        assert.equal((await collect(stream)).content[0], 'Part one. Part two.');
    });

    test('thought parts are left out of content', { timeout: T_SHORT }, async () => {
        const res = await openai(ctx.gw).chat.completions.create({
            model: 'thinking', messages: [{ role: 'user', content: 'think' }],
        });
        assert.equal(res.choices[0].message.content, echoText('think'));
        const stream = await openai(ctx.gw).chat.completions.create({
            model: 'thinking', stream: true, messages: [{ role: 'user', content: 'think' }],
        });
        assert.equal((await collect(stream)).content[0], echoText('think'));
    });

    test('finishReason SAFETY maps to "content_filter"', { timeout: T_SHORT }, async () => {
        const res = await openai(ctx.gw).chat.completions.create({
            model: 'finish-safety', messages: [{ role: 'user', content: 'blocked' }],
        });
        assert.equal(res.choices[0].finish_reason, 'content_filter');
        const stream = await openai(ctx.gw).chat.completions.create({
            model: 'finish-safety', stream: true, messages: [{ role: 'user', content: 'blocked' }],
        });
        assert.deepEqual((await collect(stream)).finish, { 0: 'content_filter' });
    });

    test('non-ASCII prompt round-trips intact', { timeout: T_SHORT }, async () => {
        const text = 'naïve café — 日本語 ✓ 🚀';
        const res = await openai(ctx.gw).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: text }] });
        assert.equal(res.choices[0].message.content, echoText(text));
    });
});

describe('search links (SHOW_SEARCH_LINK)', () => {
    let fake;
    let on;
    let off;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        on = await startGateway(fake, { keys: ['good-sl-1'] });
        off = await startGateway(fake, { keys: ['good-sl-2'], env: { SHOW_SEARCH_LINK: 'false' } });
    }, HOOK);
    after(async () => {
        for (const g of [on, off]) if (g) await g.stop();
        if (fake) await fake.close();
    }, HOOK);

    const uris = GROUNDING.groundingChunks.map((c) => c.web.uri);

    test('default (true): the grounding sources follow the answer, stream and non-stream', { timeout: T_SHORT }, async () => {
        const m = marker('sl');
        const res = await openai(on).chat.completions.create({
            model: 'gemini-2.5-flash-search', messages: [{ role: 'user', content: m }],
        });
        const text = res.choices[0].message.content;
        assert.ok(text.startsWith(echoText(m)), text);
        for (const u of uris) assert.ok(text.includes(u), `source ${u} missing from: ${text}`);
        const stream = await openai(on).chat.completions.create({
            model: 'gemini-2.5-flash-search', stream: true, messages: [{ role: 'user', content: m }],
        });
        const { content } = await collect(stream);
        assert.ok(content[0].startsWith(echoText(m)), content[0]);
        for (const u of uris) assert.ok(content[0].includes(u), `source ${u} missing from the stream: ${content[0]}`);
    });

    test('SHOW_SEARCH_LINK=false: the answer only', { timeout: T_SHORT }, async () => {
        const m = marker('nosl');
        const res = await openai(off).chat.completions.create({
            model: 'gemini-2.5-flash-search', messages: [{ role: 'user', content: m }],
        });
        assert.equal(res.choices[0].message.content, echoText(m));
        const stream = await openai(off).chat.completions.create({
            model: 'gemini-2.5-flash-search', stream: true, messages: [{ role: 'user', content: m }],
        });
        assert.equal((await collect(stream)).content[0], echoText(m));
        assert.ok(generateCalls(fake, m).every((c) => JSON.parse(c.body).tools.some((t) => 'googleSearch' in t)));
    });
});
