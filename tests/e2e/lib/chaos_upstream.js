/*
 * A chaotic fake Gemini upstream for the fault tests (tests/e2e/chaos.test.js).
 *
 * node:http only.  It answers POST /v1beta/models/{m}:generateContent and
 * :streamGenerateContent?alt=sse (events framed "data: <json>\r\n\r\n", as
 * Google frames them) and, for each request, draws what to do from a seeded
 * PRNG:
 *
 *   kind        share  what happens
 *   good         60%   a correct answer (stream: 5-10 events, 1-8 ms apart)
 *   key_invalid   8%   400 error-400-api-key-invalid.json
 *   quota         8%   429 error-429-quota-retryinfo-short.json or
 *                      error-429-resource-exhausted.json (RetryInfo.retryDelay
 *                      set to retryDelay, below)
 *   unavailable   8%   503 error-503-unavailable-overloaded.json
 *   reset         5%   stream: 200 and 1-3 events, then the socket is destroyed;
 *                      non-stream: the socket is destroyed without an answer
 *   stall         4%   nothing more is sent for stallMs (5 s, past the gateway's
 *                      TIME_OUT / STREAM_IDLE_TIMEOUT), then the socket is
 *                      destroyed; streams stall before the headers or after 1-2
 *                      events (half each)
 *   malformed     4%   non-stream: 200 with the good JSON body cut short;
 *                      stream: half "garbage" (an event that is not JSON among
 *                      complete good events: the answer is still whole), half
 *                      "truncated" (1-3 events, then half an event, then the
 *                      reply ends cleanly)
 *   empty         3%   200 with an empty body (stream: no event at all)
 *
 * The draws come from one PRNG (mulberry32) seeded with `seed` (default:
 * $CHAOS_SEED, else 20240607), one draw sequence per request in arrival
 * order: a run is reproducible as far as the order of arrival is (under
 * concurrency the n-th request to arrive gets the n-th verdict).
 *
 * The answer text is "Echo: <user text> one two ... ten", where the user text
 * is the text parts of the last user content, so a client can check the
 * exact content it gets back.  Every generate call is recorded (user text,
 * key from x-goog-api-key, kind, events sent, whether the gateway hung up
 * first, the connection and its n-th request, times) and counted;
 * stats().loopBlocks lists the moments this process's event loop stalled
 * for more than 100 ms (under load it can be late to accept a connection,
 * so a call may be handled after the gateway has given up on it).
 *
 * In-process:
 *   import { startChaosUpstream } from './chaos_upstream.js';
 *   const up = await startChaosUpstream({ port: 0, seed: 7 });
 *   up.url, up.stats(), up.calls(), up.reset(), await up.close()
 * As a separate process (what chaos.test.js does, so the client's work does
 * not slow the upstream's answers down):
 *   node tests/e2e/lib/chaos_upstream.js --port 0 [--seed N]
 *     -> prints "chaos-upstream listening on http://127.0.0.1:<port>"
 *   GET /__chaos/stats, GET /__chaos/calls, POST /__chaos/reset
 *   const up = await spawnChaosUpstream({ seed }); await up.stats(); ...
 *
 * Tunables (options, or CHAOS_* environment variables for the CLI): seed
 * (CHAOS_SEED), stallMs (CHAOS_STALL_MS, 5000), retryDelay (CHAOS_RETRY_DELAY,
 * "1s" so that keys come back soon; "" keeps the fixtures' 34.4s / 26s), mix (CHAOS_MIX, e.g.
 * "good=60,key_invalid=8,..." in percent).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_DIR = path.resolve(HERE, '..', '..', '..');
const FIXTURES = path.join(process.env.GB_FIXTURES || path.resolve(REPO_DIR, '..', 'shared', 'fixtures'), 'gemini');

export const DEFAULT_SEED = 20240607;

/* percent of requests per kind (sums to 100) */
export const DEFAULT_MIX = {
    good: 60, key_invalid: 8, quota: 8, unavailable: 8, reset: 5, stall: 4, malformed: 4, empty: 3,
};
export const KINDS = Object.keys(DEFAULT_MIX);

