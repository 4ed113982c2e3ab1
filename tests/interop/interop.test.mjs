// interop.test.mjs -- real tracer libraries continue the trace the gateway
// injects (issue #4 item 6).  A browser-like request (RUM headers:
// x-datadog-* and traceparent + tracestate dd=s:1;o:rum for the same
// 64-bit trace) goes through tracestitch to a Node backend; the backend
// reports what its tracer extracted, the gateway's exported span (stdout
// exporter) gives the gateway span id.  Each case asserts: the backend is
// in the browser's trace, and its parent is the gateway span.
//
//   (a) dd-trace extracting datadog, gateway injecting [datadog]
//   (b) dd-trace extracting tracecontext, gateway injecting [tracecontext]
//   (c) @opentelemetry/core W3CTraceContextPropagator, [tracecontext]
//   (d) /debug/propagation on the admin listener agrees (skipped while
//       the admin handler does not serve it)
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
	BROWSER, RUM_HEADERS, gatewaySpans, get, startAgentSink, startBackend,
	startGateway, tempDir, waitFor,
} from './lib/procs.mjs';

// Environment of a dd-trace backend: quiet, no side channels, spans to
// the sink, the given extraction style.
function ddEnv(agentUrl, extract) {
	return {
		DD_SERVICE: 'interop-backend',
		DD_TRACE_AGENT_URL: agentUrl,
		DD_TRACE_STARTUP_LOGS: 'false',
		DD_TRACE_PROPAGATION_STYLE_EXTRACT: extract,
		DD_TRACE_PROPAGATION_STYLE_INJECT: extract,
		DD_TRACE_TELEMETRY_ENABLED: 'false',
		DD_INSTRUMENTATION_TELEMETRY_ENABLED: 'false',
		DD_REMOTE_CONFIGURATION_ENABLED: 'false',
		DD_PROFILING_ENABLED: 'false',
		DD_RUNTIME_METRICS_ENABLED: 'false',
		DD_TRACE_DEBUG: 'false',
	};
}

// The gateway span as { span_id, parent_id } (hex).  Every parent id the
// gateway sends is its own span id, so the id is read from the headers
// the backend received (traceparent's parent field, else
// x-datadog-parent-id); when the exporter writes the span on stdout, that
// record must agree, and must be the browser span's child.
async function gatewaySpan(gw, headers, t) {
	let sid = null;
	if (headers.traceparent)
		sid = headers.traceparent.split('-')[2];
	else if (headers['x-datadog-parent-id'])
		sid = BigInt(headers['x-datadog-parent-id']).toString(16).padStart(16, '0');
	assert.match(sid ?? '', /^[0-9a-f]{16}$/, 'the backend received a parent id');
	assert.notEqual(sid, BROWSER.parentIdHex, 'the gateway is a participant, not a relay');
	let exported = null;
	try {
		exported = await waitFor(() => gatewaySpans(gw).find(
		    (s) => s.trace_id === BROWSER.traceIdHex), 'an exported span', 1500);
	} catch {
		t.diagnostic('no span on the stdout exporter; gateway span id read from the injected headers');
	}
	if (exported) {
		assert.equal(exported.span_id, sid, 'exported span id = injected parent id');
		assert.equal(exported.parent_id, BROWSER.parentIdHex, 'gateway span is the browser span\'s child');
	}
	return { span_id: sid, parent_id: exported ? exported.parent_id : null };
}

// Start the backend and the gateway, send the browser request, and hand
// the backend's answer and the gateway span to check(); everything is
// stopped (by PID) whatever happens.
async function scenario(t, { backend, env = {}, inject, agent = false }, check) {
	const tmp = tempDir();
	const procs = [];
	let sink = null;
	try {
		if (agent) {
			sink = await startAgentSink();
			env = { ...ddEnv(sink.url, agent), ...env };
		}
		const be = await startBackend(backend, env);
		procs.push(be);
		const gw = await startGateway(tmp.dir, be.port, inject);
		procs.push(gw);
		const res = await get(`${gw.url}/api/hello?x=1`, {
			...RUM_HEADERS,
			origin: 'http://localhost:3000',
		});
		assert.equal(res.status, 200, `gateway answered ${res.status}: ${JSON.stringify(res.body)}`);
		assert.equal(typeof res.body, 'object', `backend answer: ${res.body}`);
		const span = await gatewaySpan(gw, res.body.headers, t);
		await check(res.body, span, gw);
	} finally {
		for (const p of procs.reverse())
			await p.stop();
		if (sink)
			await sink.stop();
		tmp.remove();
	}
}

