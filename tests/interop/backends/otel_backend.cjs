// otel_backend.cjs -- a Node backend that reads the trace context with
// OpenTelemetry's own W3C propagator (@opentelemetry/core
// W3CTraceContextPropagator through @opentelemetry/api).  Every request is
// answered 200 with JSON: the headers received and the extracted remote
// span context (trace id, span id = the caller's span, flags, tracestate),
// or null when the propagator found none.  Listens on 127.0.0.1:0 and
// prints "listening on http://127.0.0.1:PORT"; SIGTERM exits.
'use strict';

const api = require('@opentelemetry/api');
const { W3CTraceContextPropagator } = require('@opentelemetry/core');
const http = require('node:http');

api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());

const server = http.createServer((req, res) => {
	req.resume();
	req.on('end', () => {
		const ctx = api.propagation.extract(api.ROOT_CONTEXT, req.headers,
		    api.defaultTextMapGetter);
		const sc = api.trace.getSpanContext(ctx);
		const info = {
			headers: req.headers,
			remote: sc && api.isSpanContextValid(sc) ? {
				trace_id: sc.traceId,
				span_id: sc.spanId,
				trace_flags: sc.traceFlags,
				is_remote: sc.isRemote === true,
				tracestate: sc.traceState ? sc.traceState.serialize() : null,
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
