// harness.mjs -- shared pieces of the browser end-to-end suite: child
// processes stopped by their PID, deadline-bounded waits on their output,
// the tracestitch gateway started from a generated YAML file, a static
// page server (origin A) that also serves the RUM SDK bundle and sinks RUM
// events, and a fresh headless Debian Chromium driven by playwright-core.
//
// Everything listens on 127.0.0.1 port 0 and reports the port it got.

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(E2E_DIR, '..', '..');
export const BUILD = path.resolve(REPO, process.env.BUILD || 'build');
export const GATEWAY_BIN = path.join(BUILD, 'src', 'tracestitch');
export const DEMO_BACKEND_BIN = path.join(BUILD, 'tests', 'support', 'demo_backend');
export const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';

// Default deadline of one wait; the whole suite must stay under 3 minutes.
export const WAIT_MS = 15000;

// A temporary directory removed by the returned cleanup function.
export function tempDir(prefix) {
	return fs.mkdtempSync(path.join(os.tmpdir(), `tracestitch-e2e-${prefix}-`));
}

// Poll fn() until it returns a truthy value or the deadline passes.
export async function waitFor(fn, what, timeoutMs = WAIT_MS, intervalMs = 25) {
	const deadline = Date.now() + timeoutMs;
	let last;
	for (;;) {
		try {
			const v = await fn();
			if (v)
				return v;
		} catch (e) {
			last = e;
		}
		if (Date.now() > deadline)
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
			    (last ? ` (last error: ${last.message})` : ''));
		await new Promise((r) => setTimeout(r, intervalMs));
	}
}

// Children still running; killed by PID if this process exits first (a
// failed before() hook or a crash must not leave a gateway behind).
const live = new Set();
function killLive() {
	for (const p of live) {
		try {
			process.kill(p.pid, 'SIGKILL');
		} catch { /* gone already */ }
	}
}
process.on('exit', killLive);
for (const sig of ['SIGTERM', 'SIGINT']) {
	process.on(sig, () => {
		killLive();
		process.exit(128 + (sig === 'SIGTERM' ? 15 : 2));
	});
}

