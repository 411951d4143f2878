/*
 * Frame codec tests: the RFC 6455 §5.7 examples, 256-byte and 64 KiB lengths, every header
 * rule of §5.1/§5.2/§5.5, and the encoder's minimal lengths and masking. Every input is fed
 * whole, one byte at a time, and in 7-byte chunks; the transcripts must be identical.
 */
#include "ws_frame.h"
#include "check.h"

#include <stdlib.h>

/* Runs the parser over `in` in chunks and renders what it reported:
 * "H<fin>:<op>:<len> " for a header, "E(<payload>) " at the frame's end (payload printed as
 * text when printable and short, else "#<len>"), "ERR<code> " on a violation. */
static void transcript(osp_ws_role role, const uint8_t *in, size_t len, size_t chunk, char *out, size_t outlen) {
    osp_ws_frame_parser p;
    osp_ws_frame_parser_init(&p, role);
    uint8_t *copy = malloc(len ? len : 1); /* unmasking is in place */
    memcpy(copy, in, len);
    uint8_t *payload = malloc(70000);
    size_t plen = 0;
    out[0] = '\0';
    size_t o = 0;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used_total = 0;
        for (;;) {
            osp_ws_frame_event ev;
            size_t used = osp_ws_frame_parse(&p, copy + off + used_total, n - used_total, &ev);
            used_total += used;
            if (ev.kind == OSP_WS_FRAME_NEED_MORE) break;
            if (ev.kind == OSP_WS_FRAME_HEADER) {
                o += (size_t)snprintf(out + o, outlen - o, "H%d:%d:%llu ", ev.header.fin, ev.header.opcode,
                                      (unsigned long long)ev.header.length);
                plen = 0;
            } else if (ev.kind == OSP_WS_FRAME_PAYLOAD) {
                memcpy(payload + plen, ev.data, ev.len);
                plen += ev.len;
            } else if (ev.kind == OSP_WS_FRAME_END) {
                int printable = plen <= 40;
                for (size_t i = 0; i < plen && printable; i++) printable = payload[i] >= 0x20 && payload[i] < 0x7F;
                if (printable) o += (size_t)snprintf(out + o, outlen - o, "E(%.*s) ", (int)plen, (char *)payload);
                else o += (size_t)snprintf(out + o, outlen - o, "E(#%zu) ", plen);
            } else if (ev.kind == OSP_WS_FRAME_ERROR) {
                o += (size_t)snprintf(out + o, outlen - o, "ERR%d ", ev.close_code);
                used_total = n; /* nothing more is parsed */
                off = len;
                break;
            }
            if (used_total == n && p.state != OSP_WS_RECV_FRAME_END) break;
        }
        if (off < len) off += n;
    }
    /* A frame whose payload ended with the input still owes its END event. */
    osp_ws_frame_event ev;
    if (p.state == OSP_WS_RECV_FRAME_END && osp_ws_frame_parse(&p, copy, 0, &ev) == 0 &&
        ev.kind == OSP_WS_FRAME_END) {
        int printable = plen <= 40;
        for (size_t i = 0; i < plen && printable; i++) printable = payload[i] >= 0x20 && payload[i] < 0x7F;
        if (printable) o += (size_t)snprintf(out + o, outlen - o, "E(%.*s) ", (int)plen, (char *)payload);
        else o += (size_t)snprintf(out + o, outlen - o, "E(#%zu) ", plen);
    }
    free(copy);
    free(payload);
}

/* Checks the transcript whole, byte by byte and in 7-byte chunks. */
static void expect(const char *name, osp_ws_role role, const uint8_t *in, size_t len, const char *want) {
    static char got[4096];
    size_t chunks[] = {len ? len : 1, 1, 7};
    for (int i = 0; i < 3; i++) {
        transcript(role, in, len, chunks[i], got, sizeof got);
        CHECK(strcmp(got, want) == 0, "%s (chunk %zu): got \"%s\", want \"%s\"", name, chunks[i], got, want);
    }
}

