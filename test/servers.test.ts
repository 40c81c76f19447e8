// Real servers, checkpointed while they serve: redis-server, PostgreSQL 15
// and a node HTTP server. Each one holds data put in by a client; a client
// holds a connection open across the checkpoint (for postgres: with a
// transaction open in it) and goes on using it after the restore; a fresh
// client connects after the restore and finds the data. Each is done twice:
// dumped (which ends it) and restored, and dumped with --leave-running (the
// original goes on as if nothing happened).
//
// The servers listen on unix sockets for now. Everything that speaks to a
// server takes an Addr, so the same tests run over TCP by giving them
// `{ host, port }` instead of `{ path }`. With a unix socket, the client that
// holds its connection across the checkpoint must be in the checkpointed
// tree (a unix stream connection with one end outside cannot be remade:
// ckpt refuses it); over TCP it can be outside (`holderInside: false`).
//
// Nothing is skipped: a server that is not installed fails its test, saying
// which Debian package to install (.ci/run installs them).
//
// For TCP: redisCheck / pgCheck / nodeHttpCheck({ host: '127.0.0.1', port },
// false, mode, ..., { dump: ['--tcp-established'], restore: [...] }) start
// the server listening there only, and the holder outside the tree.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { shmStat, shmRemove } from '../src/kernel/sys.js';
import { Subject, ckptOk, cleanupAll, tmpDir, waitUntil, sleep, treeGone, readText } from './harness.js';

after(cleanupAll);

// ---------------------------------------------------------------- addresses and clients

/** Where a server listens: a unix socket path, or a TCP address. */
export type Addr = { path: string } | { host: string; port: number };
const connectOpts = (a: Addr): net.NetConnectOpts => ('path' in a ? { path: a.path } : { host: a.host, port: a.port });
const showAddr = (a: Addr) => ('path' in a ? a.path : `${a.host}:${a.port}`);