// A child process whose output lines are kept and can be awaited.
export class Proc {
	constructor(name, cmd, args, opts = {}) {
		this.name = name;
		this.lines = { stdout: [], stderr: [] };
		this.waiters = [];
		this.exited = null;
		this.child = spawn(cmd, args, {
			cwd: opts.cwd || REPO,
			env: opts.env || process.env,
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		this.pid = this.child.pid;
		if (this.pid !== undefined)
			live.add(this);
		for (const stream of ['stdout', 'stderr']) {
			let buf = '';
			this.child[stream].setEncoding('utf8');
			this.child[stream].on('data', (chunk) => {
				buf += chunk;
				let i;
				while ((i = buf.indexOf('\n')) >= 0) {
					this.onLine(stream, buf.slice(0, i));
					buf = buf.slice(i + 1);
				}
			});
		}
		this.exitPromise = new Promise((resolve) => {
			this.child.on('exit', (code, signal) => {
				live.delete(this);
				this.exited = { code, signal };
				for (const w of this.waiters)
					w.reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) ` +
					    `before printing ${w.re}\n${this.tail()}`));
				this.waiters = [];
				resolve(this.exited);
			});
			this.child.on('error', (e) => {
				live.delete(this);
				this.exited = { code: -1, signal: null, error: e };
				for (const w of this.waiters)
					w.reject(new Error(`${this.name}: ${e.message}`));
				this.waiters = [];
				resolve(this.exited);
			});
		});
	}

	onLine(stream, line) {
		this.lines[stream].push(line);
		if (process.env.E2E_VERBOSE)
			process.stderr.write(`[${this.name} ${stream}] ${line}\n`);
		this.waiters = this.waiters.filter((w) => {
			if ((w.stream && w.stream !== stream) || !w.re.test(line))
				return true;
			clearTimeout(w.timer);
			w.resolve(line.match(w.re));
			return false;
		});
	}

	// Resolve with the match of the first line (already seen or to come).
	waitLine(re, { stream = null, timeoutMs = WAIT_MS } = {}) {
		for (const s of stream ? [stream] : ['stdout', 'stderr'])
			for (const l of this.lines[s])
				if (re.test(l))
					return Promise.resolve(l.match(re));
		if (this.exited)
			return Promise.reject(new Error(`${this.name} already exited\n${this.tail()}`));
		return new Promise((resolve, reject) => {
			const w = { re, stream, resolve, reject };
			w.timer = setTimeout(() => {
				this.waiters = this.waiters.filter((x) => x !== w);
				reject(new Error(`${this.name}: no line matching ${re} within ` +
				    `${timeoutMs} ms\n${this.tail()}`));
			}, timeoutMs);
			this.waiters.push(w);
		});
	}

	tail(n = 20) {
		const out = [];
		for (const s of ['stdout', 'stderr'])
			for (const l of this.lines[s].slice(-n))
				out.push(`  [${this.name} ${s}] ${l}`);
		return out.join('\n');
	}

	// SIGTERM by PID; SIGKILL if it has not exited by the deadline.
	async stop(timeoutMs = 5000) {
		if (this.exited)
			return this.exited;
		try {
			process.kill(this.pid, 'SIGTERM');
		} catch {
			return this.exitPromise;
		}
		const timer = setTimeout(() => {
			try {
				process.kill(this.pid, 'SIGKILL');
			} catch { /* gone already */ }
		}, timeoutMs);
		const r = await this.exitPromise;
		clearTimeout(timer);
		return r;
	}
}

// A port on 127.0.0.1 with nothing listening: bind port 0, then close it.
export async function closedPort() {
	const srv = net.createServer();
	srv.listen(0, '127.0.0.1');
	await once(srv, 'listening');
	const { port } = srv.address();
	srv.close();
	await once(srv, 'close');
	return port;
}

// Start an http.Server on 127.0.0.1:0; resolve with its port.
export async function listen(server) {
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	return server.address().port;
}

// Close an http.Server, dropping kept-alive connections.
export async function closeServer(server) {
	if (!server || !server.listening)
		return;
	const p = once(server, 'close');
	server.close();
	server.closeAllConnections?.();
	await p;
}

// Minimal YAML emitter for the gateway config (JSON is valid YAML flow
// style, so every value is written as JSON).
function toYaml(obj) {
	return Object.entries(obj).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n';
}

// The demo backend (build/tests/support/demo_backend -p 0): echoes the
// request it got as JSON.
export async function startDemoBackend() {
	const p = new Proc('demo_backend', DEMO_BACKEND_BIN, ['-a', '127.0.0.1', '-p', '0']);
	const m = await p.waitLine(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
	p.port = Number(m[1]);
	p.url = `http://127.0.0.1:${p.port}`;
	return p;
}

// Start the gateway with the given config sections (routes, cors, ...);
// listen/admin/workers are filled in.  Resolves once it logged "ready".
export async function startGateway(sections, dir) {
	const cfg = {
		server: { listen: ['127.0.0.1:0'], workers: 1 },
		admin: { listen: '127.0.0.1:0' },
		logging: { level: 'info', access_log: 'stdout', format: 'json' },
		...sections,
	};
	const file = path.join(dir, `gateway-${Date.now()}-${Math.random().toString(16).slice(2)}.yaml`);
	fs.writeFileSync(file, toYaml(cfg));
	const p = new Proc('tracestitch', GATEWAY_BIN, ['-c', file]);
	p.configFile = file;
	await p.waitLine(/\bready\b/, { stream: 'stderr' });
	const admin = await p.waitLine(/admin listening on http:\/\/127\.0\.0\.1:(\d+)/, { stream: 'stderr' });
	// https:// when the config has server.tls.
	const main = await p.waitLine(/(?<!admin )listening on (https?):\/\/127\.0\.0\.1:(\d+)/, { stream: 'stderr' });
	p.port = Number(main[2]);
	p.adminPort = Number(admin[1]);
	p.origin = `${main[1]}://127.0.0.1:${p.port}`;
	p.adminUrl = `http://127.0.0.1:${p.adminPort}`;
	return p;
}

// Access-log lines the gateway printed (JSON objects).
export function accessLog(gw) {
	const out = [];
	for (const l of gw.lines.stdout) {
		try {
			out.push(JSON.parse(l));
		} catch { /* not JSON */ }
	}
	return out;
}

// Sum of the samples of a Prometheus family whose labels include every
// label=value given.
export async function metric(gw, family, labels = {}) {
	const res = await fetch(`${gw.adminUrl}/metrics`);
	const text = await res.text();
	let sum = 0;
	for (const line of text.split('\n')) {
		if (line.startsWith('#'))
			continue;
		const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/);
		if (!m || m[1] !== family)
			continue;
		const have = {};
		for (const kv of (m[3] || '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g))
			have[kv[1]] = kv[2];
		if (Object.entries(labels).every(([k, v]) => have[k] === v))
			sum += Number(m[4]);
	}
	return sum;
}

// Origin A: static pages, the RUM SDK bundle from node_modules under
// /rum/, and a RUM intake sink (POST /rum-intake, the SDK's `proxy`).
// With tls ({ key, cert } PEM, see testCert) it serves HTTPS.
export async function startPageServer(pages = {}, { tls = null } = {}) {
	const rumDir = path.join(E2E_DIR, 'node_modules', '@datadog', 'browser-rum', 'bundle');
	const sink = [];
	const handler = (req, res) => {
		const url = new URL(req.url, 'http://127.0.0.1');
		if (req.method === 'POST' && url.pathname === '/rum-intake') {
			const chunks = [];
			req.on('data', (c) => chunks.push(c));
			req.on('end', () => {
				sink.push({ forward: url.searchParams.get('ddforward'),
				    headers: req.headers, body: Buffer.concat(chunks) });
				res.writeHead(202, { 'Content-Type': 'application/json' });
				res.end('{}');
			});
			return;
		}
		if (url.pathname.startsWith('/rum/')) {
			const rel = path.normalize(url.pathname.slice(5));
			const file = path.join(rumDir, rel);
			if (!file.startsWith(rumDir + path.sep) || !fs.existsSync(file)) {
				res.writeHead(404).end();
				return;
			}
			res.writeHead(200, { 'Content-Type': 'text/javascript' });
			fs.createReadStream(file).pipe(res);
			return;
		}
		const body = pages[url.pathname];
		if (body === undefined) {
			res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
			return;
		}
		res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
		res.end(body);
	};
	const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) :
	    http.createServer(handler);
	const port = await listen(server);
	return { server, port, origin: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, sink, pages };
}

// A self-signed test certificate for 127.0.0.1 made now with openssl (EC
// P-256, one day), in dir: { key, cert } (PEM), their files, and the
// base64 SHA-256 of its SubjectPublicKeyInfo, the form Chromium's
// --ignore-certificate-errors-spki-list takes.
export function testCert(dir) {
	const keyFile = path.join(dir, 'test.key');
	const certFile = path.join(dir, 'test.crt');
	execFileSync('openssl', ['req', '-x509', '-newkey', 'ec',
	    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
	    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
	    '-keyout', keyFile, '-out', certFile], { stdio: 'pipe' });
	const cert = fs.readFileSync(certFile);
	const spki = new crypto.X509Certificate(cert).publicKey
	    .export({ type: 'spki', format: 'der' });
	return {
		key: fs.readFileSync(keyFile), cert, keyFile, certFile,
		spki: crypto.createHash('sha256').update(spki).digest('base64'),
	};
}

// RUM events the SDK posted to the sink: each body is newline-delimited
// JSON (uncompressed: compressIntakeRequests is off by default).
export function rumEvents(pageServer) {
	const out = [];
	for (const s of pageServer.sink) {
		if (!s.forward || !s.forward.startsWith('/api/v2/rum'))
			continue;
		for (const line of s.body.toString('utf8').split('\n')) {
			if (!line.trim())
				continue;
			try {
				out.push(JSON.parse(line));
			} catch { /* not an event line */ }
		}
	}
	return out;
}

// A fresh headless Debian Chromium (its own user-data-dir); extraArgs are
// added to its command line.
export async function launchBrowser(dir, extraArgs = []) {
	const userDataDir = fs.mkdtempSync(path.join(dir, 'chromium-'));
	const context = await chromium.launchPersistentContext(userDataDir, {
		executablePath: CHROMIUM,
		headless: true,
		timeout: 30000,
		args: [
			'--headless',
			'--no-sandbox',
			'--disable-gpu',
			'--disable-quic',
			'--no-first-run',
			'--disable-background-networking',
			'--disable-component-update',
			'--disable-sync',
			...extraArgs,
		],
	});
	context.setDefaultTimeout(WAIT_MS);
	return context;
}
