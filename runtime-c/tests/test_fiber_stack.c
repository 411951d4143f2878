/*
 * Fiber stacks (fiber_stack.h) without the scheduler: a spawned fiber's stack is 16 MiB with a
 * PROT_NONE guard page at its bottom and the rest writable, the main fiber's 1 GiB; a fault in
 * the guard page or up to 64 KiB below it counts as an overflow, nothing else does; a stack
 * given back is the next one taken (the pool), up to 256 are kept and the rest are unmapped,
 * as is the main fiber's; without address space left a take fails with ENOMEM and leaves the
 * record empty. Runs under ASan + UBSan and under ThreadSanitizer.
 */
#include "fiber_stack.h"
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { POOL_MAX = 256 };

static size_t page;

/* Whether [p, p + page) is mapped at all (mincore fails with ENOMEM on an unmapped page). */
static bool mapped(const void *p) {
    unsigned char v;
    return mincore((void *)((uintptr_t)p & ~(uintptr_t)(page - 1)), page, &v) == 0;
}

/* The permissions /proc/self/maps gives the mapping containing p ("rw-p"), or "" when none. */
static void perms_at(const void *p, char out[5]) {
    out[0] = '\0';
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && (uintptr_t)p >= lo && (uintptr_t)p < hi) {
            memcpy(out, perms, 5);
            break;
        }
    }
    fclose(f);
}

static void test_spawned_stack(void) {
    osp_fiber_stack s = {0};
    CHECK(osp_fiber_stack_take(&s, false), "take: %s", strerror(errno));
    if (s.lo == NULL) return;
    CHECK(s.bytes == (size_t)16 << 20 && s.hi == s.lo + s.bytes, "a spawned fiber's stack is %zu bytes", s.bytes);
    char perms[5];
    perms_at(s.lo, perms);
    CHECK(strcmp(perms, "---p") == 0, "the guard page is %s, not ---p", perms);
    perms_at(s.lo + page, perms);
    CHECK(strcmp(perms, "rw-p") == 0, "above the guard page: %s, not rw-p", perms);
    const void *bottom;
    size_t usable;
    osp_fiber_stack_usable(&s, &bottom, &usable);
    CHECK(bottom == s.lo + page && usable == s.bytes - page, "usable: %p + %zu", bottom, usable);
    /* Writable from just above the guard page to the top. */
    s.lo[page] = 1;
    s.hi[-1] = 2;
    CHECK(s.lo[page] == 1 && s.hi[-1] == 2, "the stack is not writable");

    uintptr_t lo = (uintptr_t)s.lo;
    CHECK(osp_fiber_stack_overflowed(&s, lo), "the guard page's first byte");
    CHECK(osp_fiber_stack_overflowed(&s, lo + page - 1), "the guard page's last byte");
    CHECK(osp_fiber_stack_overflowed(&s, lo - (64u << 10)), "64 KiB below the guard page");
    CHECK(!osp_fiber_stack_overflowed(&s, lo - (64u << 10) - 1), "further below is not this stack's");
    CHECK(!osp_fiber_stack_overflowed(&s, lo + page), "the usable stack is not an overflow");
    osp_fiber_stack none = {0};
    CHECK(!osp_fiber_stack_overflowed(&none, page), "no stack, no overflow");

    /* Given back, it is the next one taken (no new mapping). */
    char *was = s.lo;
    osp_fiber_stack_give(&s);
    CHECK(s.lo == NULL && s.hi == NULL && s.tsan_fiber == NULL, "give leaves the record empty");
    CHECK(mapped(was), "a pooled stack stays mapped");
    CHECK(osp_fiber_stack_take(&s, false) && s.lo == was, "the pooled stack is reused");
    osp_fiber_stack_give(&s);
}

/* 257 stacks given back: 256 stay mapped in the pool, the last is unmapped (the first take
 * reuses the stack test_spawned_stack gave back). */
static void test_pool_bound(void) {
    enum { N = POOL_MAX + 1 };
    static osp_fiber_stack s[N];
    int taken = 0;
    for (int i = 0; i < N; i++) taken += osp_fiber_stack_take(&s[i], false);
    CHECK(taken == N, "took %d of %d stacks: %s", taken, N, strerror(errno));
    if (taken != N) return;
    char *los[N];
    for (int i = 0; i < N; i++) {
        los[i] = s[i].lo;
        osp_fiber_stack_give(&s[i]);
    }
    int still = 0;
    for (int i = 0; i < N; i++) still += mapped(los[i]);
    CHECK(still == POOL_MAX, "%d of %d given stacks still mapped (the pool keeps %d)", still, N, POOL_MAX);
    CHECK(mapped(los[N - 2]) && !mapped(los[N - 1]), "the stack given back to a full pool is unmapped");
}

static void test_main_stack(void) {
    osp_fiber_stack s = {0};
    CHECK(osp_fiber_stack_take(&s, true), "take: %s", strerror(errno));
    if (s.lo == NULL) return;
    CHECK(s.bytes == (size_t)1 << 30, "the main fiber's stack is %zu bytes", s.bytes);
    char perms[5];
    perms_at(s.lo, perms);
    CHECK(strcmp(perms, "---p") == 0, "the main stack's guard page is %s", perms);
    char *was = s.lo;
    osp_fiber_stack_give(&s);
    CHECK(!mapped(was) && !mapped(was + ((size_t)1 << 29)), "the main fiber's stack is unmapped, never pooled");
}

/* Out of address space (RLIMIT_AS just above what the process uses, in a child so the
 * sanitizers' own mappings in this process are not starved): the take fails with ENOMEM. The
 * pool is empty in the child: fork after test_pool_bound would hand out a pooled stack, so the
 * child first takes every pooled one. */
static void test_take_fails(void) {
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        osp_fiber_stack drain[POOL_MAX];
        for (int i = 0; i < POOL_MAX; i++) (void)osp_fiber_stack_take(&drain[i], false);
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (f == NULL || fscanf(f, "%lu", &pages) != 1) _exit(3);
        fclose(f);
        struct rlimit lim;
        if (getrlimit(RLIMIT_AS, &lim) != 0) _exit(3);
        lim.rlim_cur = (rlim_t)pages * page + ((rlim_t)1 << 20);
        if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(3);
        osp_fiber_stack s = {0};
        errno = 0;
        bool ok = osp_fiber_stack_take(&s, false);
        _exit(!ok && errno == ENOMEM && s.lo == NULL && s.hi == NULL ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "a take without address space did not fail with ENOMEM and an empty record (status %d)", status);
}

int main(void) {
    page = (size_t)sysconf(_SC_PAGESIZE);
    osp_fiber_stack_setup();
    test_spawned_stack();
    test_pool_bound();
    test_main_stack();
    test_take_fails();
    return check_summary("test_fiber_stack");
}