/** One exchange on a fresh connection: send `data`, collect until `done` says the answer is complete. */
function exchange(a: Addr, data: Buffer, done: (got: Buffer) => boolean, timeoutMs = 15000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(connectOpts(a));
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no complete answer from ${showAddr(a)} (got ${JSON.stringify(got.toString('latin1'))})`)); }, timeoutMs);
    s.on('connect', () => s.write(data));
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (done(got)) { clearTimeout(timer); s.destroy(); resolve(got); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function canConnect(a: Addr): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(connectOpts(a));
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 30000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// ---- RESP (redis)

type Resp = string | number | null | Resp[] | Error;
export function respCommand(...args: string[]): Buffer {
  return Buffer.from(`*${args.length}\r\n` + args.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join(''));
}
/** Parse one reply at `at`; null if incomplete. */
function respParse(b: Buffer, at = 0): [Resp, number] | null {
  const eol = b.indexOf('\r\n', at);
  if (eol < 0) return null;
  const line = b.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(b[at])) {
    case '+': return [line, next];
    case '-': return [new Error(line), next];
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (b.length < next + n + 2) return null;
      return [b.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const out: Resp[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = respParse(b, p);
        if (!r) return null;
        out.push(r[0]);
        p = r[1];
      }
      return [out, p];
    }
    default: throw new Error(`not RESP: ${JSON.stringify(b.toString('latin1', at, at + 40))}`);
  }
}
function respAll(b: Buffer, count: number): Resp[] | null {
  const out: Resp[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    const r = respParse(b, p);
    if (!r) return null;
    out.push(r[0]);
    p = r[1];
  }
  return out;
}
/** Run redis commands on a fresh connection; their replies. */
export async function redis(a: Addr, ...cmds: string[][]): Promise<Resp[]> {
  const got = await exchange(a, Buffer.concat(cmds.map((c) => respCommand(...c))), (b) => respAll(b, cmds.length) !== null);
  return respAll(got, cmds.length)!;
}

// ---- the PostgreSQL protocol (version 3, trust authentication)

function pgStartup(user: string, db: string): Buffer {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0database\0${db}\0\0`)]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}
export function pgQueryMsg(sql: string): Buffer {
  const body = Buffer.from(sql + '\0');
  const h = Buffer.alloc(5);
  h.write('Q', 0);
  h.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
interface PgResult { rows: string[][]; errors: string[]; status: string; complete: boolean }
/** The messages of `b` up to the `n`-th ReadyForQuery. */
function pgParse(b: Buffer, n = 1): PgResult {
  const r: PgResult = { rows: [], errors: [], status: '', complete: false };
  let p = 0;
  let ready = 0;
  while (p + 5 <= b.length) {
    const type = String.fromCharCode(b[p]);
    const len = b.readUInt32BE(p + 1);
    if (p + 1 + len > b.length) break;
    const body = b.subarray(p + 5, p + 1 + len);
    if (type === 'D') {
      const cols = body.readUInt16BE(0);
      const row: string[] = [];
      let q = 2;
      for (let i = 0; i < cols; i++) {
        const l = body.readInt32BE(q); q += 4;
        row.push(l < 0 ? '' : body.toString('utf8', q, q + l)); q += Math.max(l, 0);
      }
      r.rows.push(row);
    } else if (type === 'E') {
      r.errors.push(body.toString('utf8').split('\0').filter((f) => f.startsWith('M')).map((f) => f.slice(1)).join('; '));
    } else if (type === 'Z') {
      r.status = String.fromCharCode(body[0]);
      if (++ready === n) { r.complete = true; break; }
    }
    p += 1 + len;
  }
  return r;
}
/** Run SQL on a fresh connection; its rows (text). */
export async function pg(a: Addr, sql: string): Promise<string[][]> {
  const got = await exchange(a, Buffer.concat([pgStartup('postgres', 'postgres'), pgQueryMsg(sql)]), (b) => pgParse(b, 2).complete);
  const r = pgParse(got, 2);
  if (r.errors.length) throw new Error(`postgres: ${r.errors.join('; ')} (for ${sql})`);
  return r.rows;
}

// ---- HTTP

export function httpGet(a: Addr, urlPath: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...('path' in a ? { socketPath: a.path } : { host: a.host, port: a.port }), path: urlPath, agent: false, timeout: 15000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${showAddr(a)}${urlPath}`)));
    req.end();
  });
}

// ---------------------------------------------------------------- the held connection

// A client that connects once and keeps its connection: it sends what it
// finds in req-N (JSON: data in base64, and the text that ends the answer)
// and writes what came back to resp-N. Run with `node HOLDER ADDR DIR`
// (ADDR: a path, or host:port).
const HOLDER = `
const net = require('net'), fs = require('fs');
const [addr, dir] = process.argv.slice(2);
const opts = addr.startsWith('/') ? { path: addr } : { host: addr.slice(0, addr.lastIndexOf(':')), port: +addr.slice(addr.lastIndexOf(':') + 1) };
let sock = null, buf = Buffer.alloc(0), n = 0, waiting = null, connects = 0;
const put = (name, data) => { fs.writeFileSync(dir + '/' + name + '.tmp', data); fs.renameSync(dir + '/' + name + '.tmp', dir + '/' + name); };
function connect() {
  const s = net.connect(opts);
  s.on('connect', () => { sock = s; connects++; put('connected', String(connects)); });
  s.on('data', (d) => { buf = Buffer.concat([buf, d]); if (waiting && buf.includes(waiting.until)) { put('resp-' + waiting.n, buf); buf = Buffer.alloc(0); waiting = null; } });
  s.on('error', (e) => { if (!sock) setTimeout(connect, 100); else put('error', String(e)); });
  s.on('close', () => { if (sock === s) put('closed', ''); });
}
connect();
setInterval(() => {
  if (!sock || waiting) return;
  const f = dir + '/req-' + n;
  if (!fs.existsSync(f)) return;
  const r = JSON.parse(fs.readFileSync(f, 'utf8'));
  waiting = { n, until: Buffer.from(r.until, 'base64') };
  n++;
  sock.write(Buffer.from(r.data, 'base64'));
}, 20);
`;

class Holder {
  private n = 0;
  constructor(readonly dir: string) { fs.mkdirSync(dir, { recursive: true }); }
  static script(dir: string): string {
    const p = path.join(dir, 'holder.js');
    fs.writeFileSync(p, HOLDER);
    return p;
  }
  async connected(): Promise<void> { await waitUntil('the holder to connect', () => fs.existsSync(path.join(this.dir, 'connected')), 30000); }
  /** Send on the held connection; the answer (everything up to and with `until`). */
  async send(data: Buffer, until: Buffer): Promise<Buffer> {
    const n = this.n++;
    const f = path.join(this.dir, `req-${n}`);
    fs.writeFileSync(f + '.tmp', JSON.stringify({ data: data.toString('base64'), until: until.toString('base64') }));
    fs.renameSync(f + '.tmp', f);
    const resp = path.join(this.dir, `resp-${n}`);
    await waitUntil(`answer ${n} on the held connection`, () => {
      for (const bad of ['error', 'closed']) if (fs.existsSync(path.join(this.dir, bad))) throw new Error(`the held connection: ${bad} ${readText(path.join(this.dir, bad))}`);
      return fs.existsSync(resp);
    }, 30000);
    return fs.readFileSync(resp);
  }
  /** It connected once (no reconnection behind our back). */
  connects(): number { return Number(readText(path.join(this.dir, 'connected'))); }
}

// ---------------------------------------------------------------- running a server under test

type Mode = 'roundtrip' | 'leave-running';
/** More arguments for ckpt dump and restore (over TCP: --tcp-established). */
export interface CkptArgs { dump?: string[]; restore?: string[] }

interface Server {
  /** What to run (the tree's root starts it, and the holder when it is inside). */
  cmd: string[];
  env?: Record<string, string>;
  /** Up and answering. */
  ready(): Promise<boolean>;
  /** Stop it cleanly at the end (and take away what it leaves behind). */
  stop?(pid: number): Promise<void>;
}

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Start `server` as a tree (bash, with the server and, if `holderInside`, the
 * holder as its children), wait until it serves, run `before`, checkpoint it
 * (`mode`), then run `afterwards` on what runs now; stop it all.
 */
async function withServer(dir: string, server: Server, addr: Addr, holderInside: boolean, mode: Mode, args: CkptArgs,
  before: (h: Holder) => Promise<void>, afterwards: (h: Holder) => Promise<void>): Promise<void> {
  const hdir = path.join(dir, 'holder');
  const holder = new Holder(hdir);
  const holderCmd = [process.execPath, Holder.script(dir), showAddr(addr), hdir];
  const inner = `${server.cmd.map(sh).join(' ')} & ${holderInside ? `${holderCmd.map(sh).join(' ')} & ` : ''}wait`;
  const env = { ...process.env, UV_USE_IO_URING: '0', ...(server.env ?? {}) };
  const s = new Subject('/bin/bash', ['-c', inner], { dir, outArg: false, env });
  let outside: Subject | null = null;
  try {
    await waitFor(`the server at ${showAddr(addr)}`, () => server.ready(), 60000);
    if (!holderInside) outside = new Subject(holderCmd[0], holderCmd.slice(1), { dir: hdir, outArg: false, env });
    await holder.connected();
    await before(holder);
    const img = path.join(dir, 'img');
    if (mode === 'roundtrip') {
      ckptOk('dump', '-t', String(s.pid), '-D', img, ...(args.dump ?? []));
      await s.gone();
      await treeGone(img);
      assert.ok(!(await canConnect(addr)), 'the server is gone after the dump');
      ckptOk('restore', '-D', img, '-d', ...(args.restore ?? []));
    } else {
      ckptOk('dump', '-t', String(s.pid), '-D', img, '--leave-running', ...(args.dump ?? []));
    }
    await afterwards(holder);
    assert.equal(holder.connects(), 1, 'the holder never connected again');
    await server.stop?.(s.pid);
  } finally {
    s.kill();
    outside?.kill();
    await cleanupAll();
  }
}

function need(bin: string, pkg: string): string {
  if (!fs.existsSync(bin)) throw new Error(`${bin} is not installed: install the Debian package ${pkg} (apt-get install ${pkg}); .ci/run does`);
  return bin;
}

// ---------------------------------------------------------------- redis

const REDIS = '/usr/bin/redis-server';

/** redis-server listening at `addr` only; without persistence unless `persist` (an append-only file, and RDB snapshots). */
export function redisServer(dir: string, addr: Addr, persist = false): Server {
  const listen = 'path' in addr ? ['--port', '0', '--unixsocket', addr.path, '--unixsocketperm', '700'] : ['--port', String(addr.port), '--bind', addr.host];
  const keep = persist ? ['--save', '1 1', '--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--save', '', '--appendonly', 'no'];
  return {
    cmd: [need(REDIS, 'redis-server'), ...listen, ...keep, '--daemonize', 'no', '--dir', dir, '--logfile', path.join(dir, 'redis.log')],
    ready: async () => (await canConnect(addr)) && (await redis(addr, ['PING']).then((r) => r[0] === 'PONG', () => false)),
  };
}

export async function redisCheck(addr: Addr, holderInside: boolean, mode: Mode, persist = false, args: CkptArgs = {}): Promise<void> {
  const dir = tmpDir(`redis-${mode}`);
  const END = respCommand('ECHO', 'held-end');
  const until = Buffer.from('$8\r\nheld-end\r\n');
  let clientId = 0;
  await withServer(dir, redisServer(dir, addr, persist), addr, holderInside, mode, args, async (h) => {
    // Data of several types, from a fresh client.
    const big = 'v'.repeat(100000);
    assert.deepEqual(await redis(addr, ['SET', 'greeting', 'hello'], ['RPUSH', 'list', 'a', 'b', 'c'], ['HSET', 'h', 'f1', '1', 'f2', '2'],
      ['SET', 'big', big], ['SET', 'later', 'x', 'EX', '3600'], ['INCRBY', 'counter', '41']), ['OK', 3, 2, 'OK', 'OK', 41]);
    // The held connection: its client id, and a value it set.
    const r = respAll(await h.send(Buffer.concat([respCommand('CLIENT', 'ID'), respCommand('SET', 'held', 'before'), END]), until), 3)!;
    clientId = r[0] as number;
    assert.ok(clientId > 0);
    assert.equal(r[1], 'OK');
  }, async (h) => {
    const got = await redis(addr, ['GET', 'greeting'], ['LRANGE', 'list', '0', '-1'], ['HGET', 'h', 'f2'], ['STRLEN', 'big'], ['TTL', 'later'], ['INCR', 'counter'], ['GET', 'held']);
    assert.deepEqual(got.slice(0, 4), ['hello', ['a', 'b', 'c'], '2', 100000]);
    assert.ok((got[4] as number) > 3000 && (got[4] as number) <= 3600, `TTL ${got[4]}`);
    assert.deepEqual(got.slice(5), [42, 'before']);
    // The held connection goes on: the same client, in the middle of its session.
    const r = respAll(await h.send(Buffer.concat([respCommand('CLIENT', 'ID'), respCommand('GET', 'held'), respCommand('SET', 'held', 'after'), respCommand('INCR', 'counter'), END]), until), 5)!;
    assert.deepEqual(r, [clientId, 'before', 'OK', 43, 'held-end']);
    assert.deepEqual(await redis(addr, ['GET', 'held'], ['DBSIZE']), ['after', 7]);
    if (persist) {
      // The append-only file goes on: what is written now is in it; a snapshot is made by a forked child.
      assert.deepEqual(await redis(addr, ['SET', 'persisted', 'yes'], ['BGSAVE']), ['OK', 'Background saving started']);
      await waitFor('the snapshot', async () => (await redis(addr, ['INFO', 'persistence']))[0]!.toString().includes('rdb_bgsave_in_progress:0'));
      const info = (await redis(addr, ['INFO', 'persistence']))[0]!.toString();
      assert.match(info, /rdb_last_bgsave_status:ok/);
      await waitFor('the append-only file to have the new key', () => {
        const d = path.join(dir, 'appendonlydir');
        return fs.existsSync(d) && fs.readdirSync(d).some((f) => f.endsWith('.incr.aof') && readText(path.join(d, f)).includes('persisted'));
      });
    }
  });
}

const redisSock = (mode: Mode) => ({ path: path.join(tmpDir(`redis-sock-${mode}`), 'redis.sock') });
/** A TCP port on 127.0.0.1 that is free now. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
export const tcpAddr = async (): Promise<Addr> => ({ host: '127.0.0.1', port: await freePort() });
/** Over TCP the holder is outside the tree; its connection is kept by TCP repair. */
const TCP_ARGS: CkptArgs = { dump: ['--tcp-established'] };

for (const mode of ['roundtrip', 'leave-running'] as const) {
  test(`redis-server over TCP, a client outside the tree holding its connection: GET and INCR on it after ${mode === 'roundtrip' ? 'checkpoint and restore' : 'a dump with --leave-running'}, every key there`, async () => {
    await redisCheck(await tcpAddr(), false, mode, false, TCP_ARGS);
  });
}

test('redis-server over a unix socket: data, a held connection and a fresh client, after checkpoint and restore', async () => {
  await redisCheck(redisSock('roundtrip'), true, 'roundtrip');
});
test('redis-server over a unix socket: the same after a dump with --leave-running', async () => {
  await redisCheck(redisSock('leave-running'), true, 'leave-running');
});
test('redis-server with an append-only file and snapshots: the same, and it goes on persisting, after checkpoint and restore', async () => {
  await redisCheck(redisSock('roundtrip'), true, 'roundtrip', true);
});
test('redis-server with an append-only file and snapshots: the same after a dump with --leave-running', async () => {
  await redisCheck(redisSock('leave-running'), true, 'leave-running', true);
});

// ---------------------------------------------------------------- postgres

const PG_BIN = '/usr/lib/postgresql/15/bin';
const PG_USER = 'postgres';

function pgUser(): { uid: number; gid: number } {
  const r = spawnSync('id', ['-u', PG_USER], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', PG_USER], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`no user ${PG_USER}: install the Debian package postgresql-15 (apt-get install postgresql-15), which makes it; .ci/run does`);
  return { uid: Number(r.stdout), gid: Number(g.stdout) };
}

/** A fresh cluster in `dir`/data (initdb, as the postgres user: postgres refuses to run as root). */
function initCluster(dir: string): string {
  need(path.join(PG_BIN, 'postgres'), 'postgresql-15');
  const { uid, gid } = pgUser();
  const data = path.join(dir, 'data');
  fs.chownSync(dir, uid, gid);
  const r = spawnSync('setpriv', ['--reuid', PG_USER, '--regid', PG_USER, '--init-groups', path.join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'],
    { encoding: 'utf8', cwd: dir, timeout: 120000 });
  if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr}${r.stdout}`);
  return data;
}