const hexToDec = (h) => BigInt(`0x${h}`).toString(10);

test('(a) dd-trace continues the trace injected with inject: [datadog]', async (t) => {
	await scenario(t, { backend: 'ddtrace_backend.cjs', agent: 'datadog', inject: ['datadog'] },
	    (body, span) => {
		const h = body.headers;
		assert.equal(h['x-datadog-trace-id'], BROWSER.traceIdDec);
		assert.equal(h['x-datadog-parent-id'], hexToDec(span.span_id));
		assert.equal(h.traceparent, undefined, 'only the datadog style is injected');
		assert.ok(body.active, 'dd-trace has an active span in the handler');
		assert.equal(body.active.trace_id, BROWSER.traceIdDec, 'same trace id as the browser');
		assert.equal(body.active.parent_id?.hex, span.span_id, 'parent = the gateway span');
		assert.notEqual(body.active.span_id.hex, span.span_id);
		assert.equal(body.active.sampling_priority, 1);
		assert.equal(body.active.origin, 'rum');
	});
});

test('(b) dd-trace continues the trace injected with inject: [tracecontext]', async (t) => {
	await scenario(t, { backend: 'ddtrace_backend.cjs', agent: 'tracecontext', inject: ['tracecontext'] },
	    (body, span) => {
		const h = body.headers;
		assert.equal(h.traceparent, `00-${BROWSER.traceIdHex}-${span.span_id}-01`);
		assert.match(h.tracestate, new RegExp(`^dd=s:1;p:${span.span_id};o:rum`));
		assert.equal(h['x-datadog-trace-id'], undefined, 'only tracecontext is injected');
		assert.ok(body.active, 'dd-trace has an active span in the handler');
		assert.equal(body.active.trace_id, BROWSER.traceIdDec, 'same trace id as the browser');
		assert.equal(body.active.trace_id_hex, BROWSER.traceIdHex);
		assert.equal(body.active.parent_id?.hex, span.span_id, 'parent = the gateway span');
		assert.equal(body.active.sampling_priority, 1);
		assert.equal(body.active.origin, 'rum');
	});
});

test('(c) @opentelemetry/core W3CTraceContextPropagator continues it', async (t) => {
	await scenario(t, { backend: 'otel_backend.cjs', inject: ['tracecontext'] }, (body, span) => {
		assert.ok(body.remote, `no valid span context from ${body.headers.traceparent}`);
		assert.equal(body.remote.trace_id, BROWSER.traceIdHex, 'same trace id as the browser');
		assert.equal(body.remote.span_id, span.span_id, 'parent = the gateway span');
		assert.equal(body.remote.trace_flags & 1, 1, 'sampled');
		assert.equal(body.remote.is_remote, true);
		assert.match(body.remote.tracestate, new RegExp(`^dd=s:1;p:${span.span_id};o:rum`));
	});
});

test('(d) /debug/propagation names the headers the backend received', async (t) => {
	await scenario(t, { backend: 'otel_backend.cjs', inject: ['datadog', 'tracecontext'] },
	    async (body, span, gw) => {
		const dbg = await get(`${gw.adminUrl}/debug/propagation`, RUM_HEADERS);
		if (dbg.status === 404) {
			t.skip('/debug/propagation is not served by the admin listener in this build');
			return;
		}
		assert.equal(dbg.status, 200);
		const d = dbg.body;
		assert.equal(d.extracted.continued, true);
		assert.equal(d.extracted.trace_id.hex, BROWSER.traceIdHex);
		assert.deepEqual(d.extracted.styles.slice(0, 2), ['datadog', 'tracecontext']);
		const inj = Object.fromEntries(d.inject);
		const gsid = d.gateway_span.span_id.hex;
		assert.equal(inj.traceparent, `00-${BROWSER.traceIdHex}-${gsid}-01`);
		assert.equal(inj['x-datadog-parent-id'], hexToDec(gsid));
		// Same shape as what the backend got (only the span id differs).
		const seen = body.headers.traceparent.replace(span.span_id, gsid);
		assert.equal(inj.traceparent, seen);
	});
});
