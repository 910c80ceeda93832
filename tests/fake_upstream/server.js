'use strict';
/*
 * Fake Gemini API upstream for gemini-balance's black-box tests and demo.
 *
 * node:http only, no dependencies.  Answers under /v1beta like
 * generativelanguage.googleapis.com, with bodies built from the recorded
 * fixtures (../../../shared/fixtures by default), and behaves according to
 * the API key's prefix and the model name so tests can build key pools and
 * failures deterministically.  Every request is recorded; control endpoints
 * (/__requests, /__reset, /__stats, /__config, /__keystate) let tests inspect
 * and steer it.
 *
 * See README.md next to this file for the full behaviour table.
 *
 *   node tests/fake_upstream/server.js --port 0 [--host 127.0.0.1] [--fixtures DIR]
 *     -> prints "fake-upstream listening on http://127.0.0.1:<port>" when ready
 *
 *   const { startFakeUpstream } = require('./server.js');   // or import from ESM
 *   const fake = await startFakeUpstream({ port: 0 });
 *   fake.url, fake.port, fake.requests(), fake.stats(), fake.reset(),
 *   fake.config({ slowMs: 500 }), fake.keyState(key, state), await fake.close()
 */

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const REPO_DIR = path.resolve(__dirname, '..', '..');

/* The text the "utf8" model answers with: 2-, 3- and 4-byte UTF-8 sequences. */
const UTF8_TEXT = 'héllo wörld 你好 🎉';

/* groundingMetadata the fake adds when the request has the googleSearch tool. */
const GROUNDING = {
    webSearchQueries: ['fake search query'],
    groundingChunks: [
        { web: { uri: 'https://example.com/fake-source-1', title: 'Fake Source One' } },
        { web: { uri: 'https://example.org/fake-source-2', title: 'example.org' } },
    ],
};

/* Tunables; each can be set by startFakeUpstream options, by POST /__config,
 * and (for the CLI) by the GB_FAKE_* environment variable named after it. */
const DEFAULTS = {
    slowMs: 2000,               /* slow-* keys: delay before the answer, in ms */
    slowEventMs: 300,           /* slow-* keys: gap between stream events, in ms */
    streamEventMs: 5,           /* gap between events of ordinary streams, in ms */
    longStreamEvents: 200,      /* events sent by the long-stream model */
    longStreamEventMs: 25,      /* gap between long-stream events, in ms */
    bigStreamEvents: 256,       /* events sent by the big-stream model */
    bigStreamEventBytes: 65536, /* text bytes in each big-stream event */
    splitWriteMs: 15,           /* utf8 model: gap between the pieces of one event, in ms */
    dieAfterMs: 50,             /* die-* keys (stream): wait after the first event, in ms */
    modelsPageMax: 20,          /* largest page GET /models returns (Google: 1000) */
    modelsPageDefault: 50,      /* page size when the request names none (Google: 50) */
};

const ENV_NAMES = {
    slowMs: 'GB_FAKE_SLOW_MS',
    slowEventMs: 'GB_FAKE_SLOW_EVENT_MS',
    streamEventMs: 'GB_FAKE_STREAM_EVENT_MS',
    longStreamEvents: 'GB_FAKE_LONG_STREAM_EVENTS',
    longStreamEventMs: 'GB_FAKE_LONG_STREAM_EVENT_MS',
    bigStreamEvents: 'GB_FAKE_BIG_STREAM_EVENTS',
    bigStreamEventBytes: 'GB_FAKE_BIG_STREAM_EVENT_BYTES',
    splitWriteMs: 'GB_FAKE_SPLIT_WRITE_MS',
    dieAfterMs: 'GB_FAKE_DIE_AFTER_MS',
    modelsPageMax: 'GB_FAKE_MODELS_PAGE_MAX',
    modelsPageDefault: 'GB_FAKE_MODELS_PAGE_DEFAULT',
};

/* quotaday-* keys: the per-minute 429 fixture turned into a per-day quota
 * failure (quotaId ...PerDay..., the daily metric and limit), RetryInfo kept
 * ("26s"), as Google answers when a free-tier daily quota is used up. */
function perDayQuotaBody(e) {
    for (const d of e.error.details) {
        for (const v of d.violations || []) {
            v.quotaMetric = 'generativelanguage.googleapis.com/generate_content_free_tier_requests';
            v.quotaId = 'GenerateRequestsPerDayPerProjectPerModel-FreeTier';
            v.quotaValue = '250';
        }
    }
    return JSON.stringify(e, null, 2) + '\n';
}

/* Verdicts a test can force on one exact key string (POST /__keystate). */
const KEY_STATES = ['good', 'invalid', 'forbidden', 'quota', 'quotaday', 'unavail', 'err500'];

/* The events of a recorded SSE body, parsed. */
function sseEvents(text) {
    return text.split('\r\n\r\n').filter((s) => s.startsWith('data: ')).map((s) => JSON.parse(s.slice(6)));
}

function defaultFixturesDir() {
    return process.env.GB_FIXTURES || path.resolve(REPO_DIR, '..', 'shared', 'fixtures');
}

/* ------------------------------------------------------------------ */
/* fixtures                                                            */

