// The network lock: while ckpt holds TCP connections still (in repair mode at
// dump, and from the kill of the dumped tree until restore has recreated its
// sockets), the packets of those connections must be dropped, so that neither
// side answers with a RST (a segment for a socket that is gone) or an ICMP
// port unreachable (a datagram for a port nobody holds). The peers then only
// see lost packets and retransmit; once the lock is released, they carry on.
//
// The lock is a set of packet filter rules, made with one command for the
// whole set (so that locking many sockets is as fast as locking one), in a
// table or chain of its own, so that it is removed without touching any other
// rule of the host:
//   nftables: `table inet ckpt-NAME` with an input and an output chain, hooked
//             at priority mangle (-150), before the filter chains; policy accept.
//   iptables: chains CKPT-NAME-in and CKPT-NAME-out in the filter table,
//             jumped to from INPUT and OUTPUT at position 1 (ip6tables too,
//             for IPv6 targets). Two chains, not one: an input rule must not
//             match the same addresses going out (over loopback both ends of
//             a connection are local, and the peer's own packets would be
//             dropped on their way out, failing its connect() with EPERM).
// Packets carrying the fwmark PASS_MARK (SO_MARK) are let through first:
// those are ckpt's own, sent from sockets it restores.
//
// The commands run in ckpt's network namespace, or in another one (`netns`:
// a namespace file such as /proc/PID/ns/net or /run/netns/NAME) through
// nsenter: the lock belongs in the namespace the sockets live in.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as z from 'zod/mini';
import { FailedError, MissingError } from '../errors.js';
import { log } from '../log.js';
import { int, regex, refine } from '../image/schema.js';

export type LockBackendName = 'nftables' | 'iptables';

/**
 * One thing to hold still.
 * - TCP connection: local + remote.
 * - Listening TCP socket: local only, `listen: true`: only new connection
 *   attempts (SYN without ACK) to it are dropped.
 * - UDP / UDP-Lite socket: local (+ remote if connected): datagrams to it
 *   (from remote only, when connected) and from it are dropped.
 * addr '0.0.0.0' / '::' is any local address; a remote port 0 is any port.
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4 traffic and locked
 * as such. A family-6 socket bound to '::' also gets IPv4 traffic unless it
 * is IPV6_V6ONLY: `v6only: true` says so (default false, which locks both).
 */
export interface LockTarget {
  proto: 'tcp' | 'udp' | 'udplite';
  family: 4 | 6;
  local: { addr: string; port: number };
  remote?: { addr: string; port: number };
  listen?: boolean;
  v6only?: boolean;
}

/** What the image records of a lock, so that restore (maybe another ckpt run, maybe another host) can recreate and release it. */
export interface LockRecord { backend: LockBackendName; name: string; targets: LockTarget[] }

/** Where the lock's commands run: a network namespace file (/proc/PID/ns/net, /run/netns/NAME); default ckpt's own. */
export interface NetnsOption { netns?: string }
export interface LockOptions extends NetnsOption { backend?: LockBackendName; name?: string }

/** Packets carrying this fwmark (SO_MARK) pass the lock: ckpt's own injected packets at restore. ('ckpt' in ASCII.) */
export const PASS_MARK = 0x636b7074;

/** A lock's name: short, and valid in an nft table name and an iptables chain name (at most 28 characters with CKPT- and -out). */
export const LOCK_NAME_RE = /^[A-Za-z0-9_]{1,16}$/;

// ---------------------------------------------------------------- schema (for the image)

const port = int(0, 65535);
const ipAddr = z.string().check(refine((s: string) => net.isIP(s.replace(/%[^%]*$/, '')) !== 0, 'expected an IP address'));
const endpoint = z.object({ addr: ipAddr, port });
export const LockTargetSchema = z.object({
  proto: z.enum(['tcp', 'udp', 'udplite']),
  family: z.union([z.literal(4), z.literal(6)]),
  local: endpoint,
  remote: z.optional(endpoint),
  listen: z.optional(z.boolean()),
  v6only: z.optional(z.boolean()),
});
export const LockRecordSchema = z.object({
  backend: z.enum(['nftables', 'iptables']),
  name: z.string().check(regex(LOCK_NAME_RE, 'expected a lock name of 1-16 letters, digits or _')),
  targets: z.array(LockTargetSchema),
});

// ---------------------------------------------------------------- running the tools

