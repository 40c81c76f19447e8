// Credentials: user and group ids, supplementary groups, capabilities, securebits.

import * as z from 'zod/mini';
import fs from 'node:fs';
import { RemoteTask } from '../kernel/remote.js';
import { NR, PR } from '../kernel/consts.js';
import { readStatus } from '../kernel/proc.js';
import { u32, int, hexMask } from '../image/schema.js';

const ids = z.array(u32).check(z.length(4)); // real, effective, saved, filesystem
export const Creds = z.object({
  uid: ids, gid: ids, groups: z.array(u32).check(z.maxLength(65536)),
  capInh: hexMask, capPrm: hexMask, capEff: hexMask, capBnd: hexMask, capAmb: hexMask,
  securebits: int(0, 0xffff),
});
export type Creds = z.infer<typeof Creds>;

export function readCreds(pid: number, securebits: number): Creds {
  const st = readStatus(pid);
  const nums = (k: string) => (st.get(k) ?? '').split(/\s+/).filter(Boolean).map(Number);
  return {
    uid: nums('Uid'), gid: nums('Gid'), groups: nums('Groups'),
    capInh: st.get('CapInh')!, capPrm: st.get('CapPrm')!, capEff: st.get('CapEff')!, capBnd: st.get('CapBnd')!, capAmb: st.get('CapAmb')!,
    securebits,
  };
}

function same(a: Creds, b: Creds): boolean {
  return JSON.stringify({ ...a, securebits: 0 }) === JSON.stringify({ ...b, securebits: 0 }) && a.securebits === b.securebits;
}

/** Apply the image's credentials to the task (last, since they may take away rights we need). */
export function restoreCreds(rt: RemoteTask, c: Creds, scratchOff: number): void {
  const cur = readCreds(rt.pid, c.securebits);
  if (same(cur, c)) return;
  const lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  const bnd = BigInt('0x' + c.capBnd);
  const curBnd = BigInt('0x' + cur.capBnd);
  for (let cap = 0; cap <= lastCap; cap++) {
    if ((curBnd >> BigInt(cap)) & 1n && !((bnd >> BigInt(cap)) & 1n)) rt.call(`prctl(PR_CAPBSET_DROP, ${cap})`, NR.prctl, PR.CAPBSET_DROP, cap);
  }
  if (JSON.stringify(cur.groups) !== JSON.stringify(c.groups)) {
    const g = Buffer.alloc(Math.max(4, c.groups.length * 4));
    c.groups.forEach((v, i) => g.writeUInt32LE(v, i * 4));
    rt.call('setgroups', NR.setgroups, c.groups.length, rt.put(g, scratchOff));
  }
  rt.call('setresgid', NR.setresgid, c.gid[0], c.gid[1], c.gid[2]);
  rt.call('setfsgid', NR.setfsgid, c.gid[3]);
  rt.call('prctl(PR_SET_KEEPCAPS, 1)', NR.prctl, PR.SET_KEEPCAPS, 1);
  rt.call('setresuid', NR.setresuid, c.uid[0], c.uid[1], c.uid[2]);
  rt.call('setfsuid', NR.setfsuid, c.uid[3]);
  // capset, version 3: header {version, pid}, then two {effective, permitted, inheritable} u32 triples.
  const eff = BigInt('0x' + c.capEff), prm = BigInt('0x' + c.capPrm), inh = BigInt('0x' + c.capInh);
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(0x20080522, 0);
  const data = Buffer.alloc(24);
  for (let i = 0; i < 2; i++) {
    const sh = BigInt(32 * i);
    data.writeUInt32LE(Number((eff >> sh) & 0xffffffffn), i * 12);
    data.writeUInt32LE(Number((prm >> sh) & 0xffffffffn), i * 12 + 4);
    data.writeUInt32LE(Number((inh >> sh) & 0xffffffffn), i * 12 + 8);
  }
  rt.call('capset', NR.capset, rt.put(hdr, scratchOff), rt.put(data, scratchOff + 64));
  const amb = BigInt('0x' + c.capAmb);
  for (let cap = 0; cap <= lastCap; cap++) {
    if ((amb >> BigInt(cap)) & 1n) rt.call(`prctl(PR_CAP_AMBIENT_RAISE, ${cap})`, NR.prctl, PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, cap);
  }
  rt.call('prctl(PR_SET_KEEPCAPS)', NR.prctl, PR.SET_KEEPCAPS, (c.securebits >> 4) & 1);
}
