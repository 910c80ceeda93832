/*
 * Shared harness of the black-box tests: the fake Gemini upstream (in
 * process), the gateway as a child process (GB_BIN), raw HTTP helpers and the
 * official OpenAI client pointed at the gateway.
 *
 * Environment:
 *   GB_BIN              gateway binary (default <repo>/build/gemini-balance)
 *   GB_WRAPPER          command line to run it under, e.g. "valgrind -q --error-exitcode=99"
 *   GB_START_TIMEOUT_MS how long to wait for "listening on" (default 10000)
 *   GB_E2E_VERBOSE=1    copy the gateway's stderr to ours
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import fakeUpstream from '../../fake_upstream/server.js';

export const { startFakeUpstream, echoText, UTF8_TEXT, GROUNDING } = fakeUpstream;
export { OpenAI };

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = path.resolve(HERE, '..', '..', '..');
export const GB_BIN = process.env.GB_BIN || path.join(REPO_DIR, 'build', 'gemini-balance');
export const FIXTURES_DIR = process.env.GB_FIXTURES || path.resolve(REPO_DIR, '..', 'shared', 'fixtures');
const START_TIMEOUT_MS = Number(process.env.GB_START_TIMEOUT_MS) || 10000;
const SLOWDOWN = process.env.GB_WRAPPER ? 4 : 1; /* valgrind & co: give more time */

/* The client token every gateway of the suite accepts unless told otherwise. */
export const TOKEN = 'sk-e2e-client-token-7f3a9c2e5b1d4f60';

/* Per-test time limits (node:test timeout option), in ms. */
export const T_SHORT = 15000 * SLOWDOWN;
export const T_LONG = 40000 * SLOWDOWN;
export const HOOK = { timeout: 20000 * SLOWDOWN };

