// rum_relay.test.mjs -- the RUM intake relay (issue 15, docs/rum-relay.md)
// with every participant real but Datadog's intake: the Datadog RUM SDK
// (@datadog/browser-rum from node_modules) in Chromium on origin A, its
// `proxy` option pointing at tracestitch on origin B (another port), and
// the gateway relaying each batch over https to a fake intake (Node https
// with a certificate made at test time, which the gateway verifies through
// rum_intake.tls_ca_file).  The page also calls an API route of the same
// gateway with fetch(): RUM traces it, the gateway continues the trace and
// exports its span to a fake agent.
//
// What must hold:
//   - view, action and resource events reach the intake through the
//     gateway (and nothing reaches the page's own sink), on the intake
//     path the SDK put in ddforward, with X-Forwarded-For and no Cookie;
//   - the RUM resource event of the API call names the trace the gateway
//     span continues (trace id = RUM's, parent = RUM's span id);
//   - the relay's batches made no gateway span (rum_intake.trace is off)
//     and are counted in tracestitch_rum_intake_requests_total.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';

import { startFakeAgent } from './lib/fake_agent.mjs';
import {
	closeServer, launchBrowser, listen, metric, startDemoBackend, startGateway,
	startPageServer, tempDir, testCert, waitFor,
} from './lib/harness.mjs';

const GATEWAY_SERVICE = 'tracestitch-relay-e2e';
const SPAN_WAIT_MS = 10000;

function relayPage() {
	return `<!doctype html>
<html><head><meta charset="utf-8"><title>RUM relay e2e</title>
<script src="/rum/datadog-rum.js"></script>
<script>
const gw = new URLSearchParams(location.search).get('gw');
window.rumSeen = [];
window.DD_RUM.init({
	applicationId: '00000000-0000-4000-8000-000000000002',
	clientToken: 'pub00000000000000000000000000000002',
	site: 'datadoghq.com',
	proxy: gw + '/rum-intake',
	service: 'relay-page',
	env: 'e2e',
	sessionSampleRate: 100,
	sessionReplaySampleRate: 0,
	traceSampleRate: 100,
	trackResources: true,
	trackLongTasks: false,
	trackUserInteractions: true,
	allowedTracingUrls: [{ match: gw + '/api/', propagatorTypes: ['datadog', 'tracecontext'] }],
	// Observes (never changes) the events the SDK assembled, so that the
	// test leaves the page once the click's action is complete.
	beforeSend: (event) => {
		window.rumSeen.push(event.type);
		return true;
	},
});
window.lastCall = null;
async function callApi() {
	try {
		const r = await fetch(gw + '/api/relay?n=1');
		window.lastCall = { ok: true, status: r.status, text: await r.text() };
	} catch (e) {
		window.lastCall = { ok: false, message: String(e) };
	}
}
</script></head><body>
<button id="go" onclick="callApi()">Call the API</button>
</body></html>`;
}

// The fake intake: records every request (path, headers, body).
async function startIntake(cert) {
	const got = [];
	const server = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			got.push({ method: req.method, path: req.url, headers: req.headers,
			    body: Buffer.concat(chunks) });
			res.writeHead(202, { 'Content-Type': 'application/json' });
			res.end('{"request_id":"fake"}');
		});
	});
	const port = await listen(server);
	return { server, port, url: `https://127.0.0.1:${port}`, got };
}

// The RUM events among the intake's requests (NDJSON bodies of /api/v2/rum).
function intakeEvents(intake) {
	const out = [];
	for (const r of intake.got) {
		if (!r.path.startsWith('/api/v2/rum?'))
			continue;
		for (const line of r.body.toString('utf8').split('\n')) {
			if (!line.trim())
				continue;
			try {
				out.push(JSON.parse(line));
			} catch { /* not an event line */ }
		}
	}
	return out;
}

