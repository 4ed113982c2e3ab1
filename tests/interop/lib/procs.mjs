// procs.mjs -- what the interop tests share: child processes with their
// output kept line by line (stopped by PID, bounded waits), the gateway
// started on a temporary configuration, the Node backends, an agent sink
// for dd-trace, and one HTTP request helper.
//
// Every server listens on 127.0.0.1 port 0 and reports the port it got;
// every wait has a deadline.  The gateway gets an environment without
// DD_* / OTEL_* variables so that its configuration is only the file.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const INTEROP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(INTEROP_DIR, '..', '..');
export const BUILD = path.resolve(REPO, process.env.BUILD || 'build');
export const GATEWAY_BIN = path.join(BUILD, 'src', 'tracestitch');
export const WAIT_MS = 15000;

// What a browser running the RUM SDK sends for a traced fetch: Datadog
// headers plus W3C trace-context for the same (64-bit) trace.
export const BROWSER = {
	traceIdDec: '5474458728733560230',
	traceIdHex: '00000000000000004bf92f3577b34da6',
	parentIdDec: '67667974448284343',
	parentIdHex: '00f067aa0ba902b7',
};
export const RUM_HEADERS = {
	'x-datadog-trace-id': BROWSER.traceIdDec,
	'x-datadog-parent-id': BROWSER.parentIdDec,
	'x-datadog-origin': 'rum',
	'x-datadog-sampling-priority': '1',
	traceparent: `00-${BROWSER.traceIdHex}-${BROWSER.parentIdHex}-01`,
	tracestate: 'dd=s:1;o:rum',
};

// Resolve when fn() returns something truthy; reject after timeoutMs.
export async function waitFor(fn, what, timeoutMs = WAIT_MS) {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const v = await fn();
		if (v)
			return v;
		if (Date.now() > deadline)
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 20));
	}
}

const live = new Set();
process.on('exit', () => {
	for (const p of live) {
		try {
			process.kill(p.pid, 'SIGKILL');
		} catch { /* already gone */ }
	}
});

// A child process whose stdout and stderr lines are kept.
export class Proc {
	constructor(name, cmd, args, env) {
		this.name = name;
		this.lines = { stdout: [], stderr: [] };
		this.exited = false;
		this.child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
		this.pid = this.child.pid;
		live.add(this);
		for (const s of ['stdout', 'stderr']) {
			let rest = '';
			this.child[s].setEncoding('utf8');
			this.child[s].on('data', (d) => {
				const parts = (rest + d).split('\n');
				rest = parts.pop();
				this.lines[s].push(...parts);
			});
		}
		this.exitPromise = once(this.child, 'exit').then(([code, sig]) => {
			this.exited = true;
			this.exitCode = code;
			this.exitSignal = sig;
			live.delete(this);
		});
	}

	// First line of stream matching re (its match); rejects on exit.
	async waitLine(re, stream = 'stdout', timeoutMs = WAIT_MS) {
		return waitFor(() => {
			for (const l of this.lines[stream]) {
				const m = l.match(re);
				if (m)
					return m;
			}
			if (this.exited)
				throw new Error(`${this.name} exited (${this.exitCode ?? this.exitSignal}) ` +
				    `before printing ${re}:\n${this.log()}`);
			return null;
		}, `${this.name}: ${re}`, timeoutMs);
	}

	log() {
		return ['stdout', 'stderr'].map((s) => this.lines[s].map((l) => `  ${s}: ${l}`).join('\n')).join('\n');
	}

	// SIGTERM by PID, SIGKILL after 5 s.
	async stop() {
		if (this.exited)
			return;
		process.kill(this.pid, 'SIGTERM');
		const t = setTimeout(() => {
			if (!this.exited)
				process.kill(this.pid, 'SIGKILL');
		}, 5000);
		await this.exitPromise;
		clearTimeout(t);
	}
}

// A temporary directory, removed by the returned function.
export function tempDir() {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracestitch-interop-'));
	return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// Environment without the variables the gateway would read.
function gatewayEnv() {
	const env = {};
	for (const [k, v] of Object.entries(process.env))
		if (!k.startsWith('DD_') && !k.startsWith('OTEL_'))
			env[k] = v;
	return env;
}

// The gateway in front of backendPort, injecting the given styles; its
// spans come out on stdout (exporter stdout), one JSON object per line.
export async function startGateway(dir, backendPort, inject) {
	// JSON is YAML: the configuration is written with JSON.stringify.
	const cfg = {
		server: { listen: ['127.0.0.1:0'], workers: 1 },
		admin: { listen: '127.0.0.1:0', debug: true },
		routes: [{ name: 'backend', path_prefix: '/', upstream: { url: `http://127.0.0.1:${backendPort}` } }],
		propagation: { extract: ['datadog', 'tracecontext', 'baggage'], inject },
		tracing: { service: 'interop-gateway' },
		exporter: { type: 'stdout', flush_interval: '20ms' },
		logging: { level: 'info', access_log: 'off' },
	};
	const file = path.join(dir, `gateway-${inject.join('-')}.yaml`);
	fs.writeFileSync(file, JSON.stringify(cfg, null, 2) + '\n');
	const p = new Proc('tracestitch', GATEWAY_BIN, ['-c', file], gatewayEnv());
	const main = await p.waitLine(/(?<!admin )listening on http:\/\/127\.0\.0\.1:(\d+)/, 'stderr');
	const admin = await p.waitLine(/admin listening on http:\/\/127\.0\.0\.1:(\d+)/, 'stderr');
	await p.waitLine(/\bready\b/, 'stderr');
	p.url = `http://127.0.0.1:${main[1]}`;
	p.adminUrl = `http://127.0.0.1:${admin[1]}`;
	return p;
}

// Exported gateway spans (stdout JSON lines) so far.
export function gatewaySpans(gw) {
	const out = [];
	for (const l of gw.lines.stdout) {
		try {
			const o = JSON.parse(l);
			if (o && o.span_id)
				out.push(o);
		} catch { /* not a span line */ }
	}
	return out;
}

// A backend script from backends/ with extra environment; resolves once
// it printed "listening on http://127.0.0.1:PORT".
export async function startBackend(script, env) {
	const p = new Proc(script, process.execPath, [path.join(INTEROP_DIR, 'backends', script)],
	    { ...process.env, ...env });
	const m = await p.waitLine(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
	p.port = Number(m[1]);
	return p;
}

// A stand-in Datadog Agent: answers every request 200 {} (dd-trace's
// flushes go nowhere but never fail).
export async function startAgentSink() {
	const server = http.createServer((req, res) => {
		req.resume();
		req.on('end', () => {
			res.writeHead(200, { 'Content-Type': 'application/json' });
			res.end('{"rate_by_service":{}}');
		});
	});
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	server.url = `http://127.0.0.1:${server.address().port}`;
	server.stop = () => new Promise((r) => {
		server.closeAllConnections();
		server.close(() => r());
	});
	return server;
}

// GET url with headers; resolves { status, headers, body (parsed JSON or text) }.
export function get(url, headers = {}, method = 'GET') {
	return new Promise((resolve, reject) => {
		const req = http.request(url, { method, headers, agent: false, timeout: WAIT_MS }, (res) => {
			let data = '';
			res.setEncoding('utf8');
			res.on('data', (d) => { data += d; });
			res.on('end', () => {
				let body = data;
				try {
					body = JSON.parse(data);
				} catch { /* text */ }
				resolve({ status: res.statusCode, headers: res.headers, body });
			});
		});
		req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
		req.on('error', reject);
		req.end();
	});
}
