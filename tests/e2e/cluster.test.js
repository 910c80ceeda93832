/*
 * Several instances sharing one key pool through Redis (issue 7).
 *
 * A real redis-server (Debian package) is started on a free loopback port
 * with a password and no persistence; two gateways A and B share it and one
 * fake upstream (REDIS_URL=redis://:<password>@127.0.0.1:<port>/1, so AUTH
 * and SELECT are exercised).  Each test starts its own pair (pool state is
 * per process) and empties Redis first.  Requests are told apart at the
 * fake by a marker naming the instance.  Without /usr/bin/redis-server the
 * suite is skipped with a message.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
    startFakeUpstream, startGateway, chat, request, auth, marker, generateCalls, waitFor, sleep,
    findSecrets, TOKEN, T_LONG, HOOK,
} from './lib/harness.js';

const REDIS_BIN = '/usr/bin/redis-server';
const HAVE_REDIS = fs.existsSync(REDIS_BIN);
const REDIS_PASSWORD = 'e2e-redis-pass-5c1f9a';
const REDIS_DB = 1;
const FLASH = 'gemini-2.5-flash';
const PRO = 'gemini-2.5-pro';
/* How fast a change made at one instance must be seen at the other, in ms. */
const PROPAGATE_MS = 1000;

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

/* ------------------------------------------------------------------ */
/* a minimal RESP client (one connection per call)                     */

function encodeCommand(args) {
    let out = `*${args.length}\r\n`;
    for (const a of args) out += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
    return out;
}

/* Parses one reply at buf[i..]; returns { value, next } or null when incomplete. */
function parseReply(buf, i = 0) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) return null;
    const type = String.fromCharCode(buf[i]);
    const line = buf.toString('utf8', i + 1, eol);
    switch (type) {
    case '+': return { value: line, next: eol + 2 };
    case '-': return { value: new Error(line), next: eol + 2 };
    case ':': return { value: Number(line), next: eol + 2 };
    case '$': {
        const n = Number(line);
        if (n < 0) return { value: null, next: eol + 2 };
        if (buf.length < eol + 2 + n + 2) return null;
        return { value: buf.toString('utf8', eol + 2, eol + 2 + n), next: eol + 2 + n + 2 };
    }
    case '*': {
        const n = Number(line);
        if (n < 0) return { value: null, next: eol + 2 };
        const arr = [];
        let at = eol + 2;
        for (let k = 0; k < n; k++) {
            const r = parseReply(buf, at);
            if (!r) return null;
            arr.push(r.value);
            at = r.next;
        }
        return { value: arr, next: at };
    }
    default: throw new Error(`bad RESP reply: ${JSON.stringify(buf.toString())}`);
    }
}

/* Sends AUTH, SELECT and then args; resolves the last reply (an Error value
 * for an error reply).  Rejects on a connection error or after timeoutMs. */
