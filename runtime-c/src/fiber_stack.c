/*
 * Fiber stacks (see fiber_stack.h).
 */
#include "fiber_stack.h"
#include "sanitizer.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAIN_STACK_BYTES ((size_t)1 << 30)   /* 1 GiB: a million non-tail levels (docs/guide/05-functions.md#recursion) */
#define FIBER_STACK_BYTES ((size_t)16 << 20) /* 16 MiB reserved per spawned fiber */
#define STACK_POOL_MAX 256                   /* finished fibers' stacks kept for reuse */

static size_t page_size;

/* Stack pool (own lock: stacks are recycled from the worker loop, outside sched_lock). */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pool_stacks[STACK_POOL_MAX];
static int pool_count;

void osp_fiber_stack_setup(void) { page_size = (size_t)sysconf(_SC_PAGESIZE); }

static char *map_stack(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (mprotect(p, page_size, PROT_NONE) != 0) {
        if (munmap(p, bytes) != 0) { /* nothing more to do */
        }
        return NULL;
    }
    return p;
}

bool osp_fiber_stack_take(osp_fiber_stack *s, bool main_fiber) {
    size_t bytes = main_fiber ? MAIN_STACK_BYTES : FIBER_STACK_BYTES;
    char *lo = NULL;
    if (!main_fiber) {
        pthread_mutex_lock(&pool_lock);
        if (pool_count > 0) lo = pool_stacks[--pool_count];
        pthread_mutex_unlock(&pool_lock);
    }
    if (lo == NULL) lo = map_stack(bytes);
    if (lo == NULL) return false;
    s->lo = lo;
    s->bytes = bytes;
    s->hi = lo + bytes;
#if OSP_TSAN
    s->tsan_fiber = __tsan_create_fiber(0);
#endif
    return true;
}

void osp_fiber_stack_give(osp_fiber_stack *s) {
    char *lo = s->lo;
    if (s->bytes != FIBER_STACK_BYTES) { /* the main fiber's: the process is ending */
        if (munmap(lo, s->bytes) != 0) { /* the process is ending anyway */
        }
    } else {
        pthread_mutex_lock(&pool_lock);
        int pooled = pool_count < STACK_POOL_MAX;
        if (pooled) pool_stacks[pool_count++] = lo;
        pthread_mutex_unlock(&pool_lock);
        if (!pooled && munmap(lo, FIBER_STACK_BYTES) != 0) {
            /* Leaves the mapping in place; nothing else refers to it. */
        }
    }
    s->lo = s->hi = NULL;
    s->bytes = 0;
#if OSP_TSAN
    if (s->tsan_fiber) __tsan_destroy_fiber(s->tsan_fiber);
    s->tsan_fiber = NULL;
#endif
}

bool osp_fiber_stack_overflowed(const osp_fiber_stack *s, uintptr_t addr) {
    uintptr_t lo = (uintptr_t)s->lo;
    return lo != 0 && addr < lo + page_size && addr + (64u << 10) >= lo;
}

void osp_fiber_stack_usable(const osp_fiber_stack *s, const void **bottom, size_t *size) {
    *bottom = s->lo + page_size;
    *size = s->bytes - page_size;
}
