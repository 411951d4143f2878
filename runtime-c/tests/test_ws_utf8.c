/*
 * UTF-8 validator tests with the Kuhn-style groups of docs/WEBSOCKET-RUNTIME.md#conformance-cases (Autobahn 6.5-6.23).
 * Every vector is checked whole and split into two pieces at every position (the state carries
 * across the split, RFC 6455 §5.6), and byte by byte; invalid input must fail no later than at
 * the first byte that cannot continue a valid sequence.
 */
#include "ws_utf8.h"
#include "check.h"

typedef struct {
    const char *name;
    const char *bytes;
    int valid;
} vector;

static const vector vectors[] = {
    /* 6.5 valid sequences */
    {"kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", 1},
    {"ascii", "Hello, World", 1},
    {"empty", "", 1},
    {"U+24B62", "\xF0\xA4\xAD\xA2", 1},
    {"mixed", "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z", 1},
    /* 6.6 prefixes of kosme: incomplete ones are invalid at the end */
    {"kosme prefix 1", "\xCE", 0},
    {"kosme prefix 2", "\xCE\xBA\xE1", 0},
    {"kosme prefix 3", "\xCE\xBA\xE1\xBD", 0},
    {"kosme prefix 4", "\xCE\xBA\xE1\xBD\xB9\xCF", 0},
    /* 6.7 first sequence of each length */
    {"U+0000", "\x00", 1}, /* (never used: strings here are NUL-terminated; see below) */
    {"U+0080", "\xC2\x80", 1},
    {"U+0800", "\xE0\xA0\x80", 1},
    {"U+10000", "\xF0\x90\x80\x80", 1},
    /* 6.8 5- and 6-byte forms */
    {"5-byte", "\xF8\x88\x80\x80\x80", 0},
    {"6-byte", "\xFC\x84\x80\x80\x80\x80", 0},
    /* 6.9 last sequence of each length */
    {"U+007F", "\x7F", 1},
    {"U+07FF", "\xDF\xBF", 1},
    {"U+FFFF", "\xEF\xBF\xBF", 1},
    {"U+10FFFF", "\xF4\x8F\xBF\xBF", 1},
    /* 6.10 beyond U+10FFFF */
    {"U+110000", "\xF4\x90\x80\x80", 0},
    {"F7 BF BF BF", "\xF7\xBF\xBF\xBF", 0},
    {"5-byte max", "\xFB\xBF\xBF\xBF\xBF", 0},
    /* 6.11 boundaries */
    {"U+D7FF", "\xED\x9F\xBF", 1},
    {"U+E000", "\xEE\x80\x80", 1},
    {"U+FFFD", "\xEF\xBF\xBD", 1},
    /* 6.12 unexpected continuation bytes */
    {"lone 80", "\x80", 0},
    {"lone BF", "\xBF", 0},
    {"80 BF", "\x80\xBF", 0},
    {"80 BF 80 BF", "\x80\xBF\x80\xBF", 0},
    {"ascii then 80", "abc\x80", 0},
    /* 6.13 lonely start bytes */
    {"C0 space", "\xC0 ", 0},
    {"E0 space", "\xE0 ", 0},
    {"F0 space", "\xF0 ", 0},
    {"F8 space", "\xF8 ", 0},
    {"FC space", "\xFC ", 0},
    /* 6.14 last continuation byte missing */
    {"2-byte missing", "\xDF", 0},
    {"3-byte missing", "\xEF\xBF", 0},
    {"4-byte missing", "\xF4\x8F\xBF", 0},
    {"3-byte missing then ascii", "\xE2\x82" "a", 0},
    /* 6.15 concatenated incomplete sequences */
    {"concatenated", "\xC0\xE0\x80\xF0\x80\x80\xF8\x80\x80\x80", 0},
    /* 6.16 impossible bytes */
    {"FE", "\xFE", 0},
    {"FF", "\xFF", 0},
    {"FE FE FF FF", "\xFE\xFE\xFF\xFF", 0},
    /* 6.17 overlong '/' */
    {"overlong / 2", "\xC0\xAF", 0},
    {"overlong / 3", "\xE0\x80\xAF", 0},
    {"overlong / 4", "\xF0\x80\x80\xAF", 0},
    {"overlong / 5", "\xF8\x80\x80\x80\xAF", 0},
    {"overlong / 6", "\xFC\x80\x80\x80\x80\xAF", 0},
    /* 6.18 maximum overlongs */
    {"max overlong 2", "\xC1\xBF", 0},
    {"max overlong 3", "\xE0\x9F\xBF", 0},
    {"max overlong 4", "\xF0\x8F\xBF\xBF", 0},
    /* 6.19 overlong NUL */
    {"overlong NUL 2", "\xC0\x80", 0},
    {"overlong NUL 3", "\xE0\x80\x80", 0},
    {"overlong NUL 4", "\xF0\x80\x80\x80", 0},
    /* 6.20 single surrogates */
    {"U+D800", "\xED\xA0\x80", 0},
    {"U+DB7F", "\xED\xAD\xBF", 0},
    {"U+DB80", "\xED\xAE\x80", 0},
    {"U+DBFF", "\xED\xAF\xBF", 0},
    {"U+DC00", "\xED\xB0\x80", 0},
    {"U+DF80", "\xED\xBE\x80", 0},
    {"U+DFFF", "\xED\xBF\xBF", 0},
    /* 6.21 paired surrogates */
    {"D800 DC00", "\xED\xA0\x80\xED\xB0\x80", 0},
    {"DBFF DFFF", "\xED\xAF\xBF\xED\xBF\xBF", 0},
    /* 6.22/6.23 non-characters and specials are valid */
    {"U+FFFE", "\xEF\xBF\xBE", 1},
    {"U+1FFFE", "\xF0\x9F\xBF\xBE", 1},
    {"U+1FFFF", "\xF0\x9F\xBF\xBF", 1},
    {"U+10FFFE", "\xF4\x8F\xBF\xBE", 1},
    {"U+FDD0", "\xEF\xB7\x90", 1},
    {"U+FFF9..FFFB", "\xEF\xBF\xB9\xEF\xBF\xBA\xEF\xBF\xBB", 1},
    /* long ASCII runs exercise the 8-byte fast path */
    {"long ascii then invalid", "0123456789abcdef0123456789abcdef\xFF", 0},
    {"long ascii then valid", "0123456789abcdef0123456789abcdef\xE2\x82\xAC", 1},
};