/**
 * The postmaster of a cluster, listening at `addr` only (a unix socket
 * directory: `addr.path` is its .s.PGSQL.PORT); `settings` are more -c
 * options. (huge_pages=off: ckpt refuses hugetlbfs memory, and where huge
 * pages are configured postgres would use them by default.)
 */
export function pgServer(dir: string, addr: Addr, settings: string[] = []): Server {
  const data = initCluster(dir);
  let listen: string[];
  if ('path' in addr) {
    const m = /^(.*)\/\.s\.PGSQL\.(\d+)$/.exec(addr.path);
    if (!m) throw new Error(`a postgres unix socket is DIR/.s.PGSQL.PORT, not ${addr.path}`);
    fs.chownSync(m[1], pgUser().uid, pgUser().gid);
    listen = ['-k', m[1], '-p', m[2], '-c', 'listen_addresses='];
  } else {
    listen = ['-k', '', '-p', String(addr.port), '-c', `listen_addresses=${addr.host}`];
  }
  return {
    cmd: ['setpriv', '--reuid', PG_USER, '--regid', PG_USER, '--init-groups', path.join(PG_BIN, 'postgres'), '-D', data, ...listen,
      '-c', 'fsync=off', '-c', 'huge_pages=off', ...settings.flatMap((x) => ['-c', x])],
    ready: async () => (await canConnect(addr)) && (await pg(addr, 'select 1').then((r) => r[0]?.[0] === '1', () => false)),
    stop: async () => {
      // A fast shutdown (SIGINT to the postmaster): it ends its children and removes its shared memory.
      const pidLine = readText(path.join(data, 'postmaster.pid')).split('\n');
      const pm = Number(pidLine[0]);
      process.kill(pm, 'SIGINT');
      await waitUntil('postgres to shut down', () => !fs.existsSync(path.join(data, 'postmaster.pid')), 30000);
    },
  };
}

