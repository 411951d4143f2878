/*
 * Zeroing tests (WEBSOCKET.md §3.3): buffers that held handshake headers or message payloads are
 * cleansed before they are freed or reused. The osp_ws_test_before_free hook sees every block
 * just before free() and checks that no byte is left.
 */
#include "http_parse.h"
#include "ws_message.h"
#include "check.h"

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

    /* Clearing for reuse wipes the bytes in place. */
    osp_ws_buf_append(&b, "token", 5);
    uint8_t *kept = b.data;
    osp_ws_buf_clear(&b);
    CHECK(kept == b.data && memcmp(kept, "\0\0\0\0\0", 5) == 0, "clear wipes in place");
    osp_ws_buf_free(&b);

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

    /* A delivered message is wiped before the buffer is reused, and on free. */
    reset();
    osp_ws_reader r;
    osp_ws_reader_init(&r, OSP_WS_ROLE_CLIENT, &limits);
    uint8_t frame[] = {0x81, 0x06, 's', 'e', 'c', 'r', 'e', 't'};
    osp_ws_msg_event ev;
    osp_ws_reader_feed(&r, frame, sizeof frame, &ev);
    CHECK(ev.kind == OSP_WS_MSG_TEXT && ev.len == 6, "message delivered");
    const uint8_t *held = ev.data;
    osp_ws_reader_feed(&r, frame, 0, &ev); /* next feed: the old message is wiped first */
    CHECK(memcmp(held, "\0\0\0\0\0\0", 6) == 0, "delivered message wiped before reuse");
    osp_ws_reader_free(&r);
    CHECK(frees == 1 && dirty_frees == 0, "reassembly buffer wiped before free (%d dirty of %d)", dirty_frees,
          frees);

    osp_ws_test_before_free = NULL;
    return check_summary("test_ws_wipe");
}
