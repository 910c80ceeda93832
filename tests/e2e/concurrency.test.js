/*
 * Many requests at once over both workers: every answer is the right one
 * (no mix-up between requests), the pool spreads the load.
 */
import { describe, test } from 'node:test';
import * as hooks from 'node:test';
import assert from 'node:assert/strict';
import { suite, chat, parseOpenAISse, echoText, marker, generateCalls, T_LONG } from './lib/harness.js';

const KEYS = ['good-cc-1', 'good-cc-2', 'good-cc-3', 'invalid-cc-4'];

async function pool(n, width, fn) {
    const out = new Array(n);
    let next = 0;
    await Promise.all(Array.from({ length: width }, async () => {
        while (next < n) {
            const i = next++;
            out[i] = await fn(i);
        }
    }));
    return out;
}

describe('concurrency', () => {
    const ctx = suite(hooks, { keys: KEYS, env: { WORKERS: '2' } });

    test('120 requests, 24 at a time, mixed stream / non-stream: each gets its own answer', { timeout: T_LONG }, async () => {
        ctx.fake.reset();
        const results = await pool(120, 24, async (i) => {
            const m = marker(`cc${i}y`);
            const stream = i % 2 === 1;
            const r = await chat(ctx.gw, { model: 'gemini-2.5-flash', stream, messages: [{ role: 'user', content: `req ${i} ${m}` }] });
            let text;
            if (stream) {
                const ev = parseOpenAISse(r.text);
                assert.equal(ev.at(-1), '[DONE]', `request ${i}`);
                text = ev.slice(0, -1).map((e) => (e.choices[0] && e.choices[0].delta.content) || '').join('');
            } else {
                text = r.json && r.json.choices[0].message.content;
            }
            return { i, m, status: r.status, text };
        });
        for (const { i, m, status, text } of results) {
            assert.equal(status, 200, `request ${i}`);
            assert.equal(text, echoText(`req ${i} ${m}`), `request ${i} got someone else's answer`);
        }
        const byKey = {};
        for (const c of generateCalls(ctx.fake)) byKey[c.key] = (byKey[c.key] || 0) + 1;
        for (const k of KEYS.slice(0, 3)) assert.ok(byKey[k] >= 20, `key ${k} used ${byKey[k] || 0} times: ${JSON.stringify(byKey)}`);
    });
});
