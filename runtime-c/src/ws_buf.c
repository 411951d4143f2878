/*
 * Growable, self-wiping byte buffers (see ws_buf.h).
 */
#include "ws_buf.h"
#include "ws_limits.h"

#include <stdatomic.h>

#include <stdlib.h>
#include <string.h>

void (*osp_ws_test_before_free)(const void *p, size_t n);

void osp_ws_wipe(void *p, size_t n) {
    /* explicit_bzero (glibc >= 2.25) is a memset the compiler may not remove
     * (docs/WEBSOCKET-RUNTIME.md#wiping-secrets, CWE-14); unlike OPENSSL_cleanse's 8-byte loop it uses glibc's vectorised memset,
     * which matters when every freed payload buffer is wiped. */
    if (p != NULL && n > 0) explicit_bzero(p, n);
}

void osp_ws_free_wiped(void *p, size_t n) {
    if (p == NULL) return;
    osp_ws_wipe(p, n);
    if (osp_ws_test_before_free != NULL) osp_ws_test_before_free(p, n);
    free(p);
}

static _Atomic size_t mem_used;

size_t osp_ws_mem_used(void) { return mem_used; }

size_t osp_ws_mem_budget(void) {
    uint64_t b = osp_ws_memory_budget();
    return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

bool osp_ws_mem_room(size_t extra) {
    size_t used = mem_used, budget = osp_ws_mem_budget();
    return used <= budget && extra <= budget - used;
}

/* Takes `n` bytes of the budget, atomically against other threads' reservations. */
static bool mem_take(size_t n) {
    size_t budget = osp_ws_mem_budget();
    size_t used = mem_used;
    do {
        if (used > budget || n > budget - used) return false;
    } while (!atomic_compare_exchange_weak(&mem_used, &used, used + n));
    return true;
}

static void mem_give(size_t n) { atomic_fetch_sub(&mem_used, n); }

int osp_ws_buf_reserve(osp_ws_buf *b, size_t extra, size_t limit) {
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need) || need > limit) return -1;
    if (need <= b->cap) return 0;
    /* Double (amortised O(1) appends), but when one append needs more than that take exactly
     * what it needs: a 16 MiB frame queued into an empty buffer must not allocate 32 MiB. */
    size_t cap = b->cap ? b->cap : 256;
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap < need) cap = need;
    if (cap > limit) cap = limit;
    if (cap < need) cap = need;
    if (b->counted && b->small_always && cap <= OSP_WS_BUF_ALWAYS_GRANTED) {
        atomic_fetch_add(&mem_used, cap - b->cap);
    } else if (b->counted && !mem_take(cap - b->cap)) {
        /* Near the budget, a smaller step that still fits is better than a refusal. */
        if (cap == need || !mem_take(need - b->cap)) return OSP_WS_BUF_OVER_BUDGET;
        cap = need;
    }
    /* Not realloc: realloc may leave the old contents in freed memory without a wipe. */
    uint8_t *fresh = malloc(cap);
    if (fresh == NULL) {
        if (b->counted) mem_give(cap - b->cap);
        return -1;
    }
    if (b->len) memcpy(fresh, b->data, b->len);
    osp_ws_free_wiped(b->data, b->cap);
    b->data = fresh;
    b->cap = cap;
    return 0;
}

int osp_ws_buf_append(osp_ws_buf *b, const void *p, size_t n) {
    if (n == 0) return 0;
    int rc = osp_ws_buf_reserve(b, n, SIZE_MAX);
    if (rc != 0) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void osp_ws_buf_clear(osp_ws_buf *b) {
    osp_ws_wipe(b->data, b->len);
    b->len = 0;
}

void osp_ws_buf_recycle(osp_ws_buf *b, bool wipe) {
    /* Without `wipe` the old bytes stay until they are overwritten or the block is freed
     * (osp_ws_buf_free and osp_ws_buf_reserve always wipe before free). */
    if (wipe) osp_ws_wipe(b->data, b->len);
    b->len = 0;
}

void osp_ws_buf_free(osp_ws_buf *b) {
    if (b->counted) mem_give(b->cap);
    osp_ws_free_wiped(b->data, b->cap);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void osp_ws_buf_consume(osp_ws_buf *b, size_t n) {
    if (n >= b->len) {
        osp_ws_buf_clear(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    osp_ws_wipe(b->data + (b->len - n), n);
    b->len -= n;
}
