/*
 * Issue 3, "complete OpenAI <-> Gemini translation", through the official
 * `openai` package and raw HTTP: tools and tool calls (schema cleaning,
 * tool_choice, parallel calls, streaming deltas, tool results, Gemini 3
 * thought signatures), images and audio (data: URLs, downloaded URLs and
 * their errors), structured output, thinking (reasoning_effort,
 * reasoning_content, SHOW_THINKING_PROCESS, THINKING_BUDGET_MAP), code
 * execution, grounding sources, blocked prompts, the empty-answer retry and
 * embeddings.
 *
 * The fake upstream's special models (see tests/fake_upstream/README.md):
 * function-call-2, gemini-3-function-call, thinking-tokens, thinking,
 * code-execution, prompt-blocked, empty-once, json-echo, embedding-echo.
 */
import { describe, test, before, after } from 'node:test';
import * as hooks from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import {
    suite, openai, OpenAI, TOKEN, echoText, marker, generateCalls, startFakeUpstream, startGateway, chat,
    parseOpenAISse, health, request, auth, GROUNDING, FIXTURES_DIR, T_SHORT, T_LONG, HOOK,
} from './lib/harness.js';
import fakeUpstream from '../fake_upstream/server.js';

const { embedVector } = fakeUpstream;
const MODEL = 'gemini-2.5-flash';

function fixture(name) {
    return fs.readFileSync(path.join(FIXTURES_DIR, 'gemini', name), 'utf8');
}

function sseFixture(name) {
    return fixture(name).split('\r\n\r\n').filter((s) => s.startsWith('data: ')).map((s) => JSON.parse(s.slice(6)));
}

/* The one upstream generate call whose body carries `mark`, parsed. */
function sentBody(fake, mark) {
    const calls = generateCalls(fake, mark);
    assert.equal(calls.length, 1, `expected one upstream call for ${mark}, got ${calls.length}`);
    return JSON.parse(calls[0].body);
}

/* Collects an SDK stream: chunks, content, reasoning, tool call deltas, finish reasons (choice 0). */
async function collect(stream) {
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    let content = '';
    let reasoning = '';
    const toolDeltas = [];
    const finish = [];
    for (const c of chunks) {
        for (const ch of c.choices || []) {
            if (ch.index !== 0) continue;
            if (typeof ch.delta.content === 'string') content += ch.delta.content;
            if (typeof ch.delta.reasoning_content === 'string') reasoning += ch.delta.reasoning_content;
            if (Array.isArray(ch.delta.tool_calls)) toolDeltas.push(...ch.delta.tool_calls);
            if (ch.finish_reason) finish.push(ch.finish_reason);
        }
    }
    return { chunks, content, reasoning, toolDeltas, finish };
}

/* Merges streamed tool call deltas by index, the way OpenAI clients do. */
function mergeToolDeltas(deltas) {
    const calls = [];
    for (const d of deltas) {
        assert.equal(typeof d.index, 'number', `tool call delta without index: ${JSON.stringify(d)}`);
        const c = calls[d.index] || (calls[d.index] = { id: undefined, type: 'function', function: { name: '', arguments: '' } });
        if (d.id) c.id = d.id;
        if (d.type) c.type = d.type;
        if (d.function && d.function.name) c.function.name += d.function.name;
        if (d.function && d.function.arguments) c.function.arguments += d.function.arguments;
        if (d.extra_content) c.extra_content = d.extra_content;
    }
    return calls;
}

/* Every key of a JSON value, at any depth. */
function allKeys(v, out = new Set()) {
    if (Array.isArray(v)) v.forEach((x) => allKeys(x, out));
    else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
            out.add(k);
            allKeys(x, out);
        }
    }
    return out;
}

/* An MCP-style tool schema, as zod-to-json-schema writes it. */
const ZOD_SCHEMA = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: {
        city: { type: 'string', minLength: 1, description: 'City name' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'], default: 'celsius' },
        days: { type: ['integer', 'null'], minimum: 1, maximum: 14, examples: [3] },
        note: { anyOf: [{ type: 'string' }, { type: 'null' }] },
        location: { $ref: '#/$defs/Location' },
        tags: { type: 'array', items: { type: 'string' }, default: [] },
    },
    required: ['city', 'location'],
    additionalProperties: false,
    $defs: {
        Location: {
            type: 'object',
            properties: { lat: { type: 'number' }, lon: { type: 'number' } },
            required: ['lat', 'lon'],
            additionalProperties: false,
        },
    },
};

