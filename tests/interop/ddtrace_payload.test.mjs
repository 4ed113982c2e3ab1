// ddtrace_payload.test.mjs -- issue #5 cross-check: the keys and msgpack
// types of the gateway's v0.4 span match what the real dd-trace (npm)
// sends to an agent.  Both payloads are captured by the same fake agent
// (tests/support/fake_agent, msgpack-c), which writes each request as a
// JSON line with "types": the body's shape with each leaf replaced by its
// msgpack type (uint, int, float32, float64, str, bin, bool, nil).
//
// dd-trace's web span comes from tests/support/capture_ddtrace.cjs (its
// http server plugin, a RUM-like request), ours from the gateway with the
// datadog exporter in front of the fake backend, same request headers.
// Differences the Agent accepts, so not failures: dd-trace-js packs
// integral metrics compactly (uint), tracestitch always packs float64
// (like dd-trace-cpp, PROPAGATION.md 11.2).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { BUILD, INTEROP_DIR, Proc, REPO, get, tempDir, waitFor } from './lib/procs.mjs';

const FAKE_AGENT = path.join(BUILD, 'tests', 'support', 'fake_agent');
const FAKE_BACKEND = path.join(BUILD, 'tests', 'support', 'fake_backend');
const GATEWAY = path.join(BUILD, 'src', 'tracestitch');
const CAPTURE = path.join(REPO, 'tests', 'support', 'capture_ddtrace.cjs');

const HEADERS = {
	'x-datadog-trace-id': '12345678901234567890',
	'x-datadog-parent-id': '987654321',
	'x-datadog-sampling-priority': '1',
	'x-datadog-origin': 'rum',
	'origin': 'https://app.example.com',
	'user-agent': 'capture/1.0',
};

// Environment without DD_* / OTEL_* of the caller.
function cleanEnv(extra) {
	const env = {};
	for (const [k, v] of Object.entries(process.env))
		if (!k.startsWith('DD_') && !k.startsWith('OTEL_'))
			env[k] = v;
	return { ...env, ...extra };
}

async function startAgent() {
	const p = new Proc('fake_agent', FAKE_AGENT, ['-p', '0'], cleanEnv({}));
	const m = await p.waitLine(/fake agent listening on http:\/\/127\.0\.0\.1:(\d+)/);
	p.port = Number(m[1]);
	return p;
}

// Recorded requests of the fake agent (JSON lines on its stdout).
function agentRequests(agent) {
	const out = [];
	for (const l of agent.lines.stdout) {
		if (!l.startsWith('{'))
			continue;
		try {
			out.push(JSON.parse(l));
		} catch { /* partial line */ }
	}
	return out;
}

// The first span of type web in the recorded v0.4 payloads, with its
// types and the request that carried it.
function webSpan(agent, pred = () => true) {
	for (const req of agentRequests(agent)) {
		if (!Array.isArray(req.body))
			continue;
		for (const [i, trace] of req.body.entries())
			for (const [j, span] of trace.entries())
				if (span.type === 'web' && pred(span))
					return { req, span, types: req.types[i][j] };
	}
	return null;
}

const NUMERIC = new Set(['uint', 'int', 'float32', 'float64']);

