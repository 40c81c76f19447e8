/*
 * mem - memory areas of many kinds must come back at the same addresses with
 * the same contents, permissions, flags and backing.
 *
 *   mem OUTFILE [growsdown]
 *
 * Areas (each 8-byte word patterned with a function of its address and a
 * random seed, so a page restored at the wrong place is detected):
 *   - private anonymous areas of 1, 3, 16, 256 and 1024 pages
 *   - an anonymous area with holes: only every third page touched; the others
 *     must still read as zero
 *   - heap: 1000 small malloc blocks, one large (mmap'd) malloc block, then
 *     sbrk growth by 64 KiB; sbrk(0) must be unchanged
 *   - a 256 KiB array on main's stack
 *   - MAP_SHARED|MAP_ANONYMOUS area (last pages never touched)
 *   - RW area with a PROT_NONE guard in the middle (three VMAs)
 *   - anonymous area filled, then mprotect'ed PROT_READ
 *   - MAP_PRIVATE mapping of mem.data (64 KiB file in cwd): pages 1,3,4,10
 *     written (copy-on-write, must keep the written data), pages 0,2 read
 *     only, the rest never touched (must show the file's data); the file
 *     itself must be unchanged
 *   - MAP_SHARED mapping of mem.shared (16 KiB), page 1 written through the
 *     mapping: mapping and file must both show it
 *   - optional (arg "growsdown"): a MAP_GROWSDOWN area
 * /proc/self/maps is compared line by line (addresses, perms, offset, dev,
 * inode, name), and the VmFlags of every area in /proc/self/smaps. The one
 * exception is the inode number of shared anonymous memory ("/dev/zero
 * (deleted)"): it names a kernel-internal shmem object, which restore must
 * create anew, so it is masked.
 * No malloc happens after the snapshot, so the heap must not move.
 */
#include "subject.h"
#include <sys/mman.h>

#define PAGE 4096ul

static uint64_t seed;

static uint64_t pat(uintptr_t addr, uint64_t salt)
{
	return mix64(addr ^ seed ^ salt);
}

static void fill(void *p, size_t len, uint64_t salt)
{
	uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = pat((uintptr_t)&w[i], salt);
}

static void check(const char *name, const void *p, size_t len, uint64_t salt)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		uint64_t e = pat((uintptr_t)&w[i], salt);

		if (w[i] != e)
			subject_fail("area %s %p: word %zu (addr %p) is 0x%016llx expected 0x%016llx",
				     name, p, i, (void *)&w[i], (unsigned long long)w[i],
				     (unsigned long long)e);
	}
}

static void check_zero(const char *name, const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != 0)
			subject_fail("area %s %p: never-touched word %zu (addr %p) is 0x%016llx, expected 0",
				     name, p, i, (void *)&w[i], (unsigned long long)w[i]);
}

static void *xmmap(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);

	if (p == MAP_FAILED)
		subject_fail("mmap %zu: %s", len, strerror(errno));
	return p;
}

/* file content pattern: a function of the file offset */
static uint64_t file_word(uint64_t off, uint64_t fsalt)
{
	return mix64(off ^ fsalt);
}

static int make_file(const char *name, size_t len, uint64_t fsalt)
{
	uint64_t buf[PAGE / 8];
	size_t off, i;
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
	for (off = 0; off < len; off += PAGE) {
		for (i = 0; i < PAGE / 8; i++)
			buf[i] = file_word(off + i * 8, fsalt);
		CHECK(pwrite(fd, buf, PAGE, (off_t)off) == PAGE, "write %s: %s", name, strerror(errno));
	}
	return fd;
}

/* check len bytes at p against file pattern starting at file offset off */
static void check_file_data(const char *name, const void *p, size_t len, uint64_t off, uint64_t fsalt)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		uint64_t e = file_word(off + i * 8, fsalt);

		if (w[i] != e)
			subject_fail("%s: word at file offset %llu (addr %p) is 0x%016llx expected file data 0x%016llx",
				     name, (unsigned long long)(off + i * 8), (void *)&w[i],
				     (unsigned long long)w[i], (unsigned long long)e);
	}
}

/* ---- the areas ----------------------------------------------------------- */

static const size_t anon_pages[] = { 1, 3, 16, 256, 1024 };
#define NANON (sizeof(anon_pages) / sizeof(anon_pages[0]))
static char *anon[NANON];

#define HOLE_PAGES 64
static char *holes;

#define NBLOCKS 1000
static unsigned char *blocks[NBLOCKS];
static size_t block_len[NBLOCKS];
static unsigned char *bigblock;
#define BIGBLOCK_LEN (300 * 1024)
static char *sbrk_area;
#define SBRK_LEN (64 * 1024)
static void *brk_before;

#define SHARED_PAGES 64
#define SHARED_TOUCHED 60
static char *shared;

#define GUARD_PAGES 16
static char *guarded; /* pages 6..9 PROT_NONE */

#define RO_PAGES 8
static char *ro;

