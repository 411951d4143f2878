/*
 * RFC 6455 §5 frame parser and encoder (see ws_frame.h). The parser never assumes that a whole
 * header is present: header bytes are collected in a spill of at most 8 bytes, and the masking
 * key index continues across chunks (docs/WEBSOCKET-RUNTIME.md S-F8, S-F9).
 */
#include "ws_frame.h"

#include <string.h>

void osp_ws_frame_parser_init(osp_ws_frame_parser *p, osp_ws_role role) {
    memset(p, 0, sizeof *p);
    p->role = role;
    p->state = OSP_WS_RECV_HEADER;
    p->spill_need = 2;
}

static size_t fail(osp_ws_frame_parser *p, osp_ws_frame_event *ev, size_t used, uint16_t code,
                   const char *why) {
    p->state = OSP_WS_RECV_FAILED;
    ev->kind = OSP_WS_FRAME_ERROR;
    ev->close_code = code;
    ev->error = why;
    return used;
}

/* Collects up to spill_need bytes; true once they are all there. */
static bool collect(osp_ws_frame_parser *p, const uint8_t *in, size_t len, size_t *used) {
    size_t want = (size_t)(p->spill_need - p->spill_len);
    size_t take = len - *used < want ? len - *used : want;
    memcpy(p->spill + p->spill_len, in + *used, take);
    p->spill_len = (uint8_t)(p->spill_len + take);
    *used += take;
    return p->spill_len == p->spill_need;
}

static void next_step(osp_ws_frame_parser *p, osp_ws_recv_state state, uint8_t need) {
    p->state = state;
    p->spill_len = 0;
    p->spill_need = need;
}

/* The header is complete: report it and move to the payload. */
static size_t header_done(osp_ws_frame_parser *p, osp_ws_frame_event *ev, size_t used) {
    p->remaining = p->header.length;
    p->mask_offset = 0;
    p->state = p->header.length ? OSP_WS_RECV_PAYLOAD : OSP_WS_RECV_FRAME_END;
    ev->kind = OSP_WS_FRAME_HEADER;
    ev->header = p->header;
    return used;
}

/* After the extended length (or the 7-bit one): read the mask key, or finish. */
static size_t after_length(osp_ws_frame_parser *p, osp_ws_frame_event *ev, size_t used) {
    if (p->header.masked) {
        next_step(p, OSP_WS_RECV_MASK_KEY, 4);
        return used;
    }
    return header_done(p, ev, used);
}

