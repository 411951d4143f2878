/*
 * libFuzzer target: the RFC 6455 §5 frame codec and the message layer above it.
 *
 *  1. The input (after one control byte) is fed to the message reader in both roles, in chunks
 *     whose size the control byte picks, so headers and payloads split at every offset are
 *     explored. Every event must respect the rules the reader promises: text is valid UTF-8
 *     (RFC 6455 §8.1), a reported close code is valid (§7.4), payloads stay within the limits.
 *  2. The first bytes also drive the encoder: a header encoded for (fin, opcode, length, mask)
 *     must be the minimal encoding (§5.2) and parse back to the same fields, and masking twice
 *     with a continuing offset must give back the original bytes (§5.3).
 *
 * Built and run by scripts/fuzz.ts (clang-14 -fsanitize=fuzzer,address,undefined); the CI run is
 * tests/runtime/fuzz.test.ts.
 */
#include "ws_frame.h"
#include "ws_message.h"
#include "ws_utf8.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reader(const uint8_t *data, size_t size, size_t chunk, osp_ws_role role) {
    osp_ws_limits limits;
    osp_ws_limits_default(&limits);
    limits.max_message = 4096;
    limits.max_fragments = 16;
    uint8_t *copy = malloc(size ? size : 1); /* the reader unmasks in place */
    if (copy == NULL) return;
    memcpy(copy, data, size);
    osp_ws_reader r;
    osp_ws_reader_init(&r, role, &limits);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk, used = 0;
        while (used < n) {
            osp_ws_msg_event ev;
            used += osp_ws_reader_feed(&r, copy + off + used, n - used, &ev);
            if (ev.kind == OSP_WS_MSG_TEXT && !osp_ws_utf8_valid(ev.data, ev.len)) abort();
            if ((ev.kind == OSP_WS_MSG_TEXT || ev.kind == OSP_WS_MSG_BINARY) && ev.len > limits.max_message) abort();
            if ((ev.kind == OSP_WS_MSG_PING || ev.kind == OSP_WS_MSG_PONG) && ev.len > 125) abort();
            if (ev.kind == OSP_WS_MSG_CLOSE && ev.code != OSP_WS_CLOSE_NO_STATUS && !osp_ws_close_code_valid(ev.code))
                abort();
            if (ev.kind == OSP_WS_MSG_NONE) break;
        }
    }
    osp_ws_reader_free(&r);
    free(copy);
}

static void check_encoder(const uint8_t *data, size_t size) {
    if (size < 14) return;
    bool fin = data[0] & 1;
    bool masked = data[0] & 2;
    uint8_t opcode = data[1] & 0x0F;
    /* Lengths around every encoding boundary (125/126, 65535/65536) and up to 2^63-1. */
    uint64_t length = 0;
    for (int i = 0; i < 8; i++) length = (length << 8) | data[2 + i];
    switch (data[0] >> 5) {
    case 0: length %= 130; break;
    case 1: length = 65530 + length % 12; break;
    default: length &= ~((uint64_t)1 << 63); break;
    }
    if (osp_ws_opcode_is_control(opcode)) length %= 126; /* §5.5: control payloads ≤ 125 */
    const uint8_t *mask = data + 10;
    uint8_t frame[OSP_WS_MAX_FRAME_HEADER];
    size_t hlen = osp_ws_frame_encode_header(frame, fin || osp_ws_opcode_is_control(opcode), opcode, length,
                                             masked ? mask : NULL);
    size_t want = 2 + (length > 65535 ? 8 : length > 125 ? 2 : 0) + (masked ? 4 : 0); /* §5.2 minimal */
    if (hlen != want) abort();
    /* Reserved opcodes are refused by the parser; the encoder's output for valid ones must parse. */
    if ((opcode >= 3 && opcode <= 7) || opcode >= 0xB) return;
    osp_ws_frame_parser p;
    osp_ws_frame_parser_init(&p, masked ? OSP_WS_ROLE_SERVER : OSP_WS_ROLE_CLIENT);
    osp_ws_frame_event ev;
    size_t used = osp_ws_frame_parse(&p, frame, hlen, &ev);
    if (ev.kind != OSP_WS_FRAME_HEADER || used != hlen) abort();
    if (ev.header.length != length || ev.header.opcode != opcode || ev.header.masked != masked) abort();
    if (masked && memcmp(ev.header.mask, mask, 4) != 0) abort();

    /* Masking is an involution, and a split at any offset continues the key index (§5.3). */
    size_t n = size - 14;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) return;
    memcpy(buf, data + 14, n);
    size_t split = n ? data[1] % (n + 1) : 0;
    osp_ws_mask(buf, split, mask, 0);
    osp_ws_mask(buf + split, n - split, mask, split);
    osp_ws_mask(buf, n, mask, 0);
    if (memcmp(buf, data + 14, n) != 0) abort();
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t chunk = (size_t)(data[0] % 16) + 1;
    check_reader(data + 1, size - 1, chunk, OSP_WS_ROLE_SERVER);
    check_reader(data + 1, size - 1, chunk, OSP_WS_ROLE_CLIENT);
    check_encoder(data, size);
    return 0;
}