function loadFixtures(dir) {
    const g = (name) => path.join(dir, 'gemini', name);
    const text = (name) => fs.readFileSync(g(name), 'utf8');
    const json = (name) => JSON.parse(text(name));
    const fx = {
        dir,
        errors: {
            apiKeyInvalid: text('error-400-api-key-invalid.json'),
            invalidArgument: text('error-400-invalid-argument.json'),
            permissionDenied: text('error-403-permission-denied.json'),
            modelNotFound: json('error-404-model-not-found.json'),
            resourceExhausted: text('error-429-resource-exhausted.json'),
            resourceExhaustedPerDay: perDayQuotaBody(json('error-429-resource-exhausted.json')),
            internal: text('error-500-internal.json'),
            unavailable: text('error-503-unavailable-overloaded.json'),
        },
        modelsList: json('models-list.json').models,
        modelsGet: json('models-get.json'),
        generate: json('generate-content-text.json'),
        streamEvents: text('stream-text.sse')
            .split('\r\n\r\n')
            .filter((s) => s.startsWith('data: '))
            .map((s) => JSON.parse(s.slice(6))),
        countTokens: text('count-tokens.json'),
        embedContent: json('embed-content.json'),
        batchEmbed: json('batch-embed-contents.json'),
        safetyBlocked: json('generate-content-safety-blocked.json'),
        functionCall: text('generate-content-function-call.json'),
        functionCallGemini3: text('generate-content-function-call-gemini3.json'),
        streamFunctionCallGemini3: sseEvents(text('stream-function-call-gemini3.sse')),
        streamFunctionCall: sseEvents(text('stream-function-call.sse')),
        codeExecution: text('generate-content-code-execution.json'),
        streamCodeExecution: sseEvents(text('stream-code-execution.sse')),
        promptBlocked: text('generate-content-prompt-blocked.json'),
        streamPromptBlocked: sseEvents(text('stream-prompt-blocked-legacy.sse')),
        streamThinking: sseEvents(text('stream-thinking.sse')),
    };
    fx.functionCallParts = JSON.parse(fx.functionCall).candidates[0].content.parts;
    /* function-call-2: the call of generate-content-function-call.json, then
     * the one of stream-function-call.sse (get_capital {"country":"France"}) */
    fx.twoCallParts = [fx.functionCallParts[0], fx.streamFunctionCall[0].candidates[0].content.parts[0]];
    /* thinking-tokens: the first two thought parts of stream-thinking.sse */
    fx.thoughtParts = fx.streamThinking
        .map((e) => e.candidates[0].content.parts[0])
        .filter((p) => p.thought)
        .slice(0, 2)
        .map((p) => ({ text: p.text, thought: true }));
    return fx;
}

/* Google's answers for things no fixture covers (wording as the API sends it). */
const ERR_NO_KEY = errorBody(403, 'PERMISSION_DENIED',
    "Method doesn't allow unregistered callers (callers without established identity). " +
    'Please use API Key or other form of API consumer identity to call this API.');
const ERR_OAUTH = errorBody(401, 'UNAUTHENTICATED',
    'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie ' +
    'or other valid authentication credential. See ' +
    'https://developers.google.com/identity/sign-in/web/devconsole-project.');