const SBIN_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin'];
const found = new Map<string, string | null>();
let onlyDirs: string[] | null = null;

/** (tests) Look for the tools only in `dirs`; null: in PATH and the sbin directories again. */
export function setToolDirs(dirs: string[] | null): void { onlyDirs = dirs; found.clear(); }

/** The path of a program, in PATH or in the sbin directories PATH may lack; null when absent. */
export function findTool(name: string): string | null {
  if (found.has(name)) return found.get(name)!;
  const dirs = onlyDirs ?? [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), ...SBIN_DIRS];
  let hit: string | null = null;
  for (const d of dirs) {
    const p = path.join(d, name);
    try { fs.accessSync(p, fs.constants.X_OK); if (fs.statSync(p).isFile()) { hit = p; break; } } catch { /* not here */ }
  }
  found.set(name, hit);
  return hit;
}

interface RunResult { status: number; stdout: string; stderr: string }

/** Run a tool (in `netns` if given), with `input` on stdin. Never throws for the tool's own failure. */
function runTool(backend: LockBackendName, tool: string, args: string[], input: string | undefined, o: NetnsOption): RunResult {
  const bin = findTool(tool);
  if (!bin) throw new MissingError(`network lock (${backend}): ${tool} not found (${installHint()})`, { step: 'network lock' });
  let argv = [bin, ...args];
  if (o.netns) {
    const nsenter = findTool('nsenter');
    if (!nsenter) throw new MissingError('network lock: nsenter (util-linux) not found, and the lock belongs in another network namespace', { step: 'network lock' });
    argv = [nsenter, `--net=${o.netns}`, '--', ...argv];
  }
  const t0 = performance.now();
  const r = spawnSync(argv[0], argv.slice(1), {
    input: input ?? '', encoding: 'utf8', timeout: 60000, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' },
  });
  const ms = (performance.now() - t0).toFixed(1);
  if (r.error) {
    throw new FailedError(`network lock (${backend}): cannot run ${argv.join(' ')}: ${r.error.message}`, { step: 'network lock', cause: r.error });
  }
  const status = r.status ?? -1;
  if (r.signal) r.stderr = `${r.stderr ?? ''}(killed by ${r.signal})`;
  log.debug(`network lock: ${o.netns ? `[netns ${o.netns}] ` : ''}${tool} ${args.join(' ')} -> ${status} in ${ms} ms`);
  return { status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Run a tool that must succeed; a clear error with its stderr when it fails. */
function mustRun(backend: LockBackendName, what: string, tool: string, args: string[], input: string | undefined, o: NetnsOption): string {
  const r = runTool(backend, tool, args, input, o);
  if (r.status !== 0) {
    const err = (r.stderr.trim() || r.stdout.trim() || '(no message)').split('\n').slice(0, 12).join('\n');
    throw new FailedError(`network lock (${backend}): ${what}: ${[tool, ...args].join(' ')} failed (exit ${r.status})${o.netns ? ` in network namespace ${o.netns}` : ''}: ${err}`,
      { step: 'network lock' });
  }
  return r.stdout;
}

function installHint(): string {
  return 'install the package nftables (Debian/Ubuntu: apt-get install nftables; it provides nft) or iptables (iptables and ip6tables)';
}

// ---------------------------------------------------------------- backend detection

/** What is present and usable (nft preferred, then iptables + ip6tables); detail such as 'nft 1.0.6' or why none. */
export function detectBackend(o: NetnsOption = {}): { backend: LockBackendName | null; detail: string } {
  const why: string[] = [];
  const nft = probeBackend('nftables', o);
  if (nft.ok) return { backend: 'nftables', detail: nft.detail };
  why.push(nft.detail);
  const ipt = probeBackend('iptables', o);
  if (ipt.ok) return { backend: 'iptables', detail: ipt.detail };
  why.push(ipt.detail);
  // Tools that are there but fail (no CAP_NET_ADMIN, no kernel support) need no installing.
  const anyTool = ['nft', 'iptables-restore'].some((t) => findTool(t));
  return { backend: null, detail: `no usable network lock tool (${why.join('; ')})${anyTool ? '' : `: ${installHint()}`}` };
}

/** Whether a backend's tools are there and work here (a listing needs CAP_NET_ADMIN and the kernel's support). */
export function probeBackend(b: LockBackendName, o: NetnsOption = {}): { ok: boolean; detail: string } {
  try {
    if (b === 'nftables') {
      if (!findTool('nft')) return { ok: false, detail: 'nft not found' };
      const v = runTool(b, 'nft', ['--version'], undefined, {});
      const ver = /v?(\d+\.\d+(?:\.\d+)*)/.exec(v.stdout)?.[1] ?? 'unknown version';
      const l = runTool(b, 'nft', ['list', 'tables'], undefined, o);
      if (l.status !== 0) return { ok: false, detail: `nft ${ver} does not work here: ${firstLine(l.stderr)}` };
      return { ok: true, detail: `nft ${ver}` };
    }
    const missing = ['iptables', 'iptables-restore', 'iptables-save'].filter((t) => !findTool(t));
    if (missing.length) return { ok: false, detail: `${missing.join(', ')} not found` };
    const v = runTool(b, 'iptables', ['--version'], undefined, {});
    const ver = /v(\d+\.\d+(?:\.\d+)*)(\s*\([^)]*\))?/.exec(v.stdout);
    const l = runTool(b, 'iptables', ['-w', '5', '-S', 'INPUT', '1'], undefined, o);
    if (l.status !== 0) return { ok: false, detail: `iptables does not work here: ${firstLine(l.stderr)}` };
    const six = ['ip6tables', 'ip6tables-restore', 'ip6tables-save'].every((t) => findTool(t));
    return { ok: true, detail: `iptables ${ver ? ver[1] + (ver[2] ?? '') : ''}`.trim() + (six ? ' and ip6tables' : ' (no ip6tables: IPv6 sockets cannot be locked)') };
  } catch (e) {
    return { ok: false, detail: (e as Error).message };
  }
}

const firstLine = (s: string) => s.trim().split('\n')[0] || '(no message)';

// ---------------------------------------------------------------- targets -> rules

type Fam = 4 | 6;
/** One drop rule: a direction and what the packet must match (absent: anything). */
interface Rule {
  fam: Fam; dir: 'in' | 'out'; proto: LockTarget['proto'];
  saddr?: string; daddr?: string; sport?: number; dport?: number; synOnly?: boolean;
}

/** The 16 bytes of an IPv6 address (one net.isIPv6 accepts, without zone). */
function v6Bytes(a: string): number[] {
  let s = a;
  const q = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s); // an IPv4 tail: two words
  if (q) {
    const b = q.slice(1).map(Number);
    s = s.slice(0, q.index) + ((b[0] << 8) | b[1]).toString(16) + ':' + ((b[2] << 8) | b[3]).toString(16);
  }
  const words = (x: string) => (x === '' ? [] : x.split(':').map((w) => parseInt(w, 16)));
  const halves = s.split('::');
  let all: number[];
  if (halves.length === 2) {
    const h = words(halves[0]);
    const t = words(halves[1]);
    all = [...h, ...new Array<number>(Math.max(0, 8 - h.length - t.length)).fill(0), ...t];
  } else {
    all = words(s);
  }
  const out: number[] = [];
  for (const w of all) out.push((w >> 8) & 0xff, w & 0xff);
  return out;
}