export async function pgCheck(addr: Addr, holderInside: boolean, mode: Mode, settings: string[] = [], args: CkptArgs = {}): Promise<number> {
  const dir = tmpDir(`pg-${mode}`);
  const server = pgServer(dir, addr, settings);
  const data = path.join(dir, 'data');
  const ready = Buffer.from([0x5a, 0, 0, 0, 5]); // ReadyForQuery (then the transaction status)
  const send = async (h: Holder, sql: string) => {
    const r = pgParse(await h.send(pgQueryMsg(sql), ready));
    if (r.errors.length) throw new Error(`postgres (held connection): ${r.errors.join('; ')}`);
    return r;
  };
  let backend = '';
  let shm = '';
  let segs = 0;
  const dsmBefore = new Set(fs.readdirSync('/dev/shm').filter((f) => f.startsWith('PostgreSQL.')));
  try {
    await withServer(dir, server, addr, holderInside, mode, args, async (h) => {
      await pg(addr, 'create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 5000) g');
      // The held connection: started, then a transaction left open in it.
      const st = pgParse(await h.send(pgStartup('postgres', 'postgres'), ready));
      assert.equal(st.status, 'I');
      backend = (await send(h, 'select pg_backend_pid()')).rows[0][0];
      const r = await send(h, "begin; insert into t values (100001, 'in the open transaction'); update t set v = 'changed' where id = 7");
      assert.equal(r.status, 'T', 'a transaction is open');
      // Not committed: a fresh client does not see it.
      assert.deepEqual(await pg(addr, 'select count(*), max(id) from t'), [['5000', '5000']]);
      shm = readText(path.join(data, 'postmaster.pid')).split('\n')[6] ?? '';
    }, async (h) => {
      const img = path.join(dir, 'img');
      segs = fs.existsSync(path.join(img, 'sysvshm.json')) ? JSON.parse(fs.readFileSync(path.join(img, 'sysvshm.json'), 'utf8')).segments.length : 0;
      assert.equal(readText(path.join(data, 'postmaster.pid')).split('\n')[6] ?? '', shm, 'the same shared memory key and id in postmaster.pid');
      assert.deepEqual(await pg(addr, "select count(*), max(id), sum(length(v)), (select v from t where id = 7) from t"), [['5000', '5000', String(5000 * 32), md5(7)]]);
      // (the change made in the open transaction is not seen outside it: row 7 is as it was)
      // The held connection: the same backend, its transaction still open; it goes on and commits.
      const r = await send(h, "select pg_backend_pid(), (select v from t where id = 7), count(*) from t");
      assert.equal(r.status, 'T', 'the transaction is still open');
      assert.deepEqual(r.rows, [[backend, 'changed', '5001']]);
      assert.equal((await send(h, "insert into t values (100002, 'after'); commit")).status, 'I');
      assert.deepEqual(await pg(addr, "select count(*), max(id), (select v from t where id = 7) from t"), [['5002', '100002', 'changed']]);
      // New backends work (a fresh client did above), and so does writing from one.
      assert.deepEqual(await pg(addr, "insert into t values (100003, 'fresh'); select count(*) from t"), [['5003']]);
    });
  } finally {
    // A postmaster killed rather than shut down leaves its System V segments: take them away
    // (those of postmaster.pid and of the image that are still there, with the key they had).
    const id = Number((shm.trim().split(/\s+/)[1]) ?? NaN);
    const img = path.join(dir, 'img', 'sysvshm.json');
    const listed: Array<{ id: number; key: number }> = fs.existsSync(img) ? JSON.parse(fs.readFileSync(img, 'utf8')).segments : [];
    for (const seg of listed) if (shmStat(seg.id)?.key === seg.key && shmStat(seg.id)?.uid === pgUser().uid) shmRemove(seg.id);
    if (Number.isInteger(id) && shmStat(id)?.uid === pgUser().uid) shmRemove(id);
    // And its dynamic shared memory files: those made since it started that no process maps.
    const made = fs.readdirSync('/dev/shm').filter((f) => f.startsWith('PostgreSQL.') && !dsmBefore.has(f));
    if (made.length) {
      const mapped = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map((p) => readText(`/proc/${p}/maps`)).join('');
      for (const f of made) if (!mapped.includes(`/dev/shm/${f}`)) fs.rmSync(`/dev/shm/${f}`, { force: true });
    }
  }
  return segs;
}

