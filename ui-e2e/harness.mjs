// The stack a browser journey runs against: a real `casebridge serve` on a temporary SQLite
// directory, with a company (and its API key), an admin user, the Law Ruler and scheduling
// simulators and two webhook receivers (`casebridge sim receiver`), all on 127.0.0.1 with ports
// the OS picks; `serve` uses the scheduling simulator (CASEBRIDGE_SCHEDULING_URL). Nothing is built here: the binary comes from CASEBRIDGE_BIN (default
// target/debug/casebridge, built by `cargo build --workspace`).
//
// Every process started is stopped by `stack.stop()`, and killed if the test process exits
// without calling it (a crash, an uncaught error, Ctrl-C).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..');
export const artifacts = path.join(here, 'artifacts');

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox', // CI runs as root
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Every child still running, killed on exit if nobody stopped it. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(130));
}

export function binary() {
  const bin = path.resolve(repoRoot, process.env.CASEBRIDGE_BIN || 'target/debug/casebridge');
  if (!existsSync(bin)) {
    throw new Error(`${bin} does not exist: run \`cargo build --workspace\` first, or set CASEBRIDGE_BIN`);
  }
  return bin;
}

/** The environment of every casebridge command: the README tour's development settings. */
function environment(dataDir, masterKey) {
  const env = {};
  // Only the variables a process needs; none of the caller's CASEBRIDGE_* settings leak in.
  for (const k of ['PATH', 'HOME', 'LANG', 'TZ']) if (process.env[k]) env[k] = process.env[k];
  return {
    ...env,
    CASEBRIDGE_DATA_DIR: dataDir,
    CASEBRIDGE_MASTER_KEY: masterKey,
    CASEBRIDGE_LISTEN: '127.0.0.1:0',
    CASEBRIDGE_ALLOW_HTTP: 'true',
    CASEBRIDGE_ALLOW_PRIVATE_NETWORKS: '127.0.0.0/8',
    CASEBRIDGE_LOG_FORMAT: 'json',
    CASEBRIDGE_LOG: 'info',
  };
}

/** Runs a command to completion; resolves with its stdout, rejects with its stderr. */
function run(bin, args, env, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`casebridge ${args.join(' ')} exited with ${code ?? signal}:\n${err}${out}`));
    });
    child.stdin.end(input ?? '');
  });
}

/**
 * Starts a long-running command and waits until a line of its stderr matches `pattern`;
 * resolves with the match. Its stderr and stdout are copied to `artifacts/<name>.log`.
 */
function start(name, bin, args, env, pattern, timeoutMs = 30_000) {
  mkdirSync(artifacts, { recursive: true });
  const log = createWriteStream(path.join(artifacts, `${name}.log`));
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const ready = new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => {
      reject(new Error(`${name} did not start within ${timeoutMs} ms:\n${seen}`));
    }, timeoutMs);
    const onData = (d) => {
      seen += d;
      const m = seen.match(pattern);
      if (m) {
        clearTimeout(timer);
        child.stderr.off('data', onData);
        resolve(m);
      }
    };
    child.stderr.on('data', onData);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      running.delete(child);
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code ?? signal} before it was ready:\n${seen}`));
    });
  });
  return { child, ready, log };
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. */
function stopChild(child, graceMs = 5_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      running.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function waitReady(url, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
      last = `${r.status}`;
    } catch (e) {
      last = String(e.cause ?? e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (last: ${last})`);
}

/**
 * A `casebridge sim receiver` (a firm's server receiving webhooks: 204 when the signature
 * verifies with its secret, 401 when not), started with a generated secret on a port the OS
 * picks. `restart(secret)` starts it again on the same port with the secret casebridge showed,
 * as a firm pastes it into its system; its log of what arrived starts empty again.
 */