/** An address as the rules use it: family, canonical text, and whether it means any address. */
function normAddr(addr: string, family: Fam, what: string): { fam: Fam; text: string; any: boolean } {
  const a = addr.replace(/%[^%]*$/, ''); // a zone (fe80::1%eth0) says which link, not which address
  const kind = net.isIP(a);
  if (kind === 4) {
    if (family !== 4) throw badTarget(`${what} ${addr} is an IPv4 address in an IPv6 target`);
    return { fam: 4, text: a, any: a === '0.0.0.0' };
  }
  if (kind !== 6) throw badTarget(`${what} ${JSON.stringify(addr)} is not an IP address`);
  if (family !== 6) throw badTarget(`${what} ${addr} is an IPv6 address in an IPv4 target`);
  const b = v6Bytes(a);
  if (b.length !== 16) throw badTarget(`${what} ${addr} is not an IPv6 address`);
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return { fam: 4, text: b.slice(12).join('.'), any: b.slice(12).every((x) => x === 0) };
  return { fam: 6, text: a.toLowerCase(), any: b.every((x) => x === 0) };
}

const badTarget = (msg: string) => new FailedError(`network lock: bad target: ${msg}`, { step: 'network lock' });

function checkPort(p: number, what: string, allowZero: boolean): void {
  if (!Number.isInteger(p) || p < (allowZero ? 0 : 1) || p > 65535) throw badTarget(`${what} port ${p} is not a port number${allowZero ? '' : ' (1-65535)'}`);
}