/** What postgres's md5(n::text) gives. */
const md5 = (n: number) => createHash('md5').update(String(n)).digest('hex');

for (const mode of ['roundtrip', 'leave-running'] as const) {
  test(`postgres over TCP, a client session outside the tree with an open transaction: it commits after ${mode === 'roundtrip' ? 'checkpoint and restore' : 'a dump with --leave-running'}, the data is there`, async () => {
    await pgCheck(await tcpAddr(), false, mode, [], TCP_ARGS);
  });
}

const pgSock = (mode: Mode) => ({ path: path.join(tmpDir(`pg-sock-${mode}`), '.s.PGSQL.5432') });
test('postgres over a unix socket: data, an open transaction on a held connection, a fresh client, after checkpoint and restore', async () => {
  await pgCheck(pgSock('roundtrip'), true, 'roundtrip');
});
test('postgres over a unix socket: the same after a dump with --leave-running', async () => {
  await pgCheck(pgSock('leave-running'), true, 'leave-running');
});
// All of its shared memory in System V segments: the main one (some 140 MiB) and the dynamic ones.
const SYSV_PG = ['shared_memory_type=sysv', 'dynamic_shared_memory_type=sysv'];
test('postgres with its shared memory in System V segments (shared_memory_type=sysv): the same, after checkpoint and restore', async () => {
  assert.ok(await pgCheck(pgSock('roundtrip'), true, 'roundtrip', SYSV_PG) >= 2, 'the main segment and the dynamic shared memory control one are in the image');
});
test('postgres with its shared memory in System V segments: the same after a dump with --leave-running', async () => {
  assert.ok(await pgCheck(pgSock('leave-running'), true, 'leave-running', SYSV_PG) >= 2);
});