function errorBody(code, status, message) {
    return JSON.stringify({ error: { code, message, status } }, null, 2) + '\n';
}

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* Gemini's SSE JSON layout: a space after every colon, none after commas. */
function geminiCompact(v) {
    if (Array.isArray(v)) return '[' + v.map(geminiCompact).join(',') + ']';
    if (v && typeof v === 'object') {
        return '{' + Object.entries(v)
            .filter(([, x]) => x !== undefined)
            .map(([k, x]) => JSON.stringify(k) + ': ' + geminiCompact(x))
            .join(',') + '}';
    }
    return JSON.stringify(v);
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function countWords(s) {
    const m = String(s).match(/\S+/g);
    return m ? m.length : 0;
}

/* The reply of the default models to a request whose last user text is
 * userText, for candidate index i. */
function echoText(userText, i = 0) {
    return (i === 0 ? 'Echo: ' : `Echo #${i}: `) + userText;
}

/* Splits text into at most n non-empty pieces at word boundaries (the spaces
 * stay with the preceding word), so that pieces.join('') === text. */
function splitText(text, n) {
    const words = text.match(/\S+\s*|\s+/g) || [];
    if (words.length === 0) return [text];
    const per = Math.ceil(words.length / n);
    const out = [];
    for (let i = 0; i < words.length; i += per) out.push(words.slice(i, i + per).join(''));
    return out;
}

/* Byte offsets where a UTF-8 character (or a CRLF pair) is cut in two: right
 * after each lead byte of a multi-byte sequence and between \r and \n. */
function splitPoints(buf) {
    const cuts = [];
    for (let p = 1; p < buf.length; p++) {
        const prev = buf[p - 1];
        const cur = buf[p];
        if (prev >= 0xc0 && (cur & 0xc0) === 0x80) cuts.push(p);
        else if (prev === 0x0d && cur === 0x0a) cuts.push(p);
    }
    return cuts;
}

function textsOf(content) {
    if (!content || !Array.isArray(content.parts)) return [];
    return content.parts.filter((p) => typeof p.text === 'string').map((p) => p.text);
}

/* The embedding-echo model's vector for a text: the first vector of
 * batch-embed-contents.json, repeated to `dims` values (default 8), with the
 * first value replaced by a number derived from the text (FNV-1a 32 of its
 * UTF-8 bytes, scaled to [-0.5, 0.5), rounded to 9 decimals), so that a
 * test can tell which input a vector belongs to. */
let defaultEmbedBase = null;
function embedVector(text, dims, base) {
    let embedBase = base;
    if (!embedBase) {
        if (!defaultEmbedBase) {
            defaultEmbedBase = JSON.parse(fs.readFileSync(path.join(defaultFixturesDir(), 'gemini',
                'batch-embed-contents.json'), 'utf8')).embeddings[0].values;
        }
        embedBase = defaultEmbedBase;
    }
    const n = Number.isInteger(dims) && dims > 0 ? dims : embedBase.length;
    const v = Array.from({ length: n }, (_, j) => embedBase[j % embedBase.length]);
    let h = 0x811c9dc5;
    for (const b of Buffer.from(String(text), 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    v[0] = Number((h / 2 ** 32 - 0.5).toFixed(9));
    return v;
}

/* The first functionResponse part of the last contents entry, or null. */
function lastFunctionResponse(contents) {
    const all = lastFunctionResponses(contents);
    return all.length ? all[0] : null;
}

/* Every functionResponse of the last contents entry, in order. */
function lastFunctionResponses(contents) {
    const last = contents.length ? contents[contents.length - 1] : null;
    if (!last || !Array.isArray(last.parts)) return [];
    return last.parts.filter((p) => p && p.functionResponse).map((p) => p.functionResponse);
}

/* The 200 answer of the empty-once model the first time: a candidate
 * without parts and without finishReason. */
function emptyAnswer(model, responseId) {
    return {
        candidates: [{ content: { parts: [], role: 'model' }, index: 0 }],
        usageMetadata: { promptTokenCount: 1, totalTokenCount: 1 },
        modelVersion: model,
        responseId,
    };
}

/* ------------------------------------------------------------------ */
/* the server                                                          */

function createFake(opts = {}) {
    const fx = loadFixtures(opts.fixturesDir || defaultFixturesDir());
    const cfg = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) {
        if (opts[k] !== undefined) cfg[k] = Number(opts[k]);
    }

    let records = [];
    let seq = 0;
    let keyHits = {}; /* flaky-* keys: requests seen per key */
    let emptySeen = new Set(); /* empty-once model: prompts already answered empty */
    let keyStates = {}; /* exact key -> forced verdict (POST /__keystate) */
    let stats = freshStats();
    const liveTimers = new Set();

    function freshStats() {
        return { total: 0, byKey: {}, byModel: {}, aborted: 0, selfDestroyed: 0, completed: 0, active: 0 };
    }

    /* waits ms unless the request is aborted first; resolves false then */
    function wait(rec, ms) {
        if (ms <= 0) return Promise.resolve(!rec.closed);
        return new Promise((resolve) => {
            const waker = () => {
                if (liveTimers.delete(entry)) {
                    clearTimeout(t);
                    resolve(false);
                }
            };
            const t = setTimeout(() => {
                liveTimers.delete(entry);
                const i = rec._wakers.indexOf(waker);
                if (i >= 0) rec._wakers.splice(i, 1);
                resolve(!rec.closed);
            }, ms);
            const entry = { t, resolve };
            liveTimers.add(entry);
            rec._wakers.push(waker);
        });
    }

    function publicRecord(r) {
        const { _wakers, _res, closed, ...pub } = r;
        return JSON.parse(JSON.stringify(pub));
    }

    function sendJson(res, status, bodyText, extra = {}) {
        const buf = Buffer.from(bodyText, 'utf8');
        res.writeHead(status, {
            'content-type': 'application/json; charset=UTF-8',
            'content-length': buf.length,
            server: 'fake-gemini',
            ...extra,
        });
        res.end(buf);
    }

    function sendError(rec, res, status, bodyText, arrayWrapped) {
        rec.status = status;
        const text = arrayWrapped ? '[' + bodyText.replace(/\n$/, '') + '\n]' : bodyText;
        rec.response = text;
        sendJson(res, status, text);
    }

    /* control endpoints */
    function handleControl(req, res, url, body) {
        const p = url.pathname;
        if (p === '/__requests' && req.method === 'GET') {
            return sendJson(res, 200, JSON.stringify(records.map(publicRecord)));
        }
        if (p === '/__reset' && req.method === 'POST') {
            records = [];
            keyHits = {};
            emptySeen = new Set();
            keyStates = {};
            stats = freshStats();
            return sendJson(res, 200, '{"ok":true}');
        }
        if (p === '/__stats' && req.method === 'GET') {
            return sendJson(res, 200, JSON.stringify(stats));
        }
        if (p === '/__keystate' && req.method === 'POST') {
            let q;
            try {
                q = JSON.parse(body || '{}');
                setKeyState(q && q.key, q && q.state);
            } catch (e) {
                return sendJson(res, 400, JSON.stringify({ error: e.message }));
            }
            return sendJson(res, 200, JSON.stringify(keyStates));
        }
        if (p === '/__keystate' && req.method === 'GET') {
            return sendJson(res, 200, JSON.stringify(keyStates));
        }
        if (p === '/__config') {
            if (req.method === 'POST') {
                let patch;
                try {
                    patch = JSON.parse(body || '{}');
                } catch (e) {
                    return sendJson(res, 400, JSON.stringify({ error: 'bad json: ' + e.message }));
                }
                try {
                    applyConfig(patch);
                } catch (e) {
                    return sendJson(res, 400, JSON.stringify({ error: e.message }));
                }
            }
            return sendJson(res, 200, JSON.stringify(cfg));
        }
        return sendJson(res, 404, JSON.stringify({ error: 'unknown control endpoint ' + p }));
    }

    function applyConfig(patch) {
        for (const [k, v] of Object.entries(patch || {})) {
            if (!(k in DEFAULTS)) throw new Error('unknown fake-upstream setting ' + k);
            cfg[k] = Number(v);
        }
    }

    /* POST /__keystate: state one of KEY_STATES, or null to forget the key */
    function setKeyState(key, state) {
        if (typeof key !== 'string' || key === '') throw new Error('"key" must be a non-empty string');
        if (state === null || state === undefined) {
            delete keyStates[key];
            return;
        }
        if (!KEY_STATES.includes(state)) throw new Error(`"state" must be one of ${KEY_STATES.join(', ')} or null`);
        keyStates[key] = state;
    }

    /* a verdict by name (the prefix rules and /__keystate share it) */
    function verdictOf(state) {
        switch (state) {
        case 'good': return null;
        case 'forbidden': return [403, fx.errors.permissionDenied];
        case 'quota': return [429, fx.errors.resourceExhausted];
        case 'quotaday': return [429, fx.errors.resourceExhaustedPerDay];
        case 'unavail': return [503, fx.errors.unavailable];
        case 'err500': return [500, fx.errors.internal];
        default: return [400, fx.errors.apiKeyInvalid];
        }
    }

    /* key policy: returns null to go on, or [status, body] */
    function keyVerdict(rec) {
        if (rec.headers.authorization !== undefined) return [401, ERR_OAUTH];
        const k = rec.key;
        if (!k) return [403, ERR_NO_KEY];
        if (Object.prototype.hasOwnProperty.call(keyStates, k)) return verdictOf(keyStates[k]);
        if (k.startsWith('good-') || k.startsWith('slow-') || k.startsWith('die-')) return null;
        if (k.startsWith('quotapro-')) {
            return rec.model && rec.model.includes('pro') ? [429, fx.errors.resourceExhausted] : null;
        }
        if (k.startsWith('quotaday-')) return [429, fx.errors.resourceExhaustedPerDay];
        if (k.startsWith('flaky-')) {
            keyHits[k] = (keyHits[k] || 0) + 1;
            return keyHits[k] % 2 === 1 ? [400, fx.errors.apiKeyInvalid] : null;
        }
        if (k.startsWith('forbidden-')) return [403, fx.errors.permissionDenied];
        if (k.startsWith('quota-')) return [429, fx.errors.resourceExhausted];
        if (k.startsWith('unavail-')) return [503, fx.errors.unavailable];
        if (k.startsWith('err500-')) return [500, fx.errors.internal];
        return [400, fx.errors.apiKeyInvalid]; /* invalid-* and anything unknown */
    }

    function modelVerdict(model, method) {
        if (model === 'no-such-model') {
            const e = JSON.parse(JSON.stringify(fx.errors.modelNotFound));
            e.error.message = `models/${model} is not found for API version v1beta, or is not ` +
                `supported for ${method}. Call ModelService.ListModels to see the list of ` +
                'available models and their supported methods.';
            return [404, JSON.stringify(e, null, 2) + '\n'];
        }
        if (model === 'bad-request') return [400, fx.errors.invalidArgument];
        return null;
    }

    function slowDelay(key) {
        const m = /^slow-(\d+)(?:-|$)/.exec(key || '');
        return m ? Number(m[1]) : cfg.slowMs;
    }

    /* Builds the candidates (as lists of text pieces) of a generate request. */
    function planReply(rec, gen, model) {
        const gc = gen.generationConfig || {};
        const n = Math.max(1, Math.min(8, Number(gc.candidateCount) || 1));
        const contents = Array.isArray(gen.contents) ? gen.contents : [];
        let userText = '';
        for (const c of contents) {
            if (c && (c.role === 'user' || c.role === undefined)) userText = textsOf(c).join('');
        }
        let promptWords = 0;
        for (const c of contents) promptWords += countWords(textsOf(c).join(' '));
        promptWords += countWords(textsOf(gen.systemInstruction).join(' '));
        const promptTokens = Math.max(1, promptWords);

        const cands = [];
        let thoughtWords = 0; /* thinking-tokens: thoughtsTokenCount */
        for (let i = 0; i < n; i++) {
            let parts; /* [{text, thought?}] */
            let finish = 'STOP';
            let pieces = null; /* stream pieces of the (single) answer part */
            if (model === 'utf8') {
                parts = [{ text: UTF8_TEXT }];
                pieces = splitText(UTF8_TEXT, 4);
            } else if (model === 'long-stream') {
                pieces = [];
                for (let k = 0; k < cfg.longStreamEvents; k++) pieces.push(`[${k}]`);
                parts = [{ text: pieces.join('') }];
            } else if (model === 'multi-part') {
                parts = [{ text: 'Part one. ' }, { text: 'Part two.' }];
            } else if (model === 'thinking') {
                parts = [{ text: 'Pondering the request...', thought: true }, { text: echoText(userText, i) }];
            } else if (model === 'finish-safety') {
                parts = null;
                finish = 'SAFETY';
            } else if (model === 'function-call' && !lastFunctionResponse(contents)) {
                parts = fx.functionCallParts.map((p) => JSON.parse(JSON.stringify(p)));
            } else if (model === 'function-call') {
                parts = [{ text: echoText(JSON.stringify(lastFunctionResponse(contents).response), i) }];
            } else if (model === 'function-call-2' && !lastFunctionResponse(contents)) {
                parts = fx.twoCallParts.map((p) => JSON.parse(JSON.stringify(p)));
            } else if (model === 'function-call-2') {
                const all = lastFunctionResponses(contents).map((f) => ({ name: f.name, response: f.response }));
                parts = [{ text: echoText(JSON.stringify(all), i) }];
            } else if (model === 'gemini-3-function-call' && lastFunctionResponse(contents)) {
                parts = [{ text: echoText(JSON.stringify(lastFunctionResponse(contents).response), i) }];
            } else if (model === 'json-echo') {
                parts = [{ text: JSON.stringify(i === 0 ? { echo: userText } : { echo: userText, candidate: i }) }];
            } else if (model === 'thinking-tokens') {
                const tc = gc.thinkingConfig || {};
                const include = tc.includeThoughts === true || tc.include_thoughts === true;
                parts = [...(include ? fx.thoughtParts.map((p) => ({ ...p })) : []), { text: echoText(userText, i) }];
                thoughtWords += fx.thoughtParts.reduce((a, p) => a + countWords(p.text), 0);
            } else {
                let t = echoText(userText, i);
                const stops = Array.isArray(gc.stopSequences) ? gc.stopSequences : [];
                let cut = -1;
                for (const s of stops) {
                    const at = typeof s === 'string' && s ? t.indexOf(s) : -1;
                    if (at >= 0 && (cut < 0 || at < cut)) cut = at;
                }
                if (cut >= 0) t = t.slice(0, cut);
                const max = Number(gc.maxOutputTokens);
                const words = t.match(/\S+\s*/g) || [];
                if (max > 0 && words.length > max) {
                    t = words.slice(0, max).join('');
                    finish = 'MAX_TOKENS';
                }
                parts = [{ text: t }];
            }
            cands.push({ index: i, parts, finish, pieces });
        }
        let outWords = 0;
        for (const c of cands) {
            for (const p of c.parts || []) if (!p.thought && typeof p.text === 'string') outWords += countWords(p.text);
        }
        const usage = {
            promptTokenCount: promptTokens,
            candidatesTokenCount: outWords,
            totalTokenCount: promptTokens + outWords + thoughtWords,
            promptTokensDetails: [{ modality: 'TEXT', tokenCount: promptTokens }],
        };
        if (thoughtWords > 0) usage.thoughtsTokenCount = thoughtWords;
        const tools = Array.isArray(gen.tools) ? gen.tools : [];
        const search = tools.some((t) => t && (t.googleSearch || t.google_search));
        const responseId = `fake-${rec.seq}-${Date.now().toString(36)}`;
        /* models that replay recorded answers: fixtureText (generateContent,
         * verbatim) and fixtureEvents (stream events, re-serialised) */
        let fixtureText = null;
        let fixtureEvents = null;
        const asksCall = !lastFunctionResponse(contents);
        if (model === 'function-call' && n === 1 && asksCall) {
            fixtureText = fx.functionCall;
        } else if (model === 'gemini-3-function-call' && asksCall) {
            fixtureText = fx.functionCallGemini3;
            fixtureEvents = fx.streamFunctionCallGemini3;
        } else if (model === 'code-execution') {
            fixtureText = fx.codeExecution;
            fixtureEvents = fx.streamCodeExecution;
        } else if (model === 'prompt-blocked') {
            fixtureText = fx.promptBlocked;
            fixtureEvents = fx.streamPromptBlocked;
        } else if (model === 'empty-once' && !emptySeen.has(userText)) {
            emptySeen.add(userText);
            const body = emptyAnswer(model, responseId);
            fixtureText = JSON.stringify(body, null, 2) + '\n';
            fixtureEvents = [body];
        }
        return {
            n, cands, usage, model, fixtureText, fixtureEvents, responseId,
            grounding: search ? GROUNDING : null,
        };
    }

    function generateBody(plan) {
        return {
            candidates: plan.cands.map((c) => {
                const out = {
                    content: c.parts ? { parts: c.parts.map((p) => ({ ...p })), role: 'model' } : {},
                    finishReason: c.finish,
                    index: c.index,
                };
                if (c.finish === 'SAFETY') out.safetyRatings = fx.safetyBlocked.candidates[0].safetyRatings;
                else out.avgLogprobs = -0.0001856483577284962;
                if (plan.grounding) out.groundingMetadata = plan.grounding;
                return out;
            }),
            usageMetadata: {
                ...plan.usage,
                candidatesTokensDetails: [{ modality: 'TEXT', tokenCount: plan.usage.candidatesTokenCount }],
            },
            modelVersion: plan.model,
            responseId: plan.responseId,
        };
    }

    /* The stream events of a plan: per candidate, a list of parts per event. */
    function streamEvents(plan) {
        const perCand = plan.cands.map((c) => {
            if (!c.parts) return [null]; /* blocked: one event with empty content */
            const evs = [];
            for (const p of c.parts) {
                if (p.thought || typeof p.text !== 'string') {
                    evs.push([{ ...p }]);
                    continue;
                }
                const pieces = c.pieces || splitText(p.text, 3);
                for (const piece of pieces) evs.push([{ text: piece }]);
            }
            return evs;
        });
        const nEvents = Math.max(...perCand.map((e) => e.length));
        const events = [];
        for (let k = 0; k < nEvents; k++) {
            const last = k === nEvents - 1;
            const candidates = [];
            plan.cands.forEach((c, i) => {
                const evs = perCand[i];
                if (k >= evs.length) return;
                const entry = { content: evs[k] ? { parts: evs[k], role: 'model' } : {} };
                if (k === evs.length - 1) {
                    entry.finishReason = c.finish;
                    if (plan.grounding) entry.groundingMetadata = plan.grounding;
                }
                if (plan.n > 1) entry.index = c.index;
                if (c.finish === 'SAFETY') entry.safetyRatings = fx.safetyBlocked.candidates[0].safetyRatings;
                candidates.push(entry);
            });
            const usageMetadata = last
                ? {
                    promptTokenCount: plan.usage.promptTokenCount,
                    candidatesTokenCount: plan.usage.candidatesTokenCount,
                    totalTokenCount: plan.usage.totalTokenCount,
                    promptTokensDetails: plan.usage.promptTokensDetails,
                    candidatesTokensDetails: [{ modality: 'TEXT', tokenCount: plan.usage.candidatesTokenCount }],
                    thoughtsTokenCount: plan.usage.thoughtsTokenCount,
                }
                : {
                    promptTokenCount: plan.usage.promptTokenCount,
                    totalTokenCount: plan.usage.promptTokenCount + (plan.usage.thoughtsTokenCount || 0),
                    promptTokensDetails: plan.usage.promptTokensDetails,
                    thoughtsTokenCount: plan.usage.thoughtsTokenCount,
                };
            events.push({ candidates, usageMetadata, modelVersion: plan.model, responseId: plan.responseId });
        }
        return events;
    }

    /* writes bytes, tracking what was sent; false when the peer is gone */
    function put(rec, res, buf) {
        if (rec.closed || res.destroyed) return false;
        rec.response += buf.toString('utf8');
        rec.bytesSent += buf.length;
        res.write(buf);
        return true;
    }

    /* big-stream: bigStreamEvents events of bigStreamEventBytes of text
     * each, written as fast as the reader takes them and no faster (waits
     * for 'drain'), so bytesSent shows how much the gateway has read.  The
     * bytes are not kept in rec.response. */
    async function serveBigStream(rec, res, sse) {
        const text = 'x'.repeat(cfg.bigStreamEventBytes);
        rec.status = 200;
        res.writeHead(200, {
            'content-type': sse ? 'text/event-stream' : 'application/json; charset=UTF-8',
            server: 'fake-gemini',
        });
        for (let k = 0; k < cfg.bigStreamEvents; k++) {
            const last = k === cfg.bigStreamEvents - 1;
            const ev = {
                candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0, ...(last ? { finishReason: 'STOP' } : {}) }],
                usageMetadata: { promptTokenCount: 1, candidatesTokenCount: k + 1, totalTokenCount: k + 2 },
                modelVersion: 'big-stream',
            };
            const body = sse ? 'data: ' + JSON.stringify(ev) + '\r\n\r\n' : (k === 0 ? '[' : ',') + JSON.stringify(ev);
            if (rec.closed || res.destroyed) return;
            const buf = Buffer.from(body, 'utf8');
            rec.bytesSent += buf.length;
            rec.eventsSent++;
            if (!res.write(buf)) {
                await new Promise((resolve) => {
                    const go = () => {
                        res.off('drain', go);
                        res.off('close', go);
                        resolve();
                    };
                    res.on('drain', go);
                    res.on('close', go);
                });
            }
        }
        if (!sse && !rec.closed) res.write(']');
        if (!rec.closed) res.end();
    }

    async function serveStream(rec, res, plan, sse) {
        const events = plan.fixtureEvents || streamEvents(plan);
        const key = rec.key || '';
        const isLong = plan.model === 'long-stream';
        const isUtf8 = plan.model === 'utf8';
        const gap = key.startsWith('slow-') ? cfg.slowEventMs : isLong ? cfg.longStreamEventMs : cfg.streamEventMs;
        rec.status = 200;
        res.writeHead(200, {
            'content-type': sse ? 'text/event-stream' : 'application/json; charset=UTF-8',
            'cache-control': 'no-cache',
            server: 'fake-gemini',
        });
        if (res.socket) res.socket.setNoDelay(true);
        res.flushHeaders();
        for (let k = 0; k < events.length; k++) {
            let text;
            if (sse) text = 'data: ' + geminiCompact(events[k]) + '\r\n\r\n';
            else text = (k === 0 ? '[' : '\n,\r\n') + JSON.stringify(events[k], null, 2);
            const buf = Buffer.from(text, 'utf8');
            if (isUtf8) {
                let from = 0;
                for (const cut of splitPoints(buf)) {
                    if (!put(rec, res, buf.subarray(from, cut))) return;
                    from = cut;
                    if (!(await wait(rec, cfg.splitWriteMs))) return;
                }
                if (!put(rec, res, buf.subarray(from))) return;
            } else if (!put(rec, res, buf)) {
                return;
            }
            rec.eventsSent++;
            if (k === 0 && key.startsWith('die-')) {
                if (!(await wait(rec, cfg.dieAfterMs))) return;
                rec.selfDestroyed = true;
                stats.selfDestroyed++;
                res.socket.destroy();
                return;
            }
            if (k < events.length - 1 && !(await wait(rec, gap))) return;
        }
        if (!sse && !put(rec, res, Buffer.from('\n]'))) return;
        res.end();
    }

    async function serveGenerate(rec, res, plan) {
        const text = plan.fixtureText || JSON.stringify(generateBody(plan), null, 2) + '\n';
        const buf = Buffer.from(text, 'utf8');
        rec.status = 200;
        rec.response = text;
        res.writeHead(200, {
            'content-type': 'application/json; charset=UTF-8',
            'content-length': buf.length,
            server: 'fake-gemini',
        });
        if (plan.model === 'utf8') {
            if (res.socket) res.socket.setNoDelay(true);
            let from = 0;
            for (const cut of splitPoints(buf)) {
                if (rec.closed || res.destroyed) return;
                res.write(buf.subarray(from, cut));
                from = cut;
                if (!(await wait(rec, cfg.splitWriteMs))) return;
            }
            res.end(buf.subarray(from));
        } else {
            res.end(buf);
        }
        rec.bytesSent = buf.length;
    }

    function listModels(rec, res, url) {
        const all = fx.modelsList;
        const asked = Number(url.searchParams.get('pageSize')) || cfg.modelsPageDefault;
        const size = Math.max(1, Math.min(asked, cfg.modelsPageMax));
        let offset = 0;
        const token = url.searchParams.get('pageToken');
        if (token) {
            const m = /^offset:(\d+)$/.exec(Buffer.from(token, 'base64').toString('utf8'));
            if (!m) {
                return sendError(rec, res, 400, errorBody(400, 'INVALID_ARGUMENT', 'Invalid page token.'));
            }
            offset = Number(m[1]);
        }
        const page = all.slice(offset, offset + size);
        const body = { models: page };
        if (offset + size < all.length) {
            body.nextPageToken = Buffer.from(`offset:${offset + size}`).toString('base64');
        }
        const text = JSON.stringify(body, null, 2) + '\n';
        rec.status = 200;
        rec.response = text;
        sendJson(res, 200, text);
    }

    async function handleApi(req, res, url, rec) {
        const m = /^\/v1beta\/models(?:\/([^/:]+)(?::([A-Za-z]+))?)?\/?$/.exec(url.pathname);
        if (!m) {
            return sendError(rec, res, 404, errorBody(404, 'NOT_FOUND', 'Requested entity was not found.'));
        }
        const model = m[1] ? decodeURIComponent(m[1]) : null;
        const action = m[2] || null;
        rec.model = model;
        rec.action = action;
        if (model) stats.byModel[model] = (stats.byModel[model] || 0) + 1;

        const isStream = action === 'streamGenerateContent';
        const sse = isStream && url.searchParams.get('alt') === 'sse';
        const wrapped = isStream && !sse;

        const kv = keyVerdict(rec);
        if (kv) return sendError(rec, res, kv[0], kv[1], wrapped);

        if (req.method === 'GET' && !model && !action) {
            if (!(await slowGate(rec))) return;
            return listModels(rec, res, url);
        }
        const mv = model ? modelVerdict(model, action || 'get') : null;
        if (mv) return sendError(rec, res, mv[0], mv[1], wrapped);

        if (req.method === 'GET' && model && !action) {
            if (!(await slowGate(rec))) return;
            const body = { ...fx.modelsGet, name: `models/${model}` };
            const text = JSON.stringify(body, null, 2) + '\n';
            rec.status = 200;
            rec.response = text;
            return sendJson(res, 200, text);
        }
        if (req.method !== 'POST' || !action) {
            return sendError(rec, res, 404, errorBody(404, 'NOT_FOUND', 'Requested entity was not found.'));
        }

        let gen;
        try {
            gen = rec.body ? JSON.parse(rec.body) : {};
        } catch (e) {
            return sendError(rec, res, 400, errorBody(400, 'INVALID_ARGUMENT',
                `Invalid JSON payload received. ${e.message}`), wrapped);
        }
        if (!gen || typeof gen !== 'object' || Array.isArray(gen)) {
            return sendError(rec, res, 400, errorBody(400, 'INVALID_ARGUMENT',
                'Invalid JSON payload received. Expected an object.'), wrapped);
        }

        switch (action) {
        case 'generateContent':
        case 'streamGenerateContent': {
            if (!Array.isArray(gen.contents) || gen.contents.length === 0) {
                return sendError(rec, res, 400, errorBody(400, 'INVALID_ARGUMENT',
                    '* GenerateContentRequest.contents: contents is not specified\n'), wrapped);
            }
            if (!(await slowGate(rec))) return;
            const plan = planReply(rec, gen, model);
            if (rec.key.startsWith('die-') && !isStream) return selfDestroy(rec, res);
            if (isStream && model === 'big-stream') return serveBigStream(rec, res, sse);
            if (isStream) return serveStream(rec, res, plan, sse);
            return serveGenerate(rec, res, plan);
        }
        case 'countTokens':
            if (!(await slowGate(rec))) return;
            rec.status = 200;
            rec.response = fx.countTokens;
            return sendJson(res, 200, fx.countTokens);
        case 'embedContent': {
            if (!(await slowGate(rec))) return;
            let body = fx.embedContent;
            if (model === 'embedding-echo') {
                body = { embedding: { values: embedVector(textsOf(gen.content).join(''), gen.outputDimensionality, fx.batchEmbed.embeddings[0].values) } };
            }
            const text = JSON.stringify(body, null, 2) + '\n';
            rec.status = 200;
            rec.response = text;
            return sendJson(res, 200, text);
        }
        case 'batchEmbedContents': {
            if (!(await slowGate(rec))) return;
            const reqs = Array.isArray(gen.requests) ? gen.requests : [];
            const n = reqs.length;
            const base = fx.batchEmbed.embeddings;
            const body = {
                embeddings: model === 'embedding-echo'
                    ? reqs.map((q) => ({
                        values: embedVector(textsOf(q && q.content).join(''), q && q.outputDimensionality, base[0].values),
                    }))
                    : Array.from({ length: n }, (_, i) => base[i % base.length]),
                usageMetadata: model === 'embedding-echo'
                    ? { promptTokenCount: reqs.reduce((a, q) => a + countWords(textsOf(q && q.content).join(' ')), 0) }
                    : fx.batchEmbed.usageMetadata,
            };
            const text = JSON.stringify(body, null, 2) + '\n';
            rec.status = 200;
            rec.response = text;
            return sendJson(res, 200, text);
        }
        default:
            return sendError(rec, res, 404, errorBody(404, 'NOT_FOUND', 'Requested entity was not found.'));
        }
    }

    /* slow-* keys wait before answering; die-* non-stream requests are cut */
    async function slowGate(rec) {
        if (!rec.key || !rec.key.startsWith('slow-')) return true;
        return wait(rec, slowDelay(rec.key));
    }

    function selfDestroy(rec, res) {
        rec.selfDestroyed = true;
        stats.selfDestroyed++;
        res.socket.destroy();
    }

    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('error', () => {});
        req.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const url = new URL(req.url, 'http://fake.invalid');
            if (url.pathname.startsWith('/__')) return handleControl(req, res, url, body);

            const headerKey = req.headers['x-goog-api-key'];
            const queryKey = url.searchParams.get('key');
            const rec = {
                seq: ++seq,
                time: Date.now(),
                method: req.method,
                path: req.url,
                headers: { ...req.headers },
                body,
                key: headerKey !== undefined ? String(headerKey) : queryKey !== null ? queryKey : '',
                keySource: headerKey !== undefined ? 'header' : queryKey !== null ? 'query' : null,
                model: null,
                action: null,
                status: null,
                response: '',
                bytesSent: 0,
                eventsSent: 0,
                aborted: false,
                selfDestroyed: false,
                finished: false,
                closed: false,
                _wakers: [],
            };
            records.push(rec);
            stats.total++;
            stats.active++;
            stats.byKey[rec.key] = (stats.byKey[rec.key] || 0) + 1;
            res.on('close', () => {
                rec.closed = true;
                stats.active--;
                if (res.writableFinished) {
                    rec.finished = true;
                    stats.completed++;
                } else if (!rec.selfDestroyed) {
                    rec.aborted = true;
                    stats.aborted++;
                }
                for (const w of rec._wakers.splice(0)) w();
            });
            handleApi(req, res, url, rec).catch((e) => {
                process.stderr.write(`fake-upstream: internal error: ${e.stack}\n`);
                if (!res.headersSent) sendJson(res, 500, errorBody(500, 'INTERNAL', 'fake upstream bug: ' + e.message));
                else res.destroy();
            });
        });
    });
    server.keepAliveTimeout = 60000;

    return {
        server,
        cfg,
        requests: () => records.map(publicRecord),
        stats: () => JSON.parse(JSON.stringify(stats)),
        reset: () => {
            records = [];
            keyHits = {};
            emptySeen = new Set();
            keyStates = {};
            stats = freshStats();
        },
        config: (patch) => {
            applyConfig(patch);
            return { ...cfg };
        },
        keyState: (key, state) => {
            setKeyState(key, state);
            return { ...keyStates };
        },
        stopTimers: () => {
            for (const e of liveTimers) {
                clearTimeout(e.t);
                e.resolve(false);
            }
            liveTimers.clear();
        },
    };
}

