// rum.test.mjs -- one trace from the browser to the backend, with every
// participant real: the Datadog RUM SDK (@datadog/browser-rum, served from
// node_modules) in Chromium on origin A, tracestitch on origin B, and a
// Node.js backend instrumented by dd-trace.  The gateway and dd-trace both
// export to a fake agent that decodes their msgpack payloads.
//
// The chain that must hold (PROPAGATION.md 7, 8, 11, 13):
//   RUM span (ids in the headers the browser sent)
//     -> gateway span: same trace id, parent_id = RUM's span id
//       -> dd-trace web.request span: same trace id, parent_id = gateway span id
// and the headers the backend received carry that trace id with the
// gateway span as parent.  Nothing is intercepted in the browser: the
// browser's request headers are observed (Playwright's passive request
// event), RUM's ids are also read from the RUM resource event the SDK
// posts to its proxy sink on origin A.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFakeAgent } from './lib/fake_agent.mjs';
import {
	closeServer, E2E_DIR, launchBrowser, Proc, rumEvents, startGateway,
	startPageServer, tempDir, waitFor,
} from './lib/harness.mjs';

const GATEWAY_SERVICE = 'tracestitch-e2e';
const BACKEND_SERVICE = 'e2e-backend';
const SPAN_WAIT_MS = 10000;

function rumPage() {
	// The gateway origin is filled in by the page's query string so the
	// page can be written before the gateway has a port.
	return `<!doctype html>
<html><head><meta charset="utf-8"><title>RUM e2e</title>
<script src="/rum/datadog-rum.js"></script>
<script>
const gw = new URLSearchParams(location.search).get('gw');
window.DD_RUM.init({
	applicationId: '00000000-0000-4000-8000-000000000001',
	clientToken: 'pub00000000000000000000000000000000',
	site: 'datadoghq.com',
	proxy: location.origin + '/rum-intake',
	service: 'e2e-page',
	env: 'e2e',
	sessionSampleRate: 100,
	sessionReplaySampleRate: 0,
	traceSampleRate: 100,
	trackResources: true,
	trackLongTasks: false,
	trackUserInteractions: false,
	allowedTracingUrls: [{ match: gw, propagatorTypes: ['datadog', 'tracecontext'] }],
	propagateTraceBaggage: true,
});
window.callGateway = async (url) => {
	try {
		const r = await fetch(url);
		return { ok: true, status: r.status, text: await r.text() };
	} catch (e) {
		return { ok: false, name: e.name, message: String(e.message) };
	}
};
</script></head><body><p>RUM page</p></body></html>`;
}

// 0000000000000000 + 16 hex of a decimal 64-bit id.
function w3cTraceId(dec) {
	return BigInt(dec).toString(16).padStart(32, '0');
}

function hexToDec(hex) {
	return BigInt(`0x${hex}`).toString(10);
}

