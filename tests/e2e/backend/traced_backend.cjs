// traced_backend.cjs -- the backend behind the gateway in rum.test: a tiny
// Node.js HTTP server instrumented by the real dd-trace (configured from
// the environment: DD_TRACE_AGENT_URL, DD_TRACE_PROPAGATION_STYLE, ...).
//
// Every request is answered 200 with JSON: the headers it received and the
// ids of dd-trace's active server span.  The same object is printed on
// stdout as one `request {json}` line so the test reads what the gateway
// forwarded from the backend side.  Listens on 127.0.0.1:0 and prints
// `traced backend listening on http://127.0.0.1:PORT`.  SIGTERM exits (the
// test has awaited the spans it needs at the fake agent before that).
'use strict';

// dd-trace must be initialised before http is loaded.
const tracer = require('dd-trace').init({ logInjection: false });
const http = require('node:http');

const server = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const span = tracer.scope().active();
		const ctx = span ? span.context() : null;
		const info = {
			method: req.method,
			url: req.url,
			headers: req.headers,
			dd: ctx ? { trace_id: ctx.toTraceId(), span_id: ctx.toSpanId() } : null,
		};
		const body = JSON.stringify(info);
		process.stdout.write(`request ${body}\n`);
		res.writeHead(200, {
			'Content-Type': 'application/json',
			'Content-Length': Buffer.byteLength(body),
		});
		res.end(body);
	});
});

server.listen(0, '127.0.0.1', () => {
	process.stdout.write('traced backend listening on http://127.0.0.1:' +
	    `${server.address().port}\n`);
});

function shutdown() {
	server.close();
	server.closeAllConnections();
	process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