size_t osp_ws_frame_parse(osp_ws_frame_parser *p, uint8_t *in, size_t len, osp_ws_frame_event *ev) {
    size_t used = 0;
    ev->kind = OSP_WS_FRAME_NEED_MORE;
    ev->data = NULL;
    ev->len = 0;
    ev->header = p->header;
    for (;;) {
        switch (p->state) {
        case OSP_WS_RECV_FAILED:
            /* RFC 6455 §7.1.7: after failing, no further data is processed. */
            return len;

        case OSP_WS_RECV_FRAME_END:
            p->state = OSP_WS_RECV_HEADER;
            p->spill_len = 0;
            p->spill_need = 2;
            ev->kind = OSP_WS_FRAME_END;
            return used;

        case OSP_WS_RECV_HEADER: {
            if (!collect(p, in, len, &used)) return used;
            uint8_t b0 = p->spill[0], b1 = p->spill[1];
            osp_ws_frame_header *h = &p->header;
            memset(h, 0, sizeof *h);
            h->fin = (b0 & 0x80) != 0;
            h->rsv = (uint8_t)((b0 >> 4) & 0x7);
            h->opcode = b0 & 0x0F;
            h->masked = (b1 & 0x80) != 0;
            uint8_t len7 = b1 & 0x7F;
            /* RFC 6455 §5.2: RSV1-3 MUST be 0 unless an extension defines them; we negotiate
             * none (permessage-deflate is declined), so any set bit is a protocol error. */
            if (h->rsv != 0)
                return fail(p, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR,
                            "a reserved bit (RSV1-3) is set but no extension was negotiated");
            /* RFC 6455 §5.2: opcodes 3-7 and 0xB-0xF are reserved. */
            if (!(h->opcode <= OSP_WS_OP_BINARY ||
                  (h->opcode >= OSP_WS_OP_CLOSE && h->opcode <= OSP_WS_OP_PONG)))
                return fail(p, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
            /* RFC 6455 §5.1: a client masks every frame, a server masks none; the receiver
             * MUST close the connection on a violation. */
            if (p->role == OSP_WS_ROLE_SERVER && !h->masked)
                return fail(p, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR,
                            "unmasked frame from a client");
            if (p->role == OSP_WS_ROLE_CLIENT && h->masked)
                return fail(p, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR, "masked frame from a server");
            if (osp_ws_opcode_is_control(h->opcode)) {
                /* RFC 6455 §5.5: control frames have FIN set and a payload of ≤ 125 bytes
                 * (so they never use the extended length forms). */
                if (!h->fin)
                    return fail(p, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR,
                                "fragmented control frame");
                if (len7 > 125)
                    return fail(p, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR,
                                "control frame payload longer than 125 bytes");
            }
            if (len7 == 126) {
                next_step(p, OSP_WS_RECV_EXT_LEN, 2);
            } else if (len7 == 127) {
                next_step(p, OSP_WS_RECV_EXT_LEN, 8);
            } else {
                h->length = len7;
                size_t r = after_length(p, ev, used);
                if (ev->kind == OSP_WS_FRAME_HEADER) return r;
            }
            break;
        }

        case OSP_WS_RECV_EXT_LEN: {
            if (!collect(p, in, len, &used)) return used;
            uint64_t v = 0;
            for (int i = 0; i < p->spill_need; i++) v = (v << 8) | p->spill[i];
            /* RFC 6455 §5.2: the most significant bit of the 64-bit length MUST be 0.
             * Non-minimal encodings are accepted: the MUST is on the sender (docs/WEBSOCKET-RUNTIME.md S-F2). */
            if (p->spill_need == 8 && (v >> 63) != 0)
                return fail(p, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR,
                            "64-bit payload length has its most significant bit set");
            p->header.length = v;
            size_t r = after_length(p, ev, used);
            if (ev->kind == OSP_WS_FRAME_HEADER) return r;
            break;
        }

        case OSP_WS_RECV_MASK_KEY:
            if (!collect(p, in, len, &used)) return used;
            memcpy(p->header.mask, p->spill, 4);
            return header_done(p, ev, used);

        case OSP_WS_RECV_PAYLOAD: {
            if (used == len) return used;
            size_t avail = len - used;
            /* Compare as uint64 before narrowing to size_t (docs/WEBSOCKET-RUNTIME.md#limits). */
            size_t take = p->remaining < (uint64_t)avail ? (size_t)p->remaining : avail;
            uint8_t *chunk = in + used;
            if (p->header.masked) osp_ws_mask(chunk, take, p->header.mask, p->mask_offset);
            p->mask_offset += take;
            p->remaining -= take;
            used += take;
            if (p->remaining == 0) p->state = OSP_WS_RECV_FRAME_END;
            ev->kind = OSP_WS_FRAME_PAYLOAD;
            ev->header = p->header;
            ev->data = chunk;
            ev->len = take;
            return used;
        }
        }
    }
}

size_t osp_ws_frame_encode_header(uint8_t out[OSP_WS_MAX_FRAME_HEADER], bool fin, uint8_t opcode,
                                  uint64_t length, const uint8_t *mask) {
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0x00) | (opcode & 0x0F));
    uint8_t mask_bit = mask ? 0x80 : 0x00;
    if (length <= 125) {
        out[n++] = (uint8_t)(mask_bit | length);
    } else if (length <= 0xFFFF) {
        out[n++] = (uint8_t)(mask_bit | 126);
        out[n++] = (uint8_t)(length >> 8);
        out[n++] = (uint8_t)length;
    } else {
        out[n++] = (uint8_t)(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8) out[n++] = (uint8_t)(length >> shift);
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* Built twice (GCC function multi-versioning): with AVX2 where the CPU has it, else with the
 * x86-64 baseline (SSE2); the loader picks one once. Not under ThreadSanitizer: GCC instruments
 * the ifunc resolver, which the loader runs before TSan is initialised (a crash at start-up). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("avx2", "default")))
#endif
void osp_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset) {
    size_t i = 0;
    unsigned k = (unsigned)(offset & 3);
    /* RFC 6455 §5.3: byte j of the payload is XORed with mask[j % 4], counted from the frame's
     * first payload byte (`offset` continues a frame split across reads). Byte-wise until the
     * key index is back at 0, so every wider step below starts at key byte 0; then 64 and 8
     * bytes at a time. Loads and stores go through memcpy (no alignment or aliasing UB; GCC
     * turns them into unaligned vector moves). */
    while (i < n && k != 0) {
        p[i++] ^= mask[k];
        k = (k + 1) & 3;
    }
    /* The key as one 32-bit word: XOR of words is XOR of their bytes, in any byte order, so
     * lanes of it line up with the key whenever i is a multiple of 4 bytes from the phase 0. */
    uint32_t m4;
    memcpy(&m4, mask, 4);
    if (n - i >= 64) {
        /* XORed in place through an unaligned, aliasing vector type, never through a local
         * copy: a 64-byte temporary was spilled to the loop thread's stack, leaving unmasked
         * payload blocks there after the call (plaintext must not outlive its buffer). */
        typedef uint32_t osp_v4u32 __attribute__((vector_size(16), aligned(1), may_alias));
        const osp_v4u32 m16 = {m4, m4, m4, m4};
        do {
            *(osp_v4u32 *)(void *)(p + i) ^= m16;
            *(osp_v4u32 *)(void *)(p + i + 16) ^= m16;
            *(osp_v4u32 *)(void *)(p + i + 32) ^= m16;
            *(osp_v4u32 *)(void *)(p + i + 48) ^= m16;
            i += 64;
        } while (n - i >= 64);
    }
    uint64_t w8 = ((uint64_t)m4 << 32) | m4;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= w8;
        memcpy(p + i, &w, 8);
        i += 8;
    }
    while (i < n) {
        p[i] ^= mask[k];
        k = (k + 1) & 3;
        i++;
    }
}

bool osp_ws_close_code_valid(unsigned code) {
    /* RFC 6455 §7.4.1 defines 1000-1003 and 1007-1011; 1012-1014 were registered with IANA
     * later; 3000-4999 are for libraries and applications. 1004 is reserved and 1005, 1006,
     * 1015 MUST NOT be sent (§7.4.1), everything else is unassigned. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