/* The words every good answer ends with, after "Echo: <user text>". */
export const TAIL = ' one two three four five six seven eight nine ten';
export function expectedText(userText) {
    return `Echo: ${userText}${TAIL}`;
}

/* mulberry32: small, fast, good enough for test verdicts. Returns () => [0,1). */
export function prng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

export function parseMix(text) {
    if (!text) return { ...DEFAULT_MIX };
    const mix = Object.fromEntries(KINDS.map((k) => [k, 0]));
    for (const part of text.split(',')) {
        const [k, v] = part.split('=').map((s) => s.trim());
        if (!(k in mix) || !(Number(v) >= 0)) throw new Error(`CHAOS_MIX: bad entry '${part}' (kinds: ${KINDS.join(', ')})`);
        mix[k] = Number(v);
    }
    return mix;
}

function fixture(name) {
    return JSON.parse(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));
}

/* Gemini's streaming layout: {"a": 1,"b": [2,3]} */
function compact(v) {
    if (Array.isArray(v)) return `[${v.map(compact).join(',')}]`;
    if (v !== null && typeof v === 'object') {
        return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${compact(x)}`).join(',')}}`;
    }
    return JSON.stringify(v);
}

/* The text parts of the last user content, joined ('' if none). */
function userText(body) {
    const contents = body && Array.isArray(body.contents) ? body.contents : [];
    for (let i = contents.length - 1; i >= 0; i--) {
        const c = contents[i];
        if (c && (c.role === undefined || c.role === 'user') && Array.isArray(c.parts)) {
            return c.parts.filter((p) => p && typeof p.text === 'string').map((p) => p.text).join('');
        }
    }
    return '';
}

/* Splits text at word boundaries into n pieces (n <= number of words). */
function splitWords(text, n) {
    const words = text.split(/(?<= )/);
    n = Math.max(1, Math.min(n, words.length));
    const out = [];
    for (let i = 0; i < n; i++) {
        const from = Math.floor((i * words.length) / n);
        const to = Math.floor(((i + 1) * words.length) / n);
        out.push(words.slice(from, to).join(''));
    }
    return out;
}