/* The 50 models of the fixture list, without the "models/" prefix. */
export function fixtureModelIds() {
    const list = JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, 'gemini', 'models-list.json'), 'utf8'));
    return list.models.map((m) => m.name.replace(/^models\//, ''));
}

let markerSeq = 0;
/* A unique word to put in a prompt, to find the upstream requests it caused. */
export function marker(label = 'm') {
    markerSeq++;
    return `${label}${process.pid.toString(36)}x${markerSeq}x${Date.now().toString(36)}`;
}

export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/* Polls fn() until it returns a truthy value; throws after timeoutMs. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 20, what = 'condition', detail } = {}) {
    const deadline = Date.now() + timeoutMs * SLOWDOWN;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs * SLOWDOWN} ms waiting for ${what}` +
                (detail ? `\n${detail()}` : ''));
        }
        await sleep(intervalMs);
    }
}

/* ------------------------------------------------------------------ */
/* the gateway process                                                 */

function buildEnv(fake, opts) {
    const env = {
        PATH: process.env.PATH || '/usr/local/bin:/usr/bin:/bin',
        HOST: '127.0.0.1',
        PORT: '0',
        WORKERS: '2',
        BASE_URL: fake ? `${fake.url}/v1beta` : 'http://127.0.0.1:9/v1beta',
        API_KEYS: (opts.keys || ['good-e2e-1', 'good-e2e-2']).join(','),
        ALLOWED_TOKENS: (opts.tokens || [TOKEN]).join(','),
        LOG_LEVEL: 'debug',
        ...(opts.env || {}),
    };
    for (const k of Object.keys(env)) {
        if (env[k] === undefined || env[k] === null) delete env[k];
    }
    return env;
}

/* Gateways still running; killed if this process exits without stopping them. */
const live = new Set();
process.on('exit', () => {
    for (const gw of live) {
        try {
            gw.proc.kill('SIGKILL');
            if (gw.ownsDir) fs.rmSync(gw.dir, { recursive: true, force: true });
        } catch {
            /* exiting anyway */
        }
    }
});

class Gateway {
    constructor(proc, dir, ownsDir = true) {
        this.proc = proc;
        this.dir = dir;
        this.ownsDir = ownsDir; /* false: the caller's directory (opts.dir), never removed here */
        this.url = null;
        this.stderrText = '';
        this.stdoutText = '';
        this.exit = null;
        this.waiters = new Set();
        this.exited = new Promise((resolve) => {
            live.add(this);
            proc.on('exit', (code, signal) => {
                live.delete(this);
                this.exit = { code, signal };
                this.notify();
                resolve(this.exit);
            });
        });
        proc.stderr.setEncoding('utf8');
        proc.stdout.setEncoding('utf8');
        proc.stderr.on('data', (s) => {
            this.stderrText += s;
            if (process.env.GB_E2E_VERBOSE) process.stderr.write(s);
            this.notify();
        });
        proc.stdout.on('data', (s) => {
            this.stdoutText += s;
            this.notify();
        });
    }

    notify() {
        for (const w of [...this.waiters]) w();
    }

    /* stderr so far (or since a mark()) */
    stderr(since = 0) {
        return this.stderrText.slice(since);
    }

    /* everything the process printed */
    output() {
        return this.stderrText + this.stdoutText;
    }

    mark() {
        return this.stderrText.length;
    }

    /* Waits until stderr (since `since`) matches re; resolves the match. */
    waitForStderr(re, { timeoutMs = 5000, since = 0 } = {}) {
        return new Promise((resolve, reject) => {
            const check = () => {
                const m = re.exec(this.stderrText.slice(since));
                if (m) {
                    done();
                    resolve(m);
                } else if (this.exit) {
                    done();
                    reject(new Error(`gateway exited (${JSON.stringify(this.exit)}) before ${re} appeared; stderr:\n${this.stderrText}`));
                }
            };
            const timer = setTimeout(() => {
                done();
                reject(new Error(`timed out after ${timeoutMs * SLOWDOWN} ms waiting for ${re} on the gateway's stderr; stderr:\n${this.stderrText}`));
            }, timeoutMs * SLOWDOWN);
            const done = () => {
                clearTimeout(timer);
                this.waiters.delete(check);
            };
            this.waiters.add(check);
            check();
        });
    }

    /*
     * SIGTERM, then SIGKILL after 5 s; removes the temp dir (unless it is
     * the caller's, opts.dir).  Resolves the
     * exit.  Throws when a sanitizer or valgrind reported an error on
     * stderr, or when a gateway we stopped did not exit with status 0 (a
     * crash or a leak report at shutdown): the suite's after() hook fails.
     */
    async stop() {
        const running = !this.exit;
        if (running) {
            this.proc.kill('SIGTERM');
            const t = setTimeout(() => {
                if (!this.exit) this.proc.kill('SIGKILL');
            }, 5000 * SLOWDOWN);
            await this.exited;
            clearTimeout(t);
        }
        if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
        const report = /==\d+==ERROR: |runtime error: |ERROR: (Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer|==\d+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched)|definitely lost: [1-9]/.exec(this.stderrText);
        if (report && (running || !/LeakSanitizer/.test(report[0]))) {
            throw new Error(`the gateway reported a memory error:\n${this.stderrText.slice(Math.max(0, report.index - 200))}`);
        }
        if (running && !(this.exit.code === 0 && this.exit.signal === null)) {
            throw new Error(`the gateway did not exit cleanly on SIGTERM: ${JSON.stringify(this.exit)}; stderr tail:\n${this.stderrText.slice(-3000)}`);
        }
        return this.exit;
    }
}

function spawnGateway(fake, opts = {}) {
    if (!fs.existsSync(GB_BIN)) {
        throw new Error(`gateway binary not found: ${GB_BIN} (build it with make, or set GB_BIN)`);
    }
    const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'gb-e2e-'));
    if (opts.files) {
        for (const [name, text] of Object.entries(opts.files)) fs.writeFileSync(path.join(dir, name), text);
    }
    const wrapper = (process.env.GB_WRAPPER || '').split(/\s+/).filter(Boolean);
    const argv = [...wrapper, GB_BIN, ...(opts.args || [])];
    const proc = spawn(argv[0], argv.slice(1), {
        cwd: dir,
        env: buildEnv(fake, opts),
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Gateway(proc, dir, !opts.dir);
}

/*
 * Starts the gateway against `fake` and waits for its "listening on URL"
 * line.  opts: keys (API_KEYS list), tokens (ALLOWED_TOKENS list), env
 * (overrides; undefined removes a variable), files ({name: text} written
 * into its fresh working directory), args, dir (an existing directory to
 * run in instead of a fresh one, e.g. to restart a gateway on the same
 * DATA_DIR: the caller creates and removes it, stop() leaves it alone).
 * Resolves the Gateway, whose .url is the base URL (no trailing slash).
 */
export async function startGateway(fake, opts = {}) {
    const gw = spawnGateway(fake, opts);
    let m;
    try {
        m = await gw.waitForStderr(/listening on (http:\/\/[^\s"',]+)/, { timeoutMs: START_TIMEOUT_MS });
    } catch (e) {
        await gw.stop().catch(() => {});
        throw e;
    }
    gw.url = m[1].replace(/\/+$/, '');
    return gw;
}

/* Runs fn(gw) with a gateway of its own against `fake`, stopped afterwards
 * whatever fn does. */
export async function withGateway(fake, opts, fn) {
    const gw = await startGateway(fake, opts);
    try {
        return await fn(gw);
    } finally {
        await gw.stop();
    }
}

/*
 * Runs the gateway with a configuration it must refuse.  Resolves
 * { code, signal, stderr, stdout } once it exits; rejects (after killing
 * it) when it is still running after timeoutMs or printed "listening on".
 */
export async function runGatewayExpectingExit(fake, opts = {}, timeoutMs = 10000) {
    const gw = spawnGateway(fake, opts);
    const timer = new Promise((resolve) => setTimeout(resolve, timeoutMs * SLOWDOWN, 'timeout'));
    const r = await Promise.race([gw.exited, timer]);
    if (r === 'timeout') {
        await gw.stop().catch(() => {});
        throw new Error(`gateway did not exit within ${timeoutMs * SLOWDOWN} ms; stderr:\n${gw.stderrText}`);
    }
    await gw.stop();
    return { ...r, stderr: gw.stderrText, stdout: gw.stdoutText };
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

/*
 * One HTTP/1.1 request over a fresh loopback connection.  body: string,
 * Buffer or object (sent as JSON).  Resolves { status, headers, body
 * (Buffer), text, json (parsed or undefined), ms }.
 */
export function request(url, { method = 'GET', headers = {}, body, timeoutMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        let payload = body;
        const h = { ...headers };
        if (payload !== undefined && !Buffer.isBuffer(payload) && typeof payload !== 'string') {
            payload = JSON.stringify(payload);
            if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
        }
        if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload);
        const t0 = Date.now();
        const req = http.request(url, { method, headers: h, agent: false }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const buf = Buffer.concat(chunks);
                const text = buf.toString('utf8');
                let json;
                try {
                    json = JSON.parse(text);
                } catch {
                    json = undefined;
                }
                resolve({ status: res.statusCode, headers: res.headers, body: buf, text, json, ms: Date.now() - t0 });
            });
            res.on('error', reject);
        });
        req.setTimeout(timeoutMs * SLOWDOWN, () => req.destroy(new Error(`request to ${url} timed out`)));
        req.on('error', reject);
        if (payload !== undefined) req.write(payload);
        req.end();
    });
}

