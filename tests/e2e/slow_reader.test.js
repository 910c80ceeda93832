/*
 * A client that stops reading a stream (issue 6): the gateway queues at most
 * STREAM_BUFFER_BYTES for it and then stops reading the upstream, so the
 * client costs bounded memory; other clients are served meanwhile; when the
 * client reads again, the whole stream arrives.
 *
 * The fake upstream's big-stream model writes only as fast as the gateway
 * reads (it waits for 'drain'), so its bytesSent shows how far the gateway
 * read.  32 MB are on offer; with the reader paused, the gateway must stop
 * well short of that.  Part of what the upstream sent sits in the kernel's
 * socket buffers on both legs, not in the gateway: Linux grows a loopback
 * receive buffer up to net.ipv4.tcp_rmem's maximum (6 MB by default, 32 MB
 * on some hosts, where the two legs together can hold 20 MB and more once a
 * loaded machine let the windows grow).  So the check subtracts those queues
 * (/proc/net/tcp) and what the client read, and bounds the rest: what the
 * gateway itself holds (a gateway that kept reading would take it all).
 */
import { describe, test } from 'node:test';
import * as hooks from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { suite, chat, auth, sleep, waitFor, T_LONG } from './lib/harness.js';

const EVENTS = 512;
const EVENT_BYTES = 65536;
const OFFERED = EVENTS * EVENT_BYTES;
/* the most the gateway itself may hold for a paused reader: STREAM_BUFFER_BYTES
 * (64 KB here) plus libcurl's and the relay's buffers, with a wide margin */
const GATEWAY_HOLDS_AT_MOST = OFFERED / 8;

/* Bytes in the kernel's send and receive queues of the TCP connections from
 * or to any of these loopback ports (both ends of each; /proc/net/tcp). */
function kernelQueued(ports) {
    let sum = 0;
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
        let text;
        try {
            text = fs.readFileSync(file, 'utf8');
        } catch {
            continue;
        }
        for (const line of text.split('\n').slice(1)) {
            const f = line.trim().split(/\s+/);
            if (f.length < 5 || f[3] === '0A') continue; /* 0A: LISTEN */
            const port = (addr) => parseInt(addr.slice(addr.lastIndexOf(':') + 1), 16);
            if (!ports.includes(port(f[1])) && !ports.includes(port(f[2]))) continue;
            const [tx, rx] = f[4].split(':').map((h) => parseInt(h, 16));
            sum += tx + rx;
        }
    }
    return sum;
}

/* Starts a stream on a raw socket, pauses it once the head and some body
 * arrived, and returns { socket, received(), resume(), done }. */
function pausedStream(gw, path, body) {
    const port = Number(new URL(gw.url).port);
    const s = net.connect(port, '127.0.0.1');
    let bytes = 0;
    let text = '';
    const keep = (c) => {
        bytes += c.length;
        text = (text + c.toString('latin1')).slice(-256);
    };
    let onHead;
    let paused = false;
    const head = new Promise((resolve) => (onHead = resolve));
    const done = new Promise((resolve) => s.on('end', resolve));
    s.on('error', () => {});
    s.on('data', (c) => {
        keep(c);
        if (!paused && bytes > 4096) {
            paused = true;
            s.pause();
            onHead();
        }
    });
    s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth().authorization}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    return { socket: s, head, done, received: () => bytes, tail: () => text, resume: () => s.resume() };
}

/* Waits until the upstream's bytesSent for the newest big-stream request
 * stops growing; returns it. */
async function plateau(fake) {
    const sent = () => {
        const recs = fake.requests().filter((r) => r.model === 'big-stream');
        return recs.length ? recs[recs.length - 1].bytesSent : 0;
    };
    let last = -1;
    let now = sent();
    const t0 = Date.now();
    while (now !== last && Date.now() - t0 < 15000) {
        last = now;
        await sleep(400);
        now = sent();
    }
    return now;
}

describe('slow readers', () => {
    const ctx = suite(hooks, {
        keys: ['good-slow-a', 'good-slow-b'],
        env: { STREAM_BUFFER_BYTES: '65536', STREAM_IDLE_TIMEOUT: '0', STREAM_KEEPALIVE_SECONDS: '0' },
        fake: { bigStreamEvents: EVENTS, bigStreamEventBytes: EVENT_BYTES },
    });

    for (const [what, path, body, ends] of [
        ['native stream relay', '/v1beta/models/big-stream:streamGenerateContent?alt=sse',
            JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }), /"finishReason":\s*"STOP"[^]*\r\n\r\n\r\n0\r\n\r\n$/],
        ['OpenAI chat stream', '/v1/chat/completions',
            JSON.stringify({ model: 'big-stream', stream: true, messages: [{ role: 'user', content: 'hi' }] }), /data: \[DONE\]\n\n\r\n0\r\n\r\n$/],
    ]) {
        test(`${what}: a paused reader holds the upstream back, others are served, all arrives on resume`, { timeout: T_LONG }, async () => {
            const { gw, fake } = ctx;
            const c = pausedStream(gw, path, body);
            await c.head;
            const held = await plateau(fake);
            const inKernel = kernelQueued([Number(new URL(gw.url).port), Number(new URL(fake.url).port)]);
            const own = held - inKernel - c.received();
            assert.ok(own < GATEWAY_HOLDS_AT_MOST,
                `the gateway read ${held} of ${OFFERED} upstream bytes for a client that stopped reading ` +
                `and holds ${own} itself (${inKernel} are in socket buffers, ${c.received()} reached the client)`);
            /* another client meanwhile */
            const other = await chat(gw, { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'still there?' }] });
            assert.equal(other.status, 200, other.text);
            c.resume();
            await c.done;
            assert.ok(c.received() > OFFERED, `received ${c.received()} bytes, fewer than the ${OFFERED} of text sent`);
            assert.match(c.tail(), ends);
            await waitFor(async () => fake.requests().filter((r) => r.model === 'big-stream').at(-1).bytesSent > OFFERED,
                { what: 'the upstream to send everything' });
        });
    }
});

describe('slow readers and STREAM_IDLE_TIMEOUT', () => {
    /* The upstream is silent because the gateway stopped reading it for the
     * client: that is not an idle upstream, and the stream must survive a
     * pause longer than the idle timeout. */
    const ctx = suite(hooks, {
        keys: ['good-slow-c'],
        env: { STREAM_BUFFER_BYTES: '65536', STREAM_IDLE_TIMEOUT: '1', STREAM_KEEPALIVE_SECONDS: '0' },
        fake: { bigStreamEvents: EVENTS, bigStreamEventBytes: EVENT_BYTES },
    });

    test('a reader paused for longer than the idle timeout still gets the whole stream', { timeout: T_LONG }, async () => {
        const { gw, fake } = ctx;
        const c = pausedStream(gw, '/v1/chat/completions',
            JSON.stringify({ model: 'big-stream', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
        await c.head;
        const held = await plateau(fake);
        assert.ok(held < OFFERED, 'the gateway did not hold the upstream back');
        await sleep(2500); /* well past STREAM_IDLE_TIMEOUT=1, upstream held back all along */
        c.resume();
        await c.done;
        assert.ok(c.received() > OFFERED, `received ${c.received()} bytes, fewer than the ${OFFERED} of text sent`);
        assert.match(c.tail(), /data: \[DONE\]\n\n\r\n0\r\n\r\n$/);
        assert.ok(!/"error"/.test(c.tail()), c.tail().slice(-300));
    });
});