function describe(t: LockTarget): string {
  const ep = (e: { addr: string; port: number }) => (t.family === 6 ? `[${e.addr}]` : e.addr) + `:${e.port}`;
  return `${t.proto}${t.family === 6 ? '6' : ''} ${ep(t.local)}${t.remote ? ` <-> ${ep(t.remote)}` : ''}${t.listen ? ' (listening)' : ''}`;
}

/** The drop rules of one target. */
function targetRules(t: LockTarget): Rule[] {
  if (t.proto !== 'tcp' && t.proto !== 'udp' && t.proto !== 'udplite') throw badTarget(`protocol ${String(t.proto)}`);
  if (t.family !== 4 && t.family !== 6) throw badTarget(`family ${String(t.family)}`);
  if (t.listen && t.proto !== 'tcp') throw badTarget(`${describe(t)}: only a TCP socket listens`);
  checkPort(t.local.port, 'local', false);
  const L = normAddr(t.local.addr, t.family, 'local address');
  let R: { fam: Fam; text: string; any: boolean } | undefined;
  if (t.remote && !t.listen) {
    checkPort(t.remote.port, 'remote', true);
    R = normAddr(t.remote.addr, t.family, 'remote address');
  }
  // Which IP versions the traffic uses: a v4-mapped end makes it IPv4.
  let fams: Fam[];
  if (L.fam === 4 || R?.fam === 4) {
    if ((L.fam === 6 && !L.any) || (R && R.fam === 6 && !R.any)) throw badTarget(`${describe(t)}: an IPv4-mapped address with a plain IPv6 one`);
    fams = [4];
  } else if (t.family === 6 && L.any && !R && !t.v6only) {
    fams = [6, 4]; // a dual-stack socket on [::] gets IPv4 traffic too
  } else {
    fams = [L.fam];
  }
  const rules: Rule[] = [];
  for (const fam of fams) {
    const la = L.any || L.fam !== fam ? undefined : L.text;
    const ra = !R || R.any || R.fam !== fam ? undefined : R.text;
    const rp = R && t.remote!.port !== 0 ? t.remote!.port : undefined;
    if (t.listen) {
      rules.push({ fam, dir: 'in', proto: 'tcp', daddr: la, dport: t.local.port, synOnly: true });
    } else {
      rules.push({ fam, dir: 'in', proto: t.proto, saddr: ra, sport: rp, daddr: la, dport: t.local.port });
      rules.push({ fam, dir: 'out', proto: t.proto, saddr: la, sport: t.local.port, daddr: ra, dport: rp });
    }
  }
  return rules;
}

function allRules(targets: LockTarget[]): Rule[] {
  const seen = new Set<string>();
  const out: Rule[] = [];
  for (const t of targets) {
    for (const r of targetRules(t)) {
      const k = JSON.stringify(r);
      if (!seen.has(k)) { seen.add(k); out.push(r); }
    }
  }
  return out;
}

/** The IP versions a lock needs rules for (iptables: which of iptables / ip6tables). An empty lock still exists, in IPv4. */
function familiesOf(targets: LockTarget[]): Fam[] {
  const f = new Set(allRules(targets).map((r) => r.fam));
  if (f.size === 0) f.add(4);
  return ([4, 6] as Fam[]).filter((x) => f.has(x));
}

// ---------------------------------------------------------------- nftables

const nftTable = (name: string) => `ckpt-${name}`;

function nftRule(r: Rule): string {
  const ip = r.fam === 4 ? 'ip' : 'ip6';
  const p: string[] = [];
  if (r.saddr) p.push(`${ip} saddr ${r.saddr}`);
  if (r.daddr) p.push(`${ip} daddr ${r.daddr}`);
  if (!r.saddr && !r.daddr) p.push(`meta nfproto ${r.fam === 4 ? 'ipv4' : 'ipv6'}`);
  if (r.sport === undefined && r.dport === undefined) p.push(`meta l4proto ${r.proto}`);
  if (r.sport !== undefined) p.push(`${r.proto} sport ${r.sport}`);
  if (r.dport !== undefined) p.push(`${r.proto} dport ${r.dport}`);
  if (r.synOnly) p.push('tcp flags & (syn | ack) == syn');
  p.push('drop');
  return p.join(' ');
}

