/*
 * Incremental UTF-8 validator (RFC 3629, as RFC 6455 §8.1 requires for text messages and close
 * reasons). The state is three bytes, carried across frames and TCP reads, so a code point may
 * be split anywhere (RFC 6455 §5.6); it fails on the first byte that cannot start or continue a
 * well-formed sequence (fail fast, docs/WEBSOCKET-RUNTIME.md S-U3). Non-characters such as U+FFFE/U+FFFF
 * are well-formed and accepted.
 */
#ifndef OSP_WS_UTF8_H
#define OSP_WS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t need; /* continuation bytes still expected for the current code point (0-3) */
    uint8_t lo;   /* inclusive range allowed for the next continuation byte */
    uint8_t hi;
} osp_ws_utf8;

void osp_ws_utf8_reset(osp_ws_utf8 *s);

/* Feeds n bytes. Returns false as soon as the bytes so far cannot be a prefix of valid UTF-8
 * (the state is then meaningless until reset). */
bool osp_ws_utf8_feed(osp_ws_utf8 *s, const uint8_t *p, size_t n);

/* True when the bytes fed so far end on a code point boundary. */
bool osp_ws_utf8_complete(const osp_ws_utf8 *s);

/* Whole-buffer check: feed + complete. */
bool osp_ws_utf8_valid(const uint8_t *p, size_t n);

#endif /* OSP_WS_UTF8_H */
