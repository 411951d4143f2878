/*
 * Fiber stacks: the memory a fiber runs on. Each is an mmap'd reservation (MAP_NORESERVE:
 * memory is used only where touched) whose lowest page is a PROT_NONE guard page, so running
 * off the end faults (fiber.c reports the overflow) instead of writing into other memory:
 * 1 GiB for the main fiber, so deep non-tail recursion keeps working, 16 MiB for a spawned one.
 * A spawned fiber's stack is taken when it first runs and given back when it ends, to a pool
 * of up to 256 that the next fibers reuse (no mmap, mprotect and munmap per fiber).
 * Under ThreadSanitizer each stack carries the TSan context of what runs on it.
 *
 * A leaf: it knows nothing of fibers. The scheduler (fiber.c) decides when a fiber takes and
 * gives back its stack, builds the first frame and publishes the range to the collector.
 * Thread-safe (the pool has its own lock: stacks come back from the worker loops, outside the
 * scheduler's lock).
 */
#ifndef OSP_FIBER_STACK_H
#define OSP_FIBER_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct osp_fiber_stack {
    char *lo;         /* the mapping; [lo, lo + page) is the guard page. NULL: no stack */
    char *hi;         /* its top (exclusive) */
    size_t bytes;     /* hi - lo */
    void *tsan_fiber; /* TSan's context for what runs on it (TSan builds only, else NULL) */
} osp_fiber_stack;

/* Once, before any other call (the page size). */
void osp_fiber_stack_setup(void);

/* Gives `s` (which has none) a stack: the main fiber's, or a spawned one's, from the pool when
 * one is there. false, with errno set, when no mapping could be made (the usual cause: the
 * process's limit of memory mappings, vm.max_map_count). */
bool osp_fiber_stack_take(osp_fiber_stack *s, bool main_fiber);

/* Gives s's stack back (to the pool, or unmapped) and clears s. Never the stack the calling
 * thread runs on, nor a TSan context that is current. */
void osp_fiber_stack_give(osp_fiber_stack *s);

/* Whether a fault at `addr` is s's stack overflowing: in its guard page, or up to 64 KiB
 * below it (a large frame can step over the one page). Async-signal-safe. */
bool osp_fiber_stack_overflowed(const osp_fiber_stack *s, uintptr_t addr);

/* The part of s a fiber may use, above the guard page (what AddressSanitizer is told at each
 * switch onto it). */
void osp_fiber_stack_usable(const osp_fiber_stack *s, const void **bottom, size_t *size);

#endif
