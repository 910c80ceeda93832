/*
 * A client that leaves while an admin call waits for the store or for a key
 * check: the answer arrives later for a request nobody reads; the gateway
 * must neither crash nor touch freed memory (run under `make sanitize`).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startFakeUpstream, startGateway, health, request, TOKEN, T_SHORT, HOOK } from './lib/harness.js';

/* Sends a request and destroys the socket right after the head went out. */
function hangUp(url, method) {
    return new Promise((resolve) => {
        const req = http.request(url, { method, agent: false, headers: { authorization: `Bearer ${TOKEN}` } });
        req.on('error', () => resolve());
        req.end();
        setTimeout(() => { req.destroy(); resolve(); }, 5);
    });
}

describe('admin calls whose client hung up', () => {
    let fake, gw;
    before(async () => {
        fake = await startFakeUpstream({ port: 0, slowMs: 800 });
        gw = await startGateway(fake, { keys: ['slow-800-admin-a', 'good-admin-b'] });
    }, HOOK);
    after(async () => {
        if (gw) await gw.stop(); /* fails the suite if the gateway crashed or a sanitizer spoke */
        if (fake) await fake.close();
    }, HOOK);

    test('verify, logs, stats and key listing survive a client hang-up', { timeout: T_SHORT }, async () => {
        const paths = [['POST', '/api/keys/0/verify'], ['GET', '/api/logs/requests'], ['GET', '/api/stats'],
            ['GET', '/api/keys'], ['GET', '/api/logs/errors']];
        for (let round = 0; round < 5; round++)
            await Promise.all(paths.map(([m, p]) => hangUp(`${gw.url}${p}`, m)));
        /* the slow key checks finish in the meantime: wait for them */
        await new Promise((r) => setTimeout(r, 1500));
        const h = await health(gw);
        assert.equal(h.status, 'healthy');
        const r = await request(`${gw.url}/api/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(r.status, 200);
    });
});