export async function startChaosUpstream(opts = {}) {
    const env = process.env;
    const seed = Number(opts.seed ?? (env.CHAOS_SEED || DEFAULT_SEED)) >>> 0;
    const stallMs = Number(opts.stallMs ?? (env.CHAOS_STALL_MS || 5000));
    const retryDelay = opts.retryDelay ?? (env.CHAOS_RETRY_DELAY ?? '1s');
    const mix = typeof opts.mix === 'object' && opts.mix ? { ...DEFAULT_MIX, ...opts.mix } : parseMix(opts.mix ?? env.CHAOS_MIX);
    const mixTotal = KINDS.reduce((s, k) => s + mix[k], 0);

    const bodies = {
        keyInvalid: JSON.stringify(fixture('error-400-api-key-invalid.json'), null, 2) + '\n',
        quota: ['error-429-quota-retryinfo-short.json', 'error-429-resource-exhausted.json'].map((f) => {
            const e = fixture(f);
            if (retryDelay) {
                for (const d of e.error.details) if ('retryDelay' in d) d.retryDelay = retryDelay;
            }
            return JSON.stringify(e, null, 2) + '\n';
        }),
        unavailable: JSON.stringify(fixture('error-503-unavailable-overloaded.json'), null, 2) + '\n',
        models: JSON.stringify(fixture('models-list.json'), null, 2) + '\n',
        notFound: JSON.stringify({ error: { code: 404, message: 'Not found (chaos upstream)', status: 'NOT_FOUND' } }, null, 2) + '\n',
    };

    /* event-loop lag: how late this process handles what arrived (a call
     * handled late may already have been given up by the gateway); blocks
     * of the loop longer than 100 ms are listed in stats().loopBlocks */
    let lastTick = performance.now();
    let loopBlocks = [];
    const ticker = setInterval(() => {
        const now = performance.now();
        if (now - lastTick > 110 && loopBlocks.length < 1000) {
            loopBlocks.push({ at: Math.round(performance.timeOrigin + lastTick), ms: Math.round(now - lastTick - 10) });
        }
        lastTick = now;
    }, 10);
    ticker.unref();

    let rand = prng(seed);
    let seq = 0;
    let records = [];
    let counters;
    const sockets = new Set();
    const timers = new Set();

    function resetState() {
        rand = prng(seed);
        seq = 0;
        records = [];
        loopBlocks = [];
        counters = {
            requests: 0, stream: 0, nonStream: 0,
            byKind: Object.fromEntries(KINDS.map((k) => [k, 0])),
            byKindStream: Object.fromEntries(KINDS.map((k) => [k, 0])),
            variants: {},
            gatewayHungUp: 0,   /* the gateway closed the request before we were done */
            other: 0,           /* requests that were not generate calls */
        };
    }
    resetState();

    function pickKind() {
        let x = rand() * mixTotal;
        for (const k of KINDS) {
            if (x < mix[k]) return k;
            x -= mix[k];
        }
        return 'good';
    }
    const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

    function later(ms, fn) {
        const t = setTimeout(() => {
            timers.delete(t);
            fn();
        }, ms);
        timers.add(t);
    }

    function sendJson(res, status, text) {
        res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
        res.end(text);
    }

    function goodObject(model, text, responseId) {
        const words = text.split(' ').length;
        return {
            candidates: [{ content: { parts: [{ text }], role: 'model' }, finishReason: 'STOP', index: 0 }],
            usageMetadata: { promptTokenCount: 5, candidatesTokenCount: words, totalTokenCount: 5 + words },
            modelVersion: model,
            responseId,
        };
    }

    function streamEvents(model, text, n, responseId) {
        const pieces = splitWords(text, n);
        return pieces.map((p, i) => {
            const last = i === pieces.length - 1;
            const cand = { content: { parts: [{ text: p }], role: 'model' } };
            if (last) cand.finishReason = 'STOP';
            const ev = { candidates: [cand], usageMetadata: { promptTokenCount: 5, totalTokenCount: 5 }, modelVersion: model, responseId };
            if (last) ev.usageMetadata = { promptTokenCount: 5, candidatesTokenCount: text.split(' ').length, totalTokenCount: 5 + text.split(' ').length };
            return `data: ${compact(ev)}\r\n\r\n`;
        });
    }

    /* Writes events[0..] one by one, gapMs apart; then done() (unless the
     * gateway hung up). */
    function writeEvents(res, rec, events, gapMs, done) {
        let i = 0;
        const next = () => {
            if (rec.hungUp) return;
            if (i >= events.length) return done();
            res.write(events[i++]);
            rec.events = i;
            later(gapMs, next);
        };
        next();
    }

    function stall(req, res, rec) {
        later(stallMs, () => {
            if (!rec.hungUp) rec.stallEnded = true;
            req.socket.destroy();
        });
    }

    function handleGenerate(req, res, model, stream, raw) {
        let body;
        try {
            body = JSON.parse(raw);
        } catch {
            body = null;
        }
        const text = userText(body);
        const answer = expectedText(text);
        const kind = pickKind();
        const id = `chaos${++seq}`;
        const sock = req.socket;
        sock.chaosReqs = (sock.chaosReqs || 0) + 1;
        const rec = {
            seq, t: performance.timeOrigin + performance.now(), lag: Math.max(0, Math.round(performance.now() - lastTick - 10)), conn: sock.chaosId, connT: sock.chaosT, connReq: sock.chaosReqs, text, key: String(req.headers['x-goog-api-key'] || ''), model, stream, kind,
            variant: '', events: 0, hungUp: false, finished: false,
        };
        records.push(rec);
        counters.requests++;
        counters[stream ? 'stream' : 'nonStream']++;
        counters.byKind[kind]++;
        if (stream) counters.byKindStream[kind]++;
        const variant = (v) => {
            rec.variant = v;
            const name = `${kind}/${v}`;
            counters.variants[name] = (counters.variants[name] || 0) + 1;
        };
        res.on('close', () => {
            if (!res.writableFinished && !rec.stallEnded && !rec.resetByUs) {
                rec.hungUp = true;
                counters.gatewayHungUp++;
            }
        });
        res.on('finish', () => {
            rec.finished = true;
        });
        const sseHead = () => res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        const gap = () => randInt(1, 8);

        switch (kind) {
        case 'good':
            if (stream) {
                sseHead();
                writeEvents(res, rec, streamEvents(model, answer, randInt(5, 10), id), gap(), () => res.end());
            } else {
                sendJson(res, 200, JSON.stringify(goodObject(model, answer, id), null, 2) + '\n');
            }
            return;
        case 'key_invalid':
            return sendJson(res, 400, bodies.keyInvalid);
        case 'quota': {
            const q = randInt(0, 1);
            variant(q ? 'resource-exhausted' : 'retryinfo-short');
            return sendJson(res, 429, bodies.quota[q]);
        }
        case 'unavailable':
            return sendJson(res, 503, bodies.unavailable);
        case 'reset':
            if (stream) {
                const n = randInt(1, 3);
                variant(`after-${n}-events`);
                sseHead();
                const evs = streamEvents(model, answer, 10, id).slice(0, n);
                writeEvents(res, rec, evs, gap(), () => later(gap(), () => {
                    rec.resetByUs = true;
                    req.socket.destroy();
                }));
            } else {
                variant('before-headers');
                rec.resetByUs = true;
                req.socket.destroy();
            }
            return;
        case 'stall':
            if (stream && randInt(0, 1)) {
                const n = randInt(1, 2);
                variant(`after-${n}-events`);
                sseHead();
                writeEvents(res, rec, streamEvents(model, answer, 10, id).slice(0, n), gap(), () => stall(req, res, rec));
            } else {
                variant('before-headers');
                stall(req, res, rec);
            }
            return;
        case 'malformed':
            if (stream) {
                const evs = streamEvents(model, answer, randInt(5, 10), id);
                if (randInt(0, 1)) {
                    variant('garbage-event');
                    const at = randInt(1, evs.length - 1);
                    evs.splice(at, 0, 'data: {"candidates": [{"content": {"parts": [{"text": "oops\r\n\r\n');
                    sseHead();
                    writeEvents(res, rec, evs, gap(), () => res.end());
                } else {
                    variant('truncated-event');
                    const n = randInt(1, 3);
                    const cut = evs[n].slice(0, Math.floor(evs[n].length / 2));
                    sseHead();
                    writeEvents(res, rec, [...evs.slice(0, n), cut], gap(), () => res.end());
                }
            } else {
                variant('truncated-json');
                const full = JSON.stringify(goodObject(model, answer, id), null, 2) + '\n';
                sendJson(res, 200, full.slice(0, randInt(1, full.length - 2)));
            }
            return;
        case 'empty':
            if (stream) {
                sseHead();
                res.end();
            } else {
                sendJson(res, 200, '');
            }
            return;
        default:
            throw new Error(`unknown kind ${kind}`);
        }
    }

    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const url = new URL(req.url, 'http://x');
            const raw = Buffer.concat(chunks).toString('utf8');
            if (url.pathname === '/__chaos/stats') return sendJson(res, 200, JSON.stringify(api.stats()));
            if (url.pathname === '/__chaos/calls') return sendJson(res, 200, JSON.stringify(api.calls()));
            if (url.pathname === '/__chaos/reset' && req.method === 'POST') {
                resetState();
                return sendJson(res, 200, '{}');
            }
            const m = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(url.pathname);
            if (req.method === 'POST' && m) {
                const stream = m[2] === 'streamGenerateContent';
                if (stream && url.searchParams.get('alt') !== 'sse') {
                    counters.other++;
                    return sendJson(res, 400, JSON.stringify({ error: { code: 400, message: 'chaos upstream: alt=sse only', status: 'INVALID_ARGUMENT' } }));
                }
                return handleGenerate(req, res, m[1], stream, raw);
            }
            counters.other++;
            if (req.method === 'GET' && /^\/v1beta\/models\/?$/.test(url.pathname)) return sendJson(res, 200, bodies.models);
            return sendJson(res, 404, bodies.notFound);
        });
    });
    server.keepAliveTimeout = 30000;
    let connSeq = 0;
    server.on('connection', (s) => {
        s.chaosId = ++connSeq;
        s.chaosT = performance.timeOrigin + performance.now();
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, opts.host || '127.0.0.1', resolve);
    });
    const port = server.address().port;

    const api = {
        url: `http://127.0.0.1:${port}`,
        port,
        seed,
        mix,
        stats: () => JSON.parse(JSON.stringify({ ...counters, seed, mix, stallMs, retryDelay, loopBlocks })),
        /* one record per generate call, in arrival order: t (ms, sub-ms
         * precision), conn (connection number), connT (when it was accepted), connReq (1: first request
         * on that connection), text (user text), key, kind, variant, stream,
         * events (SSE events sent), hungUp (the gateway closed first), lag (ms
         * this process's event loop was late when it handled the call) */
        calls: () => records.map((r) => ({
            seq: r.seq, t: r.t, lag: r.lag, conn: r.conn, connT: r.connT, connReq: r.connReq, text: r.text, key: r.key, kind: r.kind, variant: r.variant,
            stream: r.stream, events: r.events, hungUp: r.hungUp,
        })),
        reset: resetState,
        close: () => new Promise((resolve) => {
            clearInterval(ticker);
            for (const t of timers) clearTimeout(t);
            timers.clear();
            server.close(() => resolve());
            for (const s of sockets) s.destroy();
        }),
    };
    return api;
}

