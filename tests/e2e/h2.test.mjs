// h2.test.mjs -- the browser trace of rum.test.mjs over HTTPS and HTTP/2
// (issue 12 item 5): the page (origin A, a Node HTTPS server) and the
// gateway (origin B, server.tls with the default server.http2: ALPN h2)
// both on a certificate made at test time with openssl, which Chromium
// trusts through --ignore-certificate-errors-spki-list (its SPKI hash:
// nothing is added to a system trust store, no certificate error is
// ignored for any other key).
//
// What must hold:
//   - Chromium's preflight and the traced fetch reach the gateway over h2:
//     the gateway's access log says "http.version":"2" for the OPTIONS and
//     the GET, its /metrics count them under protocol="h2", and the
//     browser's own resource timing says nextHopProtocol "h2" for the
//     fetch;
//   - the trace link of rum.test.mjs: RUM span -> gateway span (same
//     trace, parent = RUM's span id) -> dd-trace web.request span (parent
//     = the gateway span), and RUM's resource event names the same ids.
// Real components only (Debian Chromium, @datadog/browser-rum, dd-trace);
// every port is picked by the kernel.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startFakeAgent } from './lib/fake_agent.mjs';
import {
	accessLog, closeServer, E2E_DIR, launchBrowser, metric, Proc, rumEvents,
	startGateway, startPageServer, tempDir, testCert, waitFor,
} from './lib/harness.mjs';

const GATEWAY_SERVICE = 'tracestitch-e2e-h2';
const BACKEND_SERVICE = 'e2e-backend-h2';
const SPAN_WAIT_MS = 10000;

function rumPage() {
	return `<!doctype html>
<html><head><meta charset="utf-8"><title>RUM over h2</title>
<script src="/rum/datadog-rum.js"></script>
<script>
const gw = new URLSearchParams(location.search).get('gw');
window.DD_RUM.init({
	applicationId: '00000000-0000-4000-8000-000000000002',
	clientToken: 'pub00000000000000000000000000000000',
	site: 'datadoghq.com',
	proxy: location.origin + '/rum-intake',
	service: 'e2e-page-h2',
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
		const text = await r.text();
		const e = performance.getEntriesByName(url, 'resource').pop();
		return { ok: true, status: r.status, text,
		    protocol: e ? e.nextHopProtocol : null };
	} catch (e) {
		return { ok: false, name: e.name, message: String(e.message) };
	}
};
</script></head><body><p>RUM page over HTTPS</p></body></html>`;
}

