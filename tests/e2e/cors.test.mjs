// cors.test.mjs -- CORS as a real browser enforces it.  A page on origin A
// (127.0.0.1:portA) fetch()es the gateway on origin B (127.0.0.1:portB)
// with every header the RUM SDK adds; Chromium sends the preflight itself
// and decides whether the page may read the answer.
//
//  (a) allowed origin, credentials 'include': the preflight passes with
//      all tracing headers, the request reaches the echo backend with
//      them, and the page reads the body;
//  (b) a gateway where A is not allowed: fetch() rejects with a TypeError
//      and the gateway's /metrics counts the refused preflight;
//  (c) a route whose upstream is down: the page reads status 502 and the
//      gateway's JSON error body (CORS headers on the gateway's own error).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import {
	closeServer, closedPort, launchBrowser, metric, startDemoBackend,
	startGateway, startPageServer, tempDir,
} from './lib/harness.mjs';

// What RUM sends with datadog + tracecontext + baggage (PROPAGATION.md 13).
const RUM_HEADERS = {
	'x-datadog-trace-id': '8448503138003127193',
	'x-datadog-parent-id': '4611686018427387905',
	'x-datadog-origin': 'rum',
	'x-datadog-sampling-priority': '1',
	'traceparent': '00-0000000000000000753f1cd788730b99-4000000000000001-01',
	'tracestate': 'dd=s:1;o:rum',
	'baggage': 'session.id=0f2b5c8e-9b7d-4a44-a1a5-3c1f00e2e2aa',
};

// Runs in the page: fetch and report what the page can see.
async function pageFetch({ url, headers, credentials }) {
	try {
		const r = await fetch(url, { method: 'GET', headers, credentials, mode: 'cors' });
		const text = await r.text();
		return { ok: true, status: r.status, text, contentType: r.headers.get('content-type') };
	} catch (e) {
		return { ok: false, name: e.name, message: String(e.message) };
	}
}

describe('CORS in Chromium', () => {
	let dir, pages, backend, gwAllow, gwDeny, browser, page;

	before(async () => {
		dir = tempDir('cors');
		pages = await startPageServer({ '/': '<!doctype html><title>origin A</title><p>A</p>' });
		backend = await startDemoBackend();
		const down = await closedPort();
		const tracing = {
			propagation: { extract: ['datadog', 'tracecontext', 'baggage'],
			    inject: ['datadog', 'tracecontext', 'baggage'] },
			exporter: { type: 'none' },
		};
		gwAllow = await startGateway({
			routes: [
				{ name: 'down', path_prefix: '/down', upstream: { url: `http://127.0.0.1:${down}`, connect_timeout: '2s' } },
				{ name: 'api', path_prefix: '/', upstream: { url: backend.url } },
			],
			cors: { allowed_origins: [pages.origin], allow_credentials: true },
			...tracing,
		}, dir);
		gwDeny = await startGateway({
			routes: [{ name: 'api', path_prefix: '/', upstream: { url: backend.url } }],
			cors: { allowed_origins: ['https://www.example.com'], allow_credentials: true,
			    on_disallowed: 'reject' },
			...tracing,
		}, dir);
		browser = await launchBrowser(dir);
		page = await browser.newPage();
		await page.goto(`${pages.origin}/`);
	});

	after(async () => {
		await browser?.close();
		await gwAllow?.stop();
		await gwDeny?.stop();
		await backend?.stop();
		await closeServer(pages?.server);
		if (dir)
			fs.rmSync(dir, { recursive: true, force: true });
	});

	test('(a) allowed origin: RUM tracing headers pass the preflight, the page reads the body', async () => {
		const r = await page.evaluate(pageFetch,
		    { url: `${gwAllow.origin}/api/echo?x=1`, headers: RUM_HEADERS, credentials: 'include' });
		assert.equal(r.ok, true, `fetch failed in the browser: ${r.name}: ${r.message}`);
		assert.equal(r.status, 200);
		const echo = JSON.parse(r.text);
		assert.equal(echo.method, 'GET');
		assert.equal(echo.path, '/api/echo');
		// The request really crossed the gateway carrying a trace context
		// (the gateway re-injects its own span, so ids may differ; the
		// trace id must not).
		const got = {};
		for (const [name, value] of echo.headers)
			got[name.toLowerCase()] = value;
		assert.equal(got['x-datadog-trace-id'], RUM_HEADERS['x-datadog-trace-id'],
		    `forwarded headers: ${JSON.stringify(echo.headers)}`);
		assert.match(got.traceparent || '', /^00-0000000000000000753f1cd788730b99-[0-9a-f]{16}-01$/);
		assert.equal(got['x-datadog-sampling-priority'], '1');
		assert.equal(got['x-datadog-origin'], 'rum');
		assert.match(got.tracestate || '', /(^|,)\s*dd=([^,]*;)?s:1(;|,|$)/);
		assert.match(got.baggage || '', /session\.id=0f2b5c8e-9b7d-4a44-a1a5-3c1f00e2e2aa/);
		assert.equal(got.origin, pages.origin);
		// Chromium did send a preflight, and the gateway allowed it.
		assert.ok(await metric(gwAllow, 'tracestitch_cors_preflights_total',
		    { route: 'api', result: 'allowed' }) >= 1, 'no allowed preflight counted');
	});

	test('(b) disallowed origin: the browser blocks the fetch, /metrics counts the refusal', async () => {
		const before = await metric(gwDeny, 'tracestitch_cors_preflights_total', { result: 'refused' });
		const r = await page.evaluate(pageFetch,
		    { url: `${gwDeny.origin}/api/echo`, headers: RUM_HEADERS, credentials: 'include' });
		assert.equal(r.ok, false, 'a disallowed origin could read the answer');
		assert.equal(r.name, 'TypeError');
		assert.equal(await metric(gwDeny, 'tracestitch_cors_preflights_total', { result: 'refused' }),
		    before + 1);
		assert.ok(await metric(gwDeny, 'tracestitch_cors_refusals_total', { route: 'api', kind: 'origin' }) >= 1,
		    'refusal not counted by kind');
	});

	test('(c) upstream down: the page reads the 502 and its JSON body', async () => {
		const r = await page.evaluate(pageFetch,
		    { url: `${gwAllow.origin}/down/x`, headers: RUM_HEADERS, credentials: 'include' });
		assert.equal(r.ok, true, `fetch failed in the browser: ${r.name}: ${r.message}`);
		assert.equal(r.status, 502);
		assert.match(r.contentType || '', /application\/json/);
		const body = JSON.parse(r.text);
		assert.equal(body.error, 'bad_gateway');
	});
});