function redisCall(port, args, { timeoutMs = 1000 } = {}) {
    const cmds = [['AUTH', REDIS_PASSWORD], ['SELECT', String(REDIS_DB)], args];
    return new Promise((resolve, reject) => {
        const sock = net.connect({ port, host: '127.0.0.1' });
        let buf = Buffer.alloc(0);
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`redis on port ${port}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        sock.on('connect', () => sock.write(cmds.map(encodeCommand).join('')));
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            const replies = [];
            let at = 0;
            for (let k = 0; k < cmds.length; k++) {
                const r = parseReply(buf, at);
                if (!r) return;
                replies.push(r.value);
                at = r.next;
            }
            clearTimeout(timer);
            sock.end();
            resolve(replies.at(-1));
        });
        sock.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
    });
}

function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/* One redis-server process on a fixed port (restartable on the same port). */
class RedisServer {
    constructor(port, dir) {
        this.port = port;
        this.dir = dir;
        this.proc = null;
        this.log = '';
    }

    async start() {
        this.proc = spawn(REDIS_BIN, [
            '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
            '--requirepass', REDIS_PASSWORD, '--dir', this.dir, '--daemonize', 'no',
        ], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
        const proc = this.proc;
        proc.stdout.on('data', (d) => { this.log += d; });
        proc.stderr.on('data', (d) => { this.log += d; });
        this.exited = new Promise((resolve) => proc.on('exit', resolve));
        await waitFor(async () => {
            if (proc.exitCode !== null) throw new Error(`redis-server exited:\n${this.log}`);
            return (await redisCall(this.port, ['PING']).catch(() => null)) === 'PONG';
        }, { timeoutMs: 10000, intervalMs: 50, what: `redis-server on port ${this.port}` });
    }

    /* SIGKILL: the abrupt way a Redis goes away. */
    async kill() {
        if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
        this.proc.kill('SIGKILL');
        await this.exited;
        this.proc = null;
    }
}

/* ------------------------------------------------------------------ */
/* gateways                                                            */

function admin(gw, p, { method = 'GET', body } = {}) {
    return request(`${gw.url}${p}`, { method, body, headers: auth(TOKEN) });
}

async function keyItems(gw) {
    const r = await admin(gw, '/api/keys?state=all&limit=1000');
    assert.equal(r.status, 200, `GET /api/keys: ${r.status} ${r.text}`);
    return r.json.items;
}

async function keyItem(gw, key) {
    return (await keyItems(gw)).find((it) => it.hash === sha256(key));
}

/* One chat request at gw for model; returns { r, calls: its upstream attempts }. */
async function ask(fake, gw, name, model = FLASH) {
    const m = marker(name);
    const r = await chat(gw, { model, messages: [{ role: 'user', content: m }] });
    return { r, calls: generateCalls(fake, m) };
}

describe('cluster: instances sharing key state through redis', {
    skip: HAVE_REDIS ? false : `${REDIS_BIN} not found: install the Debian package redis-server (scripts/deps.sh test)`,
}, () => {
    let fake, redis, redisDir, redisUrl;
    const gateways = [];

    before(async () => {
        fake = await startFakeUpstream({ port: 0 });
        redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gb-e2e-redis-'));
        redis = new RedisServer(await freePort(), redisDir);
        await redis.start();
        redisUrl = `redis://:${REDIS_PASSWORD}@127.0.0.1:${redis.port}/${REDIS_DB}`;
    }, HOOK);

    after(async () => {
        for (const gw of gateways.splice(0)) await gw.stop().catch(() => {});
        if (redis) await redis.kill();
        if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true });
        if (fake) await fake.close();
    }, HOOK);

    /* Starts one instance on the shared Redis and waits until it is in sync. */
    async function startInstance(keys, env = {}) {
        const gw = await startGateway(fake, {
            keys,
            env: { REDIS_URL: redisUrl, AUTH_TOKEN: TOKEN, ...env },
        });
        gateways.push(gw);
        await gw.waitForStderr(/cluster: connected to redis/, { timeoutMs: 5000 });
        return gw;
    }

    /* Runs fn(A, B) with two fresh instances on an emptied Redis; stops them,
     * checking for sanitizer reports, a clean exit and no secret in any log. */
    async function withPair(keys, env, fn, secrets = []) {
        assert.equal(await redisCall(redis.port, ['FLUSHDB']), 'OK');
        fake.reset();
        const a = await startInstance(keys, env);
        const b = await startInstance(keys, env);
        try {
            await fn(a, b);
        } finally {
            for (const gw of [a, b]) {
                gateways.splice(gateways.indexOf(gw), 1);
                await gw.stop();
            }
        }
        const leaks = findSecrets({ 'A output': a.output(), 'B output': b.output() },
            [REDIS_PASSWORD, ...secrets]);
        assert.deepEqual(leaks, [], 'a secret appeared in a log');
    }

    test('a key disabled through A is never used by B afterwards', { timeout: T_LONG }, async () => {
        const keys = ['good-cl-d1', 'good-cl-d2', 'good-cl-d3'];
        await withPair(keys, {}, async (a, b) => {
            const it = await keyItem(a, 'good-cl-d2');
            const r = await admin(a, `/api/keys/${it.idx}/disable`, { method: 'POST' });
            assert.equal(r.status, 200, r.text);
            await waitFor(async () => (await keyItem(b, 'good-cl-d2')).state === 'disabled',
                { timeoutMs: PROPAGATE_MS, what: 'B to see the key disabled at A' });
            const used = [];
            for (let i = 0; i < 9; i++) {
                const { r: res, calls } = await ask(fake, b, 'clB');
                assert.equal(res.status, 200, res.text);
                used.push(...calls.map((c) => c.key));
            }
            assert.ok(!used.includes('good-cl-d2'), `B used the key disabled at A: ${used}`);
            assert.deepEqual([...new Set(used)].sort(), ['good-cl-d1', 'good-cl-d3']);
            const st = await admin(b, '/api/status');
            assert.deepEqual(st.json.cluster, { enabled: true, connected: true, dropped: 0 });
        });
    });

    test('a 429 cooldown learned by A on one model is respected by B on that model only', { timeout: T_LONG }, async () => {
        const keys = ['quotapro-cl-q1', 'good-cl-q2'];
        await withPair(keys, {}, async (a, b) => {
            /* A meets the 429 for PRO (and answers from the other key) */
            let hit = false;
            for (let i = 0; i < 4 && !hit; i++) {
                const { r, calls } = await ask(fake, a, 'clA', PRO);
                assert.equal(r.status, 200, r.text);
                hit = calls.some((c) => c.key === 'quotapro-cl-q1' && c.status === 429);
            }
            assert.ok(hit, 'A never tried the key that 429s for PRO');
            await waitFor(async () => {
                const it = await keyItem(b, 'quotapro-cl-q1');
                return it.cooldowns.some((c) => c.model === PRO);
            }, { timeoutMs: PROPAGATE_MS, what: 'B to see the cooldown learned at A' });
            const it = await keyItem(b, 'quotapro-cl-q1');
            assert.deepEqual(it.cooldowns.map((c) => c.model), [PRO], JSON.stringify(it));

            /* B: PRO never goes to the cooling key ... */
            for (let i = 0; i < 6; i++) {
                const { r, calls } = await ask(fake, b, 'clB', PRO);
                assert.equal(r.status, 200, r.text);
                assert.deepEqual(calls.map((c) => c.key), ['good-cl-q2'], 'B tried a key cooling for PRO');
            }
            /* ... while FLASH still uses it */
            const flash = [];
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, b, 'clB', FLASH);
                assert.equal(r.status, 200, r.text);
                flash.push(...calls.map((c) => c.key));
            }
            assert.equal(flash.filter((k) => k === 'quotapro-cl-q1').length, 2,
                `B did not rotate FLASH over both keys: ${flash}`);
        });
    });

    test('a key added through A serves requests at B within a second', { timeout: T_LONG }, async () => {
        const ADDED = 'good-cl-added-7Hq2x9';
        await withPair(['good-cl-a1', 'good-cl-a2'], {}, async (a, b) => {
            const r = await admin(a, '/api/keys', { method: 'POST', body: { keys: `${ADDED}\n` } });
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.added.length, 1, r.text);
            const t0 = Date.now();
            await waitFor(async () => (await keyItem(b, ADDED)) !== undefined,
                { timeoutMs: PROPAGATE_MS, what: 'B to list the key added at A' });
            let served = false;
            for (let i = 0; i < 3 && !served; i++) {
                const { r: res, calls } = await ask(fake, b, 'clB');
                assert.equal(res.status, 200, res.text);
                served = calls.some((c) => c.key === ADDED && c.status === 200);
            }
            assert.ok(served, 'B never used the key added at A');
            assert.ok(Date.now() - t0 < 3000, 'too slow');
            const it = await keyItem(b, ADDED);
            assert.equal(it.from_admin, true);
            /* the secret travels only through Redis, never into a log line */
        }, [ADDED]);
    });

    test('KEY_RPM_LIMIT holds across both instances', { timeout: T_LONG }, async () => {
        /* the window is the wall-clock minute: do not straddle it */
        const inMinute = Date.now() % 60000;
        if (inMinute > 40000) await sleep(60000 - inMinute + 200);
        await withPair(['good-cl-rpm'], { KEY_RPM_LIMIT: '3' }, async (a, b) => {
            const order = [a, b, a];
            for (let i = 0; i < order.length; i++) {
                const { r } = await ask(fake, order[i], i % 2 ? 'clB' : 'clA');
                assert.equal(r.status, 200, `request ${i + 1}: ${r.status} ${r.text}`);
                await sleep(100); /* the count's round trip through Redis */
            }
            for (const gw of [b, a]) {
                const { r, calls } = await ask(fake, gw, 'clX');
                assert.equal(r.status, 503, `a 4th request in the minute was served: ${r.text}`);
                assert.equal(calls.length, 0);
            }
            assert.equal(generateCalls(fake).length, 3, 'the upstream saw more than 3 calls');
        });
    });

    test('redis going away mid-run loses no request; state made meanwhile reaches the other instance', { timeout: T_LONG }, async () => {
        const keys = ['good-cl-o1', 'good-cl-o2', 'good-cl-o3'];
        await withPair(keys, {}, async (a, b) => {
            /* shared before the outage: o3 disabled at B */
            const o3 = await keyItem(b, 'good-cl-o3');
            assert.equal((await admin(b, `/api/keys/${o3.idx}/disable`, { method: 'POST' })).status, 200);
            await waitFor(async () => (await keyItem(a, 'good-cl-o3')).state === 'disabled',
                { timeoutMs: PROPAGATE_MS, what: 'A to see o3 disabled at B' });

            /* clients keep asking both instances the whole time */
            const statuses = [];
            let running = true;
            const loop = async (gw, name) => {
                while (running) {
                    const { r } = await ask(fake, gw, name);
                    statuses.push(`${name}:${r.status}`);
                    await sleep(20);
                }
            };
            const loops = [loop(a, 'clA'), loop(b, 'clB')];
            try {
                await sleep(300);
                const markA = a.mark(), markB = b.mark();
                await redis.kill();
                await a.waitForStderr(/redis unreachable/, { since: markA, timeoutMs: 5000 });
                await b.waitForStderr(/redis unreachable/, { since: markB, timeoutMs: 5000 });

                /* changed at A while Redis is away */
                const o1 = await keyItem(a, 'good-cl-o1');
                assert.equal((await admin(a, `/api/keys/${o1.idx}/disable`, { method: 'POST' })).status, 200);
                await sleep(1000);
                assert.equal((await keyItem(b, 'good-cl-o1')).state, 'usable', 'B learned it without Redis?');

                await redis.start(); /* same port, empty */
                await a.waitForStderr(/redis back/, { since: markA, timeoutMs: 15000 });
                await b.waitForStderr(/redis back/, { since: markB, timeoutMs: 15000 });
                await waitFor(async () => (await keyItem(b, 'good-cl-o1')).state === 'disabled',
                    { timeoutMs: 3000, what: 'B to learn the key disabled at A during the outage' });
                await sleep(300);
            } finally {
                running = false;
                await Promise.all(loops);
            }
            assert.ok(statuses.length >= 20, `too few requests during the run: ${statuses.length}`);
            const bad = statuses.filter((s) => !s.endsWith(':200'));
            assert.deepEqual(bad, [], `requests failed while Redis went away: ${bad.length} of ${statuses.length}`);

            /* the emptied Redis was refilled with what the instances knew */
            for (const k of ['good-cl-o1', 'good-cl-o3']) {
                const v = await redisCall(redis.port, ['HGET', `gb:key:${sha256(k)}`, 'json']);
                assert.ok(typeof v === 'string', `no shared state for ${k} after the restart: ${v}`);
                assert.equal(JSON.parse(v).disabled, true, v);
            }
            assert.equal((await keyItem(a, 'good-cl-o3')).state, 'disabled');
            for (let i = 0; i < 4; i++) {
                const { r, calls } = await ask(fake, b, 'clB');
                assert.equal(r.status, 200, r.text);
                assert.deepEqual(calls.map((c) => c.key), ['good-cl-o2']);
            }
            for (const gw of [a, b]) {
                const st = await admin(gw, '/api/status');
                assert.equal(st.json.cluster.connected, true, st.text);
            }
        });
    });

    test('instances do not all start on the same key (random start of the rotation)', { timeout: T_LONG }, async () => {
        const keys = Array.from({ length: 8 }, (_, i) => `good-cl-s${i}`);
        const firsts = [];
        let differed = false;
        for (let round = 0; round < 4 && !differed; round++) {
            await withPair(keys, {}, async (a, b) => {
                const fa = (await ask(fake, a, 'clA')).calls[0].key;
                const fb = (await ask(fake, b, 'clB')).calls[0].key;
                firsts.push([fa, fb]);
                differed = fa !== fb;
            });
        }
        /* the same first key in 4 rounds in a row: (1/8)^4 by chance */
        assert.ok(differed, `A and B started on the same key every time: ${JSON.stringify(firsts)}`);
    });
});
