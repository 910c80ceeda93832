/*
 * Idle upstream connections (issue 6).  Between requests the gateway keeps
 * watching the keep-alive connections libcurl holds ("parked" sockets in
 * src/upstream/curlev.c) instead of an epoll_ctl pair per reuse.  When the
 * upstream closes them, those sockets turn readable: the gateway must not
 * spin on them, and the next requests must still be answered, on new
 * connections.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
    startFakeUpstream, startGateway, chat, marker, echoText, sleep, HOOK, T_LONG,
} from './lib/harness.js';

/* utime + stime of a process, in clock ticks (fields 14 and 15 of stat). */
function cpuTicks(pid) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
}

async function round(gw, n, label) {
    const ms = Array.from({ length: n }, (_, i) => marker(`${label}${i}`));
    const res = await Promise.all(ms.map((m) => chat(gw, {
        model: 'gemini-2.5-flash', messages: [{ role: 'user', content: m }],
    })));
    res.forEach((r, i) => {
        assert.equal(r.status, 200, r.text);
        assert.equal(JSON.parse(r.text).choices[0].message.content, echoText(ms[i]));
    });
}

describe('idle upstream connections closed by the upstream', { skip: process.platform !== 'linux' }, () => {
    let fake, gw, opened = 0;
    test('setup', HOOK, async () => {
        fake = await startFakeUpstream({ port: 0 });
        fake.server.keepAliveTimeout = 200; /* the upstream drops idle connections fast */
        fake.server.on('connection', () => { opened++; });
        gw = await startGateway(fake, { keys: ['good-idle-1', 'good-idle-2'] });
    });

    test('no spin on the closed sockets, and the next requests get new connections', { timeout: T_LONG }, async () => {
        await round(gw, 8, 'idle-a');
        const first = opened;
        assert.ok(first >= 1);
        /* the upstream closes every idle connection after 200 ms: each
         * parked socket reads end-of-file */
        await sleep(800);
        const t0 = cpuTicks(gw.proc.pid);
        await sleep(1500);
        const used = cpuTicks(gw.proc.pid) - t0;
        /* idle, the gateway uses next to nothing; a loop on a readable
         * socket would take a whole core (~150 ticks at 100 Hz) */
        assert.ok(used < 60, `the idle gateway used ${used} clock ticks in 1.5 s`);
        await round(gw, 8, 'idle-b');
        assert.ok(opened > first, 'the second round had to open new upstream connections');
        /* and once more on the connections of the second round */
        await round(gw, 4, 'idle-c');
    });

    test('teardown', HOOK, async () => {
        await gw?.stop();
        await fake?.close();
    });
});
