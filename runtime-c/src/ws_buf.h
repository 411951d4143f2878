/*
 * Growable byte buffers for the WebSocket subsystem (malloc, never the GC heap) that wipe what
 * they held before the memory is freed or reused (docs/WEBSOCKET-RUNTIME.md#wiping-secrets: handshake headers may carry
 * cookies or tokens, payloads may carry credentials; a plain memset before free is a dead store
 * the compiler may delete, so explicit_bzero is used). Freeing always wipes; wiping a buffer
 * before each reuse is an option (osp_ws_buf_recycle, osp_ws_limits.wipe_messages).
 */
#ifndef OSP_WS_BUF_H
#define OSP_WS_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data;
    size_t len; /* bytes in use, from data[0] */
    size_t cap; /* bytes allocated */
    /* Counted against the process-wide memory budget (message and output buffers of the
     * WebSocket layer): growth beyond the budget is refused before anything is allocated. */
    bool counted;
    /* Counted, but growth up to OSP_WS_BUF_ALWAYS_GRANTED bytes is never refused: the loop's
     * two shared buffers (one each per process), so a full budget cannot stop the 101 of a new
     * connection or a pong. A fixed allowance, not per connection. */
    bool small_always;
} osp_ws_buf;

/* Bytes currently allocated by counted buffers (any thread). */
size_t osp_ws_mem_used(void);
/* The budget counted buffers may not exceed together (osp_ws_memory_budget). */
size_t osp_ws_mem_budget(void);
/* True when `extra` more counted bytes would still be within the budget. */
bool osp_ws_mem_room(size_t extra);

/* Wipes n bytes in a way the optimiser cannot remove. */
void osp_ws_wipe(void *p, size_t n);

/* Wipes the whole allocation, then frees it (NULL is fine). */
void osp_ws_free_wiped(void *p, size_t n);

/* Test hook: when set, called with the allocation just before every free done by
 * osp_ws_free_wiped (after the wipe), so a test can prove the bytes were cleansed. */
extern void (*osp_ws_test_before_free)(const void *p, size_t n);

/* Makes room for `extra` more bytes without letting the allocation exceed `limit` bytes
 * (doubles, or grows to exactly what is needed when that is more; the old block is wiped
 * before it is freed). 0 on success, -1 when the limit would be exceeded or memory is
 * exhausted, OSP_WS_BUF_OVER_BUDGET when a counted buffer would take the process over its
 * memory budget (nothing is allocated then). */
#define OSP_WS_BUF_OVER_BUDGET (-2)
#define OSP_WS_BUF_ALWAYS_GRANTED (64 * 1024)
int osp_ws_buf_reserve(osp_ws_buf *b, size_t extra, size_t limit);

/* Appends n bytes (reserve with SIZE_MAX as the limit). 0, -1 or OSP_WS_BUF_OVER_BUDGET. */
int osp_ws_buf_append(osp_ws_buf *b, const void *p, size_t n);

/* Wipes the used bytes and empties the buffer; keeps the allocation for reuse. */
void osp_ws_buf_clear(osp_ws_buf *b);

/* Empties the buffer for reuse, wiping the used bytes only when `wipe` is set (the per-message
 * wipe option, osp_ws_limits.wipe_messages). Freeing still always wipes. */
void osp_ws_buf_recycle(osp_ws_buf *b, bool wipe);

/* Wipes and frees the allocation; the buffer is then empty and may be reused. */
void osp_ws_buf_free(osp_ws_buf *b);

/* Removes the first n bytes (n <= len), wiping the vacated tail. */
void osp_ws_buf_consume(osp_ws_buf *b, size_t n);

#endif /* OSP_WS_BUF_H */