/* Authorization header of the suite's token. */
export function auth(token = TOKEN) {
    return { authorization: `Bearer ${token}` };
}

/* POST a chat completion with the suite token; resolves request()'s result. */
export function chat(gw, body, { prefix = '/v1', headers = auth(), timeoutMs } = {}) {
    return request(`${gw.url}${prefix}/chat/completions`, { method: 'POST', headers, body, timeoutMs });
}

/* Parses an OpenAI SSE body: returns { events: [json|'[DONE]'], raw }. */
export function parseOpenAISse(text) {
    const events = [];
    for (const block of text.split('\n\n')) {
        if (block === '') continue;
        const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''))
            .join('\n');
        if (data === '[DONE]') events.push('[DONE]');
        else if (data !== '') events.push(JSON.parse(data));
    }
    return events;
}

/* An OpenAI client against the gateway (no SDK retries: we count attempts). */
export function openai(gw, { prefix = '/v1', apiKey = TOKEN, timeoutMs = 10000 } = {}) {
    return new OpenAI({ apiKey, baseURL: `${gw.url}${prefix}`, maxRetries: 0, timeout: timeoutMs * SLOWDOWN });
}

/* ------------------------------------------------------------------ */
/* upstream records                                                    */

/* Generate calls (generateContent / streamGenerateContent) the fake saw,
 * optionally only those whose body contains `mark`. */
export function generateCalls(fake, mark) {
    return fake.requests().filter((r) => r.method === 'POST' &&
        /:(generateContent|streamGenerateContent)(\?|$)/.test(r.path) &&
        (mark === undefined || r.body.includes(mark)));
}

/* GET /v1beta/models list calls the fake saw. */
export function modelListCalls(fake) {
    return fake.requests().filter((r) => r.method === 'GET' && /^\/v1beta\/models\/?(\?|$)/.test(r.path));
}

export async function health(gw) {
    const r = await request(`${gw.url}/health`);
    if (r.status !== 200 || !r.json) throw new Error(`/health answered ${r.status}: ${r.text}`);
    return r.json;
}

/* Fails with a precise message when any secret appears in any text. */
export function findSecrets(texts, secrets) {
    const found = [];
    for (const [where, text] of Object.entries(texts)) {
        for (const s of secrets) {
            if (text.includes(s)) found.push(`${JSON.stringify(s)} in ${where}`);
        }
    }
    return found;
}

/* Standard suite setup: a fake upstream plus one gateway.  Returns an object
 * whose fields are filled in by the before() hook it registers. */
export function suite(hooks, opts = {}) {
    const ctx = { fake: null, gw: null };
    hooks.before(async () => {
        ctx.fake = await startFakeUpstream({ port: 0, ...(opts.fake || {}) });
        ctx.gw = await startGateway(ctx.fake, opts);
    }, HOOK);
    hooks.after(async () => {
        if (ctx.gw) await ctx.gw.stop();
        if (ctx.fake) await ctx.fake.close();
    }, HOOK);
    return ctx;
}