const ZOD_SCHEMA_CLEANED = {
    type: 'object',
    properties: {
        city: { type: 'string', minLength: 1, description: 'City name' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer', nullable: true, minimum: 1, maximum: 14 },
        note: { type: 'string', nullable: true },
        location: {
            type: 'object',
            properties: { lat: { type: 'number' }, lon: { type: 'number' } },
            required: ['lat', 'lon'],
        },
        tags: { type: 'array', items: { type: 'string' } },
    },
    required: ['city', 'location'],
};

const FORBIDDEN_SCHEMA_KEYS = ['$schema', 'additionalProperties', '$ref', '$defs', 'definitions', 'default', 'examples'];

const WEATHER_TOOL = {
    type: 'function',
    function: { name: 'get_weather', description: 'Weather of a city', parameters: ZOD_SCHEMA },
};

/* ------------------------------------------------------------------ */

describe('tools and tool calls', () => {
    const ctx = suite(hooks, { keys: ['good-tools-1', 'good-tools-2'] });

    test('tools: one functionDeclarations tool, parameters cleaned to Gemini\'s schema subset', { timeout: T_SHORT }, async () => {
        const m = marker('tools');
        const res = await openai(ctx.gw).chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: `weather? ${m}` }],
            tools: [WEATHER_TOOL, { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }],
        });
        assert.equal(res.choices[0].message.content, echoText(`weather? ${m}`));
        const b = sentBody(ctx.fake, m);
        assert.equal(b.tools.length, 1, `tools: ${JSON.stringify(b.tools)}`);
        assert.deepEqual(Object.keys(b.tools[0]), ['functionDeclarations']);
        const [weather, time] = b.tools[0].functionDeclarations;
        assert.equal(b.tools[0].functionDeclarations.length, 2);
        assert.equal(weather.name, 'get_weather');
        assert.equal(weather.description, 'Weather of a city');
        assert.deepEqual(weather.parameters, ZOD_SCHEMA_CLEANED);
        const keys = allKeys(weather.parameters);
        for (const k of FORBIDDEN_SCHEMA_KEYS) assert.ok(!keys.has(k), `${k} left in the schema`);
        assert.equal(time.name, 'get_time');
        assert.equal(time.parameters, undefined, 'an empty object schema is sent (Gemini refuses it)');
        assert.equal(b.toolConfig, undefined, 'toolConfig without tool_choice');
    });

    const choices = [
        ['auto', { functionCallingConfig: { mode: 'AUTO' } }],
        ['none', { functionCallingConfig: { mode: 'NONE' } }],
        ['required', { functionCallingConfig: { mode: 'ANY' } }],
        [{ type: 'function', function: { name: 'get_weather' } },
            { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } }],
    ];
    for (const [choice, want] of choices) {
        test(`tool_choice ${JSON.stringify(choice)} -> toolConfig ${JSON.stringify(want)}`, { timeout: T_SHORT }, async () => {
            const m = marker('tc');
            await openai(ctx.gw).chat.completions.create({
                model: MODEL, messages: [{ role: 'user', content: m }], tools: [WEATHER_TOOL], tool_choice: choice,
            });
            assert.deepEqual(sentBody(ctx.fake, m).toolConfig, want);
        });
    }

    test('two functionCalls -> two tool_calls in order, finish_reason tool_calls', { timeout: T_SHORT }, async () => {
        const m = marker('fc2');
        const res = await openai(ctx.gw).chat.completions.create({
            model: 'function-call-2', messages: [{ role: 'user', content: `capital? ${m}` }], tools: [WEATHER_TOOL],
        });
        const msg = res.choices[0].message;
        assert.equal(res.choices[0].finish_reason, 'tool_calls');
        assert.equal(msg.role, 'assistant');
        assert.equal(msg.content, null);
        assert.equal(msg.tool_calls.length, 2, JSON.stringify(msg.tool_calls));
        assert.deepEqual(msg.tool_calls.map((c) => c.function.name), ['get_user_country', 'get_capital']);
        assert.deepEqual(msg.tool_calls.map((c) => c.type), ['function', 'function']);
        for (const c of msg.tool_calls) {
            assert.match(c.id, /^call_[A-Za-z0-9]+$/);
            assert.equal(typeof c.function.arguments, 'string');
        }
        assert.notEqual(msg.tool_calls[0].id, msg.tool_calls[1].id);
        assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), {});
        assert.deepEqual(JSON.parse(msg.tool_calls[1].function.arguments), { country: 'France' });
    });

    test('stream: delta.tool_calls with index, id, name and arguments; finish_reason tool_calls', { timeout: T_SHORT }, async () => {
        const m = marker('fc2s');
        const stream = await openai(ctx.gw).chat.completions.create({
            model: 'function-call-2', stream: true, messages: [{ role: 'user', content: `capital? ${m}` }], tools: [WEATHER_TOOL],
        });
        const { chunks, content, toolDeltas, finish } = await collect(stream);
        assert.equal(chunks[0].choices[0].delta.role, 'assistant');
        assert.equal(content, '', 'text content in a tool-call stream');
        assert.deepEqual(finish, ['tool_calls']);
        assert.ok(toolDeltas.every((d) => d.index === 0 || d.index === 1), JSON.stringify(toolDeltas));
        const calls = mergeToolDeltas(toolDeltas);
        assert.equal(calls.length, 2);
        assert.deepEqual(calls.map((c) => c.function.name), ['get_user_country', 'get_capital']);
        assert.deepEqual(calls.map((c) => JSON.parse(c.function.arguments)), [{}, { country: 'France' }]);
        for (const c of calls) {
            assert.match(c.id, /^call_[A-Za-z0-9]+$/);
            assert.equal(c.type, 'function');
        }
        assert.notEqual(calls[0].id, calls[1].id);
        const firstOf = (i) => toolDeltas.find((d) => d.index === i);
        assert.ok(firstOf(0).id && firstOf(0).function.name, 'first delta of call 0 lacks id or name');
        assert.ok(firstOf(1).id && firstOf(1).function.name, 'first delta of call 1 lacks id or name');
    });

    test('SDK stream helper: finalChatCompletion() rebuilds both tool calls', { timeout: T_SHORT }, async () => {
        const m = marker('fc2h');
        const runner = openai(ctx.gw).chat.completions.stream({
            model: 'function-call-2', messages: [{ role: 'user', content: `capital? ${m}` }], tools: [WEATHER_TOOL],
        });
        const final = await runner.finalChatCompletion();
        assert.equal(final.choices[0].finish_reason, 'tool_calls');
        assert.deepEqual(final.choices[0].message.tool_calls.map((c) => [c.function.name, c.function.arguments]),
            [['get_user_country', '{}'], ['get_capital', '{"country":"France"}']]);
    });

    test('two turns: model functionCall parts, then ONE user turn of functionResponse parts', { timeout: T_SHORT }, async () => {
        const m = marker('turns');
        const client = openai(ctx.gw);
        const messages = [{ role: 'user', content: `capital of my country? ${m}` }];
        const first = await client.chat.completions.create({ model: 'function-call-2', messages, tools: [WEATHER_TOOL] });
        const assistant = first.choices[0].message; /* the SDK's raw message object, sent back as it is */
        const [c0, c1] = assistant.tool_calls;
        messages.push(assistant,
            { role: 'tool', tool_call_id: c0.id, content: '{"country":"Iceland"}' },
            { role: 'tool', tool_call_id: c1.id, content: 'Reykjavik, not Paris' });
        const second = await client.chat.completions.create({ model: 'function-call-2', messages, tools: [WEATHER_TOOL] });
        const calls = generateCalls(ctx.fake, m);
        assert.equal(calls.length, 2);
        const b = JSON.parse(calls[1].body);
        assert.equal(b.contents.length, 3, JSON.stringify(b.contents));
        assert.deepEqual(b.contents[0], { role: 'user', parts: [{ text: `capital of my country? ${m}` }] });
        assert.equal(b.contents[1].role, 'model');
        assert.deepEqual(b.contents[1].parts, [
            { functionCall: { name: 'get_user_country', args: {} } },
            { functionCall: { name: 'get_capital', args: { country: 'France' } } },
        ]);
        assert.equal(b.contents[2].role, 'user');
        assert.deepEqual(b.contents[2].parts, [
            { functionResponse: { name: 'get_user_country', response: { country: 'Iceland' } } },
            { functionResponse: { name: 'get_capital', response: { result: 'Reykjavik, not Paris' } } },
        ]);
        assert.equal(second.choices[0].finish_reason, 'stop');
        assert.equal(second.choices[0].message.content, echoText(JSON.stringify([
            { name: 'get_user_country', response: { country: 'Iceland' } },
            { name: 'get_capital', response: { result: 'Reykjavik, not Paris' } },
        ])));
    });

    test('a tool message whose tool_call_id matches no call is a 400', { timeout: T_SHORT }, async () => {
        const m = marker('badid');
        const r = await chat(ctx.gw, {
            model: 'function-call-2',
            messages: [{ role: 'user', content: m }, { role: 'tool', tool_call_id: 'call_nope', content: 'x' }],
        });
        assert.equal(r.status, 400, r.text);
        assert.match(r.json.error.message, /call_nope/);
        assert.equal(generateCalls(ctx.fake, m).length, 0);
    });

    test('Gemini 3: the thought signature goes out in extra_content and comes back on the functionCall', { timeout: T_SHORT }, async () => {
        const fx = JSON.parse(fixture('generate-content-function-call-gemini3.json')).candidates[0].content.parts[0];
        const m = marker('sig');
        const client = openai(ctx.gw);
        const messages = [{ role: 'user', content: `weather in SF? ${m}` }];
        const first = await client.chat.completions.create({ model: 'gemini-3-function-call', messages, tools: [WEATHER_TOOL] });
        const call = first.choices[0].message.tool_calls[0];
        assert.equal(first.choices[0].finish_reason, 'tool_calls');
        assert.equal(call.function.name, 'weather');
        assert.deepEqual(JSON.parse(call.function.arguments), { location: 'San Francisco' });
        assert.equal(call.extra_content?.google?.thought_signature, fx.thoughtSignature);
        messages.push(first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"temp":"18C"}' });
        const second = await client.chat.completions.create({ model: 'gemini-3-function-call', messages, tools: [WEATHER_TOOL] });
        assert.equal(second.choices[0].message.content, echoText('{"temp":"18C"}'));
        const b = JSON.parse(generateCalls(ctx.fake, m)[1].body);
        assert.deepEqual(b.contents[1], {
            role: 'model',
            parts: [{ functionCall: { name: 'weather', args: { location: 'San Francisco' } }, thoughtSignature: fx.thoughtSignature }],
        });
        assert.deepEqual(b.contents[2].parts, [{ functionResponse: { name: 'weather', response: { temp: '18C' } } }]);
    });

    test('Gemini 3 stream: delta.tool_calls carries the signature; sent back on the functionCall', { timeout: T_SHORT }, async () => {
        const fxPart = sseFixture('stream-function-call-gemini3.sse')[0].candidates[0].content.parts[0];
        const m = marker('sigs');
        const client = openai(ctx.gw);
        const messages = [{ role: 'user', content: `country? ${m}` }];
        const stream = await client.chat.completions.create({
            model: 'gemini-3-function-call', stream: true, messages, tools: [WEATHER_TOOL],
        });
        const { toolDeltas, finish, content } = await collect(stream);
        assert.deepEqual(finish, ['tool_calls']);
        assert.equal(content, '');
        const calls = mergeToolDeltas(toolDeltas);
        assert.equal(calls.length, 1);
        assert.equal(calls[0].function.name, 'get_country');
        assert.deepEqual(JSON.parse(calls[0].function.arguments), {});
        assert.equal(calls[0].extra_content?.google?.thought_signature, fxPart.thoughtSignature);
        messages.push({ role: 'assistant', content: null, tool_calls: calls },
            { role: 'tool', tool_call_id: calls[0].id, content: 'Iceland' });
        const stream2 = await client.chat.completions.create({
            model: 'gemini-3-function-call', stream: true, messages, tools: [WEATHER_TOOL],
        });
        const second = await collect(stream2);
        assert.equal(second.content, echoText('{"result":"Iceland"}'));
        const b = JSON.parse(generateCalls(ctx.fake, m)[1].body);
        assert.deepEqual(b.contents[1].parts, [
            { functionCall: { name: 'get_country', args: {} }, thoughtSignature: fxPart.thoughtSignature },
        ]);
    });

    test('with function tools a "-search" model gets no googleSearch (function tools win)', { timeout: T_SHORT }, async () => {
        const m = marker('srchfn');
        const res = await openai(ctx.gw).chat.completions.create({
            model: `${MODEL}-search`, messages: [{ role: 'user', content: m }], tools: [WEATHER_TOOL],
        });
        assert.equal(res.model, `${MODEL}-search`);
        const call = generateCalls(ctx.fake, m)[0];
        assert.match(call.path, new RegExp(`/models/${MODEL}:generateContent`));
        const b = JSON.parse(call.body);
        assert.equal(b.tools.length, 1, JSON.stringify(b.tools));
        assert.deepEqual(Object.keys(b.tools[0]), ['functionDeclarations']);
        assert.ok(!JSON.stringify(b.tools).includes('googleSearch'));
        /* and without function tools it still does */
        const m2 = marker('srch');
        await openai(ctx.gw).chat.completions.create({ model: `${MODEL}-search`, messages: [{ role: 'user', content: m2 }] });
        assert.deepEqual(sentBody(ctx.fake, m2).tools, [{ googleSearch: {} }]);
    });
});