// ---------------------------------------------------------------- node HTTP

// Counts requests and connections; each answer names the connection it came on, and ends with <END>.
const HTTP_SERVER = `
const http = require('http');
const [addr] = process.argv.slice(2);
let requests = 0, conns = 0;
const store = new Map();
const srv = http.createServer((req, res) => {
  if (req.socket.connId === undefined) req.socket.connId = ++conns;
  requests++;
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/put') store.set(u.searchParams.get('k'), u.searchParams.get('v'));
  const body = JSON.stringify({ requests, conn: req.socket.connId, pid: process.pid, value: store.get(u.searchParams.get('k')) ?? null }) + '<END>';
  res.setHeader('content-type', 'application/json');
  res.end(body);
});
srv.keepAliveTimeout = 3600 * 1000;
srv.headersTimeout = 0;
srv.requestTimeout = 0;
if (addr.startsWith('/')) srv.listen(addr); else srv.listen(+addr.slice(addr.lastIndexOf(':') + 1), addr.slice(0, addr.lastIndexOf(':')));
`;

export function nodeHttpServer(dir: string, addr: Addr): Server {
  const p = path.join(dir, 'server.js');
  fs.writeFileSync(p, HTTP_SERVER);
  return {
    cmd: [process.execPath, p, showAddr(addr)],
    ready: async () => (await canConnect(addr)) && (await httpGet(addr, '/').then((r) => r.status === 200, () => false)),
  };
}