/** The table's definition (in a `table inet ... { }` block). */
function nftTableBody(rules: Rule[]): string {
  const chain = (dir: 'in' | 'out') => [
    `  chain ${dir === 'in' ? 'input' : 'output'} {`,
    `    type filter hook ${dir === 'in' ? 'input' : 'output'} priority -150; policy accept;`,
    `    meta mark 0x${PASS_MARK.toString(16)} accept`,
    ...rules.filter((r) => r.dir === dir).map((r) => `    ${nftRule(r)}`),
    '  }',
  ].join('\n');
  return `{\n${chain('in')}\n${chain('out')}\n}`;
}

function nftLock(rec: LockRecord, o: NetnsOption, replace: boolean): void {
  const t = nftTable(rec.name);
  const body = nftTableBody(allRules(rec.targets));
  // One transaction: either all of it is in place or nothing changed. A new
  // lock must not take over an existing one (`create` fails if it exists);
  // ensureLocked replaces whatever is there (add, delete, define).
  const script = replace
    ? `table inet ${t} {}\ndelete table inet ${t}\ntable inet ${t} ${body}\n`
    : `create table inet ${t}\ntable inet ${t} ${body}\n`;
  mustRun('nftables', replace ? `re-creating lock ${rec.name}` : `locking (table inet ${t})`, 'nft', ['-f', '-'], script, o);
}

function nftUnlock(rec: LockRecord, o: NetnsOption): void {
  const t = nftTable(rec.name);
  mustRun('nftables', `unlocking (table inet ${t})`, 'nft', ['-f', '-'], `table inet ${t} {}\ndelete table inet ${t}\n`, o);
}

function nftIsLocked(rec: LockRecord, o: NetnsOption): boolean {
  const r = runTool('nftables', 'nft', ['list', 'table', 'inet', nftTable(rec.name)], undefined, o);
  return r.status === 0 && /hook input\b/.test(r.stdout) && /hook output\b/.test(r.stdout);
}

// ---------------------------------------------------------------- iptables

const iptChains = (name: string) => ({ in: `CKPT-${name}-in`, out: `CKPT-${name}-out` });
const iptTool = (fam: Fam, what: '' | '-restore' | '-save') => `${fam === 4 ? 'iptables' : 'ip6tables'}${what}`;

function iptRule(chain: string, r: Rule): string {
  const p: string[] = ['-A', chain];
  const host = r.fam === 4 ? '/32' : '/128';
  if (r.saddr) p.push('-s', r.saddr + host);
  if (r.daddr) p.push('-d', r.daddr + host);
  p.push('-p', r.proto);
  if (r.proto === 'udplite') {
    // The udp match is for UDP only; multiport also knows UDP-Lite.
    if (r.sport !== undefined) p.push('-m', 'multiport', '--sports', String(r.sport));
    if (r.dport !== undefined) p.push('-m', 'multiport', '--dports', String(r.dport));
  } else {
    if (r.sport !== undefined) p.push('--sport', String(r.sport));
    if (r.dport !== undefined) p.push('--dport', String(r.dport));
    if (r.synOnly) p.push('--syn');
  }
  p.push('-j', 'DROP');
  return p.join(' ');
}

/** What is in place of a lock in one family's filter table. */
function iptState(rec: LockRecord, fam: Fam, o: NetnsOption): { chains: Set<string>; jumps: { INPUT: number; OUTPUT: number } } {
  const c = iptChains(rec.name);
  const out = mustRun('iptables', `reading the filter table`, iptTool(fam, '-save'), ['-t', 'filter'], undefined, o);
  const chains = new Set<string>();
  const jumps = { INPUT: 0, OUTPUT: 0 };
  for (const line of out.split('\n')) {
    const m = /^:(\S+) /.exec(line);
    if (m && (m[1] === c.in || m[1] === c.out)) chains.add(m[1]);
    if (line.trim() === `-A INPUT -j ${c.in}`) jumps.INPUT++;
    if (line.trim() === `-A OUTPUT -j ${c.out}`) jumps.OUTPUT++;
  }
  return { chains, jumps };
}

