#!/usr/bin/env node
// slow-upstream.js PORT_FILE SSE_FILE [INTERVAL_MS] [MAX_S]
//
// A fake Gemini upstream for the memory part of `make bench` (scripts/bench.sh,
// BENCH_MEMORY): every POST .../models/<m>:streamGenerateContent answers 200
// text/event-stream (chunked, as Google does) and then TRICKLES: the first
// event at once, then one event every INTERVAL_MS (default 1000) per stream,
// until the client goes away or MAX_S seconds (default 600) have passed.  The
// event is the first one of SSE_FILE (a text part with no finishReason), so a
// stream never ends on its own while it is being measured.
//
// Listens on 127.0.0.1, port chosen by the kernel, written to PORT_FILE once
// listening.  Other requests get a Gemini-style 404.  Loopback only.
//
// On SIGUSR1 it writes the number of events written so far (all streams) to
// PORT_FILE.events (atomically, by rename): bench.sh reads it before and
// after a window to charge the server's CPU per relayed event.
'use strict';
const http = require('http');
const fs = require('fs');

const [portFile, sseFile, intervalArg, maxArg] = process.argv.slice(2);
if (!portFile || !sseFile) {
    console.error('usage: slow-upstream.js PORT_FILE SSE_FILE [INTERVAL_MS] [MAX_S]');
    process.exit(2);
}
const INTERVAL = Math.max(50, parseInt(intervalArg || '1000', 10));
const MAX_MS = Math.max(1, parseInt(maxArg || '600', 10)) * 1000;
const text = fs.readFileSync(sseFile, 'utf8');
const m = /^data: .*?\r?\n\r?\n/ms.exec(text);
if (!m) {
    console.error(`slow-upstream: no SSE event in ${sseFile}`);
    process.exit(2);
}
const EVENT = Buffer.from(m[0]);
const NOT_FOUND = JSON.stringify({
    error: { code: 404, message: 'not served by the bench slow upstream', status: 'NOT_FOUND' },
});

// Streams are spread over BUCKETS buckets; each tick (INTERVAL / BUCKETS)
// writes one event to every stream of one bucket, so the load is smooth.
const BUCKETS = 4;
const buckets = Array.from({ length: BUCKETS }, () => new Set());
let next = 0;
let turn = 0;
let open = 0;
let written = 0;

setInterval(() => {
    const now = Date.now();
    for (const s of buckets[turn]) {
        if (now - s.t0 >= MAX_MS) {
            buckets[s.b].delete(s);
            s.res.end();
        } else {
            s.res.write(EVENT);
            written++;
        }
    }
    turn = (turn + 1) % BUCKETS;
}, Math.max(10, Math.floor(INTERVAL / BUCKETS)));

const server = http.createServer({ keepAliveTimeout: 600000, requestTimeout: 0 }, (req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    if (req.method !== 'POST' || !/\/models\/[^/:]+:streamGenerateContent(\?|$)/.test(req.url)) {
        req.resume();
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(NOT_FOUND);
        return;
    }
    req.resume(); // the body is not needed
    req.on('end', () => {
        const s = { res, t0: Date.now(), b: next++ % BUCKETS };
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.write(EVENT);
        written++;
        buckets[s.b].add(s);
        open++;
        res.on('close', () => {
            buckets[s.b].delete(s);
            open--;
        });
    });
});
server.headersTimeout = 600000;
server.on('clientError', (err, sock) => sock.destroy());
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    fs.writeFileSync(portFile + '.tmp', `${server.address().port}\n`);
    fs.renameSync(portFile + '.tmp', portFile);
});
process.on('SIGUSR1', () => {
    fs.writeFileSync(portFile + '.events.tmp', `${written}\n`);
    fs.renameSync(portFile + '.events.tmp', portFile + '.events');
});
process.on('SIGUSR2', () => console.error(`slow-upstream: ${open} streams open`));
process.on('SIGTERM', () => process.exit(0));
