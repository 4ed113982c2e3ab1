// capture_ddtrace.cjs -- make the real dd-trace (npm) send one web span
// to an agent, for the payload cross-check (tests/interop/
// ddtrace_payload.test.mjs).  dd-trace is initialised with its http
// plugin, a server on 127.0.0.1:0 answers one request this script makes
// to itself (so the span is a genuine dd-trace "web" server span, with
// the headers given in CAPTURE_HEADERS as JSON), then the tracer is
// flushed and the script prints "captured" and exits.
//
// Environment: DD_TRACE_AGENT_URL (the fake agent), CAPTURE_HEADERS
// (optional JSON object of request headers), and dd-trace's own DD_*.
// dd-trace is resolved through NODE_PATH (tests/interop/node_modules).
'use strict';

const tracer = require('dd-trace').init({
	logInjection: false,
	plugins: true,
	flushInterval: 50,
	startupLogs: false,
});
// Only the server span: the client side of the request to itself would
// replace the test's headers with its own context (and add dns/net spans).
tracer.use('http', { client: false });
tracer.use('dns', false);
tracer.use('net', false);
const http = require('node:http');

const headers = process.env.CAPTURE_HEADERS ?
    JSON.parse(process.env.CAPTURE_HEADERS) : {};

const server = http.createServer((req, res) => {
	req.resume();
	req.on('end', () => {
		res.writeHead(200, { 'Content-Type': 'text/plain' });
		res.end('ok\n');
	});
});

function flush() {
	return new Promise((resolve) => {
		// The tracer's exporter flush; the timer flush is the fallback.
		const exp = tracer._tracer && tracer._tracer._exporter;
		if (exp && typeof exp.flush === 'function')
			exp.flush(() => resolve());
		else
			setTimeout(resolve, 500);
	});
}

server.listen(0, '127.0.0.1', () => {
	const { port } = server.address();
	const req = http.request({ host: '127.0.0.1', port, path: '/users/42?q=1',
	    method: 'GET', headers: { 'User-Agent': 'capture/1.0', ...headers } }, (res) => {
		res.resume();
		res.on('end', () => {
			// Let the server span finish, then flush it.
			setTimeout(async () => {
				await flush();
				console.log('captured');
				server.close();
				setTimeout(() => process.exit(0), 200);
			}, 100);
		});
	});
	req.on('error', (e) => {
		console.error(`capture_ddtrace: ${e.message}`);
		process.exit(1);
	});
	req.end();
});