/* ------------------------------------------------------------------ */

const PNG_1X1 = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const WAV_B64 = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WAVEfmt '), Buffer.alloc(24)]).toString('base64');

/* A loopback HTTP server for image_url tests, up for the enclosing describe:
 * handle(req, res) answers; every URL asked for is kept in served. */
function imageServer(handle) {
    const srv = { served: [], url: null, port: 0 };
    let server;
    before(async () => {
        server = http.createServer((req, res) => {
            srv.served.push(req.url);
            handle(req, res);
        });
        await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
        srv.port = server.address().port;
        srv.url = `http://127.0.0.1:${srv.port}`;
    }, HOOK);
    after(async () => {
        if (server) {
            server.closeAllConnections();
            await new Promise((resolve) => server.close(resolve));
        }
    }, HOOK);
    return srv;
}

describe('images and audio', () => {
    /* the image server is on loopback: allowed here, refused by default (below) */
    const ctx = suite(hooks, { keys: ['good-img-1', 'good-img-2'], env: { IMAGE_FETCH_PRIVATE: 'true' } });
    const img = imageServer((req, res) => {
        if (req.url.startsWith('/x.png')) {
            res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG_1X1.length });
            res.end(PNG_1X1);
        } else if (req.url.startsWith('/page.html')) {
            res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
            res.end('<html>not an image</html>');
        } else {
            res.writeHead(404, { 'content-type': 'text/plain' });
            res.end('no such image');
        }
    });

    test('data: URLs -> inlineData with the URL\'s own MIME type', { timeout: T_SHORT }, async () => {
        const m = marker('dataurl');
        const png = PNG_1X1.toString('base64');
        const webp = Buffer.from('RIFF\0\0\0\0WEBPVP8 ').toString('base64');
        const res = await openai(ctx.gw).chat.completions.create({
            model: MODEL,
            messages: [{
                role: 'user',
                content: [
                    { type: 'text', text: `describe ${m}` },
                    { type: 'image_url', image_url: { url: `data:image/png;base64,${png}`, detail: 'high' } },
                    { type: 'image_url', image_url: { url: `data:image/webp;base64,${webp}` } },
                ],
            }],
        });
        assert.equal(res.choices[0].message.content, echoText(`describe ${m}`));
        assert.deepEqual(sentBody(ctx.fake, m).contents, [{
            role: 'user',
            parts: [
                { text: `describe ${m}` },
                { inlineData: { mimeType: 'image/png', data: png } },
                { inlineData: { mimeType: 'image/webp', data: webp } },
            ],
        }]);
    });

    test('an http image URL is downloaded and sent as inlineData (bytes, image/png)', { timeout: T_SHORT }, async () => {
        const m = marker('httpimg');
        const url = `${img.url}/x.png?m=${m}`;
        const res = await openai(ctx.gw).chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: [{ type: 'text', text: `look ${m}` }, { type: 'image_url', image_url: { url } }] }],
        });
        assert.equal(res.choices[0].message.content, echoText(`look ${m}`));
        assert.ok(img.served.includes(`/x.png?m=${m}`), `the image server saw: ${img.served}`);
        assert.deepEqual(sentBody(ctx.fake, m).contents[0].parts, [
            { text: `look ${m}` },
            { inlineData: { mimeType: 'image/png', data: PNG_1X1.toString('base64') } },
        ]);
    });

    test('an image URL answering 404 -> 400 naming the URL, nothing sent upstream', { timeout: T_SHORT }, async () => {
        const m = marker('img404');
        const url = `${img.url}/missing-${m}.png`;
        const err = await openai(ctx.gw).chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: [{ type: 'text', text: m }, { type: 'image_url', image_url: { url } }] }],
        }).then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err}`);
        assert.equal(err.status, 400);
        assert.ok(err.error.message.includes(url), err.error.message);
        assert.match(err.error.message, /404/);
        assert.equal(generateCalls(ctx.fake, m).length, 0);
    });

    test('an image URL that is not an image (text/html) -> 400', { timeout: T_SHORT }, async () => {
        const m = marker('imghtml');
        const url = `${img.url}/page.html?m=${m}`;
        const r = await chat(ctx.gw, {
            model: MODEL,
            messages: [{ role: 'user', content: [{ type: 'text', text: m }, { type: 'image_url', image_url: { url } }] }],
        });
        assert.equal(r.status, 400, r.text);
        assert.ok(r.json.error.message.includes(url), r.json.error.message);
        assert.match(r.json.error.message, /not an image/i);
        assert.equal(generateCalls(ctx.fake, m).length, 0);
    });

    test('input_audio (wav) -> inlineData audio/wav', { timeout: T_SHORT }, async () => {
        const m = marker('audio');
        await openai(ctx.gw).chat.completions.create({
            model: MODEL,
            messages: [{ role: 'user', content: [{ type: 'text', text: m }, { type: 'input_audio', input_audio: { data: WAV_B64, format: 'wav' } }] }],
        });
        assert.deepEqual(sentBody(ctx.fake, m).contents[0].parts, [
            { text: m },
            { inlineData: { mimeType: 'audio/wav', data: WAV_B64 } },
        ]);
    });
});

/* ------------------------------------------------------------------ */

describe('structured output', () => {
    const ctx = suite(hooks, { keys: ['good-json-1'] });

    test('response_format json_object -> responseMimeType application/json', { timeout: T_SHORT }, async () => {
        const m = marker('jo');
        await openai(ctx.gw).chat.completions.create({
            model: MODEL, messages: [{ role: 'user', content: m }], response_format: { type: 'json_object' },
        });
        const gc = sentBody(ctx.fake, m).generationConfig;
        assert.equal(gc.responseMimeType, 'application/json');
        assert.equal(gc.responseSchema, undefined);
    });

    test('json_schema through chat.completions.parse: responseSchema cleaned, parsed answer', { timeout: T_SHORT }, async () => {
        const m = marker('js');
        const schema = {
            $schema: 'http://json-schema.org/draft-07/schema#',
            type: 'object',
            properties: { echo: { type: 'string', default: '' }, extra: { $ref: '#/$defs/Extra' } },
            required: ['echo'],
            additionalProperties: false,
            $defs: { Extra: { type: ['number', 'null'], examples: [1] } },
        };
        const res = await openai(ctx.gw).chat.completions.parse({
            model: 'json-echo',
            messages: [{ role: 'user', content: `json please ${m}` }],
            response_format: { type: 'json_schema', json_schema: { name: 'echo', strict: true, schema } },
        });
        assert.deepEqual(res.choices[0].message.parsed, { echo: `json please ${m}` });
        const gc = sentBody(ctx.fake, m).generationConfig;
        assert.equal(gc.responseMimeType, 'application/json');
        assert.deepEqual(gc.responseSchema, {
            type: 'object',
            properties: { echo: { type: 'string' }, extra: { type: 'number', nullable: true } },
            required: ['echo'],
            /* Gemini would write the properties alphabetically otherwise */
            propertyOrdering: ['echo', 'extra'],
        });
    });

    test('parse() with a strict tool: parsed_arguments from the tool call', { timeout: T_SHORT }, async () => {
        const m = marker('ptool');
        const res = await openai(ctx.gw).chat.completions.parse({
            model: 'function-call-2',
            messages: [{ role: 'user', content: m }],
            tools: [{ type: 'function', function: { name: 'get_capital', strict: true, parameters: { type: 'object', properties: { country: { type: 'string' } }, required: ['country'], additionalProperties: false } } },
                { type: 'function', function: { name: 'get_user_country', strict: true, parameters: { type: 'object', properties: {}, additionalProperties: false } } }],
        });
        const calls = res.choices[0].message.tool_calls;
        assert.deepEqual(calls.map((c) => c.function.parsed_arguments), [{}, { country: 'France' }]);
    });
});

/* ------------------------------------------------------------------ */

describe('thinking', () => {
    let fake;
    let gw; /* defaults: SHOW_THINKING_PROCESS true */
    let hidden; /* SHOW_THINKING_PROCESS=false */
    let mapped; /* THINKING_BUDGET_MAP */
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: ['good-th-1'] });
        hidden = await startGateway(fake, { keys: ['good-th-2'], env: { SHOW_THINKING_PROCESS: 'false' } });
        mapped = await startGateway(fake, { keys: ['good-th-3'], env: { THINKING_BUDGET_MAP: '{"gemini-2.5-flash":512}' } });
    }, HOOK);
    after(async () => {
        for (const g of [gw, hidden, mapped]) if (g) await g.stop();
        if (fake) await fake.close();
    }, HOOK);

    const thoughts = sseFixture('stream-thinking.sse')
        .map((e) => e.candidates[0].content.parts[0]).filter((p) => p.thought).slice(0, 2).map((p) => p.text);

    for (const [effort, budget] of [['low', 1024], ['high', 24576]]) {
        test(`reasoning_effort ${effort} on gemini-2.5 -> thinkingBudget ${budget}, includeThoughts`, { timeout: T_SHORT }, async () => {
            const m = marker(`re${effort}`);
            await openai(gw).chat.completions.create({
                model: 'gemini-2.5-pro', reasoning_effort: effort, messages: [{ role: 'user', content: m }],
            });
            assert.deepEqual(sentBody(fake, m).generationConfig.thinkingConfig, { thinkingBudget: budget, includeThoughts: true });
        });
    }

    test('thought parts -> message.reasoning_content, never content; reasoning_tokens from thoughtsTokenCount', { timeout: T_SHORT }, async () => {
        const m = marker('rc');
        const res = await openai(gw).chat.completions.create({
            model: 'thinking-tokens', reasoning_effort: 'high', messages: [{ role: 'user', content: `think ${m}` }],
        });
        const msg = res.choices[0].message;
        assert.equal(msg.content, echoText(`think ${m}`));
        assert.equal(msg.reasoning_content, thoughts.join(''));
        const um = JSON.parse(generateCalls(fake, m)[0].response).usageMetadata;
        assert.ok(um.thoughtsTokenCount > 0);
        assert.equal(res.usage.completion_tokens_details?.reasoning_tokens, um.thoughtsTokenCount);
        assert.equal(res.usage.prompt_tokens, um.promptTokenCount);
        assert.equal(res.usage.total_tokens, um.totalTokenCount);
    });

    test('stream: delta.reasoning_content carries the thoughts, content only the answer; usage reasoning_tokens', { timeout: T_SHORT }, async () => {
        const m = marker('rcs');
        const stream = await openai(gw).chat.completions.create({
            model: 'thinking-tokens', reasoning_effort: 'low', stream: true, stream_options: { include_usage: true },
            messages: [{ role: 'user', content: `think ${m}` }],
        });
        const { chunks, content, reasoning, finish } = await collect(stream);
        assert.equal(content, echoText(`think ${m}`));
        assert.equal(reasoning, thoughts.join(''));
        assert.deepEqual(finish, ['stop']);
        const usage = chunks.at(-1).usage;
        const thoughtWords = thoughts.reduce((a, t) => a + t.match(/\S+/g).length, 0);
        assert.equal(usage?.completion_tokens_details?.reasoning_tokens, thoughtWords);
        assert.equal(sentBody(fake, m).generationConfig.thinkingConfig.includeThoughts, true);
    });

    test('SHOW_THINKING_PROCESS=false: no includeThoughts, thoughts dropped (stream and non-stream)', { timeout: T_SHORT }, async () => {
        const m = marker('hide');
        const res = await openai(hidden).chat.completions.create({
            model: 'thinking', reasoning_effort: 'high', messages: [{ role: 'user', content: `think ${m}` }],
        });
        assert.equal(res.choices[0].message.content, echoText(`think ${m}`));
        assert.equal(res.choices[0].message.reasoning_content, undefined);
        assert.deepEqual(sentBody(fake, m).generationConfig.thinkingConfig, { thinkingBudget: 24576 });
        const m2 = marker('hides');
        const stream = await openai(hidden).chat.completions.create({
            model: 'thinking', stream: true, messages: [{ role: 'user', content: `think ${m2}` }],
        });
        const { content, reasoning, chunks } = await collect(stream);
        assert.equal(content, echoText(`think ${m2}`));
        assert.equal(reasoning, '');
        assert.ok(!JSON.stringify(chunks).includes('Pondering'), 'the thought leaked into the stream');
    });

    test('THINKING_BUDGET_MAP applies without reasoning_effort, for the named model only', { timeout: T_SHORT }, async () => {
        const m = marker('map');
        await openai(mapped).chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }] });
        assert.deepEqual(sentBody(fake, m).generationConfig.thinkingConfig, { thinkingBudget: 512, includeThoughts: true });
        const m2 = marker('mapre');
        await openai(mapped).chat.completions.create({
            model: 'gemini-2.5-flash', reasoning_effort: 'low', messages: [{ role: 'user', content: m2 }],
        });
        assert.deepEqual(sentBody(fake, m2).generationConfig.thinkingConfig, { thinkingBudget: 1024, includeThoughts: true });
        const m3 = marker('mapother');
        await openai(mapped).chat.completions.create({ model: 'gemini-2.5-pro', messages: [{ role: 'user', content: m3 }] });
        assert.equal(sentBody(fake, m3).generationConfig?.thinkingConfig, undefined);
    });
});

/* ------------------------------------------------------------------ */

/* The markdown rendering of code execution parts, as the gateway documents it. */
function fence(lang, body) {
    return '```' + lang + '\n' + body.replace(/\n$/, '') + '\n```\n';
}

describe('code execution, grounding, blocked prompts, empty answers', () => {
    let fake;
    let gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        gw = await startGateway(fake, { keys: ['good-misc-1', 'good-misc-2'], env: { MAX_FAILURES: '1' } });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop();
        if (fake) await fake.close();
    }, HOOK);

    test('code execution parts -> fenced python and output blocks (non-stream)', { timeout: T_SHORT }, async () => {
        const parts = JSON.parse(fixture('generate-content-code-execution.json')).candidates[0].content.parts;
        let want = '';
        for (const p of parts) {
            if (p.executableCode) want += fence('python', p.executableCode.code);
            else if (p.codeExecutionResult) want += fence('output', p.codeExecutionResult.output);
            else want += p.text;
        }
        const res = await openai(gw).chat.completions.create({
            model: 'code-execution', messages: [{ role: 'user', content: 'what day is it in Utrecht?' }],
        });
        assert.equal(res.choices[0].message.content, want);
        assert.equal(res.choices[0].finish_reason, 'stop');
    });

    test('code execution parts -> fenced blocks (stream)', { timeout: T_SHORT }, async () => {
        let want = '';
        for (const ev of sseFixture('stream-code-execution.sse')) {
            for (const p of ev.candidates[0].content.parts) {
                if (p.executableCode) want += fence('python', p.executableCode.code);
                else if (p.codeExecutionResult) want += fence('output', p.codeExecutionResult.output);
                else want += p.text;
            }
        }
        assert.ok(want.startsWith('```python\nresult = 65465'), want);
        const stream = await openai(gw).chat.completions.create({
            model: 'code-execution', stream: true, messages: [{ role: 'user', content: 'compute' }],
        });
        const { content, finish } = await collect(stream);
        assert.equal(content, want);
        assert.deepEqual(finish, ['stop']);
    });

    const uris = GROUNDING.groundingChunks.map((c) => c.web.uri);
    const count = (s, sub) => s.split(sub).length - 1;

    test('grounding sources are appended once, as a markdown list (non-stream)', { timeout: T_SHORT }, async () => {
        const m = marker('gr');
        const res = await openai(gw).chat.completions.create({
            model: `${MODEL}-search`, messages: [{ role: 'user', content: m }],
        });
        const text = res.choices[0].message.content;
        assert.ok(text.startsWith(echoText(m)), text);
        const tail = text.slice(echoText(m).length);
        for (const c of GROUNDING.groundingChunks) {
            assert.equal(count(text, c.web.uri), 1, `${c.web.uri} not exactly once in: ${text}`);
            assert.ok(tail.includes(`- [${c.web.title}](${c.web.uri})`), `no markdown list item for ${c.web.uri}: ${tail}`);
        }
    });

    test('grounding sources in a stream: once, in the last content chunk', { timeout: T_SHORT }, async () => {
        const m = marker('grs');
        const stream = await openai(gw).chat.completions.create({
            model: `${MODEL}-search`, stream: true, messages: [{ role: 'user', content: m }],
        });
        const { chunks, content } = await collect(stream);
        assert.ok(content.startsWith(echoText(m)), content);
        for (const u of uris) assert.equal(count(content, u), 1, `${u} not exactly once in: ${content}`);
        const withContent = chunks.filter((c) => c.choices.length && c.choices[0].delta.content);
        const withSources = withContent.filter((c) => c.choices[0].delta.content.includes(uris[0]));
        assert.equal(withSources.length, 1);
        assert.equal(withSources[0], withContent.at(-1), 'the sources are not in the last content chunk');
    });

    test('a blocked prompt -> 200, finish_reason content_filter, explanation; the key is not penalised', { timeout: T_SHORT }, async () => {
        const before = (await health(gw)).keys;
        assert.equal(before.usable, 2);
        const m = marker('blk');
        const res = await openai(gw).chat.completions.create({
            model: 'prompt-blocked', messages: [{ role: 'user', content: `forbidden ${m}` }],
        });
        assert.equal(res.choices.length, 1);
        assert.equal(res.choices[0].finish_reason, 'content_filter');
        assert.match(res.choices[0].message.content, /blocked/i);
        assert.match(res.choices[0].message.content, /PROHIBITED_CONTENT/);
        assert.equal(generateCalls(fake, m).length, 1, 'a blocked prompt was retried');
        const m2 = marker('blks');
        const stream = await openai(gw).chat.completions.create({
            model: 'prompt-blocked', stream: true, messages: [{ role: 'user', content: `forbidden ${m2}` }],
        });
        const s = await collect(stream);
        assert.deepEqual(s.finish, ['content_filter']);
        assert.match(s.content, /SAFETY/);
        assert.deepEqual((await health(gw)).keys, before);
    });

    test('an empty 200 answer is retried on another key; the client gets the second answer', { timeout: T_SHORT }, async () => {
        const m = marker('empty');
        const res = await openai(gw).chat.completions.create({
            model: 'empty-once', messages: [{ role: 'user', content: `answer me ${m}` }],
        });
        assert.equal(res.choices[0].message.content, echoText(`answer me ${m}`));
        assert.equal(res.choices[0].finish_reason, 'stop');
        const calls = generateCalls(fake, m);
        assert.equal(calls.length, 2, `upstream calls: ${calls.length}`);
        assert.deepEqual(JSON.parse(calls[0].response).candidates[0].content.parts, []);
        assert.notEqual(calls[0].key, calls[1].key, 'the retry used the same key');
    });

    test('an empty streamed answer is retried on another key before any byte', { timeout: T_SHORT }, async () => {
        const m = marker('emptys');
        const stream = await openai(gw).chat.completions.create({
            model: 'empty-once', stream: true, messages: [{ role: 'user', content: `answer me ${m}` }],
        });
        let text = '', finish = null, roles = 0;
        for await (const c of stream) {
            const ch = c.choices[0];
            if (!ch) continue;
            if (ch.delta.role) roles++;
            text += ch.delta.content || '';
            finish = ch.finish_reason || finish;
        }
        assert.equal(text, echoText(`answer me ${m}`));
        assert.equal(finish, 'stop');
        assert.equal(roles, 1, 'one role chunk: nothing of the empty attempt reached the client');
        const calls = generateCalls(fake, m);
        assert.equal(calls.length, 2, `upstream calls: ${calls.length}`);
        assert.notEqual(calls[0].key, calls[1].key, 'the retry used the same key');
    });
});