function iptNeed(fam: Fam): void {
  for (const w of ['-restore', '-save'] as const) {
    if (!findTool(iptTool(fam, w))) throw new MissingError(`network lock (iptables): ${iptTool(fam, w)} not found${fam === 6 ? ', and IPv6 sockets are to be locked' : ''} (${installHint()})`, { step: 'network lock' });
  }
}

function iptLock(rec: LockRecord, o: NetnsOption, replace: boolean): void {
  const c = iptChains(rec.name);
  const rules = allRules(rec.targets);
  const fams = familiesOf(rec.targets);
  for (const fam of fams) iptNeed(fam);
  const done: Fam[] = [];
  try {
    for (const fam of fams) {
      const L = ['*filter'];
      let st: ReturnType<typeof iptState> | null = null;
      if (replace) {
        // `:CHAIN` creates the chain, or (with --noflush) empties the one there.
        st = iptState(rec, fam, o);
        L.push(`:${c.in} - [0:0]`, `:${c.out} - [0:0]`);
      } else {
        L.push(`-N ${c.in}`, `-N ${c.out}`); // fails if a lock of that name exists
      }
      const mark = `-m mark --mark 0x${PASS_MARK.toString(16)} -j RETURN`;
      L.push(`-A ${c.in} ${mark}`, `-A ${c.out} ${mark}`);
      for (const r of rules) if (r.fam === fam) L.push(iptRule(r.dir === 'in' ? c.in : c.out, r));
      if (!st || st.jumps.INPUT === 0) L.push(`-I INPUT 1 -j ${c.in}`);
      if (!st || st.jumps.OUTPUT === 0) L.push(`-I OUTPUT 1 -j ${c.out}`);
      L.push('COMMIT', '');
      mustRun('iptables', replace ? `re-creating lock ${rec.name}` : `locking (chains ${c.in}, ${c.out})`, iptTool(fam, '-restore'), ['-w', '10', '--noflush'], L.join('\n'), o);
      done.push(fam);
    }
  } catch (e) {
    if (!replace) for (const fam of done) { try { iptUnlockFam(rec, fam, o); } catch { /* the first error says it */ } }
    throw e;
  }
}

function iptUnlockFam(rec: LockRecord, fam: Fam, o: NetnsOption): void {
  const c = iptChains(rec.name);
  const st = iptState(rec, fam, o);
  if (st.chains.size === 0) return;
  const L = ['*filter'];
  for (let i = 0; i < st.jumps.INPUT; i++) L.push(`-D INPUT -j ${c.in}`);
  for (let i = 0; i < st.jumps.OUTPUT; i++) L.push(`-D OUTPUT -j ${c.out}`);
  for (const ch of [c.in, c.out]) if (st.chains.has(ch)) L.push(`-F ${ch}`, `-X ${ch}`);
  L.push('COMMIT', '');
  mustRun('iptables', `unlocking (chains ${c.in}, ${c.out})`, iptTool(fam, '-restore'), ['-w', '10', '--noflush'], L.join('\n'), o);
}

function iptUnlock(rec: LockRecord, o: NetnsOption): void {
  for (const fam of familiesOf(rec.targets)) {
    if (fam === 6 && !findTool(iptTool(6, '-save'))) continue; // it could not have been made
    iptUnlockFam(rec, fam, o);
  }
}

function iptIsLocked(rec: LockRecord, o: NetnsOption): boolean {
  for (const fam of familiesOf(rec.targets)) {
    if (!findTool(iptTool(fam, '-save'))) return false;
    const st = iptState(rec, fam, o);
    if (st.chains.size !== 2 || st.jumps.INPUT === 0 || st.jumps.OUTPUT === 0) return false;
  }
  return true;
}

// ---------------------------------------------------------------- the interface

function checkRecord(rec: LockRecord): void {
  if (rec.backend !== 'nftables' && rec.backend !== 'iptables') throw new FailedError(`network lock: unknown backend ${JSON.stringify(rec.backend)}`, { step: 'network lock' });
  if (!LOCK_NAME_RE.test(rec.name)) throw new FailedError(`network lock: bad lock name ${JSON.stringify(rec.name)} (1-16 letters, digits or _)`, { step: 'network lock' });
  allRules(rec.targets); // validates every target
}

function chooseBackend(want: LockBackendName | undefined, o: NetnsOption): LockBackendName {
  if (want) {
    if (want !== 'nftables' && want !== 'iptables') throw new FailedError(`network lock: unknown backend ${JSON.stringify(want)}`, { step: 'network lock' });
    return want;
  }
  const d = detectBackend(o);
  if (!d.backend) throw new MissingError(`network lock: ${d.detail}`, { step: 'network lock' });
  return d.backend;
}

