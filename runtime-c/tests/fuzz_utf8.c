/*
 * libFuzzer target: the incremental UTF-8 validator (RFC 3629 §4, as RFC 6455 §8.1 requires).
 *
 * It is compared with an independent, deliberately simple reference decoder written here from
 * the RFC 3629 §4 grammar (shortest form only, no surrogates U+D800..U+DFFF, nothing above
 * U+10FFFF), and fed in chunks at offsets the input chooses: the verdict must not depend on
 * where the bytes were split (RFC 6455 §5.6: a code point may straddle frames), and it must
 * fail on exactly the first byte that cannot continue a valid prefix (fail fast, S-U3).
 *
 * Built and run by scripts/fuzz.ts; the CI run is tests/runtime/fuzz.test.ts.
 */
#include "ws_utf8.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Length of the longest prefix of p that is a prefix of some valid UTF-8 string; *whole is set
 * when all n bytes are valid and end on a code point boundary. */
static size_t reference_prefix(const uint8_t *p, size_t n, bool *whole) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t need;
        uint32_t cp, min;
        if (b < 0x80) { i++; continue; }
        if (b >= 0xC0 && b <= 0xDF) { need = 1; cp = b & 0x1F; min = 0x80; }
        else if (b >= 0xE0 && b <= 0xEF) { need = 2; cp = b & 0x0F; min = 0x800; }
        else if (b >= 0xF0 && b <= 0xF7) { need = 3; cp = b & 0x07; min = 0x10000; }
        else { *whole = false; return i; }
        /* Decide as early as the bytes allow: some completion of the bytes read so far (the
         * smallest and largest code points it can still become) must be valid. */
        for (size_t j = 0; j <= need; j++) {
            if (j > 0) {
                if (i + j >= n) { *whole = false; return n; } /* truncated: a valid prefix */
                uint8_t c = p[i + j];
                if ((c & 0xC0) != 0x80) { *whole = false; return i + j; }
                cp = (cp << 6) | (c & 0x3F);
            }
            size_t left = need - j;
            uint32_t lo = cp << (6 * left), hi = lo | ((1u << (6 * left)) - 1);
            bool possible = hi >= min && lo <= 0x10FFFF && !(lo >= 0xD800 && hi <= 0xDFFF);
            if (!possible) { *whole = false; return i + j; }
        }
        i += need + 1;
    }
    *whole = true;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t step = data[0];
    data++;
    size--;
    bool ref_whole;
    size_t ref_prefix = reference_prefix(data, size, &ref_whole);

    /* Whole-buffer verdict. */
    if (osp_ws_utf8_valid(data, size) != ref_whole) abort();

    /* Chunked: first failing byte and final state. */
    osp_ws_utf8 s;
    osp_ws_utf8_reset(&s);
    size_t off = 0, chunk = (size_t)(step % 7) + 1;
    bool ok = true;
    while (off < size && ok) {
        size_t n = size - off < chunk ? size - off : chunk;
        ok = osp_ws_utf8_feed(&s, data + off, n);
        if (!ok) {
            /* The failure lies in this chunk; byte-by-byte from a fresh state finds where. */
            osp_ws_utf8 t;
            osp_ws_utf8_reset(&t);
            size_t k = 0;
            while (k < size && osp_ws_utf8_feed(&t, data + k, 1)) k++;
            if (k != ref_prefix) abort();
            if (!(k >= off && k < off + n)) abort();
        }
        off += n;
    }
    if (ok) {
        if (ref_prefix != size) abort();
        if (osp_ws_utf8_complete(&s) != ref_whole) abort();
    }
    return 0;
}
