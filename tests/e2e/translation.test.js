/*
 * OpenAI -> Gemini request translation, checked on the body and headers the
 * fake upstream recorded.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startFakeUpstream, startGateway, chat, request, auth, marker, generateCalls, TOKEN, T_SHORT, HOOK,
} from './lib/harness.js';

const KEYS = ['good-tr-1', 'good-tr-2'];
const TOP_LEVEL = new Set(['contents', 'systemInstruction', 'generationConfig', 'safetySettings', 'tools', 'toolConfig']);

/* The one upstream call a request carrying `m` made; returns it with .json. */
function sentFor(fake, m) {
    const calls = generateCalls(fake, m);
    assert.equal(calls.length, 1, `expected 1 upstream call for ${m}, got ${calls.length}`);
    return { ...calls[0], json: JSON.parse(calls[0].body) };
}

function texts(content) {
    return (content.parts || []).map((p) => p.text).join('');
}

describe('request translation', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: KEYS });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('roles, system/developer, every generation parameter, nothing else', { timeout: T_SHORT }, async () => {
        const m = marker('full');
        const r = await chat(gw, {
            model: 'gemini-2.5-flash',
            messages: [
                { role: 'system', content: 'Be brief.' },
                { role: 'developer', content: 'Use English.' },
                { role: 'user', content: 'Hi' },
                { role: 'assistant', content: 'Hello!' },
                { role: 'user', content: [{ type: 'text', text: 'What is ' }, { type: 'text', text: `2+2? ${m}` }] },
            ],
            temperature: 0.5,
            top_p: 0.9,
            max_tokens: 100,
            stop: ['END', 'STOP'],
            presence_penalty: 0.25,
            frequency_penalty: 0.5,
            seed: 42,
        });
        assert.equal(r.status, 200, r.text);
        const sent = sentFor(fake, m);
        assert.equal(sent.path, '/v1beta/models/gemini-2.5-flash:generateContent');
        const b = sent.json;
        for (const k of Object.keys(b)) assert.ok(TOP_LEVEL.has(k), `unexpected top-level key ${k}`);
        assert.equal(b.tools, undefined, 'tools sent for a plain model');
        assert.equal(b.systemInstruction.parts.map((p) => p.text).join('\n'), 'Be brief.\nUse English.');
        assert.deepEqual(b.contents.map((c) => c.role), ['user', 'model', 'user']);
        assert.deepEqual(b.contents.map(texts), ['Hi', 'Hello!', `What is 2+2? ${m}`]);
        assert.deepEqual(b.generationConfig, {
            temperature: 0.5,
            topP: 0.9,
            maxOutputTokens: 100,
            stopSequences: ['END', 'STOP'],
            presencePenalty: 0.25,
            frequencyPenalty: 0.5,
            seed: 42,
        });
        assert.equal(r.json.choices[0].message.content, `Echo: What is 2+2? ${m}`);
    });

    test('nothing the client did not send: no generationConfig keys, default safetySettings', { timeout: T_SHORT }, async () => {
        const m = marker('min');
        const r = await chat(gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] });
        assert.equal(r.status, 200, r.text);
        const b = sentFor(fake, m).json;
        assert.ok(b.generationConfig === undefined || Object.keys(b.generationConfig).length === 0,
            `generationConfig: ${JSON.stringify(b.generationConfig)}`);
        assert.equal(b.systemInstruction, undefined);
        assert.equal(b.tools, undefined);
        assert.deepEqual(b.contents, [{ role: 'user', parts: [{ text: m }] }]);
        assert.ok(Array.isArray(b.safetySettings) && b.safetySettings.length > 0, 'no default safetySettings');
        for (const s of b.safetySettings) {
            assert.match(s.category, /^HARM_CATEGORY_/);
            assert.ok(['OFF', 'BLOCK_NONE'].includes(s.threshold), `not least restrictive: ${JSON.stringify(s)}`);
        }
    });

    test('max_completion_tokens -> maxOutputTokens; stop string -> stopSequences array; n -> candidateCount', { timeout: T_SHORT }, async () => {
        const m = marker('mct');
        const r = await chat(gw, {
            model: 'gemini-2.5-flash', max_completion_tokens: 77, stop: 'HALT', n: 2,
            messages: [{ role: 'user', content: m }],
        });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(sentFor(fake, m).json.generationConfig, { maxOutputTokens: 77, stopSequences: ['HALT'], candidateCount: 2 });
    });

    test('"<m>-search" goes upstream as <m> with the googleSearch tool', { timeout: T_SHORT }, async () => {
        const m = marker('search');
        const r = await chat(gw, { model: 'gemini-2.5-flash-search', messages: [{ role: 'user', content: m }] });
        assert.equal(r.status, 200, r.text);
        const sent = sentFor(fake, m);
        assert.equal(sent.path, '/v1beta/models/gemini-2.5-flash:generateContent');
        assert.ok(Array.isArray(sent.json.tools), 'no tools');
        assert.ok(sent.json.tools.some((t) => JSON.stringify(t) === '{"googleSearch":{}}'), JSON.stringify(sent.json.tools));
        assert.ok(!sent.json.tools.some((t) => 'codeExecution' in t));
        assert.equal(r.json.model, 'gemini-2.5-flash-search');
    });

    test('stream goes to :streamGenerateContent?alt=sse', { timeout: T_SHORT }, async () => {
        const m = marker('sse');
        const r = await chat(gw, { model: 'gemini-2.5-pro', stream: true, messages: [{ role: 'user', content: m }] });
        assert.equal(r.status, 200);
        const sent = sentFor(fake, m);
        const u = new URL(sent.path, 'http://x');
        assert.equal(u.pathname, '/v1beta/models/gemini-2.5-pro:streamGenerateContent');
        assert.equal(u.searchParams.get('alt'), 'sse');
        assert.equal(u.searchParams.get('key'), null);
    });

    for (const [how, headers, suffix] of [
        ['Authorization: Bearer', { ...auth(), 'x-goog-api-key': undefined }, ''],
        ['x-goog-api-key', { 'x-goog-api-key': TOKEN }, ''],
        ['?key=', {}, `?key=${TOKEN}`],
    ]) {
        test(`client credentials (${how}) never reach the upstream; pool key in x-goog-api-key`, { timeout: T_SHORT }, async () => {
            const h = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined));
            for (const stream of [false, true]) {
                const m = marker('cred');
                const r = await request(`${gw.url}/v1/chat/completions${suffix}`, {
                    method: 'POST', headers: h, body: { model: 'gemini-2.5-flash', stream, messages: [{ role: 'user', content: m }] },
                });
                assert.equal(r.status, 200, r.text);
                const sent = sentFor(fake, m);
                assert.equal(sent.headers.authorization, undefined, 'Authorization forwarded upstream');
                assert.ok(KEYS.includes(sent.headers['x-goog-api-key']), `upstream x-goog-api-key: ${sent.headers['x-goog-api-key']}`);
                assert.ok(!sent.path.includes('key='), `key in upstream URL: ${sent.path}`);
                assert.ok(!JSON.stringify(sent.headers).includes(TOKEN), 'client token in upstream headers');
                assert.ok(!sent.body.includes(TOKEN), 'client token in upstream body');
                assert.match(sent.headers['content-type'] || '', /^application\/json/);
            }
        });
    }

    test('SAFETY_SETTINGS and TOOLS_CODE_EXECUTION_ENABLED are applied', { timeout: T_SHORT }, async () => {
        const safety = [
            { category: 'HARM_CATEGORY_HARASSMENT', threshold: 'BLOCK_ONLY_HIGH' },
            { category: 'HARM_CATEGORY_HATE_SPEECH', threshold: 'BLOCK_MEDIUM_AND_ABOVE' },
        ];
        const g2 = await startGateway(fake, {
            keys: KEYS, env: { SAFETY_SETTINGS: JSON.stringify(safety), TOOLS_CODE_EXECUTION_ENABLED: 'true' },
        });
        try {
            const m = marker('cfg');
            const r = await chat(g2, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] });
            assert.equal(r.status, 200, r.text);
            const b = sentFor(fake, m).json;
            assert.deepEqual(b.safetySettings, safety);
            assert.ok(Array.isArray(b.tools) && b.tools.some((t) => JSON.stringify(t) === '{"codeExecution":{}}'),
                `tools: ${JSON.stringify(b.tools)}`);
        } finally {
            await g2.stop();
        }
    });
});