static void test_rfc_examples(void) {
    /* RFC 6455 §5.7: a single-frame unmasked text message. */
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect("unmasked Hello", OSP_WS_ROLE_CLIENT, hello, sizeof hello, "H1:1:5 E(Hello) ");
    /* A single-frame masked text message. */
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    expect("masked Hello", OSP_WS_ROLE_SERVER, masked, sizeof masked, "H1:1:5 E(Hello) ");
    /* A fragmented unmasked text message. */
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    expect("fragmented", OSP_WS_ROLE_CLIENT, frag, sizeof frag, "H0:1:3 E(Hel) H1:0:2 E(lo) ");
    /* Unmasked ping, masked pong. */
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect("ping", OSP_WS_ROLE_CLIENT, ping, sizeof ping, "H1:9:5 E(Hello) ");
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    expect("masked pong", OSP_WS_ROLE_SERVER, pong, sizeof pong, "H1:10:5 E(Hello) ");
    /* 256 bytes of binary in one unmasked frame: 16-bit length. */
    uint8_t *b256 = malloc(4 + 256);
    b256[0] = 0x82; b256[1] = 0x7E; b256[2] = 0x01; b256[3] = 0x00;
    for (int i = 0; i < 256; i++) b256[4 + i] = (uint8_t)i;
    expect("256 bytes", OSP_WS_ROLE_CLIENT, b256, 4 + 256, "H1:2:256 E(#256) ");
    free(b256);
    /* 64 KiB in one unmasked frame: 64-bit length. */
    size_t n64 = 10 + 65536;
    uint8_t *b64 = calloc(1, n64);
    b64[0] = 0x82; b64[1] = 0x7F; b64[7] = 0x01; /* 0x0000000000010000 */
    expect("64 KiB", OSP_WS_ROLE_CLIENT, b64, n64, "H1:2:65536 E(#65536) ");
    free(b64);
    /* Several frames in one chunk, and an empty frame. */
    static const uint8_t three[] = {0x81, 0x01, 'a', 0x81, 0x00, 0x82, 0x02, 'b', 'c'};
    expect("three frames", OSP_WS_ROLE_CLIENT, three, sizeof three, "H1:1:1 E(a) H1:1:0 E() H1:2:2 E(bc) ");
    /* Non-minimal length (126 + 0x0005) is accepted (the MUST is on the sender). */
    static const uint8_t nonmin[] = {0x81, 0x7E, 0x00, 0x05, 'H', 'e', 'l', 'l', 'o'};
    expect("non-minimal length", OSP_WS_ROLE_CLIENT, nonmin, sizeof nonmin, "H1:1:5 E(Hello) ");
}

static void test_masking_across_chunks(void) {
    /* A 1000-byte masked frame unmasked correctly whatever the chunking (docs/WEBSOCKET-RUNTIME.md S-F8). */
    size_t n = 1000;
    uint8_t *frame = malloc(8 + n);
    uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    size_t h = osp_ws_frame_encode_header(frame, true, OSP_WS_OP_BINARY, n, key);
    CHECK(h == 8, "masked 16-bit header is 8 bytes");
    for (size_t i = 0; i < n; i++) frame[h + i] = (uint8_t)(i * 7);
    osp_ws_mask(frame + h, n, key, 0);
    size_t chunks[] = {1, 3, 997, 1008};
    for (int c = 0; c < 4; c++) {
        osp_ws_frame_parser p;
        osp_ws_frame_parser_init(&p, OSP_WS_ROLE_SERVER);
        uint8_t *copy = malloc(h + n);
        memcpy(copy, frame, h + n);
        uint8_t out[1000];
        size_t got = 0, off = 0;
        while (off < h + n) {
            size_t len = h + n - off < chunks[c] ? h + n - off : chunks[c];
            size_t used = 0;
            while (used < len) {
                osp_ws_frame_event ev;
                used += osp_ws_frame_parse(&p, copy + off + used, len - used, &ev);
                if (ev.kind == OSP_WS_FRAME_PAYLOAD) {
                    memcpy(out + got, ev.data, ev.len);
                    got += ev.len;
                }
                if (ev.kind == OSP_WS_FRAME_NEED_MORE) break;
            }
            off += len;
        }
        int ok = got == n;
        for (size_t i = 0; i < n && ok; i++) ok = out[i] == (uint8_t)(i * 7);
        CHECK(ok, "unmasking with chunks of %zu", chunks[c]);
        free(copy);
    }
    free(frame);
    /* The masking offset continues: masking in two parts equals masking at once. */
    uint8_t a[11] = "Hello World", b[11] = "Hello World";
    osp_ws_mask(a, 11, key, 0);
    osp_ws_mask(b, 3, key, 0);
    osp_ws_mask(b + 3, 8, key, 3);
    CHECK(memcmp(a, b, 11) == 0, "mask offset continues across calls");
    /* The word and vector steps against the definition (RFC 6455 §5.3: byte j ^= key[j % 4]) for
     * every length up to 200, every starting offset and every misalignment of the buffer. */
    static uint8_t wide[256 + 8], want[256 + 8];
    int wide_ok = 1;
    for (size_t len = 0; len <= 200 && wide_ok; len++)
        for (unsigned offset = 0; offset < 8 && wide_ok; offset++)
            for (size_t skew = 0; skew < 8 && wide_ok; skew++) {
                for (size_t i = 0; i < len; i++) wide[skew + i] = want[skew + i] = (uint8_t)(i * 31 + len);
                for (size_t i = 0; i < len; i++) want[skew + i] ^= key[(offset + i) & 3];
                osp_ws_mask(wide + skew, len, key, offset);
                wide_ok = memcmp(wide + skew, want + skew, len) == 0;
                if (!wide_ok) CHECK(0, "mask len %zu offset %u skew %zu", len, offset, skew);
            }
    CHECK(wide_ok, "mask matches byte-wise XOR for lengths 0-200, offsets 0-7, misaligned buffers");
}