test('gateway v0.4 span keys and msgpack types match dd-trace', { timeout: 60000 }, async (t) => {
	for (const f of [FAKE_AGENT, FAKE_BACKEND, GATEWAY]) {
		if (!fs.existsSync(f)) {
			t.skip(`${f} not built`);
			return;
		}
	}
	if (!fs.existsSync(path.join(INTEROP_DIR, 'node_modules', 'dd-trace'))) {
		t.skip('dd-trace not installed');
		return;
	}
	const tmp = tempDir();
	const procs = [];
	try {
		// 1. dd-trace's own web span.
		const agent = await startAgent();
		procs.push(agent);
		const cap = new Proc('capture_ddtrace', process.execPath, [CAPTURE], cleanEnv({
			NODE_PATH: path.join(INTEROP_DIR, 'node_modules'),
			DD_TRACE_AGENT_URL: `http://127.0.0.1:${agent.port}`,
			DD_SERVICE: 'capture',
			DD_TRACE_STARTUP_LOGS: 'false',
			DD_TRACE_TELEMETRY_ENABLED: 'false',
			DD_INSTRUMENTATION_TELEMETRY_ENABLED: 'false',
			DD_REMOTE_CONFIGURATION_ENABLED: 'false',
			DD_PROFILING_ENABLED: 'false',
			DD_RUNTIME_METRICS_ENABLED: 'false',
			CAPTURE_HEADERS: JSON.stringify(HEADERS),
		}));
		procs.push(cap);
		const theirs = await waitFor(() => webSpan(agent), "dd-trace's web span");
		await cap.stop();

		// 2. Ours: the gateway in front of the fake backend.
		const be = new Proc('fake_backend', FAKE_BACKEND, ['-p', '0', '-n', 'be'], cleanEnv({}));
		procs.push(be);
		const bm = await be.waitLine(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
		const cfg = {
			server: { listen: ['127.0.0.1:0'], workers: 1 },
			routes: [{ name: 'api', path_prefix: '/', upstream: { url: `http://127.0.0.1:${bm[1]}` } }],
			tracing: { service: 'capture', env: 'interop', version: '1.0' },
			exporter: { type: 'datadog', datadog_url: `http://127.0.0.1:${agent.port}`, flush_interval: '20ms' },
			logging: { level: 'info', access_log: 'off' },
		};
		const file = path.join(tmp.dir, 'gateway.yaml');
		fs.writeFileSync(file, JSON.stringify(cfg, null, 2) + '\n');
		const gw = new Proc('tracestitch', GATEWAY, ['-c', file], cleanEnv({}));
		procs.push(gw);
		const gm = await gw.waitLine(/(?<!admin )listening on http:\/\/127\.0\.0\.1:(\d+)/, 'stderr');
		await gw.waitLine(/\bready\b/, 'stderr');
		const res = await get(`http://127.0.0.1:${gm[1]}/echo/users/42?q=1`, HEADERS);
		assert.equal(res.status, 200);
		const ours = await waitFor(() => webSpan(agent, (s) => s.meta && s.meta.component === 'tracestitch'),
		    "the gateway's span");

		// Top-level keys: the same set (span_links only when linked,
		// meta_struct never sent by either for a plain web span).
		const optional = new Set(['span_links', 'meta_struct']);
		const keys = (o) => Object.keys(o).filter((k) => !optional.has(k)).sort();
		assert.deepEqual(keys(ours.span), keys(theirs.span), 'top-level span keys');

		// The msgpack type of every scalar field.
		for (const k of keys(theirs.span)) {
			if (k === 'meta' || k === 'metrics')
				continue;
			assert.equal(ours.types[k], theirs.types[k], `msgpack type of ${k}`);
		}
		// meta: map str -> str in both.
		for (const [side, s] of [['ours', ours], ['dd-trace', theirs]]) {
			assert.equal(typeof s.types.meta, 'object', `${side}: meta is a map`);
			for (const [k, ty] of Object.entries(s.types.meta))
				assert.equal(ty, 'str', `${side}: meta ${k} is ${ty}`);
			assert.equal(typeof s.types.metrics, 'object', `${side}: metrics is a map`);
			for (const [k, ty] of Object.entries(s.types.metrics))
				assert.ok(NUMERIC.has(ty), `${side}: metric ${k} is ${ty}`);
		}
		// Ours are float64 throughout (dd-trace-cpp); dd-trace-js's
		// integral metrics are compact ints: both are numbers to the Agent.
		for (const [k, ty] of Object.entries(ours.types.metrics))
			assert.equal(ty, 'float64', `our metric ${k}`);
		const diff = Object.entries(theirs.types.metrics).filter(([, ty]) => ty !== 'float64');
		if (diff.length > 0)
			t.diagnostic(`dd-trace packs these metrics as ints: ${diff.map(([k, ty]) => `${k}=${ty}`).join(', ')}`);

		// The standard web-span tags dd-trace sets, we set too.
		for (const k of ['component', 'http.method', 'http.status_code', 'http.url',
		    'http.useragent', 'language', 'runtime-id', 'span.kind', '_dd.origin']) {
			assert.ok(k in theirs.span.meta, `dd-trace sets meta ${k}`);
			assert.ok(k in ours.span.meta, `gateway sets meta ${k}`);
		}
		for (const k of ['_dd.measured', '_sampling_priority_v1', 'process_id'])
			assert.ok(k in ours.span.metrics, `gateway sets metric ${k}`);
		// Both continued the same browser trace.
		assert.equal(String(ours.span.trace_id), HEADERS['x-datadog-trace-id']);
		assert.equal(String(theirs.span.trace_id), HEADERS['x-datadog-trace-id']);

		// The agent request headers.
		for (const h of ['content-type', 'x-datadog-trace-count', 'datadog-meta-lang',
		    'datadog-meta-lang-version', 'datadog-meta-tracer-version']) {
			assert.ok(theirs.req.headers[h], `dd-trace sends ${h}`);
			assert.ok(ours.req.headers[h], `gateway sends ${h}`);
		}
		assert.equal(ours.req.headers['content-type'], theirs.req.headers['content-type']);
		assert.equal(theirs.req.path, '/v0.4/traces');
		assert.equal(ours.req.path, '/v0.4/traces');
		t.diagnostic(`dd-trace ${theirs.req.headers['datadog-meta-tracer-version']}: ` +
		    `${keys(theirs.span).join(',')}`);
	} finally {
		for (const p of procs.reverse())
			await p.stop();
		tmp.remove();
	}
});
