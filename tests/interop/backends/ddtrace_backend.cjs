// ddtrace_backend.cjs -- a Node backend instrumented by the real dd-trace,
// configured from the environment (DD_TRACE_PROPAGATION_STYLE_EXTRACT,
// DD_TRACE_AGENT_URL, ...).  Every request is answered 200 with JSON: the
// headers it received and the ids of dd-trace's active server span
// (tracer.scope().active() inside the handler): trace id (decimal low 64
// bits and 32 hex digits), span id and parent id (decimal and hex),
// sampling priority and origin.  Listens on 127.0.0.1:0 and prints
// "listening on http://127.0.0.1:PORT"; SIGTERM exits.
'use strict';

// dd-trace must be initialised before http is loaded.
const tracer = require('dd-trace').init({ logInjection: false, plugins: true });
const http = require('node:http');

// An Identifier (dd-trace's id type) as decimal and 16 hex digits.
function id(ident) {
	if (!ident)
		return null;
	return { dec: ident.toString(10), hex: ident.toString(16).padStart(16, '0') };
}

const server = http.createServer((req, res) => {
	req.resume();
	req.on('end', () => {
		const span = tracer.scope().active();
		const ctx = span ? span.context() : null;
		const info = {
			headers: req.headers,
			active: ctx ? {
				trace_id: ctx.toTraceId(),
				trace_id_hex: ctx.toTraceId(true),
				span_id: id(ctx._spanId),
				parent_id: id(ctx._parentId),
				sampling_priority: ctx._sampling ? ctx._sampling.priority : null,
				origin: ctx._trace ? ctx._trace.origin || null : null,
			} : null,
		};
		const body = JSON.stringify(info);
		res.writeHead(200, {
			'Content-Type': 'application/json',
			'Content-Length': Buffer.byteLength(body),
		});
		res.end(body);
	});
});

server.listen(0, '127.0.0.1', () => {
	process.stdout.write(`listening on http://127.0.0.1:${server.address().port}\n`);
});

function shutdown() {
	server.close();
	server.closeAllConnections();
	process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
