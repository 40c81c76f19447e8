// memfds (memfd_create): anonymous files in memory. The inode, with its
// name, contents (holes kept), size, mode and seals, is stored once in the
// image (inodes.ts), whoever holds or maps it; each open file description
// is a new open of it with its own flags and offset. MFD_CLOEXEC is the
// close-on-exec flag of each fd (the fd table keeps it); MFD_ALLOW_SEALING
// and MFD_NOEXEC_SEAL show in the seals and mode; memfds of huge pages
// (MFD_HUGETLB) are refused.

import { inodeOpenKind } from './inodes.js';

export const memfdKind = inodeOpenKind('memfd', 'memfd', (f) => f.object.type === 'memfd');
