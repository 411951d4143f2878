/*
 * Zeroing tests (docs/WEBSOCKET-RUNTIME.md#wiping-secrets): buffers that held handshake headers or message payloads are
 * always cleansed before they are freed; with the per-message wipe option (wipe_messages,
 * OSPREY_WS_WIPE_MESSAGES, "wipeMessages") also before they are reused. The
 * osp_ws_test_before_free hook sees every block just before free() and checks that no byte is
 * left.
 */
#include "http_parse.h"
#include "ws_message.h"
#include "check.h"

#include <stdlib.h>

static int frees, dirty_frees;

static void before_free(const void *p, size_t n) {
    const unsigned char *b = p;
    frees++;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            dirty_frees++;
            return;
        }
    }
}

static void reset(void) { frees = dirty_frees = 0; }

int main(void) {
    osp_ws_test_before_free = before_free;
    osp_ws_limits limits;
    osp_ws_limits_default(&limits);

    /* A plain buffer, including the block left behind when it grows. */
    reset();
    osp_ws_buf b = {0};
    for (int i = 0; i < 100; i++) osp_ws_buf_append(&b, "password=hunter2;", 17);
    int growth_frees = frees;
    osp_ws_buf_free(&b);
    CHECK(growth_frees > 0, "growth freed old blocks (%d)", growth_frees);
    CHECK(frees == growth_frees + 1 && dirty_frees == 0, "every block wiped before free (%d dirty of %d)",
          dirty_frees, frees);

    /* Clearing for reuse wipes the bytes in place; recycling wipes only when asked to. */
    osp_ws_buf_append(&b, "token", 5);
    uint8_t *kept = b.data;
    osp_ws_buf_clear(&b);
    CHECK(kept == b.data && memcmp(kept, "\0\0\0\0\0", 5) == 0, "clear wipes in place");
    osp_ws_buf_append(&b, "token", 5);
    osp_ws_buf_recycle(&b, false);
    CHECK(b.len == 0 && memcmp(kept, "token", 5) == 0, "recycle without the option keeps the bytes");
    osp_ws_buf_append(&b, "token", 5);
    osp_ws_buf_recycle(&b, true);
    CHECK(b.len == 0 && memcmp(kept, "\0\0\0\0\0", 5) == 0, "recycle with the option wipes in place");
    reset();
    osp_ws_buf_append(&b, "token", 5);
    osp_ws_buf_recycle(&b, false);
    osp_ws_buf_free(&b);
    CHECK(frees == 1 && dirty_frees == 0, "a recycled, unwiped buffer is still wiped before free");

    /* A handshake request with a cookie. */
    reset();
    const char *req = "GET /chat?token=s3cr3t HTTP/1.1\r\nHost: h\r\nCookie: session=abcdef\r\n"
                      "Authorization: Bearer xyz\r\n\r\n";
    osp_http_parser p;
    osp_http_parser_init(&p, false, &limits);
    size_t used;
    CHECK(osp_http_parse(&p, (const uint8_t *)req, strlen(req), &used) == OSP_HTTP_DONE, "request parsed");
    osp_http_parser_free(&p);
    CHECK(frees >= 2 && dirty_frees == 0, "handshake buffers wiped (%d dirty of %d)", dirty_frees, frees);

    /* A whole single-frame message is delivered in place: no copy, nothing allocated. */
    reset();
    osp_ws_reader r;
    osp_ws_reader_init(&r, OSP_WS_ROLE_CLIENT, &limits);
    uint8_t frame[] = {0x81, 0x06, 's', 'e', 'c', 'r', 'e', 't'};
    osp_ws_msg_event ev;
    osp_ws_reader_feed(&r, frame, sizeof frame, &ev);
    CHECK(ev.kind == OSP_WS_MSG_TEXT && ev.len == 6 && ev.data == frame + 2, "message delivered in place");
    osp_ws_reader_free(&r);
    CHECK(frees == 0, "nothing allocated for an in-place message (%d frees)", frees);

    /* A reassembled message, per-message wipe off (the default): the buffer is reused without
     * a wipe, but wiped before it is freed. */
    uint8_t fragments[] = {0x01, 0x03, 's', 'e', 'c', 0x80, 0x03, 'r', 'e', 't'};
    for (int wipe = 0; wipe <= 1; wipe++) {
        reset();
        limits.wipe_messages = (uint32_t)wipe;
        uint8_t in[sizeof fragments];
        memcpy(in, fragments, sizeof in);
        osp_ws_reader_init(&r, OSP_WS_ROLE_CLIENT, &limits);
        size_t off = 0;
        do off += osp_ws_reader_feed(&r, in + off, sizeof in - off, &ev);
        while (ev.kind == OSP_WS_MSG_NONE && off < sizeof in);
        CHECK(ev.kind == OSP_WS_MSG_TEXT && ev.len == 6 && memcmp(ev.data, "secret", 6) == 0 &&
                  (ev.data < in || ev.data >= in + sizeof in),
              "fragmented message reassembled (wipe %d)", wipe);
        const uint8_t *held = ev.data;
        osp_ws_reader_feed(&r, in, 0, &ev); /* next feed: the buffer is recycled */
        if (wipe)
            CHECK(memcmp(held, "\0\0\0\0\0\0", 6) == 0, "with wipe_messages: wiped before reuse");
        else
            CHECK(memcmp(held, "secret", 6) == 0, "without wipe_messages: not wiped on reuse");
        osp_ws_reader_free(&r);
        CHECK(frees == 1 && dirty_frees == 0, "reassembly buffer wiped before free (wipe %d; %d dirty of %d)",
              wipe, dirty_frees, frees);
    }
    limits.wipe_messages = 0;

    /* The option: environment variable (read once) and Osprey limit name. */
    CHECK(setenv("OSPREY_WS_WIPE_MESSAGES", "1", 1) == 0, "setenv");
    CHECK(osp_ws_limits_get()->wipe_messages == 1, "OSPREY_WS_WIPE_MESSAGES=1 turns the option on");
    char why[256];
    CHECK(osp_ws_limit_set(&limits, "wipeMessages", 1, why, sizeof why) == NULL && limits.wipe_messages == 1,
          "wipeMessages settable");
    CHECK(osp_ws_limit_set(&limits, "wipeMessages", 2, why, sizeof why) != NULL, "wipeMessages is 0 or 1");

    osp_ws_test_before_free = NULL;
    return check_summary("test_ws_wipe");
}
