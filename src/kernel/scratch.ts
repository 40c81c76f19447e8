// The scratch area of a remote task: a private mapping ckpt makes in the
// task (RemoteTask.mapScratch) for the memory that the arguments of remote
// calls point to (paths, structs, I/O vectors, results the kernel writes).
//
// It is handed out by a stack allocator with frames: a frame takes blocks as
// it needs them, and everything it took is given back when it ends, so a
// block is never shared by two users that do not know of each other (a
// wrapper that puts a struct, the caller's I/O vector, the signal that a
// failed write raised and that is taken off the queue in between). Frames
// nest; they are synchronous (a frame does not outlive the call that opened
// it, so no other frame can be opened on the same area while it waits).
//
// Threads of one process share their memory, so their tasks share one
// ScratchArea; a forked child has its own copy of the memory (the mapping
// at the same address), so it gets an area of its own (ScratchArea.copy).

/** Where a frame reads and writes the task's memory (RemoteTask, or a fake in the unit tests). */
export interface MemoryIO {
  write(addr: bigint, data: Buffer): void;
  read(addr: bigint, len: number): Buffer;
}

/** Blocks are aligned to this (enough for every struct passed to the kernel). */
export const SCRATCH_ALIGN = 8;

export class ScratchFullError extends Error {
  constructor(what: string, want: number, used: number, size: number) {
    super(`the scratch area${what} is full: ${want} more bytes wanted, ${used} of ${size} in use`);
    this.name = 'ScratchFullError';
  }
}

/** The scratch area of one address space and its allocator. */
export class ScratchArea {
  /** Bytes in use, from `base`. */
  private top = 0;
  /** Frames open now. */
  private depth = 0;
  private live = true;

  constructor(readonly base: bigint, readonly size: number, private readonly what = '') {}

  /** The same range in a copy of the address space (a forked child): nothing in use. */
  copy(what = ''): ScratchArea { return new ScratchArea(this.base, this.size, what); }

  /** The mapping is gone (unmapped): no frame may be opened any more. */
  retire(): void { this.live = false; }
  get isLive(): boolean { return this.live; }
  get used(): number { return this.top; }
  get openFrames(): number { return this.depth; }

  /**
   * Run `fn` with a frame on this area; whatever the frame took is given
   * back when `fn` returns or throws. `fn` must be synchronous.
   */
  withFrame<T>(io: MemoryIO, fn: (s: ScratchFrame) => T): T {
    if (!this.live) throw new Error(`internal: the scratch area${this.what} is not mapped`);
    const mark = this.top;
    const depth = ++this.depth;
    const frame = new ScratchFrame(this, io);
    try {
      const r = fn(frame);
      if (r instanceof Promise) throw new Error('internal: a scratch frame must not span an await');
      return r;
    } finally {
      const inOrder = this.depth === depth;
      this.depth = depth - 1;
      this.top = mark;
      frame.ended = true;
      if (!inOrder) throw new Error('internal: scratch frames ended out of order');
    }
  }

  /** Take `len` bytes (aligned); for ScratchFrame only. */
  take(len: number): bigint {
    const at = (this.top + SCRATCH_ALIGN - 1) & ~(SCRATCH_ALIGN - 1);
    if (len < 0 || at + len > this.size) throw new ScratchFullError(this.what, len, this.top, this.size);
    this.top = at + len;
    return this.base + BigInt(at);
  }
}

/** A frame of a scratch area: blocks taken from it live until the frame ends. */
export class ScratchFrame {
  ended = false;
  constructor(private readonly area: ScratchArea, private readonly io: MemoryIO) {}

  private check(): void { if (this.ended) throw new Error('internal: a scratch frame was used after it ended'); }

  /** Room for `len` bytes, contents undefined (for what the kernel fills in). */
  alloc(len: number): bigint {
    this.check();
    return this.area.take(len);
  }
  /** Room for `len` bytes, zeroed. */
  zeroed(len: number): bigint { return this.put(Buffer.alloc(len)); }
  /** A copy of `data` in the task; returns its address. */
  put(data: Buffer): bigint {
    const a = this.alloc(data.length);
    this.io.write(a, data);
    return a;
  }
  /** A NUL-terminated copy of `s`. */
  putString(s: string): bigint { return this.put(Buffer.from(s + '\0')); }
  /** Read back `len` bytes at `addr` (a block of this frame). */
  read(addr: bigint, len: number): Buffer {
    this.check();
    return this.io.read(addr, len);
  }
}