describe('Chromium over HTTPS + h2: RUM SDK -> tracestitch -> dd-trace', () => {
	let dir, cert, pages, agent, backend, gw, browser, page;
	const sent = [];	// headers of the GETs Chromium sent to the gateway
	let result;		// what the page read
	let rum;		// { traceId, spanId } RUM generated (decimal strings)
	let forwarded;		// headers the backend received
	let url;		// the fetched URL (unique path per run)
	let gatewaySpanP;

	function gatewaySpan() {
		const tid = BigInt(rum.traceId);
		gatewaySpanP ??= agent.waitSpan((s) => s.service === GATEWAY_SERVICE && s.trace_id === tid,
		    `a ${GATEWAY_SERVICE} span with trace id ${rum.traceId}`, SPAN_WAIT_MS);
		return gatewaySpanP;
	}

	before(async () => {
		dir = tempDir('h2');
		cert = testCert(dir);
		pages = await startPageServer({ '/rum.html': rumPage() }, { tls: cert });
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
		// server.http2 is left to its default (on): the test fails if the
		// default stops offering h2.
		gw = await startGateway({
			server: { listen: ['127.0.0.1:0'], workers: 1,
			    tls: { cert: cert.certFile, key: cert.keyFile } },
			routes: [{ name: 'api', path_prefix: '/', upstream: { url: backend.url } }],
			cors: { allowed_origins: [pages.origin], allow_credentials: false },
			propagation: { extract: ['datadog', 'tracecontext', 'baggage'],
			    inject: ['datadog', 'tracecontext', 'baggage'] },
			tracing: { service: GATEWAY_SERVICE, env: 'e2e' },
			exporter: { type: 'datadog', datadog_url: agent.url, flush_interval: '100ms' },
		}, dir);
		assert.match(gw.origin, /^https:\/\//, 'the gateway did not listen with TLS');
		browser = await launchBrowser(dir, [`--ignore-certificate-errors-spki-list=${cert.spki}`]);
		page = await browser.newPage();
		page.on('request', async (req) => {
			if (req.url().startsWith(gw.origin) && req.method() === 'GET')
				sent.push(await req.allHeaders());
		});
		const res = await page.goto(`${pages.origin}/rum.html?gw=${encodeURIComponent(gw.origin)}`);
		assert.equal(res.status(), 200, 'the HTTPS page did not load');
		await page.waitForFunction(() => window.DD_RUM?.getInternalContext()?.session_id);
		url = `${gw.origin}/api/h2/${Date.now()}`;
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

	test('the page is served over HTTPS on the test certificate', async () => {
		const proto = await page.evaluate(() => location.protocol);
		assert.equal(proto, 'https:');
		// A secure context: the page was not loaded past a certificate error.
		assert.equal(await page.evaluate(() => window.isSecureContext), true);
	});

	test('the traced fetch succeeds over h2 (the browser\'s resource timing)', async () => {
		result = await page.evaluate((u) => window.callGateway(u), url);
		assert.equal(result.ok, true, `fetch failed in the browser: ${result.name}: ${result.message}`);
		assert.equal(result.status, 200);
		forwarded = JSON.parse(result.text).headers;
		await waitFor(() => sent.length > 0, 'the request event of the gateway fetch');
		const h = sent[sent.length - 1];
		assert.equal(h['x-datadog-origin'], 'rum', `browser sent: ${JSON.stringify(h)}`);
		assert.match(h['x-datadog-trace-id'] || '', /^\d+$/);
		assert.match(h['x-datadog-parent-id'] || '', /^\d+$/);
		rum = { traceId: h['x-datadog-trace-id'], spanId: h['x-datadog-parent-id'] };
		assert.equal(result.protocol, 'h2', `the fetch went over ${result.protocol}`);
	});

	test('the preflight and the GET reach the gateway over h2 (its access log)', async () => {
		assert.ok(result?.ok, 'no fetch');
		const pathname = new URL(url).pathname;
		const lines = await waitFor(() => {
			const l = accessLog(gw).filter((e) => e['http.url_details.path'] === pathname);
			return l.some((e) => e['http.method'] === 'GET') && l.some((e) => e['http.method'] === 'OPTIONS') && l;
		}, `access-log lines of OPTIONS and GET ${pathname}`);
		const pre = lines.find((e) => e['http.method'] === 'OPTIONS');
		const get = lines.find((e) => e['http.method'] === 'GET');
		// Datadog's http.version: "2" for HTTP/2.
		assert.equal(pre['http.version'], '2', `preflight: ${JSON.stringify(pre)}`);
		assert.equal(pre['http.status_code'], 204, `preflight: ${JSON.stringify(pre)}`);
		assert.equal(get['http.version'], '2', `GET: ${JSON.stringify(get)}`);
		assert.equal(get['http.status_code'], 200, `GET: ${JSON.stringify(get)}`);
		assert.equal(get['dd.trace_id'], rum.traceId, 'the access log names another trace');
		// The same two requests in /metrics: by protocol, and Chromium's
		// connection counted as HTTP/2.
		assert.ok(await metric(gw, 'tracestitch_requests_by_protocol_total', { protocol: 'h2' }) >= 2,
		    'fewer than 2 h2 requests in tracestitch_requests_by_protocol_total');
		assert.ok(await metric(gw, 'tracestitch_http2_connections_total') >= 1,
		    'no HTTP/2 connection in tracestitch_http2_connections_total');
	});

	test('the backend received RUM\'s trace id with the gateway as parent', () => {
		assert.ok(rum && forwarded, 'no traced request');
		assert.equal(forwarded['x-datadog-trace-id'], rum.traceId,
		    `backend got: ${JSON.stringify(forwarded)}`);
		assert.match(forwarded['x-datadog-parent-id'] || '', /^\d+$/);
		assert.notEqual(forwarded['x-datadog-parent-id'], rum.spanId,
		    'the gateway forwarded RUM\'s span id: it created no span of its own');
		assert.equal(forwarded['x-datadog-origin'], 'rum');
		// h2 has no Connection header; the HTTP/1.1 request upstream is
		// the gateway's own, Host from :authority.
		assert.equal(forwarded.host, new URL(gw.origin).host);
		assert.equal(JSON.parse(result.text).dd?.trace_id, rum.traceId,
		    'dd-trace continued another trace');
	});

	test('gateway span: child of RUM\'s span; dd-trace span: child of the gateway span', async () => {
		assert.ok(rum, 'no traced request');
		const gws = await gatewaySpan();
		assert.deepEqual(agent.errors, [], 'the fake agent could not decode a payload');
		assert.equal(gws.parent_id.toString(), rum.spanId, 'gateway span parent != RUM span id');
		assert.equal(gws.span_id.toString(), forwarded['x-datadog-parent-id'],
		    'the gateway injected another span id than the one it exported');
		assert.equal(gws.meta['http.status_code'], '200');
		const tid = BigInt(rum.traceId);
		const be = await agent.waitSpan((s) => s.service === BACKEND_SERVICE && s.trace_id === tid,
		    'the backend span', SPAN_WAIT_MS);
		assert.equal(be.parent_id, gws.span_id);
	});

	test('RUM\'s own resource event names the same trace and span', async () => {
		assert.ok(rum, 'no traced request');
		await page.goto('about:blank');
		const ev = await waitFor(() => rumEvents(pages).find((e) => e.type === 'resource' &&
		    e.resource?.url === url), 'the RUM resource event of the gateway fetch');
		assert.equal(ev._dd?.trace_id, rum.traceId);
		assert.equal(ev._dd?.span_id, rum.spanId);
		assert.equal(ev.resource.status_code, 200);
	});
});
