/*
 * A stand-in for the gateway's admin side, to develop and test the admin page
 * (src/admin/page.html) without the C build: it serves the page at /admin and
 * /admin/login and answers the admin JSON API (/api/...) from memory, with the
 * shapes of the real one (src/admin/admin.c, src/store/store.c).
 *
 * Keys behave by prefix like the fake upstream's: good-* verify fine,
 * quota-* are cooling (429), anything else fails with 400 API_KEY_INVALID.
 *
 *   node tests/e2e/lib/admin_mock.js [--port 8099] [--token T] [--keys a,b,c]
 *   prints "admin-mock listening on http://127.0.0.1:<port>"
 *
 * In a test:
 *   const mock = await startAdminMock({ token, keys });
 *   mock.url; mock.calls (list of "METHOD /path"); mock.state; await mock.close();
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PAGE_PATH = path.resolve(HERE, '..', '..', '..', 'src', 'admin', 'page.html');
const HOUR = 3600 * 1000;

/* The gateway's masking (gb_log_mask): "...<last 4>" from 12 characters on. */
export function maskedId(idx, key) {
    return `#${idx}${key.length >= 12 ? `...${key.slice(-4)}` : '***'}`;
}

function sha(s) {
    return crypto.createHash('sha256').update(s).digest('hex');
}

function newKey(idx, key, fromAdmin) {
    return {
        key, idx, id: maskedId(idx, key), hash: sha(key), disabled: false, deleted: false,
        failures: 0, last_error: '', requests: 0, successes: 0, minute_count: 0, day_count: 0,
        latency_ms: 0, last_used_ms: 0, from_admin: fromAdmin, cooldowns: [],
    };
}

function stateOf(k) {
    return k.disabled ? 'disabled' : k.cooldowns.some((c) => c.until_ms > Date.now()) ? 'cooling' : 'usable';
}

function keyJson(k) {
    return {
        idx: k.idx, id: k.id, hash: k.hash, state: stateOf(k), failures: k.failures, last_error: k.last_error,
        requests: k.requests, successes: k.successes, minute_count: k.minute_count, day_count: k.day_count,
        latency_ms: k.latency_ms, last_used_ms: k.last_used_ms, from_admin: k.from_admin,
        cooldowns: k.cooldowns.filter((c) => c.until_ms > Date.now()),
    };
}

/* What a real check of the key upstream would answer. */
function probe(key) {
    if (key.startsWith('good-')) return { ok: true, status: 200, error: '' };
    if (key.startsWith('quota-')) return { ok: false, status: 429, error: 'RESOURCE_EXHAUSTED: quota exceeded' };
    return { ok: false, status: 400, error: 'API_KEY_INVALID: API key not valid. Please pass a valid API key.' };
}

export function createState({ keys = [], now = Date.now() } = {}) {
    const st = { keys: [], requests: [], errors: [], started: now, throttled: false, storeDropped: 0 };
    keys.forEach((k) => st.keys.push(newKey(st.keys.length, k, false)));
    const models = ['gemini-2.5-flash', 'gemini-2.5-pro', 'text-embedding-004'];
    /* a day of made-up traffic, for the stats and logs */
    let n = 0;
    for (let t = now - 23.5 * HOUR; t < now; t += HOUR / 3) {
        const k = st.keys[n % Math.max(st.keys.length, 1)];
        const ok = !k || probe(k.key).ok;
        const model = models[n % models.length];
        const rec = {
            ts_ms: Math.round(t), route: n % 2 ? 'POST /v1/chat/completions' : 'POST /v1beta/models:generateContent',
            model, key_hash: k ? k.hash : '', key_id: k ? k.id : '', status: ok ? 200 : 400, attempts: ok ? 1 : 2,
            latency_ms: 120 + (n * 37) % 400, prompt_tokens: ok ? 10 + n % 7 : 0, completion_tokens: ok ? 20 + n % 11 : 0,
        };
        rec.total_tokens = rec.prompt_tokens + rec.completion_tokens;
        st.requests.unshift(rec);
        if (k) {
            k.requests++;
            if (ok) k.successes++;
            k.last_used_ms = rec.ts_ms;
            k.latency_ms = rec.latency_ms;
        }
        if (!ok) {
            st.errors.unshift({
                ts_ms: rec.ts_ms, key_hash: rec.key_hash, key_id: rec.key_id, model, status: 400,
                reason: 'API_KEY_INVALID', message: 'API key not valid. Please pass a valid API key.',
            });
        }
        n++;
    }
    for (const k of st.keys) {
        const p = probe(k.key);
        if (!p.ok) {
            k.failures = 1;
            k.last_error = `${p.status} ${p.error}`;
        }
        if (k.key.startsWith('quota-')) k.cooldowns.push({ model: 'gemini-2.5-pro', until_ms: now + 95 * 1000 });
    }
    return st;
}

