// The XSAVE features this host's CPU and kernel offer, from /proc/cpuinfo flags.

import fs from 'node:fs';

const FEATURES: Array<[number, string, string]> = [
  [0, 'fpu', 'x87'], [1, 'sse', 'SSE'], [2, 'avx', 'AVX'], [3, 'mpx', 'MPX bounds'], [4, 'mpx', 'MPX csr'],
  [5, 'avx512f', 'AVX-512 opmask'], [6, 'avx512f', 'AVX-512 ZMM_Hi256'], [7, 'avx512f', 'AVX-512 Hi16_ZMM'],
  [9, 'ospke', 'PKRU'], [11, 'user_shstk', 'CET user'], [17, 'amx_tile', 'AMX tile config'], [18, 'amx_tile', 'AMX tile data'],
  [19, 'apx', 'APX'],
];

export function hostXfeatures(): { mask: bigint; describe: (bits: bigint) => string; flags: Set<string> } {
  const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const line = text.split('\n').find((l) => l.startsWith('flags')) ?? '';
  const flags = new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/));
  let mask = 0n;
  for (const [bit, flag] of FEATURES) if (flags.has(flag)) mask |= 1n << BigInt(bit);
  const describe = (bits: bigint) => {
    const names: string[] = [];
    for (let b = 0; b < 64; b++) {
      if ((bits >> BigInt(b)) & 1n) names.push(FEATURES.find(([x]) => x === b)?.[2] ?? `feature ${b}`);
    }
    return names.join(', ');
  };
  return { mask, describe, flags };
}