/**
 * Lock the network for `targets`: one command for the whole set (nft -f -,
 * or iptables-restore --noflush and ip6tables-restore --noflush). Fails (and
 * changes nothing) if a lock of that name exists.
 */
export function lockNetwork(targets: LockTarget[], opts: LockOptions = {}): LockRecord {
  const o = { netns: opts.netns };
  const name = opts.name ?? crypto.randomBytes(4).toString('hex');
  const rec: LockRecord = { backend: 'nftables', name, targets: targets.map((t) => structuredClone(t)) };
  checkRecord(rec); // before looking for a backend: a bad target is the caller's error
  rec.backend = chooseBackend(opts.backend, o);
  const t0 = performance.now();
  if (rec.backend === 'nftables') nftLock(rec, o, false); else iptLock(rec, o, false);
  log.info(`network locked with ${rec.backend} (lock ${name}, ${targets.length} socket${targets.length === 1 ? '' : 's'}) in ${(performance.now() - t0).toFixed(1)} ms`);
  for (const t of targets) log.debug(`network lock ${name}: ${describe(t)}`);
  return rec;
}

/** (restore) Make sure the lock of `rec` is in place, exactly as recorded: re-made if absent (another host, another namespace); idempotent. */
export function ensureLocked(rec: LockRecord, o: NetnsOption = {}): void {
  checkRecord(rec);
  if (rec.backend === 'nftables') nftLock(rec, o, true); else iptLock(rec, o, true);
  log.debug(`network lock ${rec.name} (${rec.backend}) in place`);
}

/** Remove the lock entirely; no error if it is gone already. */
export function unlockNetwork(rec: LockRecord, o: NetnsOption = {}): void {
  checkRecord(rec);
  const t0 = performance.now();
  if (rec.backend === 'nftables') nftUnlock(rec, o); else iptUnlock(rec, o);
  log.info(`network unlocked (lock ${rec.name}, ${rec.backend}) in ${(performance.now() - t0).toFixed(1)} ms`);
}

/** Whether the lock of `rec` is in place (its table, or its chains and the jumps to them). */
export function isLocked(rec: LockRecord, o: NetnsOption = {}): boolean {
  checkRecord(rec);
  return rec.backend === 'nftables' ? nftIsLocked(rec, o) : iptIsLocked(rec, o);
}

/**
 * The ckpt locks in place (in `netns`, or ckpt's own namespace), of either
 * backend: to find one a ckpt that died left behind. Only what the tools
 * present can list; a lock's targets are not read back.
 */
export function listLocks(o: NetnsOption = {}): Array<{ backend: LockBackendName; name: string }> {
  const out: Array<{ backend: LockBackendName; name: string }> = [];
  const seen = new Set<string>();
  const add = (backend: LockBackendName, name: string) => {
    if (LOCK_NAME_RE.test(name) && !seen.has(backend + name)) { seen.add(backend + name); out.push({ backend, name }); }
  };
  if (findTool('nft')) {
    const r = runTool('nftables', 'nft', ['list', 'tables'], undefined, o);
    if (r.status === 0) for (const m of r.stdout.matchAll(/^table inet ckpt-(\S+)$/gm)) add('nftables', m[1]);
  }
  for (const fam of [4, 6] as Fam[]) {
    if (!findTool(iptTool(fam, '-save'))) continue;
    const r = runTool('iptables', iptTool(fam, '-save'), ['-t', 'filter'], undefined, o);
    if (r.status === 0) for (const m of r.stdout.matchAll(/^:CKPT-(\S+)-(?:in|out) /gm)) add('iptables', m[1]);
  }
  return out;
}

/** The rules a lock is made of, as the backend's commands (for logs, tests and `ckpt info`). */
export function lockScript(rec: LockRecord): string {
  checkRecord(rec);
  if (rec.backend === 'nftables') return `table inet ${nftTable(rec.name)} ${nftTableBody(allRules(rec.targets))}\n`;
  const c = iptChains(rec.name);
  return allRules(rec.targets).map((r) => `${iptTool(r.fam, '')} ${iptRule(r.dir === 'in' ? c.in : c.out, r)}`).join('\n') + '\n';
}