#define FILE_PAGES 16
static const int cow_pages[] = { 1, 3, 4, 10 };
static const int read_pages[] = { 0, 2 };
static char *fmap;
static int fmap_fd;
static uint64_t fsalt, ssalt;

#define SFILE_PAGES 4
static char *smap;
static int smap_fd;

static char *gdown;
#define GDOWN_PAGES 4

static int is_cow_page(int pg)
{
	size_t i;

	for (i = 0; i < sizeof(cow_pages) / sizeof(cow_pages[0]); i++)
		if (cow_pages[i] == pg)
			return 1;
	return 0;
}

static void setup(int growsdown)
{
	size_t i;
	volatile uint64_t sink = 0;

	for (i = 0; i < NANON; i++) {
		anon[i] = xmmap(anon_pages[i] * PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		fill(anon[i], anon_pages[i] * PAGE, 0x100 + i);
	}

	holes = xmmap(HOLE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (i = 0; i < HOLE_PAGES; i += 3)
		fill(holes + i * PAGE, PAGE, 0x200);

	for (i = 0; i < NBLOCKS; i++) {
		block_len[i] = 8 + (i * 37) % 493;
		blocks[i] = malloc(block_len[i]);
		CHECK(blocks[i], "malloc");
	}
	for (i = 0; i < NBLOCKS; i++) {
		size_t j;

		for (j = 0; j < block_len[i]; j++)
			blocks[i][j] = (unsigned char)(pat((uintptr_t)&blocks[i][j], 0x300) >> 56);
	}
	bigblock = malloc(BIGBLOCK_LEN);
	CHECK(bigblock, "malloc big");
	fill(bigblock, BIGBLOCK_LEN, 0x301);
	sbrk_area = sbrk(SBRK_LEN);
	CHECK(sbrk_area != (void *)-1, "sbrk: %s", strerror(errno));
	fill(sbrk_area, SBRK_LEN, 0x302);
	brk_before = sbrk(0);

	shared = xmmap(SHARED_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fill(shared, SHARED_TOUCHED * PAGE, 0x400);

	guarded = xmmap(GUARD_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(guarded, GUARD_PAGES * PAGE, 0x500);
	CHECK(mprotect(guarded + 6 * PAGE, 4 * PAGE, PROT_NONE) == 0, "mprotect none: %s", strerror(errno));

	ro = xmmap(RO_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(ro, RO_PAGES * PAGE, 0x600);
	CHECK(mprotect(ro, RO_PAGES * PAGE, PROT_READ) == 0, "mprotect ro: %s", strerror(errno));

	fsalt = seed ^ 0xF11E;
	fmap_fd = make_file("mem.data", FILE_PAGES * PAGE, fsalt);
	fmap = xmmap(FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fmap_fd, 0);
	close(fmap_fd); /* the mapping alone keeps the file */
	for (i = 0; i < sizeof(cow_pages) / sizeof(cow_pages[0]); i++)
		fill(fmap + cow_pages[i] * PAGE, PAGE, 0x700);
	for (i = 0; i < sizeof(read_pages) / sizeof(read_pages[0]); i++)
		sink += *(volatile uint64_t *)(fmap + read_pages[i] * PAGE + 64);

	ssalt = seed ^ 0x5A7ED;
	smap_fd = make_file("mem.shared", SFILE_PAGES * PAGE, ssalt);
	smap = xmmap(SFILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, smap_fd, 0);
	close(smap_fd);
	fill(smap + PAGE, PAGE, 0x800);

	if (growsdown) {
		gdown = xmmap(GDOWN_PAGES * PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
		fill(gdown, GDOWN_PAGES * PAGE, 0x900);
	}
	(void)sink;
}

static void verify_areas(void)
{
	size_t i;
	int pg;

	for (i = 0; i < NANON; i++)
		check("anon", anon[i], anon_pages[i] * PAGE, 0x100 + i);

	for (i = 0; i < HOLE_PAGES; i++) {
		if (i % 3 == 0)
			check("holes(touched)", holes + i * PAGE, PAGE, 0x200);
		else
			check_zero("holes(untouched)", holes + i * PAGE, PAGE);
	}

	for (i = 0; i < NBLOCKS; i++) {
		size_t j;

		for (j = 0; j < block_len[i]; j++) {
			unsigned char e = (unsigned char)(pat((uintptr_t)&blocks[i][j], 0x300) >> 56);

			if (blocks[i][j] != e)
				subject_fail("heap block %zu (%p, %zu bytes): byte %zu is 0x%02x expected 0x%02x",
					     i, blocks[i], block_len[i], j, blocks[i][j], e);
		}
	}
	check("malloc(300K)", bigblock, BIGBLOCK_LEN, 0x301);
	check("sbrk", sbrk_area, SBRK_LEN, 0x302);
	CHECK(sbrk(0) == brk_before, "sbrk(0) is %p, was %p", sbrk(0), brk_before);

	check("shared-anon", shared, SHARED_TOUCHED * PAGE, 0x400);
	check_zero("shared-anon(untouched)", shared + SHARED_TOUCHED * PAGE,
		   (SHARED_PAGES - SHARED_TOUCHED) * PAGE);

	check("guarded(below)", guarded, 6 * PAGE, 0x500);
	check("guarded(above)", guarded + 10 * PAGE, 6 * PAGE, 0x500);

	check("read-only", ro, RO_PAGES * PAGE, 0x600);

	for (pg = 0; pg < FILE_PAGES; pg++) {
		if (is_cow_page(pg))
			check("mem.data private (written page)", fmap + pg * PAGE, PAGE, 0x700);
		else
			check_file_data("mem.data private (unwritten page)", fmap + pg * PAGE, PAGE,
					(uint64_t)pg * PAGE, fsalt);
	}
	{
		static uint64_t buf[FILE_PAGES * PAGE / 8];
		int fd = open("mem.data", O_RDONLY | O_CLOEXEC);

		CHECK(fd >= 0, "open mem.data: %s", strerror(errno));
		CHECK(pread(fd, buf, sizeof(buf), 0) == sizeof(buf), "read mem.data");
		close(fd);
		check_file_data("file mem.data (must be unchanged by private writes)", buf,
				sizeof(buf), 0, fsalt);
	}

	for (pg = 0; pg < SFILE_PAGES; pg++) {
		if (pg == 1)
			check("mem.shared mapping (written page)", smap + PAGE, PAGE, 0x800);
		else
			check_file_data("mem.shared mapping", smap + pg * PAGE, PAGE,
					(uint64_t)pg * PAGE, ssalt);
	}
	{
		static uint64_t buf[PAGE / 8];
		int fd = open("mem.shared", O_RDONLY | O_CLOEXEC);

		CHECK(fd >= 0, "open mem.shared: %s", strerror(errno));
		CHECK(pread(fd, buf, PAGE, PAGE) == PAGE, "read mem.shared");
		close(fd);
		for (i = 0; i < PAGE / 8; i++) {
			uint64_t e = pat((uintptr_t)(smap + PAGE + i * 8), 0x800);

			CHECK(buf[i] == e, "file mem.shared page 1 word %zu is 0x%016llx expected 0x%016llx (write through shared mapping lost)",
			      i, (unsigned long long)buf[i], (unsigned long long)e);
		}
	}

	if (gdown)
		check("growsdown", gdown, GDOWN_PAGES * PAGE, 0x900);
}

static __attribute__((noinline)) void fill_stack(uint64_t *a, size_t n)
{
	fill(a, n * 8, 0xA00);
}

static __attribute__((noinline)) void check_stack(uint64_t *a, size_t n)
{
	check("main stack array", a, n * 8, 0xA00);
}

static char maps_before[1 << 18], maps_after[1 << 18];

/* Blank the inode field of "/dev/zero (deleted)" lines (see the top comment). */
static void mask_shmem_inodes(char *buf)
{
	for (char *line = buf; *line; ) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		static const char tag[] = "/dev/zero (deleted)";
		if (len >= sizeof(tag) - 1 && !memcmp(line + len - (sizeof(tag) - 1), tag, sizeof(tag) - 1)) {
			/* fields: range perms offset dev inode name */
			char *p = line;
			for (int f = 0; f < 4 && p < line + len; f++) {
				while (p < line + len && *p != ' ') p++;
				while (p < line + len && *p == ' ') p++;
			}
			while (p < line + len && *p >= '0' && *p <= '9') *p++ = ' ';
		}
		if (!nl) break;
		line = nl + 1;
	}
}
static char smaps_raw[1 << 21];
static char vmf_before[1 << 18], vmf_after[1 << 18];

int main(int argc, char **argv)
{
	uint64_t stack_array[256 * 1024 / 8];

	subject_init(argc, argv, 1, "[growsdown]");
	install_term_handler(0);
	seed = random_seed();

	setup(argc > 2 && strcmp(argv[2], "growsdown") == 0);
	fill_stack(stack_array, sizeof(stack_array) / 8);

	/* touch stack below us now, so checking later does not grow [stack] */
	prefault_stack(512 * 1024);
	snap_file("/proc/self/maps", maps_before, sizeof(maps_before));
	mask_shmem_inodes(maps_before);
	snap_file("/proc/self/smaps", smaps_raw, sizeof(smaps_raw));
	smaps_vmflags(smaps_raw, vmf_before, sizeof(vmf_before));
	mask_shmem_inodes(vmf_before);

	subject_ready(NULL);
	while (!got_term)
		pause();

	snap_file("/proc/self/maps", maps_after, sizeof(maps_after));
	mask_shmem_inodes(maps_after);
	compare_text("/proc/self/maps", maps_before, maps_after);
	snap_file("/proc/self/smaps", smaps_raw, sizeof(smaps_raw));
	smaps_vmflags(smaps_raw, vmf_after, sizeof(vmf_after));
	mask_shmem_inodes(vmf_after);
	compare_text("/proc/self/smaps (areas+VmFlags)", vmf_before, vmf_after);

	verify_areas();
	check_stack(stack_array, sizeof(stack_array) / 8);
	subject_pass();
}