/* ------------------------------------------------------------------ */

describe('embeddings', () => {
    const ctx = suite(hooks, { keys: ['good-emb-1', 'good-emb-2'] });
    const EMB = 'embedding-echo';

    function embedCalls(mark) {
        return ctx.fake.requests().filter((r) => /:batchEmbedContents$/.test(r.path) && r.body.includes(mark));
    }

    test('input string, float: one vector, index 0', { timeout: T_SHORT }, async () => {
        const m = marker('e1');
        const res = await openai(ctx.gw).embeddings.create({ model: EMB, input: `hello ${m}`, encoding_format: 'float' });
        assert.equal(res.object, 'list');
        assert.equal(res.model, EMB);
        assert.equal(res.data.length, 1);
        assert.equal(res.data[0].object, 'embedding');
        assert.equal(res.data[0].index, 0);
        assert.deepEqual(res.data[0].embedding, embedVector(`hello ${m}`));
        assert.equal(embedCalls(m).length, 1);
        assert.equal(typeof res.usage.prompt_tokens, 'number');
    });

    test('input array of 3, float: vectors in order, index 0..2', { timeout: T_SHORT }, async () => {
        const m = marker('e3');
        const input = ['alpha', 'beta', 'gamma'].map((w) => `${w} ${m}`);
        const res = await openai(ctx.gw).embeddings.create({ model: EMB, input, encoding_format: 'float' });
        assert.deepEqual(res.data.map((d) => d.index), [0, 1, 2]);
        res.data.forEach((d, i) => assert.deepEqual(d.embedding, embedVector(input[i]), `vector ${i}`));
        const reqs = JSON.parse(embedCalls(m)[0].body).requests;
        assert.deepEqual(reqs.map((q) => q.content.parts[0].text), input);
        assert.ok(reqs.every((q) => q.model === `models/${EMB}`), JSON.stringify(reqs[0]));
    });

    test('the SDK default (base64) decodes to the float answer within float32 precision', { timeout: T_SHORT }, async () => {
        const m = marker('e64');
        const input = ['one', 'two', 'three'].map((w) => `${w} ${m}`);
        const bodies = [];
        const client = new OpenAI({
            apiKey: TOKEN, baseURL: `${ctx.gw.url}/v1`, maxRetries: 0, timeout: 10000,
            fetch: (url, init) => {
                bodies.push(JSON.parse(init.body));
                return fetch(url, init);
            },
        });
        const def = await client.embeddings.create({ model: EMB, input });
        assert.equal(bodies[0].encoding_format, 'base64', `the SDK sent ${JSON.stringify(bodies[0])}`);
        const flt = await client.embeddings.create({ model: EMB, input, encoding_format: 'float' });
        assert.equal(def.data.length, 3);
        def.data.forEach((d, i) => {
            assert.equal(d.index, i);
            assert.ok(Array.isArray(d.embedding), `not decoded: ${typeof d.embedding}`);
            assert.equal(d.embedding.length, flt.data[i].embedding.length);
            d.embedding.forEach((v, j) => assert.equal(v, Math.fround(flt.data[i].embedding[j]), `vector ${i} value ${j}`));
        });
        /* raw: a base64 string of little-endian float32 */
        const raw = await request(`${ctx.gw.url}/v1/embeddings`, {
            method: 'POST', headers: auth(), body: { model: EMB, input: input[0], encoding_format: 'base64' },
        });
        assert.equal(raw.status, 200, raw.text);
        const b64 = raw.json.data[0].embedding;
        assert.equal(typeof b64, 'string');
        const bytes = Buffer.from(b64, 'base64');
        const f32 = Array.from({ length: bytes.length / 4 }, (_, j) => bytes.readFloatLE(j * 4));
        assert.deepEqual(f32, embedVector(input[0]).map(Math.fround));
    });

    test('dimensions -> outputDimensionality on every request', { timeout: T_SHORT }, async () => {
        const m = marker('edim');
        const input = [`a ${m}`, `b ${m}`];
        const res = await openai(ctx.gw).embeddings.create({ model: EMB, input, dimensions: 3, encoding_format: 'float' });
        const reqs = JSON.parse(embedCalls(m)[0].body).requests;
        assert.deepEqual(reqs.map((q) => q.outputDimensionality), [3, 3]);
        assert.deepEqual(res.data.map((d) => d.embedding), input.map((t) => embedVector(t, 3)));
    });

    test('150 inputs -> two batchEmbedContents calls (100 + 50), 150 embeddings in order', { timeout: T_LONG }, async () => {
        const m = marker('e150');
        const input = Array.from({ length: 150 }, (_, i) => `item ${i} ${m}`);
        const res = await openai(ctx.gw).embeddings.create({ model: EMB, input, encoding_format: 'float' });
        const calls = embedCalls(m);
        assert.equal(calls.length, 2);
        const sizes = calls.map((c) => JSON.parse(c.body).requests.length);
        assert.deepEqual(sizes, [100, 50]);
        assert.equal(JSON.parse(calls[1].body).requests[0].content.parts[0].text, input[100]);
        assert.equal(res.data.length, 150);
        res.data.forEach((d, i) => {
            assert.equal(d.index, i);
            assert.deepEqual(d.embedding, embedVector(input[i]), `vector ${i}`);
        });
    });

    test('token-array input -> 400 BadRequestError, nothing sent upstream', { timeout: T_SHORT }, async () => {
        const before = ctx.fake.requests().filter((r) => /Embed/.test(r.path)).length;
        for (const input of [[1, 2, 3], [[1, 2], [3]]]) {
            const err = await openai(ctx.gw).embeddings.create({ model: EMB, input, encoding_format: 'float' }).then(() => null, (e) => e);
            assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError for ${JSON.stringify(input)}, got ${err}`);
            assert.equal(err.status, 400);
            assert.match(err.error.message, /token/i);
        }
        assert.equal(ctx.fake.requests().filter((r) => /Embed/.test(r.path)).length, before);
    });
});

describe('image URLs to the gateway\'s own network (SSRF)', () => {
    const ctx = suite(hooks, { keys: ['good-ssrf-1'] });
    const img = imageServer((req, res) => {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG_1X1.length });
        res.end(PNG_1X1);
    });

    async function ask(url) {
        const m = marker('ssrf');
        const r = await chat(ctx.gw, {
            model: MODEL,
            messages: [{ role: 'user', content: [{ type: 'text', text: m }, { type: 'image_url', image_url: { url } }] }],
        });
        assert.equal(generateCalls(ctx.fake, m).length, 0, 'sent upstream');
        return r;
    }

    test('loopback, by address or by name, is refused before connecting, as a closed port would be', { timeout: T_SHORT }, async () => {
        /* a port nobody listens on, for the reference message */
        const closed = net.createServer();
        await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
        const closedPort = closed.address().port;
        await new Promise((resolve) => closed.close(resolve));
        const ref = await ask(`http://127.0.0.1:${closedPort}/x.png`);
        assert.equal(ref.status, 400, ref.text);
        const { port } = img;
        for (const url of [`http://127.0.0.1:${port}/x.png`, `http://localhost:${port}/x.png`,
            `http://[::ffff:127.0.0.1]:${port}/x.png`, `http://2130706433:${port}/x.png`]) {
            const r = await ask(url);
            assert.equal(r.status, 400, `${url}: ${r.text}`);
            assert.equal(r.json.error.code, 'invalid_image_url');
            /* the same words as for the closed port: nothing tells what listens */
            assert.equal(r.json.error.message.replace(url, 'URL'), ref.json.error.message.replace(`http://127.0.0.1:${closedPort}/x.png`, 'URL'), url);
        }
        assert.deepEqual(img.served, [], 'the loopback image server was reached');
    });
});