static int validate_split(const uint8_t *p, size_t n, size_t split) {
    osp_ws_utf8 s;
    osp_ws_utf8_reset(&s);
    if (!osp_ws_utf8_feed(&s, p, split)) return 0;
    if (!osp_ws_utf8_feed(&s, p + split, n - split)) return 0;
    return osp_ws_utf8_complete(&s);
}

static int validate_bytewise(const uint8_t *p, size_t n) {
    osp_ws_utf8 s;
    osp_ws_utf8_reset(&s);
    for (size_t i = 0; i < n; i++)
        if (!osp_ws_utf8_feed(&s, p + i, 1)) return 0;
    return osp_ws_utf8_complete(&s);
}

int main(void) {
    for (size_t v = 0; v < sizeof vectors / sizeof vectors[0]; v++) {
        const uint8_t *p = (const uint8_t *)vectors[v].bytes;
        size_t n = strcmp(vectors[v].name, "U+0000") == 0 ? 1 : strlen(vectors[v].bytes);
        CHECK(osp_ws_utf8_valid(p, n) == vectors[v].valid, "%s whole", vectors[v].name);
        for (size_t split = 0; split <= n; split++)
            CHECK(validate_split(p, n, split) == vectors[v].valid, "%s split at %zu", vectors[v].name, split);
        CHECK(validate_bytewise(p, n) == vectors[v].valid, "%s byte by byte", vectors[v].name);
    }
    /* Fail fast: the verdict comes at the first impossible byte, before the end of input. */
    osp_ws_utf8 s;
    osp_ws_utf8_reset(&s);
    CHECK(osp_ws_utf8_feed(&s, (const uint8_t *)"a", 1), "a is fine");
    CHECK(!osp_ws_utf8_feed(&s, (const uint8_t *)"\xF4\x90", 2), "F4 90 fails at once (beyond U+10FFFF)");
    osp_ws_utf8_reset(&s);
    CHECK(osp_ws_utf8_feed(&s, (const uint8_t *)"\xE2\x82", 2) && !osp_ws_utf8_complete(&s),
          "an unfinished sequence is not complete");
    /* Every single byte value on its own. */
    int single_valid = 0;
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        single_valid += osp_ws_utf8_valid(&c, 1);
    }
    CHECK(single_valid == 128, "exactly the 128 ASCII bytes are valid alone (%d)", single_valid);
    return check_summary("test_ws_utf8");
}
