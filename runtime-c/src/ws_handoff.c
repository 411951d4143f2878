/*
 * Handler calls in flight (see ws_handoff.h). Two atomics and no lock: `unfinished` counts the
 * deliveries, `waiting` has bit i set while loop i holds its broadcast frames for them. A loop
 * sets its bit and then reads the count; the last delivery's done() lowers the count and then
 * takes the bits. Both sequentially consistent, so either the loop sees the count at zero (and
 * does not hold) or done() sees its bit (and wakes it): a holding loop is never left to its
 * deadline by a race.
 */
#include "ws_handoff.h"

#include "loop.h"

#include <stdatomic.h>
#include <stdint.h>

static atomic_size_t unfinished;
static atomic_uint_fast64_t waiting;

void osp_ws_handoff_queued(size_t n) { atomic_fetch_add(&unfinished, n); }

void osp_ws_handoff_done(void) {
    if (atomic_fetch_sub(&unfinished, 1) != 1) return;
    uint64_t wake = atomic_exchange(&waiting, 0);
    for (unsigned i = 0; wake; i++, wake >>= 1)
        if (wake & 1) osp_ws_loop_wake_on(osp_ws_loop_at(i));
}

bool osp_ws_handoff_busy(unsigned loop) {
    uint64_t bit = UINT64_C(1) << loop;
    atomic_fetch_or(&waiting, bit);
    if (atomic_load(&unfinished) > 0) return true;
    atomic_fetch_and(&waiting, ~bit);
    return false;
}

void osp_ws_handoff_flushed(unsigned loop) { atomic_fetch_and(&waiting, ~(UINT64_C(1) << loop)); }
