/* torture_alloc: the fault-injecting allocator and file writes of the torture build of elbod
 * (see torture.h). Linked into build/torture/elbod only.
 *
 * The allocator replaces malloc, free, calloc, realloc and the aligned ones for the whole
 * process (glibc supports replacing them: its own functions, strdup and fopen included, call
 * them, and so do the shared libraries). Every call goes to glibc's allocator through its
 * __libc_* entry points, so nothing needs dlsym (which allocates) and memory from either side may
 * be freed by the other. Only an allocation made while the calling thread is armed for a request
 * is counted, and only the request's fail_at-th fails.
 *
 * Under AddressSanitizer (the build/san torture build) the calls go to ASan's allocator through
 * its __interceptor_* entry points instead, and strdup is replaced too (ASan's does not call
 * malloc).
 *
 * The writes go to the kernel through syscall(2), also without dlsym.
 */
#define _LARGEFILE64_SOURCE
#include "torture.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <string.h>
#define REAL(f) __interceptor_##f
extern char *__interceptor_strdup(const char *s);
#else
#define REAL(f) __libc_##f
#endif
extern void *REAL(malloc)(size_t n);
extern void *REAL(calloc)(size_t n, size_t size);
extern void *REAL(realloc)(void *p, size_t n);
extern void *REAL(memalign)(size_t align, size_t n);
extern void REAL(free)(void *p);

static _Thread_local torture_req *armed;

void torture_req_init(torture_req *t, const char *fail_at)
{
    t->fail_at = 0;
    t->count = 0;
    t->injected = 0;
    t->sticky = 0;
    if (fail_at) {
        char *end;
        long n = strtol(fail_at, &end, 10);
        int sticky = end != fail_at && *end == '+';
        if (end != fail_at && (*end == '\0' || (sticky && end[1] == '\0')) && n > 0) {
            t->fail_at = n;
            t->sticky = sticky;
        }
    }
}

void torture_arm(torture_req *t)
{
    armed = t;
}

torture_req *torture_armed(void)
{
    return armed;
}

/* Counts one allocation of the armed request: 1 when it is the one to fail. */
static int should_fail(void)
{
    torture_req *t = armed;
    if (!t)
        return 0;
    t->count++;
    if (t->fail_at == 0 || t->count < t->fail_at || (t->count > t->fail_at && !t->sticky))
        return 0;
    t->injected = 1;
    return 1;
}

void *malloc(size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return REAL(malloc)(n);
}

void free(void *p)
{
    REAL(free)(p);
}

void *calloc(size_t n, size_t size)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return REAL(calloc)(n, size);
}

/* realloc(p, 0) frees (glibc): not an allocation. */
void *realloc(void *p, size_t n)
{
    if (n && should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return REAL(realloc)(p, n);
}

void *memalign(size_t align, size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return REAL(memalign)(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    void *p = memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

#ifdef __SANITIZE_ADDRESS__
char *strdup(const char *s)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return REAL(strdup)(s);
}
#endif

void *valloc(size_t n)
{
    return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

void *pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return memalign(page, (n + page - 1) / page * page);
}

/* ---- disk full ---------------------------------------------------------------------------- */

static const char *diskfull_flag;

__attribute__((constructor)) static void torture_init(void)
{
    diskfull_flag = getenv("ELBOD_TORTURE_DISKFULL");
}

/* Whether writing up to byte `end` of fd (-1: an append) needs space a full disk has not. */
static int no_space(int fd, off64_t end)
{
    if (fd <= 2 || !diskfull_flag || access(diskfull_flag, F_OK) != 0)
        return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return end < 0 || end > st.st_size;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (n && diskfull_flag) {
        int fl = fcntl(fd, F_GETFL);
        off64_t pos = fl >= 0 && !(fl & O_APPEND) ? lseek64(fd, 0, SEEK_CUR) : -1;
        if (no_space(fd, pos < 0 ? -1 : pos + (off64_t)n)) {
            errno = ENOSPC;
            return -1;
        }
    }
    return syscall(SYS_write, fd, buf, n);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    if (n && no_space(fd, off + (off64_t)n)) {
        errno = ENOSPC;
        return -1;
    }
    return syscall(SYS_pwrite64, fd, buf, n, off);
}

int ftruncate64(int fd, off64_t len)
{
    if (no_space(fd, len)) {
        errno = ENOSPC;
        return -1;
    }
    return (int)syscall(SYS_ftruncate, fd, len);
}