async function startReceiver(name, bin, env, children) {
  let current;
  let url;
  let secret;
  let starts = 0;
  const launch = async (port, withSecret) => {
    starts += 1;
    const args = ['sim', 'receiver', '--port', String(port)];
    if (withSecret) args.push('--secret', withSecret);
    const entry = start(starts === 1 ? name : `${name}-${starts}`, bin, args, env,
      /webhook receiver on (http:\/\/127\.0\.0\.1:\d+)\nsigning secret: (whsec_\S+)/);
    children.push(entry);
    const [, u, s] = await entry.ready;
    current = entry;
    url = u;
    secret = s;
  };
  await launch(0);
  return {
    get url() {
      return url;
    },
    /** The secret it verifies with now. */
    get secret() {
      return secret;
    },
    /** What arrived since it (re)started, oldest first: `[{path, webhook_id, event_type, verified, error, body}]`. */
    async received() {
      const r = await fetch(`${url}/_sim/received`);
      if (!r.ok) throw new Error(`${url}/_sim/received answered ${r.status}`);
      return r.json();
    },
    async restart(newSecret) {
      const port = new URL(url).port;
      await stopChild(current.child);
      const i = children.indexOf(current);
      if (i >= 0) children.splice(i, 1);
      current.log.end();
      await launch(port, newSecret);
    },
  };
}

/**
 * Starts the stack. Resolves with `{ base, lawruler, scheduling, receivers: [a, b], companyId,
 * apiKey, admin: {email, password}, company: {name, timezone}, api(method, path, body), stop }`.
 */
export async function startStack({
  companyName = 'Acme Injury Law',
  timezone = 'America/Chicago',
  email = 'admin@acme.test',
  password = 'correct horse battery staple',
} = {}) {
  const bin = binary();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'casebridge-e2e-'));
  const env = environment(dataDir, randomBytes(32).toString('base64'));
  const children = [];
  const stop = async () => {
    await Promise.all(children.map(({ child }) => stopChild(child)));
    for (const { log } of children) log.end();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await run(bin, ['migrate'], env);
    const created = JSON.parse(
      await run(bin, ['company', 'create', '--name', companyName, '--timezone', timezone], env),
    );
    const companyId = created.company_id;
    const apiKey = created.api_key;
    await run(bin, ['user', 'create', '--company', companyId, '--email', email, '--password-stdin'], env,
      `${password}\n`);

    const sim = start('lawruler-sim', bin, ['sim', 'lawruler', '--port', '0'], env,
      /Law Ruler simulator on (http:\/\/127\.0\.0\.1:\d+)/);
    children.push(sim);
    const [, lawruler] = await sim.ready;

    const sched = start('scheduling-sim', bin, ['sim', 'scheduling', '--port', '0'], env,
      /scheduling simulator on (http:\/\/127\.0\.0\.1:\d+)/);
    children.push(sched);
    const [, scheduling] = await sched.ready;

    const receivers = [
      await startReceiver('receiver-a', bin, env, children),
      await startReceiver('receiver-b', bin, env, children),
    ];

    const serveEnv = { ...env, CASEBRIDGE_SCHEDULING_URL: scheduling };

    const serve = start('casebridge-serve', bin, ['serve'], serveEnv,
      /"listen":"(127\.0\.0\.1:\d+)"[^\n]*casebridge serving|casebridge serving[^\n]*"listen":"(127\.0\.0\.1:\d+)"/);
    children.push(serve);
    const m = await serve.ready;
    const base = `http://${m[1] ?? m[2]}`;
    await waitReady(`${base}/readyz`);

    /** A call to casebridge's API with the company's key; resolves with `{status, body}`. */
    const api = async (method, apiPath, body) => {
      const r = await fetch(`${base}/api/v1${apiPath}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const t = await r.text();
      return { status: r.status, body: t ? JSON.parse(t) : null };
    };

    return {
      base,
      lawruler,
      scheduling,
      receivers,
      companyId,
      apiKey,
      api,
      admin: { email, password },
      company: { name: companyName, timezone },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
