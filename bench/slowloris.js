#!/usr/bin/env node
// slowloris.js - holds N connections open against a server and trickles ONE
// BYTE PER SECOND of a request head on each (the head never ends), for the
// slowloris case of `make bench` (scripts/bench.sh).  Loopback only, no npm
// dependencies, bounded in time.
//
//   slowloris.js --port P --status FILE [--n 2000] [--host 127.0.0.1]
//                [--src 127.0.0.2,127.0.0.3] [--path /v1/chat/completions]
//                [--parallel 256] [--ready-timeout 30] [--max-seconds 300]
//
// The head is `POST <path> HTTP/1.1`, `Host:`, then endless `X-Slowloris-<k>:
// xxxx` lines, sent from its first byte on, one byte per connection per
// second (the connections are spread over the second, so the server sees a
// steady N bytes/s rather than bursts).  A connection the server closes (its
// client timeout, a 408/400 answer, a reset) is counted and replaced at once,
// so about N stay open.  Connects in progress are capped at --parallel;
// source addresses (--src) are used in turn.
//
// FILE gets one line when the first N are open (or --ready-timeout passed):
//   READY open=<n> ms=<ramp time> fail=<connect failures>
// then one line per second:
//   SAMPLE t=<s since READY> open=<n> opened=<total> closed=<closed by server> fail=<n>
// and on SIGTERM (or after --max-seconds, whichever comes first)
//   END open=<n> opened=<n> closed=<n> fail=<n>
// after which every connection is reset (no TIME_WAIT left behind).
'use strict';
const net = require('net');
const fs = require('fs');

const opt = {
    host: '127.0.0.1', port: 0, n: 2000, status: '', src: '127.0.0.2,127.0.0.3',
    path: '/v1/chat/completions', parallel: 256, 'ready-timeout': 30, 'max-seconds': 300,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in opt) || i + 1 >= argv.length) {
        console.error(`slowloris: bad option ${argv[i]}`);
        process.exit(2);
    }
    opt[k] = typeof opt[k] === 'number' ? Number(argv[++i]) : argv[++i];
}
if (!opt.port || !opt.n || !opt.status) {
    console.error('slowloris: need --port P --status FILE');
    process.exit(2);
}
if (!/^127\./.test(opt.host)) {
    console.error('slowloris: loopback only');
    process.exit(2);
}
const srcs = opt.src.split(',').filter(Boolean);

// Byte k of the endless head.  It never contains the blank line that would
// end it, and stays far below any header size limit within the bench's time.
const START = `POST ${opt.path} HTTP/1.1\r\nHost: ${opt.host}\r\n`;
function headByte(k) {
    if (k < START.length) return START.charCodeAt(k);
    k -= START.length;
    const line = `X-Slowloris-${Math.floor(k / 40)}: `;
    const pos = k % 40; // 38 bytes of header line + CRLF
    if (pos === 38) return 13;
    if (pos === 39) return 10;
    return pos < line.length ? line.charCodeAt(pos) : 120; // 'x'
}

const TICK_MS = 20, SLOTS = 1000 / TICK_MS; // each connection writes in one slot of the second
const slots = Array.from({ length: SLOTS }, () => new Set());
let opened = 0, closed = 0, fail = 0, connecting = 0, want = opt.n, seq = 0, stopping = false;
let open = 0, readyAt = 0;
const all = new Set();
const t0 = Date.now();

function one() {
    const o = { host: opt.host, port: opt.port };
    const i = seq++;
    if (srcs.length) o.localAddress = srcs[i % srcs.length];
    const s = net.connect(o);
    const c = { s, sent: 0, up: false, slot: i % SLOTS };
    connecting++;
    all.add(c);
    s.setNoDelay(true);
    s.on('connect', () => {
        connecting--;
        c.up = true;
        open++;
        opened++;
        s.write(Buffer.from([headByte(c.sent++)]));
        slots[c.slot].add(c);
        pump();
        maybeReady();
    });
    s.on('data', () => {}); // a 408/400 answer: the close follows
    s.on('error', () => {});
    s.on('close', () => {
        all.delete(c);
        slots[c.slot].delete(c);
        if (stopping) return;
        if (c.up) {
            open--;
            closed++;
        } else {
            connecting--;
            fail++;
        }
        // replace it; after a failed connect wait a little (server gone?)
        if (c.up) pump();
        else setTimeout(pump, 100);
    });
}

function pump() {
    while (!stopping && open + connecting < want && connecting < opt.parallel) one();
}

let tick = 0;
setInterval(() => {
    for (const c of slots[tick % SLOTS]) {
        if (!c.s.destroyed && c.s.writable) c.s.write(Buffer.from([headByte(c.sent++)]));
    }
    tick++;
}, TICK_MS);

function line(l) { fs.appendFileSync(opt.status, l + '\n'); }

function maybeReady() {
    if (readyAt || open < opt.n) return;
    ready();
}
function ready() {
    if (readyAt) return;
    readyAt = Date.now();
    line(`READY open=${open} ms=${readyAt - t0} fail=${fail}`);
    setInterval(() => {
        line(`SAMPLE t=${Math.round((Date.now() - readyAt) / 1000)} open=${open} opened=${opened} closed=${closed} fail=${fail}`);
    }, 1000);
}
setTimeout(ready, opt['ready-timeout'] * 1000);

function stop() {
    if (stopping) return;
    stopping = true;
    line(`END open=${open} opened=${opened} closed=${closed} fail=${fail}`);
    for (const c of all) {
        if (typeof c.s.resetAndDestroy === 'function' && c.up) c.s.resetAndDestroy();
        else c.s.destroy();
    }
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, opt['max-seconds'] * 1000);

fs.writeFileSync(opt.status, '');
pump();