export async function nodeHttpCheck(addr: Addr, holderInside: boolean, mode: Mode, args: CkptArgs = {}): Promise<void> {
  const dir = tmpDir(`http-${mode}`);
  const END = Buffer.from('<END>');
  const req = (p: string) => Buffer.from(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
  const body = (b: Buffer) => {
    const t = b.toString('utf8');
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(t, /\r\nConnection: keep-alive\r\n/i);
    return JSON.parse(t.slice(t.indexOf('\r\n\r\n') + 4, t.lastIndexOf('<END>')));
  };
  let conn = 0;
  let pid = 0;
  await withServer(dir, nodeHttpServer(dir, addr), addr, holderInside, mode, args, async (h) => {
    const a = JSON.parse((await httpGet(addr, '/put?k=a&v=1')).body.replace('<END>', ''));
    pid = a.pid;
    const first = body(await h.send(req('/put?k=b&v=2'), END));
    conn = first.conn;
    assert.equal(body(await h.send(req('/get?k=a'), END)).conn, conn, 'keep-alive: the same connection');
  }, async (h) => {
    const fresh = JSON.parse((await httpGet(addr, '/get?k=b')).body.replace('<END>', ''));
    assert.equal(fresh.value, '2');
    assert.equal(fresh.pid, pid, 'the same server process');
    assert.notEqual(fresh.conn, conn);
    const again = body(await h.send(req('/get?k=a'), END));
    assert.equal(again.conn, conn, 'the kept-alive connection goes on after the checkpoint');
    assert.equal(again.value, '1');
    assert.equal(again.requests, fresh.requests + 1);
  });
}

for (const mode of ['roundtrip', 'leave-running'] as const) {
  test(`node HTTP server over TCP, a keep-alive client outside the tree: the same connection carries on after ${mode === 'roundtrip' ? 'checkpoint and restore' : 'a dump with --leave-running'}`, async () => {
    await nodeHttpCheck(await tcpAddr(), false, mode, TCP_ARGS);
  });
}

const httpSock = (mode: Mode) => ({ path: path.join(tmpDir(`http-sock-${mode}`), 'http.sock') });
test('node HTTP server over a unix socket: a kept-alive connection and a fresh client, after checkpoint and restore', async () => {
  await nodeHttpCheck(httpSock('roundtrip'), true, 'roundtrip');
});
test('node HTTP server over a unix socket: the same after a dump with --leave-running', async () => {
  await nodeHttpCheck(httpSock('leave-running'), true, 'leave-running');
});
