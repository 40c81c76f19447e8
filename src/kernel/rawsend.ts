// Raw sockets that send whole IP packets ckpt built itself (net/packets.ts):
// IPPROTO_RAW with the header included (IP_HDRINCL, IPV6_HDRINCL), marked
// with a firewall mark (SO_MARK) so that the network lock lets them pass.
// Used to put datagrams back into a restored socket's queue, and segments
// that recreate a TCP connection's state.

import fs from 'node:fs';
import { syscallRaw, addressOf, SysError } from './ffi.js';
import { NR, SO, SOCK } from './consts.js';
import { AF, IPPROTO, SOL, IPV6, InetAddr, sockaddrInet, setsockoptIntRaw } from './inet.js';

export interface RawSender { fd: number; family: 4 | 6 }

/** A raw socket of `family` that sends packets with their own header, marked `mark`. */
export function openRawSender(family: 4 | 6, mark: number): RawSender {
  const fd = syscallRaw(NR.socket, family === 4 ? AF.INET : AF.INET6, SOCK_RAW | SOCK.CLOEXEC, IPPROTO.RAW);
  if (fd < 0) throw new SysError(`socket(${family === 4 ? 'AF_INET' : 'AF_INET6'}, SOCK_RAW, IPPROTO_RAW)`, -fd);
  try {
    const set = (level: number, opt: number, v: number, name: string) => {
      const r = setsockoptIntRaw(fd, level, opt, v);
      if (r < 0) throw new SysError(`setsockopt(${name})`, -r);
    };
    // (IPPROTO_RAW on IPv4 implies IP_HDRINCL; IPv6 needs it asked for)
    if (family === 6) set(SOL.IPV6, IPV6.HDRINCL, 1, 'IPV6_HDRINCL');
    set(SOL.SOCKET, SO.MARK, mark >>> 0, 'SO_MARK');
    if (family === 4) set(SOL.SOCKET, SO.BROADCAST, 1, 'SO_BROADCAST');
    return { fd, family };
  } catch (e) { fs.closeSync(fd); throw e; }
}

/** Send one whole packet to `dst` (its address: where the kernel routes it; the port is not used): 0 or -errno. */
export function sendRawPacket(s: RawSender, packet: Buffer, dst: InetAddr): number {
  const a = sockaddrInet({ ...dst, port: 0 });
  const r = syscallRaw(NR.sendto, s.fd, addressOf(packet), packet.length, SOCK.MSG_DONTWAIT | SOCK.MSG_NOSIGNAL, addressOf(a), a.length);
  void packet; void a;
  if (r < 0) return r;
  return r === packet.length ? 0 : -90 /* EMSGSIZE */;
}

export function closeRawSender(s: RawSender): void { fs.closeSync(s.fd); }

const SOCK_RAW = 3;

/** A raw sender of each family, opened when first needed, all marked `mark`; close() closes them. */
export class RawSenders {
  private readonly by = new Map<4 | 6, RawSender>();
  constructor(private readonly mark: number) {}
  get(family: 4 | 6): RawSender {
    let s = this.by.get(family);
    if (!s) { s = openRawSender(family, this.mark); this.by.set(family, s); }
    return s;
  }
  close(): void { for (const s of this.by.values()) closeRawSender(s); this.by.clear(); }
}