static void test_violations(void) {
    /* RFC 6455 §5.2: RSV bits without an extension. */
    static const uint8_t rsv1[] = {0xC1, 0x80, 0, 0, 0, 0};
    expect("RSV1", OSP_WS_ROLE_SERVER, rsv1, sizeof rsv1, "ERR1002 ");
    static const uint8_t rsv_close[] = {0xF8, 0x80, 0, 0, 0, 0};
    expect("RSV=7 on close", OSP_WS_ROLE_SERVER, rsv_close, sizeof rsv_close, "ERR1002 ");
    /* §5.2: reserved opcodes. */
    static const uint8_t op3[] = {0x83, 0x80, 0, 0, 0, 0};
    expect("opcode 3", OSP_WS_ROLE_SERVER, op3, sizeof op3, "ERR1002 ");
    static const uint8_t opB[] = {0x8B, 0x80, 0, 0, 0, 0};
    expect("opcode 0xB", OSP_WS_ROLE_SERVER, opB, sizeof opB, "ERR1002 ");
    /* §5.1: masking direction. */
    static const uint8_t unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    expect("unmasked frame to a server", OSP_WS_ROLE_SERVER, unmasked, sizeof unmasked, "ERR1002 ");
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    expect("masked frame to a client", OSP_WS_ROLE_CLIENT, masked, sizeof masked, "ERR1002 ");
    /* §5.5: control frames ≤ 125 bytes and unfragmented. */
    static const uint8_t ping126[] = {0x89, 0xFE, 0x00, 0x7E};
    expect("ping of 126", OSP_WS_ROLE_SERVER, ping126, sizeof ping126, "ERR1002 ");
    static const uint8_t frag_ping[] = {0x09, 0x80, 0, 0, 0, 0};
    expect("fragmented ping", OSP_WS_ROLE_SERVER, frag_ping, sizeof frag_ping, "ERR1002 ");
    /* §5.2: the 64-bit length's most significant bit. */
    static const uint8_t msb[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 1, 2, 3, 4};
    expect("64-bit length with MSB set", OSP_WS_ROLE_SERVER, msb, sizeof msb, "ERR1002 ");
    /* A header declaring 2^40 bytes parses (the size limit is the message layer's job). */
    static const uint8_t huge[] = {0x82, 0x7F, 0, 0, 0x01, 0, 0, 0, 0, 0};
    expect("2^40 length header", OSP_WS_ROLE_CLIENT, huge, sizeof huge, "H1:2:1099511627776 ");
}

static void test_encoder(void) {
    uint8_t h[OSP_WS_MAX_FRAME_HEADER];
    size_t n = osp_ws_frame_encode_header(h, true, OSP_WS_OP_TEXT, 5, NULL);
    CHECK(n == 2 && h[0] == 0x81 && h[1] == 0x05, "Hello header");
    n = osp_ws_frame_encode_header(h, true, OSP_WS_OP_TEXT, 125, NULL);
    CHECK(n == 2 && h[1] == 125, "125 inline");
    n = osp_ws_frame_encode_header(h, true, OSP_WS_OP_BINARY, 126, NULL);
    CHECK(n == 4 && h[1] == 126 && h[2] == 0 && h[3] == 126, "126 uses 16 bits");
    n = osp_ws_frame_encode_header(h, true, OSP_WS_OP_BINARY, 65535, NULL);
    CHECK(n == 4 && h[1] == 126 && h[2] == 0xFF && h[3] == 0xFF, "65535 uses 16 bits");
    n = osp_ws_frame_encode_header(h, true, OSP_WS_OP_BINARY, 65536, NULL);
    CHECK(n == 10 && h[1] == 127 && h[7] == 1 && h[8] == 0 && h[9] == 0, "65536 uses 64 bits");
    n = osp_ws_frame_encode_header(h, false, OSP_WS_OP_CONTINUATION, 0, NULL);
    CHECK(n == 2 && h[0] == 0x00 && h[1] == 0, "FIN=0 continuation");
    /* The §5.7 masked example, rebuilt. */
    static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t frame[16];
    n = osp_ws_frame_encode_header(frame, true, OSP_WS_OP_TEXT, 5, key);
    memcpy(frame + n, "Hello", 5);
    osp_ws_mask(frame + n, 5, key, 0);
    CHECK(n == 6 && memcmp(frame, want, sizeof want) == 0, "masked Hello frame matches RFC 6455 §5.7");
}

static void test_close_codes(void) {
    /* RFC 6455 §7.4: codes that may appear on the wire. */
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                     1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100,
                                       2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        CHECK(osp_ws_close_code_valid(valid[i]), "code %u is valid", valid[i]);
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        CHECK(!osp_ws_close_code_valid(invalid[i]), "code %u is invalid", invalid[i]);
}

int main(void) {
    test_rfc_examples();
    test_masking_across_chunks();
    test_violations();
    test_encoder();
    test_close_codes();
    return check_summary("test_ws_frame");
}
