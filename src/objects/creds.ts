// Credentials: user and group ids, supplementary groups, capabilities, securebits.

import * as z from 'zod/mini';
import fs from 'node:fs';
import { RemoteTask } from '../kernel/remote.js';
import * as remote from '../kernel/rsys.js';
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
export function restoreCreds(rt: RemoteTask, c: Creds): void {
  const cur = readCreds(rt.pid, c.securebits);
  if (same(cur, c)) return;
  const lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  const bnd = BigInt('0x' + c.capBnd);
  const curBnd = BigInt('0x' + cur.capBnd);
  for (let cap = 0; cap <= lastCap; cap++) {
    if ((curBnd >> BigInt(cap)) & 1n && !((bnd >> BigInt(cap)) & 1n)) remote.prctlCapbsetDrop(rt, cap);
  }
  if (JSON.stringify(cur.groups) !== JSON.stringify(c.groups)) remote.setgroups(rt, c.groups);
  remote.setresgid(rt, c.gid[0], c.gid[1], c.gid[2]);
  remote.setfsgid(rt, c.gid[3]);
  remote.prctlSetKeepcaps(rt, 1);
  remote.setresuid(rt, c.uid[0], c.uid[1], c.uid[2]);
  remote.setfsuid(rt, c.uid[3]);
  remote.capset(rt, { effective: BigInt('0x' + c.capEff), permitted: BigInt('0x' + c.capPrm), inheritable: BigInt('0x' + c.capInh) });
  const amb = BigInt('0x' + c.capAmb);
  for (let cap = 0; cap <= lastCap; cap++) {
    if ((amb >> BigInt(cap)) & 1n) remote.prctlCapAmbientRaise(rt, cap);
  }
  remote.prctlSetKeepcaps(rt, (c.securebits >> 4) & 1);
}
