/*
 * Incremental UTF-8 validation: a state machine over RFC 3629 §4's table of well-formed byte
 * sequences. For each lead byte the table fixes how many continuation bytes follow and the
 * range of the first of them (the ranges exclude overlong forms, surrogates U+D800-DFFF and
 * code points above U+10FFFF); later continuation bytes are always 80-BF.
 */
#include "ws_utf8.h"

#include <string.h>

void osp_ws_utf8_reset(osp_ws_utf8 *s) {
    s->need = 0;
    s->lo = 0x80;
    s->hi = 0xBF;
}

bool osp_ws_utf8_feed(osp_ws_utf8 *s, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (s->need == 0) {
            /* ASCII fast path: skip 8 bytes at a time while none has the high bit set. */
            if (c < 0x80) {
                i++;
                while (i + 8 <= n) {
                    uint64_t w;
                    memcpy(&w, p + i, 8);
                    if (w & 0x8080808080808080ULL) break;
                    i += 8;
                }
                continue;
            }
            if (c >= 0xC2 && c <= 0xDF) {
                s->need = 1; s->lo = 0x80; s->hi = 0xBF;
            } else if (c == 0xE0) {
                s->need = 2; s->lo = 0xA0; s->hi = 0xBF; /* no overlong 3-byte forms */
            } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
                s->need = 2; s->lo = 0x80; s->hi = 0xBF;
            } else if (c == 0xED) {
                s->need = 2; s->lo = 0x80; s->hi = 0x9F; /* no surrogates D800-DFFF */
            } else if (c == 0xF0) {
                s->need = 3; s->lo = 0x90; s->hi = 0xBF; /* no overlong 4-byte forms */
            } else if (c >= 0xF1 && c <= 0xF3) {
                s->need = 3; s->lo = 0x80; s->hi = 0xBF;
            } else if (c == 0xF4) {
                s->need = 3; s->lo = 0x80; s->hi = 0x8F; /* nothing above U+10FFFF */
            } else {
                /* 80-BF unexpected continuation, C0/C1 overlong, F5-FF beyond Unicode. */
                return false;
            }
        } else {
            if (c < s->lo || c > s->hi) return false;
            s->need--;
            s->lo = 0x80;
            s->hi = 0xBF;
        }
        i++;
    }
    return true;
}

bool osp_ws_utf8_complete(const osp_ws_utf8 *s) {
    return s->need == 0;
}

bool osp_ws_utf8_valid(const uint8_t *p, size_t n) {
    osp_ws_utf8 s;
    osp_ws_utf8_reset(&s);
    return osp_ws_utf8_feed(&s, p, n) && osp_ws_utf8_complete(&s);
}
