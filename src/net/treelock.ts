// The network lock of a dump and of its restore (the rules themselves:
// lock.ts). While ckpt reads a tree's TCP connections in repair mode, and
// from the moment the tree is gone until restore has made them again, a
// peer's packet must meet nothing, not a socket in the middle of being read
// nor a closed port (which answers with a reset). Dump locks every inet
// socket the tree holds at once, right after freezing it: the connections'
// addresses both ways, new connections to its listeners, datagrams to its
// UDP sockets. A failed dump, or one with --leave-running, lets go at once;
// a dump that ended the tree keeps the lock when it kept connections, and
// writes it into the image (network.json), for restore to release once the
// tree runs again (and to make again first, on another host).

import fs from 'node:fs';
import * as z from 'zod/mini';
import { IPPROTO, TCP_STATE, inetDiagAll, InetDiag } from '../kernel/inet.js';
import { CkptError } from '../errors.js';
import { log } from '../log.js';
import type { NetworkLockMode } from '../api.js';
import { LockRecord, LockTarget, LockRecordSchema, lockNetwork, unlockNetwork, ensureLocked, detectBackend } from './lock.js';

export const NetworkImage = z.object({ lock: LockRecordSchema });
export type NetworkImage = z.infer<typeof NetworkImage>;

const CONNECTION_STATES = new Set<number>([TCP_STATE.ESTABLISHED, TCP_STATE.SYN_SENT, TCP_STATE.FIN_WAIT1, TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSE_WAIT, TCP_STATE.LAST_ACK, TCP_STATE.CLOSING]);

/** The socket inodes the processes hold. */
function socketInodes(pids: number[]): Set<number> {
  const out = new Set<number>();
  for (const pid of pids) {
    let fds: string[] = [];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      let l = '';
      try { l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(l);
      if (m) out.add(Number(m[1]));
    }
  }
  return out;
}

/** What to lock for the inet sockets these processes hold, and how many of them are TCP connections (kept in repair mode). */
export function treeTargets(pids: number[]): { targets: LockTarget[]; connections: number } {
  const inodes = socketInodes(pids);
  const targets: LockTarget[] = [];
  let connections = 0;
  if (!inodes.size) return { targets, connections };
  const of = (d: InetDiag) => ({ local: { addr: d.src.addr, port: d.src.port }, remote: { addr: d.dst.addr, port: d.dst.port } });
  for (const family of [4, 6] as const) {
    for (const d of inetDiagAll(family, IPPROTO.TCP)) {
      if (!inodes.has(d.inode)) continue;
      const v6only = family === 6 && d.v6only ? { v6only: true } : {};
      if (d.state === TCP_STATE.LISTEN) targets.push({ proto: 'tcp', family, local: of(d).local, listen: true, ...v6only });
      else if (CONNECTION_STATES.has(d.state)) {
        targets.push({ proto: 'tcp', family, ...of(d) });
        // (one under way is connected again at restore: it needs no lock kept for it)
        if (d.state !== TCP_STATE.SYN_SENT) connections++;
      }
    }
    for (const [proto, nr] of [['udp', IPPROTO.UDP], ['udplite', IPPROTO.UDPLITE]] as const) {
      let list: InetDiag[] = [];
      try { list = inetDiagAll(family, nr); } catch (e) { if (proto === 'udplite') continue; throw e; } // (UDP-Lite's sock_diag may be absent)
      for (const d of list) {
        if (!inodes.has(d.inode) || d.src.port === 0) continue;
        const t = of(d);
        targets.push({ proto, family, local: t.local, ...(d.dst.port ? { remote: t.remote } : {}), ...(family === 6 && d.v6only ? { v6only: true } : {}) });
      }
    }
  }
  return { targets, connections };
}

/** The lock a dump holds (null: none was needed or wanted). */
export class DumpLock {
  private constructor(readonly rec: LockRecord, readonly connections: number) {}

  /**
   * Lock what the frozen tree's inet sockets need. Without a tool for it:
   * an error if the tree has TCP connections to keep (`needed`), else a
   * warning, and no lock.
   */
  static take(pids: number[], mode: NetworkLockMode | undefined, needed: boolean): DumpLock | null {
    if (mode === 'skip') return null;
    const { targets, connections } = treeTargets(pids);
    if (!targets.length) return null;
    const found = mode ? null : detectBackend();
    const backend = mode ?? found?.backend ?? undefined;
    if (!backend) {
      const why = `no network lock is possible here (${found?.detail}): install nftables or iptables, or dump with --network-lock skip (peers may then see resets)`;
      if (needed && connections) throw new CkptError('missing', why);
      log.warn(why);
      return null;
    }
    const rec = lockNetwork(targets, { backend });
    log.info(`network locked (${rec.backend} ${rec.name}): ${targets.length} address${targets.length === 1 ? '' : 'es'}`);
    return new DumpLock(rec, connections);
  }

  release(): void {
    unlockNetwork(this.rec);
    log.info(`network lock ${this.rec.name} released`);
  }
}

/** Restore: make the image's lock again if it is not in place (another host), before any socket is made. */
export function restoreLock(img: NetworkImage | null, mode: NetworkLockMode | undefined): LockRecord | null {
  if (!img || mode === 'skip') return null;
  ensureLocked(img.lock);
  return img.lock;
}