describe('RUM SDK -> tracestitch -> dd-trace, one trace', () => {
	let dir, pages, agent, backend, gw, browser, page;
	const sent = [];	// headers of the requests Chromium sent to the gateway
	let result;		// what the page read
	let rum;		// { traceId, spanId } RUM generated (decimal strings)
	let forwarded;		// headers the backend received
	let gatewaySpanP;	// one wait for the gateway span, shared

	// The gateway span of RUM's trace (awaited once, result shared).
	function gatewaySpan() {
		const tid = BigInt(rum.traceId);
		gatewaySpanP ??= agent.waitSpan((s) => s.service === GATEWAY_SERVICE && s.trace_id === tid,
		    `a ${GATEWAY_SERVICE} span with trace id ${rum.traceId}`, SPAN_WAIT_MS);
		return gatewaySpanP;
	}

	before(async () => {
		dir = tempDir('rum');
		pages = await startPageServer({ '/rum.html': rumPage() });
		agent = await startFakeAgent();
		const env = {
			...process.env,
			DD_SERVICE: BACKEND_SERVICE,
			DD_ENV: 'e2e',
			DD_TRACE_AGENT_URL: agent.url,
			DD_TRACE_PROPAGATION_STYLE: 'datadog,tracecontext',
			DD_TRACE_FLUSH_INTERVAL: '100',
			DD_TRACE_STARTUP_LOGS: 'false',
			DD_INSTRUMENTATION_TELEMETRY_ENABLED: 'false',
			DD_REMOTE_CONFIGURATION_ENABLED: 'false',
			DD_RUNTIME_METRICS_ENABLED: 'false',
			DD_TRACE_STATS_COMPUTATION_ENABLED: 'false',
			DD_PROFILING_ENABLED: 'false',
			DD_APPSEC_ENABLED: 'false',
			DD_CRASHTRACKING_ENABLED: 'false',
			DD_DATA_STREAMS_ENABLED: 'false',
		};
		backend = new Proc('traced_backend', process.execPath,
		    [path.join(E2E_DIR, 'backend', 'traced_backend.cjs')], { env, cwd: E2E_DIR });
		const m = await backend.waitLine(/listening on http:\/\/127\.0\.0\.1:(\d+)/, { stream: 'stdout' });
		backend.url = `http://127.0.0.1:${m[1]}`;
		gw = await startGateway({
			routes: [{ name: 'api', path_prefix: '/', upstream: { url: backend.url } }],
			cors: { allowed_origins: [pages.origin], allow_credentials: false },
			propagation: { extract: ['datadog', 'tracecontext', 'baggage'],
			    inject: ['datadog', 'tracecontext', 'baggage'] },
			tracing: { service: GATEWAY_SERVICE, env: 'e2e' },
			exporter: { type: 'datadog', datadog_url: agent.url, flush_interval: '100ms' },
		}, dir);
		browser = await launchBrowser(dir);
		page = await browser.newPage();
		// Passive observation (CDP network events): nothing is changed.
		page.on('request', async (req) => {
			if (req.url().startsWith(gw.origin) && req.method() === 'GET')
				sent.push(await req.allHeaders());
		});
		await page.goto(`${pages.origin}/rum.html?gw=${encodeURIComponent(gw.origin)}`);
		await page.waitForFunction(() => window.DD_RUM?.getInternalContext()?.session_id);
	});

	after(async () => {
		await browser?.close();
		await gw?.stop();
		await backend?.stop();
		await agent?.stop();
		await closeServer(pages?.server);
		if (dir)
			fs.rmSync(dir, { recursive: true, force: true });
	});

	test('the RUM-traced fetch through the gateway succeeds in the browser', async () => {
		result = await page.evaluate((u) => window.callGateway(u), `${gw.origin}/api/hello?n=1`);
		assert.equal(result.ok, true, `fetch failed in the browser: ${result.name}: ${result.message}`);
		assert.equal(result.status, 200);
		forwarded = JSON.parse(result.text).headers;
		await waitFor(() => sent.length > 0, 'the request event of the gateway fetch');
		const h = sent[sent.length - 1];
		assert.equal(h['x-datadog-origin'], 'rum', `browser sent: ${JSON.stringify(h)}`);
		assert.match(h['x-datadog-trace-id'] || '', /^\d+$/);
		assert.match(h['x-datadog-parent-id'] || '', /^\d+$/);
		assert.equal(h['x-datadog-sampling-priority'], '1');
		rum = { traceId: h['x-datadog-trace-id'], spanId: h['x-datadog-parent-id'] };
		// RUM's datadog and tracecontext headers agree (same ids).
		const tp = (h.traceparent || '').split('-');
		assert.equal(tp.length, 4, `traceparent: ${h.traceparent}`);
		assert.equal(tp[1], w3cTraceId(rum.traceId));
		assert.equal(hexToDec(tp[2]), rum.spanId);
		assert.match(h.baggage || '', /session\.id=/, 'RUM sent no baggage');
	});

	test('the backend received RUM\'s trace id with the gateway as parent', () => {
		assert.ok(rum && forwarded, 'no traced request');
		assert.equal(forwarded['x-datadog-trace-id'], rum.traceId,
		    `backend got: ${JSON.stringify(forwarded)}`);
		assert.match(forwarded['x-datadog-parent-id'] || '', /^\d+$/);
		assert.notEqual(forwarded['x-datadog-parent-id'], rum.spanId,
		    'the gateway forwarded RUM\'s span id: it created no span of its own');
		assert.equal(forwarded['x-datadog-sampling-priority'], '1');
		assert.equal(forwarded['x-datadog-origin'], 'rum');
		const tp = (forwarded.traceparent || '').split('-');
		assert.equal(tp.length, 4, `traceparent: ${forwarded.traceparent}`);
		assert.equal(tp[1], w3cTraceId(rum.traceId), 'RUM\'s 64-bit trace id must stay 64-bit');
		assert.equal(hexToDec(tp[2]), forwarded['x-datadog-parent-id']);
		assert.match(forwarded.baggage || '', /session\.id=/);
		// The backend's view (dd-trace's active span) is in the same trace.
		const seen = JSON.parse(result.text).dd;
		assert.equal(seen?.trace_id, rum.traceId, 'dd-trace continued another trace');
	});

	test('dd-trace exported a backend span in RUM\'s trace', async () => {
		assert.ok(rum, 'no traced request');
		const tid = BigInt(rum.traceId);
		const sp = await agent.waitSpan((s) => s.service === BACKEND_SERVICE && s.trace_id === tid,
		    `a ${BACKEND_SERVICE} span with trace id ${rum.traceId}`, SPAN_WAIT_MS);
		assert.equal(sp.parent_id.toString(), forwarded['x-datadog-parent-id'],
		    'the backend span\'s parent is not what the gateway forwarded');
		assert.equal(sp.meta['_dd.origin'], 'rum');
	});

	test('the gateway exported its span as the child of RUM\'s span', async () => {
		assert.ok(rum, 'no traced request');
		const sp = await gatewaySpan();
		assert.deepEqual(agent.errors, [], 'the fake agent could not decode a payload');
		assert.equal(sp.parent_id.toString(), rum.spanId, 'gateway span parent != RUM span id');
		assert.equal(sp.span_id.toString(), forwarded['x-datadog-parent-id'],
		    'the gateway injected another span id than the one it exported');
		assert.equal(sp.meta['_dd.p.tid'], undefined, 'a 64-bit RUM trace was upgraded to 128-bit');
		assert.equal(sp.meta['http.status_code'], '200');
		assert.equal(sp.error ?? 0, 0);
	});

	test('the backend span is the child of the gateway span', async () => {
		assert.ok(rum, 'no traced request');
		const tid = BigInt(rum.traceId);
		const gws = await gatewaySpan();
		const be = await agent.waitSpan((s) => s.service === BACKEND_SERVICE && s.trace_id === tid,
		    'the backend span', SPAN_WAIT_MS);
		assert.equal(be.parent_id, gws.span_id);
		assert.equal(gws.parent_id, BigInt(rum.spanId));
	});

	test('RUM\'s own resource event names the same trace and span', async () => {
		assert.ok(rum, 'no traced request');
		// Leaving the page makes the SDK flush its batch to the proxy sink.
		await page.goto('about:blank');
		const ev = await waitFor(() => rumEvents(pages).find((e) => e.type === 'resource' &&
		    e.resource?.url?.startsWith(gw.origin)), 'the RUM resource event of the gateway fetch');
		assert.equal(ev._dd?.trace_id, rum.traceId);
		assert.equal(ev._dd?.span_id, rum.spanId);
		assert.equal(ev.resource.status_code, 200);
	});
});