describe('RUM SDK batches through the gateway relay', () => {
	let dir, cert, intake, backend, agent, pages, gw, browser, page;
	let rum;			// { traceId, spanId } of the traced API call
	const sent = [];		// headers Chromium sent to the API route

	before(async () => {
		dir = tempDir('relay');
		cert = testCert(dir);
		intake = await startIntake(cert);
		backend = await startDemoBackend();
		agent = await startFakeAgent();
		pages = await startPageServer({ '/relay.html': relayPage() });
		gw = await startGateway({
			routes: [
				{ name: 'rum', path_prefix: '/rum-intake',
				    rum_intake: { intake_url: intake.url, tls_ca_file: cert.certFile } },
				{ name: 'api', path_prefix: '/', upstream: { url: backend.url } },
			],
			cors: { allowed_origins: [pages.origin], allow_credentials: false },
			propagation: { extract: ['datadog', 'tracecontext'], inject: ['datadog', 'tracecontext'] },
			tracing: { service: GATEWAY_SERVICE, env: 'e2e' },
			exporter: { type: 'datadog', datadog_url: agent.url, flush_interval: '100ms' },
		}, dir);
		browser = await launchBrowser(dir);
		page = await browser.newPage();
		page.on('request', async (req) => {
			if (req.url().startsWith(`${gw.origin}/api/`) && req.method() === 'GET')
				sent.push(await req.allHeaders());
		});
		await page.goto(`${pages.origin}/relay.html?gw=${encodeURIComponent(gw.origin)}`);
		await page.waitForFunction(() => window.DD_RUM?.getInternalContext()?.session_id);
	});

	after(async () => {
		await browser?.close();
		await gw?.stop();
		await backend?.stop();
		await agent?.stop();
		await closeServer(pages?.server);
		await closeServer(intake?.server);
		if (dir)
			fs.rmSync(dir, { recursive: true, force: true });
	});

	test('a click calls the API through the gateway, traced by RUM', async () => {
		await page.click('#go');
		const res = await page.waitForFunction(() => window.lastCall).then((h) => h.jsonValue());
		assert.equal(res.ok, true, `fetch failed in the browser: ${res.message}`);
		assert.equal(res.status, 200);
		await waitFor(() => sent.length > 0, 'the request event of the API call');
		const h = sent[sent.length - 1];
		assert.match(h['x-datadog-trace-id'] || '', /^\d+$/, `browser sent: ${JSON.stringify(h)}`);
		assert.match(h['x-datadog-parent-id'] || '', /^\d+$/);
		rum = { traceId: h['x-datadog-trace-id'], spanId: h['x-datadog-parent-id'] };
	});

	test('view, action and resource events reach the intake through the gateway', async () => {
		assert.ok(rum, 'no traced API call');
		// The click's action is assembled once the page is quiet again;
		// then leaving the page makes the SDK flush its batch to the proxy.
		await page.waitForFunction(() => window.rumSeen.includes('action') &&
		    window.rumSeen.includes('resource'));
		await page.goto('about:blank');
		try {
			await waitFor(() => {
				const ev = intakeEvents(intake);
				return ev.some((e) => e.type === 'view') && ev.some((e) => e.type === 'action') &&
				    ev.some((e) => e.type === 'resource' &&
				    e.resource?.url?.startsWith(`${gw.origin}/api/`));
			}, 'view, action and resource events at the fake intake');
		} catch (e) {
			e.message += `; the intake got ${intake.got.map((r) => r.path.split('?')[0])}, ` +
			    `events ${intakeEvents(intake).map((x) => x.type)}, the page sink ${pages.sink.length}`;
			throw e;
		}
		assert.equal(pages.sink.length, 0, 'a batch went to the page origin instead of the gateway');
		for (const r of intake.got) {
			assert.equal(r.method, 'POST');
			assert.match(r.path, /^\/api\/v2\/(rum|logs|replay|profile|exposures|flagevaluation)\?/,
			    `the intake got ${r.path}`);
			assert.match(r.path, /[?&]ddsource=browser(&|$)/);
			assert.match(r.path, /[?&]dd-api-key=pub00000000000000000000000000000002(&|$)/);
			assert.equal(r.headers['x-forwarded-for'], '127.0.0.1');
			assert.equal(r.headers.host, `127.0.0.1:${intake.port}`);
			assert.equal(r.headers.cookie, undefined);
			assert.equal(r.headers['x-datadog-trace-id'], undefined);
			assert.equal(r.headers.traceparent, undefined);
		}
		const action = intakeEvents(intake).find((e) => e.type === 'action');
		assert.equal(action.action?.type, 'click');
	});

	test('the RUM resource event names the trace the gateway span continues', async () => {
		assert.ok(rum, 'no traced API call');
		const ev = intakeEvents(intake).find((e) => e.type === 'resource' &&
		    e.resource?.url?.startsWith(`${gw.origin}/api/`));
		assert.ok(ev, 'no resource event of the API call at the intake');
		assert.equal(ev._dd?.trace_id, rum.traceId);
		assert.equal(ev._dd?.span_id, rum.spanId);
		const sp = await agent.waitSpan((s) => s.service === GATEWAY_SERVICE &&
		    s.trace_id === BigInt(ev._dd.trace_id), `a gateway span with trace id ${ev._dd.trace_id}`,
		    SPAN_WAIT_MS);
		assert.equal(sp.parent_id.toString(), ev._dd.span_id,
		    'the gateway span is not the child of the RUM resource\'s span');
		assert.equal(sp.meta['http.status_code'], '200');
	});

	test('the relay made no span and counted every batch', async () => {
		const rumBatches = intake.got.filter((r) => r.path.startsWith('/api/v2/rum?')).length;
		assert.ok(rumBatches > 0);
		assert.equal(await metric(gw, 'tracestitch_rum_intake_requests_total',
		    { track: 'rum', result: 'forwarded' }), rumBatches);
		assert.equal(await metric(gw, 'tracestitch_rum_intake_requests_total',
		    { result: 'refused' }), 0);
		assert.ok(await metric(gw, 'tracestitch_rum_intake_bytes_total', { track: 'rum' }) > 0);
		// Every gateway span is of the API route (the relay is untraced).
		assert.ok(agent.spans.filter((s) => s.service === GATEWAY_SERVICE).length > 0);
		for (const s of agent.spans.filter((x) => x.service === GATEWAY_SERVICE))
			assert.ok(!String(s.meta['http.url'] || '').includes('/rum-intake'),
			    `a relay request was traced: ${s.meta['http.url']}`);
	});
});