function page(list, q) {
    const offset = Math.max(0, Number(q.get('offset')) || 0);
    const limit = Math.min(1000, Math.max(1, Number(q.get('limit')) || 50));
    return { items: list.slice(offset, offset + limit), total: list.length, limit, offset };
}

function stats(st) {
    const now = Date.now();
    const reqs = st.requests;
    const per = new Map();
    const h0 = Math.floor(now / HOUR) * HOUR - 23 * HOUR;
    const hourly = Array.from({ length: 24 }, (_, i) => ({ hour_start_ms: h0 + i * HOUR, requests: 0, errors: 0 }));
    let success = 0;
    let prompt = 0;
    let completion = 0;
    for (const r of reqs) {
        const ok = r.status === 200;
        if (ok) success++;
        prompt += r.prompt_tokens;
        completion += r.completion_tokens;
        const m = per.get(r.model) || { model: r.model, requests: 0, success: 0, tokens: 0 };
        m.requests++;
        if (ok) m.success++;
        m.tokens += r.total_tokens;
        per.set(r.model, m);
        const i = Math.floor((r.ts_ms - h0) / HOUR);
        if (i >= 0 && i < 24) {
            hourly[i].requests++;
            if (!ok) hourly[i].errors++;
        }
    }
    const perKey = st.keys.filter((k) => !k.deleted).map((k) => ({ key_id: k.id, key_hash: k.hash, requests: k.requests, success: k.successes }));
    return {
        requests: {
            total: reqs.length, success, failed: reqs.length - success,
            last_hour: reqs.filter((r) => r.ts_ms > now - HOUR).length, last_day: reqs.filter((r) => r.ts_ms > now - 24 * HOUR).length,
        },
        success_rate: reqs.length ? success / reqs.length : 0,
        tokens: { prompt, completion, total: prompt + completion },
        per_model: [...per.values()].sort((a, b) => b.requests - a.requests),
        per_key: perKey, hourly,
    };
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

export function startAdminMock({ token = 'admin-token', keys = [], port = 0, host = '127.0.0.1', pagePath = PAGE_PATH } = {}) {
    const st = createState({ keys });
    const sessions = new Set();
    const calls = [];

    function send(res, status, obj, headers = {}) {
        const body = JSON.stringify(obj);
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
        res.end(body);
    }
    const err = (res, status, message) => send(res, status, { error: { message, type: 'error', code: null } });

    function isAdmin(req) {
        if ((req.headers.authorization || '') === `Bearer ${token}`) return true;
        const m = /(?:^|;\s*)gb_session=([0-9a-f]{64})/.exec(req.headers.cookie || '');
        return !!(m && sessions.has(m[1]));
    }

    async function handle(req, res) {
        const u = new URL(req.url, 'http://x');
        const p = u.pathname;
        const q = u.searchParams;
        calls.push(`${req.method} ${p}${u.search}`);
        if (p === '/admin' || p === '/admin/login' || p.startsWith('/admin/')) {
            if (p !== '/admin/login' && !isAdmin(req)) {
                res.writeHead(302, { location: '/admin/login', 'content-type': 'text/plain' });
                res.end('login first\n');
                return;
            }
            res.writeHead(200, {
                'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY',
                'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            });
            res.end(fs.readFileSync(pagePath));
            return;
        }
        if (!p.startsWith('/api/')) return err(res, 404, 'not found');
        const text = await readBody(req);
        let body = {};
        if (text) {
            try {
                body = JSON.parse(text);
            } catch {
                return err(res, 400, 'the body must be a JSON object');
            }
        }
        if (p === '/api/login' && req.method === 'POST') {
            if (body.token !== token) return err(res, 401, 'wrong admin token');
            const sid = crypto.randomBytes(32).toString('hex');
            sessions.add(sid);
            return send(res, 200, { ok: true }, { 'set-cookie': `gb_session=${sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200` });
        }
        if (p === '/api/logout' && req.method === 'POST') {
            const m = /gb_session=([0-9a-f]{64})/.exec(req.headers.cookie || '');
            if (m) sessions.delete(m[1]);
            return send(res, 200, { ok: true }, { 'set-cookie': 'gb_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0' });
        }
        if (!isAdmin(req)) return err(res, 401, "admin only: log in at /admin or send 'Authorization: Bearer <AUTH_TOKEN>'");
        const live = st.keys.filter((k) => !k.deleted);
        if (p === '/api/status') {
            const c = { total: live.length, usable: 0, cooling: 0, disabled: 0 };
            for (const k of live) c[stateOf(k)]++;
            return send(res, 200, {
                version: '0.0.0-mock', uptime_s: Math.round((Date.now() - st.started) / 1000) + 3 * 3600 + 125, keys: c,
                throttled: st.throttled, throttle_ms_left: st.throttled ? 4200 : 0, store_dropped: st.storeDropped, instance: 'mock-host',
            });
        }
        if (p === '/api/keys' && req.method === 'POST') {
            if (typeof body.keys !== 'string' && !Array.isArray(body.keys)) return err(res, 400, 'expected {"keys": "k1\\nk2"}');
            const text2 = Array.isArray(body.keys) ? body.keys.join('\n') : body.keys;
            const out = { added: [], duplicates: 0, invalid: 0 };
            for (const t of text2.split(/[\s,;"'[\]]+/).filter(Boolean)) {
                if (t.length < 4 || t.length > 512) out.invalid++;
                else if (live.some((k) => k.key === t)) out.duplicates++;
                else {
                    const k = newKey(st.keys.length, t, true);
                    st.keys.push(k);
                    live.push(k);
                    out.added.push(k.id);
                }
            }
            return send(res, 200, out);
        }
        if (p === '/api/keys' && req.method === 'GET') {
            const state = q.get('state') || 'all';
            const sub = q.get('q') || '';
            const list = live.filter((k) => (state === 'all' || stateOf(k) === state) && (!sub || k.id.includes(sub)));
            const out = page(list, q);
            out.items = out.items.map((k) => {
                const j = keyJson(k);
                const today = st.requests.filter((r) => r.key_hash === k.hash && r.ts_ms >= new Date().setUTCHours(0, 0, 0, 0)).length;
                const hour = st.requests.filter((r) => r.key_hash === k.hash && r.ts_ms >= Math.floor(Date.now() / HOUR) * HOUR).length;
                j.usage = { hour, today };
                return j;
            });
            return send(res, 200, out);
        }
        if (p === '/api/keys/export') return send(res, 200, { keys: live.map((k) => k.key) });
        if (p === '/api/keys/verify' && req.method === 'POST') {
            let list;
            if (Array.isArray(body.ids)) list = live.filter((k) => body.ids.includes(k.idx));
            else if (body.all === true) list = live;
            else if (typeof body.state === 'string') list = live.filter((k) => stateOf(k) === body.state);
            else return err(res, 400, 'expected {"all": true}, {"ids": [...]} or {"state": "disabled"}');
            for (const k of list) setTimeout(() => applyProbe(k), 300);
            return send(res, 202, { started: list.length });
        }
        const m = /^\/api\/keys\/(\d+)(\/[a-z]+)?$/.exec(p);
        if (m) {
            const k = live.find((x) => x.idx === Number(m[1]));
            if (!k) return err(res, 404, `no key with index ${m[1]}`);
            const action = m[2] || '';
            if (req.method === 'DELETE' && !action) {
                k.deleted = true;
                return send(res, 200, { ok: true });
            }
            if (req.method === 'GET' && !action) return send(res, 200, keyJson(k));
            if (req.method !== 'POST') return err(res, 405, 'use POST');
            if (action === '/verify') {
                await new Promise((r) => setTimeout(r, 250)); /* a real check takes a while */
                return send(res, 200, applyProbe(k));
            }
            if (action === '/enable') k.disabled = false;
            else if (action === '/disable') k.disabled = true;
            else if (action === '/reset') {
                k.failures = 0;
                k.last_error = '';
            } else return err(res, 404, `unknown key action ${action}`);
            return send(res, 200, { ok: true, key: keyJson(k) });
        }
        if (p === '/api/stats') return send(res, 200, stats(st));
        if (p === '/api/logs/requests' || p === '/api/logs/errors') {
            let list = p.endsWith('requests') ? st.requests : st.errors;
            if (q.get('key')) list = list.filter((r) => r.key_hash === q.get('key'));
            if (q.get('model')) list = list.filter((r) => r.model === q.get('model'));
            return send(res, 200, page(list, q));
        }
        return err(res, 404, `unknown admin route ${req.method} ${p}`);
    }

    function applyProbe(k) {
        const r = probe(k.key);
        if (r.ok) {
            k.failures = 0;
            k.last_error = '';
            k.disabled = false;
        } else {
            k.failures++;
            k.last_error = `${r.status} ${r.error}`;
            if (r.status === 400 || r.status === 403) k.disabled = true;
        }
        return r;
    }

    const server = http.createServer((req, res) => {
        handle(req, res).catch((e) => {
            if (!res.headersSent) err(res, 500, String(e && e.message));
            else res.destroy();
        });
    });
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
            const a = server.address();
            resolve({
                url: `http://${host}:${a.port}`,
                state: st,
                calls,
                close: () => new Promise((r) => {
                    server.closeAllConnections();
                    server.close(() => r());
                }),
            });
        });
    });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const arg = (name, def) => {
        const i = process.argv.indexOf(`--${name}`);
        return i > 0 ? process.argv[i + 1] : def;
    };
    const m = await startAdminMock({
        port: Number(arg('port', 8099)),
        token: arg('token', 'admin-token'),
        keys: arg('keys', 'good-aaaaaaaaaaaa1111,good-b,invalid-cccccccccccc3333,quota-dddddddddddd4444').split(','),
    });
    process.stdout.write(`admin-mock listening on ${m.url}\n`);
    const stop = () => m.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
}
