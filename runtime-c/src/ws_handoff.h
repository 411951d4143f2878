/*
 * Handler calls in flight, for the loops' broadcast flush (docs/WEBSOCKET-RUNTIME.md, "Handler
 * broadcasts"): how many messages and events were handed to handlers (ws_inbox.c) and are not
 * yet handled or dropped, process-wide, and which loops hold their broadcast frames until that
 * count is zero. A leaf on `loop` (it wakes the holding loops): ws_inbox.c counts, ws_conn.c
 * asks, and neither has to call the other.
 */
#ifndef OSP_WS_HANDOFF_H
#define OSP_WS_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>

/* Any thread: n messages or events were queued for handlers. */
void osp_ws_handoff_queued(size_t n);
/* Any thread: a queued message or event was handled (its handler call returned) or dropped;
 * when it was the last, the loops holding for it are woken. Takes no lock but the woken
 * loops' own (osp_ws_loop_wake_on), so it may be called with any lock held. */
void osp_ws_handoff_done(void);
/* Loop thread `loop` (its index), about to flush broadcast frames: true when handler calls
 * are unfinished, and then the loop is woken when the last one returns (or is dropped). */
bool osp_ws_handoff_busy(unsigned loop);
/* Loop thread `loop`: it flushes now and waits for no handler call. */
void osp_ws_handoff_flushed(unsigned loop);

#endif /* OSP_WS_HANDOFF_H */
