// fake_agent.mjs -- a tiny stand-in for the Datadog Agent's trace intake,
// in the test process: answers /info, decodes every /v0.4/traces payload
// (msgpack array of traces, each an array of span maps) with
// @msgpack/msgpack and keeps the spans, ids as BigInt so that 64-bit ids
// above 2^53 stay exact.  Everything else (telemetry, remote config,
// stats) is answered 200 {} and ignored.

import http from 'node:http';

import { decode } from '@msgpack/msgpack';

import { closeServer, listen, waitFor } from './harness.mjs';

const ID_KEYS = ['trace_id', 'span_id', 'parent_id'];

function normSpan(raw, payload) {
	const s = { ...raw, _payload: payload };
	for (const k of ID_KEYS)
		s[k] = raw[k] === undefined || raw[k] === null ? 0n : BigInt(raw[k]);
	s.meta = raw.meta || {};
	s.metrics = raw.metrics || {};
	return s;
}

export async function startFakeAgent() {
	const agent = { payloads: [], spans: [], errors: [] };
	agent.server = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			const url = new URL(req.url, 'http://127.0.0.1');
			const body = Buffer.concat(chunks);
			if (url.pathname === '/info') {
				res.writeHead(200, { 'Content-Type': 'application/json' });
				res.end(JSON.stringify({ version: 'e2e-fake', endpoints: ['/v0.4/traces'] }));
				return;
			}
			if (url.pathname === '/v0.4/traces') {
				const payload = { method: req.method, headers: req.headers, size: body.length };
				try {
					const traces = body.length ? decode(body, { useBigInt64: true }) : [];
					if (!Array.isArray(traces))
						throw new Error('payload is not an array of traces');
					payload.traces = traces;
					for (const t of traces) {
						if (!Array.isArray(t))
							throw new Error('a trace is not an array of spans');
						for (const sp of t)
							agent.spans.push(normSpan(sp, payload));
					}
				} catch (e) {
					agent.errors.push(`${req.headers['user-agent'] || '?'}: ${e.message}`);
				}
				agent.payloads.push(payload);
				res.writeHead(200, { 'Content-Type': 'application/json' });
				res.end('{"rate_by_service":{}}');
				return;
			}
			res.writeHead(200, { 'Content-Type': 'application/json' });
			res.end('{}');
		});
	});
	agent.port = await listen(agent.server);
	agent.url = `http://127.0.0.1:${agent.port}`;
	// Wait for a span matching pred; on timeout say what the agent got.
	agent.waitSpan = async (pred, what, timeoutMs) => {
		try {
			return await waitFor(() => agent.spans.find(pred), what, timeoutMs);
		} catch (e) {
			const seen = agent.spans.map((s) => `${s.service}/${s.name} trace ${s.trace_id}`);
			e.message += `; the agent got ${agent.payloads.length} payload(s), spans: ` +
			    `[${seen.join(', ')}], decode errors: [${agent.errors.join('; ')}]`;
			throw e;
		}
	};
	agent.stop = () => closeServer(agent.server);
	return agent;
}