/*
 * Starts a fake upstream.  options: port (0 = any free port), host
 * (127.0.0.1), fixturesDir (default GB_FIXTURES or <repo>/../shared/fixtures),
 * and any of the tunables in DEFAULTS.  Resolves to
 * { url, port, requests(), stats(), reset(), config(patch), close() }.
 */
function startFakeUpstream(options = {}) {
    const fake = createFake(options);
    const host = options.host || '127.0.0.1';
    return new Promise((resolve, reject) => {
        fake.server.once('error', reject);
        fake.server.listen(options.port || 0, host, () => {
            const port = fake.server.address().port;
            resolve({
                url: `http://${host}:${port}`,
                port,
                server: fake.server,
                requests: fake.requests,
                stats: fake.stats,
                reset: fake.reset,
                config: fake.config,
                keyState: fake.keyState,
                close: () => new Promise((done) => {
                    fake.stopTimers();
                    fake.server.close(() => done());
                    fake.server.closeAllConnections();
                }),
            });
        });
    });
}

function envOptions() {
    const o = {};
    for (const [k, name] of Object.entries(ENV_NAMES)) {
        if (process.env[name] !== undefined && process.env[name] !== '') o[k] = Number(process.env[name]);
    }
    return o;
}

function parseArgs(argv) {
    const o = { port: 0, host: '127.0.0.1' };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--port') o.port = Number(val());
        else if (a === '--host') o.host = val();
        else if (a === '--fixtures') o.fixturesDir = path.resolve(val());
        else if (a === '-h' || a === '--help') {
            process.stdout.write('usage: node server.js [--port N] [--host H] [--fixtures DIR]\n');
            process.exit(0);
        } else throw new Error(`unknown argument ${a}`);
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error('--port: expected 0..65535');
    return o;
}

module.exports = { startFakeUpstream, echoText, splitText, geminiCompact, embedVector, UTF8_TEXT, GROUNDING, DEFAULTS };

if (require.main === module) {
    let args;
    try {
        args = parseArgs(process.argv.slice(2));
    } catch (e) {
        process.stderr.write(`fake-upstream: ${e.message}\n`);
        process.exit(2);
    }
    startFakeUpstream({ ...envOptions(), ...args }).then((fake) => {
        process.stdout.write(`fake-upstream listening on ${fake.url}\n`);
        const stop = () => fake.close().then(() => process.exit(0));
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
    }, (e) => {
        process.stderr.write(`fake-upstream: ${e.message}\n`);
        process.exit(1);
    });
}