/* Runs the upstream in its own node process; same API, but async getters. */
export async function spawnChaosUpstream(opts = {}) {
    const args = [fileURLToPath(import.meta.url), '--port', '0'];
    const env = { ...process.env };
    if (opts.seed !== undefined) env.CHAOS_SEED = String(opts.seed);
    if (opts.stallMs !== undefined) env.CHAOS_STALL_MS = String(opts.stallMs);
    if (opts.retryDelay !== undefined) env.CHAOS_RETRY_DELAY = String(opts.retryDelay);
    if (opts.mix !== undefined) env.CHAOS_MIX = String(opts.mix);
    const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const killOnExit = () => proc.kill('SIGKILL');
    process.on('exit', killOnExit); /* never leave it behind */
    proc.on('exit', () => process.off('exit', killOnExit));
    let out = '';
    let err = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (s) => { err += s; });
    const url = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`chaos upstream did not start: ${err}`)), 10000);
        proc.stdout.setEncoding('utf8');
        proc.stdout.on('data', (s) => {
            out += s;
            const m = /chaos-upstream listening on (http:\/\/\S+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolve(m[1]);
            }
        });
        proc.on('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`chaos upstream exited (${code}): ${err}`));
        });
    });
    const get = (p, method = 'GET') => new Promise((resolve, reject) => {
        const req = http.request(`${url}${p}`, { method, agent: false }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                try {
                    resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
                } catch (e) {
                    reject(e);
                }
            });
        });
        req.on('error', reject);
        req.end();
    });
    return {
        url,
        pid: proc.pid,
        stats: () => get('/__chaos/stats'),
        calls: () => get('/__chaos/calls'),
        reset: () => get('/__chaos/reset', 'POST'),
        stderr: () => err,
        close: () => new Promise((resolve) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
            proc.once('exit', () => resolve());
            proc.kill('SIGTERM');
        }),
    };
}

/* CLI */
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const argv = process.argv.slice(2);
    const opt = (name) => {
        const i = argv.indexOf(name);
        return i >= 0 ? argv[i + 1] : undefined;
    };
    const up = await startChaosUpstream({
        port: Number(opt('--port') || 0),
        host: opt('--host'),
        seed: opt('--seed'),
    });
    process.stdout.write(`chaos-upstream listening on ${up.url}\n`);
    const stop = () => up.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}
