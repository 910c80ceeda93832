#!/usr/bin/env node
// memclient.js - opens and HOLDS many client connections for the memory part
// of `make bench` (scripts/bench.sh, BENCH_MEMORY), so the server's RSS can be
// read with all of them open at once.  Loopback only.
//
//   memclient.js --mode idle|stream --port P --n N --status FILE
//                [--host 127.0.0.1] [--path /health] [--body FILE] [--token T]
//                [--src 127.0.0.2,127.0.0.3] [--parallel 256] [--timeout 90]
//                [--no-read]
//
// idle:   each connection sends `GET <path> HTTP/1.1` (keep-alive), reads the
//         whole answer (must be 200, Content-Length framed), then stays open
//         and idle.
// stream: each connection POSTs FILE to <path> (Authorization: Bearer T) and
//         counts once the answer is 200 and its first `data:` line arrived;
//         after that it keeps reading and discarding (or, with --no-read,
//         stops reading: the kernel buffers hold the trickle).
//
// At most --parallel connections are being set up at a time.  Source
// addresses (--src) are used in turn, so ephemeral ports of one address do
// not run out.  When every connection is up or failed (or --timeout seconds
// passed) it writes one line to FILE:
//   READY ok=<n> fail=<n> ms=<ramp time> reasons=<reason:count,...>
// and holds everything until SIGTERM, then appends
//   END open=<still open> dropped=<closed by the server meanwhile>
// resets all its connections (no TIME_WAIT left behind) and exits.
'use strict';
const net = require('net');
const fs = require('fs');

const opt = {
    mode: 'idle', host: '127.0.0.1', port: 0, n: 0, path: '', body: '', token: '',
    src: '', parallel: 256, timeout: 90, status: '', 'no-read': false,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in opt)) {
        console.error(`memclient: unknown option ${argv[i]}`);
        process.exit(2);
    }
    if (typeof opt[k] === 'boolean') opt[k] = true;
    else opt[k] = typeof opt[k] === 'number' ? Number(argv[++i]) : argv[++i];
}
if (!opt.port || !opt.n || !opt.status || !['idle', 'stream'].includes(opt.mode)) {
    console.error('memclient: need --mode idle|stream --port P --n N --status FILE');
    process.exit(2);
}

let request;
if (opt.mode === 'idle') {
    request = Buffer.from(`GET ${opt.path || '/health'} HTTP/1.1\r\nHost: ${opt.host}\r\n\r\n`);
} else {
    const body = fs.readFileSync(opt.body);
    request = Buffer.concat([
        Buffer.from(`POST ${opt.path || '/v1/chat/completions'} HTTP/1.1\r\nHost: ${opt.host}\r\n` +
            `Authorization: Bearer ${opt.token}\r\nContent-Type: application/json\r\n` +
            `Accept: text/event-stream\r\nContent-Length: ${body.length}\r\n\r\n`),
        body,
    ]);
}
const srcs = opt.src ? opt.src.split(',').filter(Boolean) : [];

const socks = new Set();
let started = 0, settled = 0, ok = 0, fail = 0, dropped = 0, readyWritten = false;
const reasons = new Map();
const t0 = Date.now();

function failOne(why) {
    fail++;
    settled++;
    reasons.set(why, (reasons.get(why) || 0) + 1);
}

function maybeReady() {
    if (readyWritten || settled < opt.n) return;
    writeReady();
}

function writeReady() {
    readyWritten = true;
    clearTimeout(deadline);
    const r = [...reasons].map(([k, v]) => `${k.replace(/[\s,]+/g, '_')}:${v}`).join(',') || '-';
    fs.writeFileSync(opt.status, `READY ok=${ok} fail=${fail} ms=${Date.now() - t0} reasons=${r}\n`);
}

function one(i) {
    const o = { host: opt.host, port: opt.port };
    if (srcs.length) o.localAddress = srcs[i % srcs.length];
    const s = net.connect(o);
    let state = 'connecting'; // -> 'waiting' -> 'up' | 'failed'
    let head = Buffer.alloc(0);
    let need = -1; // idle: bytes of the answer still to read after the header
    socks.add(s);
    s.setNoDelay(true);

    const settle = (good, why) => {
        if (state === 'up' || state === 'failed') return;
        state = good ? 'up' : 'failed';
        if (good) {
            ok++;
            settled++;
        } else {
            failOne(why);
            s.destroy();
        }
        pump();
        maybeReady();
    };

    s.on('connect', () => {
        state = 'waiting';
        s.write(request);
    });
    s.on('data', (d) => {
        if (state === 'up') {
            if (opt.mode === 'idle') {
                // nothing is expected on an idle keep-alive connection
            } else if (opt['no-read']) {
                s.pause();
            }
            return;
        }
        if (state !== 'waiting') return;
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
            if (head.length > 65536) settle(false, 'huge-header');
            return;
        }
        const hdr = head.subarray(0, end).toString('latin1');
        const st = /^HTTP\/1\.[01] (\d{3})/.exec(hdr);
        if (!st || st[1] !== '200') {
            settle(false, `http-${st ? st[1] : 'garbage'}`);
            return;
        }
        const rest = head.subarray(end + 4);
        if (opt.mode === 'idle') {
            const cl = /\r\ncontent-length:\s*(\d+)/i.exec(hdr);
            if (!cl) {
                settle(false, 'no-content-length');
                return;
            }
            if (/\r\nconnection:\s*close/i.test(hdr)) {
                settle(false, 'connection-close');
                return;
            }
            need = Number(cl[1]) - rest.length;
            if (need <= 0) settle(true);
        } else if (rest.includes('data:')) {
            settle(true);
            if (opt['no-read']) s.pause();
        }
    });
    s.on('error', (e) => {
        if (state !== 'up') settle(false, e.code || 'error');
    });
    s.on('close', () => {
        socks.delete(s);
        if (state === 'up') dropped++;
        else settle(false, state === 'connecting' ? 'connect-closed' : 'closed-before-answer');
    });
}

function pump() {
    while (started < opt.n && started - settled < opt.parallel) one(started++);
}

const deadline = setTimeout(() => {
    // whatever is not up by now counts as failed
    for (let k = settled; k < started; k++) failOne('timeout');
    fail += opt.n - started;
    if (opt.n > started) reasons.set('not-started', opt.n - started);
    settled = opt.n;
    started = opt.n;
    writeReady();
}, opt.timeout * 1000);

process.on('SIGTERM', () => {
    let open = 0;
    for (const s of socks) if (!s.destroyed) open++;
    // only the connections that counted as up matter
    fs.appendFileSync(opt.status, `END open=${Math.min(open, ok)} dropped=${dropped}\n`);
    for (const s of socks) {
        if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
        else s.destroy();
    }
    process.exit(0);
});

pump();
