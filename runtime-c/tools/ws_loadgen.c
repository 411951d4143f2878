/*
 * ws-loadgen: a WebSocket (RFC 6455) load generator for loopback benchmarks.
 *
 * One process, one epoll loop (level-triggered), many client connections. Each connection
 * connects without blocking, performs the opening handshake (random 16-byte key, the server's
 * Sec-WebSocket-Accept checked with OpenSSL SHA-1) and then exchanges masked frames whose mask
 * keys come from a pool refilled by RAND_bytes (RFC 6455 §5.3: unpredictable per frame).
 *
 * Modes
 *   pingpong   one message in flight per connection; each echo triggers the next message
 *   flood      --window messages in flight per connection
 *   broadcast  connection 0 publishes, every connection (0 included) must receive each published
 *              message; --window published messages in flight; counts deliveries. The server
 *              must relay every received message to all its clients (a "broadcast" server).
 *   idle       open --connections connections and hold them for --duration; afterwards every
 *              connection is checked with one echo
 *
 * Every received message is checked byte for byte: payload = an 8-byte header (connection id and
 * sequence number) followed by a pattern whose offset depends on both, so a lost, duplicated,
 * reordered, truncated or altered message is detected. A connection that sees one is closed and
 * counted as an error; messages still unanswered after the drain timeout count as lost. Any
 * error makes the exit status 1 (2 for a usage error).
 *
 * Phases: CONNECT -> WARMUP -> MEASURE -> DRAIN (no new messages; wait for those in flight) ->
 * CLOSE (Close frame 1000, wait briefly for the server's Close) -> report.
 *
 * Output: one JSON line on stdout and a human-readable summary on stderr. Markers on stderr
 * ("@@ready", "@@measure-start", "@@measure-end") let a driver sample the server's CPU time and
 * memory at the edges of the measured window.
 *
 * Loopback only: the target address must be 127.0.0.0/8 or ::1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define LG_MAX_EVENTS 1024
#define LG_HANDSHAKE_MAX 8192     /* bytes of HTTP response accepted before the blank line */
#define LG_MASK_POOL_BYTES 65536  /* 16,384 mask keys per RAND_bytes call */
#define LG_PAYLOAD_HDR 8          /* payload header: connection id + sequence number */
#define LG_PATTERN_SPAN 256       /* pattern offsets 0..255 */
#define LG_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- Configuration ----------------------------------------------------------------------- */

typedef enum { MODE_PINGPONG, MODE_FLOOD, MODE_BROADCAST, MODE_IDLE } lg_mode;
static const char *const MODE_NAMES[] = {"pingpong", "flood", "broadcast", "idle"};

typedef struct {
    char host[256];
    char port_str[16];
    char path[1024];
    lg_mode mode;
    uint32_t connections;
    size_t size;               /* payload bytes per message */
    uint32_t window;           /* messages in flight: per connection (flood), published (broadcast) */
    double duration_s;         /* measured window (idle: hold time) */
    double warmup_s;
    double connect_timeout_s;
    double drain_timeout_s;
    double close_timeout_s;
    uint64_t min_messages;     /* the measured window lasts until this many arrived (capped) */
    uint32_t connect_concurrency; /* connects + handshakes outstanding at once */
    bool text;                 /* text frames with an ASCII payload instead of binary */
    bool json_only;            /* no human summary, no markers */
    char label[128];
} lg_config;

/* ---- State ------------------------------------------------------------------------------- */

typedef enum { PHASE_CONNECT, PHASE_WARMUP, PHASE_MEASURE, PHASE_DRAIN, PHASE_CLOSE, PHASE_DONE } lg_phase;

typedef enum { ERR_CONNECT, ERR_HANDSHAKE, ERR_PROTOCOL, ERR_CORRUPT, ERR_CLOSED, ERR_IO, ERR_LOST, ERR__COUNT } lg_err;
static const char *const ERR_NAMES[ERR__COUNT] = {"connect", "handshake", "protocol", "corrupt",
                                                  "closed",  "io",        "lost"};

typedef enum { CS_NEW, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_CLOSING, CS_DEAD } conn_state;

typedef struct lg_conn {
    int fd;
    uint32_t id;
    conn_state state;
    bool out_armed;            /* EPOLLOUT is in the interest set */
    bool dirty;                /* on the dirty list: has output queued by another connection's event */
    struct lg_conn *next_dirty;
    char accept[32];           /* expected Sec-WebSocket-Accept (28 base64 characters) */
    uint8_t *rbuf;             /* received bytes not yet parsed: [0, rlen) */
    size_t rcap, rlen;
    uint8_t *wbuf;             /* queued output: [woff, wlen) */
    size_t wcap, wlen, woff;
    uint8_t *frag;             /* reassembly of a fragmented message */
    size_t fraglen, fragcap;
    uint8_t frag_op;
    bool in_frag;
    uint32_t send_seq;         /* next sequence number to send (echo modes) */
    uint32_t recv_seq;         /* next sequence number expected */
    uint64_t *sent_ns;         /* send time of message seq at [seq % window] (echo modes) */
} lg_conn;

/* Latency histogram, HDR style: exact below 64 ns, then 64 linear sub-buckets per power of two
 * (relative error below 1.6%). Values are nanoseconds. */
#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_SUB)

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
    double sum;
} lg_hist;

typedef struct {
    lg_config cfg;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int epfd;
    lg_conn *conns;
    lg_phase phase;
    bool aborted;              /* a broadcast run lost a connection; stop early */

    /* connect phase */
    uint32_t next_to_start;
    uint32_t pending;          /* CS_CONNECTING + CS_HANDSHAKE */
    uint32_t opened;           /* reached CS_OPEN */
    uint32_t alive;            /* CS_OPEN or CS_CLOSING */
    uint32_t closing;

    /* timeline (CLOCK_MONOTONIC ns) */
    uint64_t t_start, t_connected, t_warmup_end, t_measure_start, t_measure_end, t_drain_end,
        t_close_deadline, t_phase_deadline;
    struct rusage ru_start, ru_end;

    /* traffic */
    int64_t inflight;          /* messages sent and not yet received (broadcast: deliveries) */
    uint64_t sent_total, recv_total;
    uint64_t measured_msgs, measured_bytes, measured_sent;
    lg_hist hist;

    /* broadcast bookkeeping: publisher = connection 0 */
    uint32_t receivers;        /* connections that must receive each published message */
    uint32_t pub_seq;          /* next sequence number to publish */
    uint32_t pub_done;         /* published messages delivered to every receiver (in order) */
    uint32_t *pub_count;       /* deliveries of message seq at [seq % window] */
    uint64_t *pub_ns;          /* publish time of message seq at [seq % window] */

    /* payload generation */
    uint8_t *pattern;          /* size + LG_PATTERN_SPAN bytes */
    uint8_t mask_pool[LG_MASK_POOL_BYTES];
    size_t mask_off;

    lg_conn *dirty_head;

    uint64_t errors[ERR__COUNT];
    char first_error[512];
} lg_state;

static lg_state lg;

/* ---- Small helpers ----------------------------------------------------------------------- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t seconds_to_ns(double s) { return (uint64_t)(s * 1e9); }

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "ws-loadgen: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return q;
}

static size_t round_up_pow2(size_t n) {
    size_t r = 1024;
    while (r < n) r <<= 1;
    return r;
}

static void record_error(lg_err kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void record_error(lg_err kind, const char *fmt, ...) {
    lg.errors[kind]++;
    if (lg.first_error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(lg.first_error, sizeof lg.first_error, "%s: ", ERR_NAMES[kind]);
        if (n > 0 && (size_t)n < sizeof lg.first_error)
            vsnprintf(lg.first_error + n, sizeof lg.first_error - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static uint64_t total_errors(void) {
    uint64_t t = 0;
    for (int i = 0; i < ERR__COUNT; i++) t += lg.errors[i];
    return t;
}

static bool sending_allowed(void) { return lg.phase == PHASE_WARMUP || lg.phase == PHASE_MEASURE; }

static bool measuring(void) { return lg.phase == PHASE_MEASURE; }

/* ---- Histogram --------------------------------------------------------------------------- */

static unsigned hist_index(uint64_t v) {
    if (v < HIST_SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* v in [2^e, 2^(e+1)), e >= HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) - HIST_SUB;
    return HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB + sub;
}

/* The midpoint of bucket i. */
static uint64_t hist_value(unsigned i) {
    if (i < HIST_SUB) return i;
    unsigned e = (i - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
    uint64_t sub = (i - HIST_SUB) % HIST_SUB;
    uint64_t width = 1ull << (e - HIST_SUB_BITS);
    return (HIST_SUB + sub) * width + width / 2;
}

static void hist_record(lg_hist *h, uint64_t v) {
    h->counts[hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v > h->max) h->max = v;
}

/* The smallest recorded value (bucket midpoint) with at least q of the samples at or below it. */
static uint64_t hist_quantile(const lg_hist *h, double q) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->total);
    if (rank < 1) rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        cum += h->counts[i];
        if (cum >= rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- Payloads and masking ---------------------------------------------------------------- */

static void pattern_init(void) {
    size_t n = lg.cfg.size + LG_PATTERN_SPAN;
    lg.pattern = xrealloc(NULL, n);
    uint32_t x = 0x9E3779B9u; /* xorshift32: a fixed pseudo-random byte stream */
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        lg.pattern[i] = lg.cfg.text ? (uint8_t)('A' + (x >> 8) % 58u) /* 'A'..'z', ASCII */
                                    : (uint8_t)(x >> 11);
    }
}

static size_t pattern_offset(uint32_t conn, uint32_t seq) { return (seq * 13u + conn * 101u) & 255u; }

static void payload_header(uint8_t out[LG_PAYLOAD_HDR], uint32_t conn, uint32_t seq) {
    if (lg.cfg.text) {
        static const char hex[] = "0123456789abcdef";
        uint32_t v = seq ^ (conn * 0x9E3779B1u);
        for (int i = 0; i < 8; i++) out[i] = (uint8_t)hex[(v >> (28 - 4 * i)) & 15u];
    } else {
        out[0] = (uint8_t)conn;
        out[1] = (uint8_t)(conn >> 8);
        out[2] = (uint8_t)(conn >> 16);
        out[3] = (uint8_t)(conn >> 24);
        out[4] = (uint8_t)seq;
        out[5] = (uint8_t)(seq >> 8);
        out[6] = (uint8_t)(seq >> 16);
        out[7] = (uint8_t)(seq >> 24);
    }
}

/* Does p[0..len) equal the payload of message (conn, seq)? */
static bool payload_matches(const uint8_t *p, size_t len, uint32_t conn, uint32_t seq) {
    size_t size = lg.cfg.size;
    if (len != size) return false;
    uint8_t hdr[LG_PAYLOAD_HDR];
    payload_header(hdr, conn, seq);
    size_t h = size < LG_PAYLOAD_HDR ? size : LG_PAYLOAD_HDR;
    if (memcmp(p, hdr, h) != 0) return false;
    return size <= LG_PAYLOAD_HDR ||
           memcmp(p + LG_PAYLOAD_HDR, lg.pattern + pattern_offset(conn, seq), size - LG_PAYLOAD_HDR) == 0;
}

static void next_mask_key(uint8_t key[4]) {
    if (lg.mask_off + 4 > sizeof lg.mask_pool) {
        if (RAND_bytes(lg.mask_pool, sizeof lg.mask_pool) != 1) {
            fprintf(stderr, "ws-loadgen: RAND_bytes failed\n");
            exit(1);
        }
        lg.mask_off = 0;
    }
    memcpy(key, lg.mask_pool + lg.mask_off, 4);
    lg.mask_off += 4;
}

/* dst[i] = src[i] ^ key[i % 4], sixteen bytes at a time (GCC vector extension: SSE2 on x86-64).
 * dst may equal src. */
typedef uint8_t lg_v16 __attribute__((vector_size(16)));

static void masked_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4]) {
    lg_v16 k16;
    for (int i = 0; i < 16; i++) k16[i] = key[i & 3];
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lg_v16 w;
        memcpy(&w, src + i, 16);
        w ^= k16;
        memcpy(dst + i, &w, 16);
    }
    for (; i < n; i++) dst[i] = src[i] ^ key[i & 3];
}

/* ---- Output queue ------------------------------------------------------------------------ */

static uint8_t *wbuf_reserve(lg_conn *c, size_t n) {
    if (c->woff > 0 && c->woff == c->wlen) c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff > 0) { /* compact before growing */
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            c->wcap = round_up_pow2(c->wlen + n);
            c->wbuf = xrealloc(c->wbuf, c->wcap);
        }
    }
    uint8_t *p = c->wbuf + c->wlen;
    c->wlen += n;
    return p;
}

/* Writes a client frame header (FIN set, MASK set, minimal length encoding) and returns the
 * position of the payload. */
static uint8_t *frame_begin(lg_conn *c, uint8_t opcode, size_t len, uint8_t key[4]) {
    size_t hdr = 2 + (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8) + 4;
    uint8_t *p = wbuf_reserve(c, hdr + len);
    p[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        p[1] = (uint8_t)(0x80 | len);
        p += 2;
    } else if (len <= 0xFFFF) {
        p[1] = 0x80 | 126;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        p += 4;
    } else {
        p[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) p[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        p += 10;
    }
    next_mask_key(key);
    memcpy(p, key, 4);
    return p + 4;
}

static void queue_control(lg_conn *c, uint8_t opcode, const uint8_t *payload, size_t len) {
    uint8_t key[4];
    uint8_t *p = frame_begin(c, opcode, len, key);
    masked_copy(p, payload, len, key);
}

/* Queues data message (conn, seq): header and pattern are masked while they are copied. */
static void queue_message(lg_conn *c, uint32_t conn, uint32_t seq) {
    size_t size = lg.cfg.size;
    uint8_t key[4];
    uint8_t *p = frame_begin(c, lg.cfg.text ? 0x1 : 0x2, size, key);
    uint8_t hdr[LG_PAYLOAD_HDR];
    payload_header(hdr, conn, seq);
    size_t h = size < LG_PAYLOAD_HDR ? size : LG_PAYLOAD_HDR;
    masked_copy(p, hdr, h, key);
    if (size > LG_PAYLOAD_HDR) /* LG_PAYLOAD_HDR is a multiple of 4: the key phase restarts */
        masked_copy(p + LG_PAYLOAD_HDR, lg.pattern + pattern_offset(conn, seq), size - LG_PAYLOAD_HDR, key);
    lg.sent_total++;
    if (measuring()) lg.measured_sent++;
}

static void mark_dirty(lg_conn *c) {
    if (c->dirty) return;
    c->dirty = true;
    c->next_dirty = lg.dirty_head;
    lg.dirty_head = c;
}

/* ---- Connection lifetime ----------------------------------------------------------------- */

static void set_interest(lg_conn *c, bool want_out) {
    if (c->out_armed == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = c->id};
    if (epoll_ctl(lg.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->out_armed = want_out;
}

static void conn_release(lg_conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->rbuf);
    free(c->wbuf);
    free(c->frag);
    free(c->sent_ns);
    c->rbuf = c->wbuf = c->frag = NULL;
    c->sent_ns = NULL;
    c->rcap = c->rlen = c->wcap = c->wlen = c->woff = c->fraglen = c->fragcap = 0;
}

/* Ends a connection; `kind` < 0 means a clean end (no error). */
static void conn_end(lg_conn *c, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void conn_end(lg_conn *c, int kind, const char *fmt, ...) {
    if (c->state == CS_DEAD) return;
    if (kind >= 0) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        record_error((lg_err)kind, "connection %u: %s", c->id, msg);
    }
    if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) lg.pending--;
    if (c->state == CS_OPEN || c->state == CS_CLOSING) lg.alive--;
    if (c->state == CS_CLOSING) lg.closing--;
    if (lg.cfg.mode != MODE_BROADCAST) {
        lg.inflight -= (int64_t)(c->send_seq - c->recv_seq);
    } else if (c->state == CS_OPEN && lg.phase >= PHASE_WARMUP && lg.phase <= PHASE_DRAIN) {
        /* A receiver is gone: published messages can no longer complete. Stop the run. */
        lg.aborted = true;
    }
    c->state = CS_DEAD;
    conn_release(c);
}

static void conn_flush(lg_conn *c) {
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_interest(c, true);
            return;
        } else {
            if (c->state == CS_CLOSING) conn_end(c, -1, NULL);
            else conn_end(c, ERR_IO, "send: %s", n < 0 ? strerror(errno) : "wrote 0 bytes");
            return;
        }
    }
    c->woff = c->wlen = 0;
    set_interest(c, false);
}

static void flush_dirty(void) {
    while (lg.dirty_head) {
        lg_conn *c = lg.dirty_head;
        lg.dirty_head = c->next_dirty;
        c->dirty = false;
        if (c->state == CS_OPEN || c->state == CS_CLOSING || c->state == CS_HANDSHAKE) conn_flush(c);
    }
}

static void b64(char *out, const uint8_t *in, int n) { EVP_EncodeBlock((unsigned char *)out, in, n); }

static void start_connect(lg_conn *c) {
    c->fd = socket(lg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = CS_DEAD;
        record_error(ERR_CONNECT, "connection %u: socket: %s", c->id, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CS_CONNECTING;
    lg.pending++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = c->id};
    c->out_armed = true;
    if (epoll_ctl(lg.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_end(c, ERR_CONNECT, "epoll_ctl: %s", strerror(errno));
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&lg.addr, lg.addrlen) != 0 && errno != EINPROGRESS)
        conn_end(c, ERR_CONNECT, "connect: %s", strerror(errno));
}

/* The TCP connection is up: send the opening handshake (RFC 6455 §4.1). */
static void on_connected(lg_conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
        conn_end(c, ERR_CONNECT, "connect: %s", strerror(err));
        return;
    }
    uint8_t nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
        conn_end(c, ERR_HANDSHAKE, "RAND_bytes failed");
        return;
    }
    char key[32];
    b64(key, nonce, sizeof nonce); /* 24 characters */
    char concat[64 + sizeof LG_WS_GUID];
    int clen = snprintf(concat, sizeof concat, "%s%s", key, LG_WS_GUID);
    uint8_t digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)concat, (size_t)clen, digest);
    b64(c->accept, digest, SHA_DIGEST_LENGTH);

    bool v6 = lg.addr.ss_family == AF_INET6;
    char req[1600];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s%s%s:%s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "User-Agent: osprey-ws-loadgen\r\n"
                     "\r\n",
                     lg.cfg.path, v6 ? "[" : "", lg.cfg.host, v6 ? "]" : "", lg.cfg.port_str, key);
    if (n <= 0 || (size_t)n >= sizeof req) {
        conn_end(c, ERR_HANDSHAKE, "request too long");
        return;
    }
    memcpy(wbuf_reserve(c, (size_t)n), req, (size_t)n);
    c->state = CS_HANDSHAKE;
    conn_flush(c);
}

/* Case-insensitive search for `token` in a comma-separated header value. */
static bool header_has_token(const char *v, size_t vlen, const char *token) {
    size_t tl = strlen(token), i = 0;
    while (i < vlen) {
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < vlen && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0) return true;
    }
    return false;
}

static void on_open(lg_conn *c);

/* Parses the server's handshake response once it is complete (RFC 6455 §4.1, client steps 1-6).
 * Returns the number of bytes consumed, 0 if incomplete; ends the connection on failure. */
static size_t parse_handshake(lg_conn *c) {
    const uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!end) {
        if (c->rlen >= LG_HANDSHAKE_MAX) conn_end(c, ERR_HANDSHAKE, "response headers exceed %d bytes", LG_HANDSHAKE_MAX);
        return 0;
    }
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    const char *s = (const char *)c->rbuf;
    const char *line_end = memmem(s, hlen, "\r\n", 2);
    if (hlen < 12 || memcmp(s, "HTTP/1.1 101", 12) != 0 || (hlen > 12 && s[12] != ' ' && s[12] != '\r')) {
        size_t show = (size_t)(line_end - s);
        conn_end(c, ERR_HANDSHAKE, "expected HTTP/1.1 101, got \"%.*s\"", (int)(show > 80 ? 80 : show), s);
        return 0;
    }
    bool upgrade = false, connection = false, accept_ok = false, accept_seen = false;
    const char *p = line_end + 2;
    const char *stop = s + hlen - 2;
    while (p < stop) {
        const char *eol = memmem(p, (size_t)(stop - p) + 2, "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon) {
            conn_end(c, ERR_HANDSHAKE, "malformed response header line");
            return 0;
        }
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) v++;
        const char *ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t vlen = (size_t)(ve - v);
        if (nlen == 7 && strncasecmp(p, "upgrade", 7) == 0) {
            upgrade = header_has_token(v, vlen, "websocket");
        } else if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
            connection = connection || header_has_token(v, vlen, "upgrade");
        } else if (nlen == 20 && strncasecmp(p, "sec-websocket-accept", 20) == 0) {
            accept_seen = true;
            accept_ok = vlen == strlen(c->accept) && memcmp(v, c->accept, vlen) == 0;
        } else if ((nlen == 24 && strncasecmp(p, "sec-websocket-extensions", 24) == 0) ||
                   (nlen == 22 && strncasecmp(p, "sec-websocket-protocol", 22) == 0)) {
            /* §4.1 steps 5-6: we offered no extension and no subprotocol. */
            conn_end(c, ERR_HANDSHAKE, "server selected %.*s we did not offer", (int)nlen, p);
            return 0;
        }
        p = eol + 2;
    }
    if (!upgrade || !connection) {
        conn_end(c, ERR_HANDSHAKE, "missing Upgrade: websocket / Connection: Upgrade");
        return 0;
    }
    if (!accept_ok) {
        conn_end(c, ERR_HANDSHAKE, accept_seen ? "wrong Sec-WebSocket-Accept" : "no Sec-WebSocket-Accept");
        return 0;
    }
    lg.pending--;
    lg.opened++;
    lg.alive++;
    c->state = CS_OPEN;
    on_open(c);
    return hlen;
}

/* ---- Traffic ----------------------------------------------------------------------------- */

static void send_echo_message(lg_conn *c, uint64_t t) {
    c->sent_ns[c->send_seq % lg.cfg.window] = t;
    queue_message(c, c->id, c->send_seq);
    c->send_seq++;
    lg.inflight++;
}

static void publish_more(uint64_t t) {
    lg_conn *pub = &lg.conns[0];
    if (pub->state != CS_OPEN) return;
    while (sending_allowed() && lg.pub_seq - lg.pub_done < lg.cfg.window) {
        uint32_t slot = lg.pub_seq % lg.cfg.window;
        lg.pub_ns[slot] = t;
        lg.pub_count[slot] = 0;
        queue_message(pub, 0, lg.pub_seq);
        lg.pub_seq++;
        lg.inflight += lg.receivers;
        mark_dirty(pub);
    }
}

/* Starts traffic on every open connection when warm-up begins. */
static void start_traffic(void) {
    uint64_t t = now_ns();
    if (lg.cfg.mode == MODE_PINGPONG || lg.cfg.mode == MODE_FLOOD) {
        for (uint32_t i = 0; i < lg.cfg.connections; i++) {
            lg_conn *c = &lg.conns[i];
            if (c->state != CS_OPEN) continue;
            for (uint32_t k = 0; k < lg.cfg.window; k++) send_echo_message(c, t);
            mark_dirty(c);
        }
    } else if (lg.cfg.mode == MODE_BROADCAST) {
        lg.receivers = lg.alive;
        publish_more(t);
    }
}

/* A complete data message arrived on c. */
static void on_message(lg_conn *c, uint8_t opcode, const uint8_t *p, size_t len, uint64_t t) {
    uint8_t want_op = lg.cfg.text ? 0x1 : 0x2;
    if (opcode != want_op) {
        conn_end(c, ERR_CORRUPT, "message opcode %u, sent %u", opcode, want_op);
        return;
    }
    uint32_t seq = c->recv_seq;
    bool broadcast = lg.cfg.mode == MODE_BROADCAST;
    uint32_t limit = broadcast ? lg.pub_seq : c->send_seq;
    if (seq == limit) {
        conn_end(c, ERR_CORRUPT, "unexpected message (%zu bytes) with nothing in flight", len);
        return;
    }
    uint32_t origin = broadcast ? 0 : c->id;
    if (!payload_matches(p, len, origin, seq)) {
        if (len != lg.cfg.size) {
            conn_end(c, ERR_CORRUPT, "message %u: %zu bytes, expected %zu", seq, len, lg.cfg.size);
        } else {
            uint8_t hdr[LG_PAYLOAD_HDR];
            payload_header(hdr, origin, seq);
            size_t at = 0;
            while (at < len && at < LG_PAYLOAD_HDR && p[at] == hdr[at]) at++;
            if (at == LG_PAYLOAD_HDR || at == len) {
                const uint8_t *pat = lg.pattern + pattern_offset(origin, seq) - LG_PAYLOAD_HDR;
                while (at < len && p[at] == pat[at]) at++;
            }
            conn_end(c, ERR_CORRUPT, "message %u: payload differs at byte %zu", seq, at);
        }
        return;
    }
    c->recv_seq++;
    lg.recv_total++;
    lg.inflight--;
    uint64_t sent_at;
    if (broadcast) {
        uint32_t slot = seq % lg.cfg.window;
        sent_at = lg.pub_ns[slot];
        lg.pub_count[slot]++;
    } else {
        sent_at = c->sent_ns[seq % lg.cfg.window];
    }
    if (measuring()) {
        lg.measured_msgs++;
        lg.measured_bytes += len;
        hist_record(&lg.hist, t > sent_at ? t - sent_at : 0);
    }
    if (broadcast) {
        /* Each receiver gets messages in order, so messages complete in order. */
        while (lg.pub_done < lg.pub_seq && lg.pub_count[lg.pub_done % lg.cfg.window] >= lg.receivers)
            lg.pub_done++;
        publish_more(t);
    } else if (sending_allowed() && lg.cfg.mode != MODE_IDLE) {
        send_echo_message(c, t);
    }
}

/* Handles one complete frame. Returns false if the connection ended. */
static bool on_frame(lg_conn *c, bool fin, uint8_t opcode, const uint8_t *p, size_t len, uint64_t t) {
    if (opcode & 0x8) {
        /* RFC 6455 §5.5: control frames have FIN set and at most 125 bytes. */
        if (!fin || len > 125) {
            conn_end(c, ERR_PROTOCOL, "control frame 0x%x with FIN=%d, %zu bytes", opcode, fin, len);
            return false;
        }
        if (opcode == 0x8) {
            if (c->state == CS_CLOSING) {
                conn_end(c, -1, NULL);
            } else {
                unsigned code = len >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
                conn_end(c, ERR_CLOSED, "server sent Close %u \"%.*s\"", code, len > 2 ? (int)(len - 2) : 0,
                         (const char *)p + 2);
            }
            return false;
        }
        if (opcode == 0x9) {
            if (c->state == CS_OPEN) queue_control(c, 0xA, p, len); /* §5.5.3: answer a Ping */
            return true;
        }
        if (opcode == 0xA) return true; /* unsolicited Pong: ignored (§5.5.3) */
        conn_end(c, ERR_PROTOCOL, "reserved control opcode 0x%x", opcode);
        return false;
    }
    if (c->state == CS_CLOSING) return true; /* data after our Close: discarded */
    if (opcode == 0x0) {
        if (!c->in_frag) {
            conn_end(c, ERR_PROTOCOL, "continuation frame without a message in progress");
            return false;
        }
        if (c->fraglen + len > lg.cfg.size) {
            conn_end(c, ERR_CORRUPT, "fragmented message exceeds %zu bytes", lg.cfg.size);
            return false;
        }
        if (c->fraglen + len > c->fragcap) {
            c->fragcap = round_up_pow2(c->fraglen + len);
            c->frag = xrealloc(c->frag, c->fragcap);
        }
        memcpy(c->frag + c->fraglen, p, len);
        c->fraglen += len;
        if (fin) {
            c->in_frag = false;
            on_message(c, c->frag_op, c->frag, c->fraglen, t);
        }
        return c->state != CS_DEAD;
    }
    if (opcode == 0x1 || opcode == 0x2) {
        if (c->in_frag) {
            conn_end(c, ERR_PROTOCOL, "new data frame inside a fragmented message");
            return false;
        }
        if (fin) {
            on_message(c, opcode, p, len, t);
            return c->state != CS_DEAD;
        }
        c->in_frag = true;
        c->frag_op = opcode;
        c->fraglen = 0;
        return on_frame(c, false, 0x0, p, len, t);
    }
    conn_end(c, ERR_PROTOCOL, "reserved data opcode 0x%x", opcode);
    return false;
}

/* Parses every complete frame in rbuf; keeps a partial frame (header included) for the next
 * read. Returns false if the connection ended. */
static bool parse_frames(lg_conn *c, uint64_t t) {
    size_t off = 0;
    size_t max_len = lg.cfg.size > 125 ? lg.cfg.size : 125;
    while (c->rlen - off >= 2) {
        const uint8_t *h = c->rbuf + off;
        size_t avail = c->rlen - off;
        bool fin = h[0] & 0x80;
        uint8_t opcode = h[0] & 0x0F;
        if (h[0] & 0x70) {
            conn_end(c, ERR_PROTOCOL, "RSV bits 0x%x set without an extension", h[0] & 0x70);
            return false;
        }
        if (h[1] & 0x80) { /* §5.1: a server MUST NOT mask frames it sends */
            conn_end(c, ERR_PROTOCOL, "masked frame from the server");
            return false;
        }
        uint64_t len = h[1] & 0x7F;
        size_t hdr = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)h[2] << 8 | h[3];
            hdr = 4;
            if (len < 126) { /* §5.2: the minimal number of bytes MUST be used */
                conn_end(c, ERR_PROTOCOL, "non-minimal 16-bit length %llu", (unsigned long long)len);
                return false;
            }
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
            hdr = 10;
            if (len >> 63) {
                conn_end(c, ERR_PROTOCOL, "64-bit length with the most significant bit set");
                return false;
            }
            if (len <= 0xFFFF) {
                conn_end(c, ERR_PROTOCOL, "non-minimal 64-bit length %llu", (unsigned long long)len);
                return false;
            }
        }
        if (len > max_len) {
            conn_end(c, ERR_CORRUPT, "frame of %llu bytes, messages are %zu bytes", (unsigned long long)len,
                     lg.cfg.size);
            return false;
        }
        if (avail < hdr + len) {
            if (hdr + len > c->rcap) { /* the frame does not fit: grow, keeping what we have */
                memmove(c->rbuf, c->rbuf + off, avail);
                c->rlen = avail;
                off = 0;
                c->rcap = round_up_pow2(hdr + len);
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            break;
        }
        if (!on_frame(c, fin, opcode, h + hdr, (size_t)len, t)) return false;
        off += hdr + (size_t)len;
    }
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return true;
}

static void on_readable(lg_conn *c) {
    for (int attempt = 0; attempt < 4; attempt++) {
        if (c->rlen == c->rcap) {
            c->rcap = round_up_pow2(c->rcap + 1);
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        size_t room = c->rcap - c->rlen;
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);
        if (n == 0) {
            if (c->state == CS_CLOSING) conn_end(c, -1, NULL);
            else if (c->state == CS_HANDSHAKE) conn_end(c, ERR_HANDSHAKE, "server closed the connection during the handshake");
            else conn_end(c, ERR_CLOSED, "server closed the TCP connection without a Close frame");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (c->state == CS_CLOSING) conn_end(c, -1, NULL);
            else conn_end(c, ERR_IO, "recv: %s", strerror(errno));
            return;
        }
        c->rlen += (size_t)n;
        uint64_t t = now_ns();
        if (c->state == CS_HANDSHAKE) {
            size_t used = parse_handshake(c);
            if (used == 0) {
                if (c->state == CS_DEAD) return;
                continue;
            }
            /* bytes after the blank line are already WebSocket frames (§4.1) */
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
            c->rlen -= used;
        }
        if (!parse_frames(c, t)) return;
        if ((size_t)n < room) break;
    }
    if (c->wlen > c->woff) conn_flush(c);
}

static void on_open(lg_conn *c) {
    if (lg.cfg.mode != MODE_BROADCAST) c->sent_ns = xrealloc(NULL, sizeof(uint64_t) * lg.cfg.window);
    /* The handshake buffer becomes the frame buffer, sized for a few messages. */
    size_t want = lg.cfg.mode == MODE_IDLE ? 1024 : round_up_pow2(2 * (lg.cfg.size + 14) + 4096);
    if (want > c->rcap) {
        c->rcap = want;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
}

static void begin_close_all(void) {
    static const uint8_t normal[2] = {0x03, 0xE8}; /* 1000 */
    for (uint32_t i = 0; i < lg.cfg.connections; i++) {
        lg_conn *c = &lg.conns[i];
        if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) {
            conn_end(c, -1, NULL);
        } else if (c->state == CS_OPEN) {
            queue_control(c, 0x8, normal, sizeof normal);
            c->state = CS_CLOSING;
            lg.closing++;
            conn_flush(c);
        }
    }
}

/* ---- Phases ------------------------------------------------------------------------------ */

static void marker(const char *what) {
    if (lg.cfg.json_only) return;
    fprintf(stderr, "@@%s connections=%u\n", what, lg.alive);
    fflush(stderr);
}

static void enter_phase(lg_phase p, uint64_t t) {
    lg.phase = p;
    switch (p) {
    case PHASE_WARMUP:
        lg.t_connected = t;
        lg.t_warmup_end = t + (lg.cfg.mode == MODE_IDLE ? 0 : seconds_to_ns(lg.cfg.warmup_s));
        marker("ready");
        start_traffic();
        break;
    case PHASE_MEASURE:
        lg.t_measure_start = t;
        lg.t_measure_end = t + seconds_to_ns(lg.cfg.duration_s);
        getrusage(RUSAGE_SELF, &lg.ru_start);
        marker("measure-start");
        break;
    case PHASE_DRAIN:
        lg.t_drain_end = t;
        lg.t_phase_deadline = t + seconds_to_ns(lg.cfg.drain_timeout_s);
        getrusage(RUSAGE_SELF, &lg.ru_end);
        marker("measure-end");
        if (lg.cfg.mode == MODE_IDLE) { /* check that every held connection still echoes */
            for (uint32_t i = 0; i < lg.cfg.connections; i++) {
                lg_conn *c = &lg.conns[i];
                if (c->state != CS_OPEN) continue;
                send_echo_message(c, t);
                mark_dirty(c);
            }
        }
        break;
    case PHASE_CLOSE:
        if (lg.inflight > 0) {
            record_error(ERR_LOST, "%lld message(s) not received within the %.1f s drain timeout",
                         (long long)lg.inflight, lg.cfg.drain_timeout_s);
            lg.errors[ERR_LOST] += (uint64_t)lg.inflight - 1;
        }
        lg.t_close_deadline = t + seconds_to_ns(lg.cfg.close_timeout_s);
        begin_close_all();
        break;
    default:
        break;
    }
}

static void advance_phases(uint64_t t) {
    switch (lg.phase) {
    case PHASE_CONNECT:
        while (lg.next_to_start < lg.cfg.connections && lg.pending < lg.cfg.connect_concurrency)
            start_connect(&lg.conns[lg.next_to_start++]);
        if (lg.next_to_start == lg.cfg.connections && lg.pending == 0) {
            if (lg.opened == 0) {
                enter_phase(PHASE_CLOSE, t);
            } else {
                enter_phase(PHASE_WARMUP, t);
            }
        } else if (t >= lg.t_phase_deadline) {
            uint32_t missing = 0;
            for (uint32_t i = 0; i < lg.cfg.connections; i++) {
                lg_conn *c = &lg.conns[i];
                if (c->state == CS_NEW || c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) {
                    missing++;
                    lg.errors[ERR_CONNECT]++;
                    if (c->state != CS_NEW) conn_end(c, -1, NULL);
                    c->state = CS_DEAD;
                }
            }
            if (lg.first_error[0] == '\0')
                snprintf(lg.first_error, sizeof lg.first_error, "connect: %u connection(s) not open after %.1f s",
                         missing, lg.cfg.connect_timeout_s);
            lg.next_to_start = lg.cfg.connections;
            enter_phase(lg.opened ? PHASE_WARMUP : PHASE_CLOSE, t);
        }
        break;
    case PHASE_WARMUP:
        if (t >= lg.t_warmup_end) enter_phase(PHASE_MEASURE, t);
        break;
    case PHASE_MEASURE:
        /* --min-messages: a window that is too short for the machine's current load (a slow
         * peer, a busy CPU) is extended until enough messages were validated in it, by at most
         * --drain-timeout, and not at all once an error was recorded. The duration reported is
         * the real one. */
        if (t >= lg.t_measure_end &&
            (lg.measured_msgs >= lg.cfg.min_messages || total_errors() > 0 ||
             t >= lg.t_measure_end + seconds_to_ns(lg.cfg.drain_timeout_s)))
            enter_phase(PHASE_DRAIN, t);
        break;
    case PHASE_DRAIN:
        if (lg.inflight <= 0 || t >= lg.t_phase_deadline) enter_phase(PHASE_CLOSE, t);
        break;
    case PHASE_CLOSE:
        if (lg.closing == 0 || t >= lg.t_close_deadline) {
            for (uint32_t i = 0; i < lg.cfg.connections; i++) conn_end(&lg.conns[i], -1, NULL);
            lg.phase = PHASE_DONE;
        }
        break;
    case PHASE_DONE:
        break;
    }
    /* Everyone is gone (or a broadcast receiver died): nothing more can happen. */
    if ((lg.aborted || lg.alive == 0) && lg.phase >= PHASE_WARMUP && lg.phase <= PHASE_DRAIN) {
        if (lg.phase == PHASE_WARMUP || lg.phase == PHASE_MEASURE) {
            if (lg.phase == PHASE_WARMUP) enter_phase(PHASE_MEASURE, t);
            enter_phase(PHASE_DRAIN, t);
        }
        if (lg.cfg.mode == MODE_BROADCAST || lg.alive == 0) lg.inflight = 0; /* already counted */
        enter_phase(PHASE_CLOSE, t);
    }
}

/* ---- Reporting --------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static void report(void) {
    const lg_config *cfg = &lg.cfg;
    double measured_s = lg.t_drain_end > lg.t_measure_start ? (double)(lg.t_drain_end - lg.t_measure_start) / 1e9 : 0;
    double rate = measured_s > 0 ? (double)lg.measured_msgs / measured_s : 0;
    double bps = measured_s > 0 ? (double)lg.measured_bytes / measured_s : 0;
    double cpu = tv_s(lg.ru_end.ru_utime) + tv_s(lg.ru_end.ru_stime) - tv_s(lg.ru_start.ru_utime) -
                 tv_s(lg.ru_start.ru_stime);
    double connect_ms = lg.t_connected > lg.t_start ? (double)(lg.t_connected - lg.t_start) / 1e6 : 0;
    const lg_hist *h = &lg.hist;
    double us = 1e3;
    double p50 = (double)hist_quantile(h, 0.50) / us, p90 = (double)hist_quantile(h, 0.90) / us,
           p99 = (double)hist_quantile(h, 0.99) / us, p999 = (double)hist_quantile(h, 0.999) / us,
           mx = (double)h->max / us, mean = h->total ? h->sum / (double)h->total / us : 0;
    uint64_t errs = total_errors();

    FILE *o = stdout;
    fprintf(o, "{\"tool\":\"ws-loadgen\",\"label\":");
    json_string(o, cfg->label);
    fprintf(o, ",\"mode\":\"%s\",\"url\":\"ws://%s%s%s:%s", MODE_NAMES[cfg->mode],
            lg.addr.ss_family == AF_INET6 ? "[" : "", cfg->host, lg.addr.ss_family == AF_INET6 ? "]" : "",
            cfg->port_str);
    fprintf(o, "\",\"path\":");
    json_string(o, cfg->path);
    fprintf(o,
            ",\"connections\":%u,\"opened\":%u,\"size\":%zu,\"window\":%u,\"text\":%s,"
            "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"connect_ms\":%.1f,"
            "\"messages\":%llu,\"sent\":%llu,\"msgs_per_s\":%.1f,\"bytes_per_s\":%.1f,"
            "\"messages_total\":%llu,\"sent_total\":%llu,\"client_cpu_s\":%.3f,"
            "\"latency_us\":{\"samples\":%llu,\"mean\":%.2f,\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,"
            "\"p999\":%.2f,\"max\":%.2f},\"errors\":{\"total\":%llu",
            lg.cfg.connections, lg.opened, cfg->size, cfg->mode == MODE_PINGPONG || cfg->mode == MODE_IDLE ? 1 : cfg->window,
            cfg->text ? "true" : "false", cfg->mode == MODE_IDLE ? 0.0 : cfg->warmup_s, measured_s, connect_ms,
            (unsigned long long)lg.measured_msgs, (unsigned long long)lg.measured_sent, rate, bps,
            (unsigned long long)lg.recv_total, (unsigned long long)lg.sent_total, cpu,
            (unsigned long long)h->total, mean, p50, p90, p99, p999, mx, (unsigned long long)errs);
    for (int i = 0; i < ERR__COUNT; i++) fprintf(o, ",\"%s\":%llu", ERR_NAMES[i], (unsigned long long)lg.errors[i]);
    fprintf(o, "},\"first_error\":");
    json_string(o, lg.first_error);
    fprintf(o, ",\"ok\":%s}\n", errs == 0 ? "true" : "false");
    fflush(o);

    if (cfg->json_only) return;
    FILE *e = stderr;
    fprintf(e, "ws-loadgen %s ws://%s:%s%s  connections %u/%u  size %zu B", MODE_NAMES[cfg->mode], cfg->host,
            cfg->port_str, cfg->path, lg.opened, cfg->connections, cfg->size);
    if (cfg->mode == MODE_FLOOD || cfg->mode == MODE_BROADCAST) fprintf(e, "  window %u", cfg->window);
    fprintf(e, "\n  %s %.2f s (connect %.0f ms, warm-up %.1f s)\n", cfg->mode == MODE_IDLE ? "held" : "measured",
            measured_s, connect_ms, cfg->mode == MODE_IDLE ? 0.0 : cfg->warmup_s);
    if (cfg->mode != MODE_IDLE) {
        fprintf(e, "  %s %llu  (%.0f/s, %.1f MB/s payload)\n",
                cfg->mode == MODE_BROADCAST ? "deliveries" : "messages", (unsigned long long)lg.measured_msgs, rate,
                bps / 1e6);
        fprintf(e, "  latency  p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n", p50, p90, p99,
                p999, mx);
        fprintf(e, "  client CPU %.2f s (%.0f%% of the window)\n", cpu, measured_s > 0 ? 100 * cpu / measured_s : 0);
    } else {
        fprintf(e, "  verified %llu echo(es) after the hold\n", (unsigned long long)lg.recv_total);
    }
    fprintf(e, "  errors   %llu", (unsigned long long)errs);
    for (int i = 0; i < ERR__COUNT; i++)
        if (lg.errors[i]) fprintf(e, "  %s=%llu", ERR_NAMES[i], (unsigned long long)lg.errors[i]);
    fprintf(e, "\n");
    if (lg.first_error[0]) fprintf(e, "  first error: %s\n", lg.first_error);
}

/* ---- Command line ------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f,
            "usage: ws-loadgen --port PORT [options]\n"
            "       ws-loadgen --url ws://127.0.0.1:PORT/PATH [options]\n"
            "  --host ADDR               loopback address (default 127.0.0.1)\n"
            "  --port PORT               server port\n"
            "  --path PATH               request path (default /)\n"
            "  --mode MODE               pingpong | flood | broadcast | idle (default pingpong)\n"
            "  -c, --connections N       connections (default 100)\n"
            "  -s, --size BYTES          payload bytes per message, k/m suffixes (default 32)\n"
            "  -w, --window N            flood: messages in flight per connection (default 16);\n"
            "                            broadcast: published messages in flight (default 16)\n"
            "  -d, --duration SECONDS    measured window; idle: hold time (default 5)\n"
            "      --warmup SECONDS      traffic before measuring (default 1)\n"
            "      --connect-concurrency N  connects in progress at once (default 256)\n"
            "      --connect-timeout S   (default 20)   --drain-timeout S (default 5)\n"
            "      --min-messages N      extend the measured window (by at most the drain timeout)\n"
            "                            until N messages arrived in it (default 0: fixed window)\n"
            "      --text                text frames with ASCII payloads (default binary)\n"
            "      --json                only the JSON line (no summary, no @@ markers)\n"
            "      --label TEXT          copied into the JSON\n"
            "Exit status: 0 success, 1 any error (connect, handshake, protocol, corrupt or lost\n"
            "message, unexpected close) or no message in a messaging mode, 2 usage.\n");
}

static bool parse_double(const char *s, double *out, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

static bool parse_count(const char *s, uint64_t *out, uint64_t lo, uint64_t hi) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return false;
    if (*end == 'k' || *end == 'K') v *= 1024, end++;
    else if (*end == 'm' || *end == 'M') v *= 1024 * 1024, end++;
    if (*end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_url(lg_config *cfg, const char *url) {
    if (strncmp(url, "ws://", 5) != 0) return false;
    const char *h = url + 5, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend) return false;
        h++;
        p = hend + 1;
    } else {
        hend = h + strcspn(h, ":/");
        p = hend;
    }
    if ((size_t)(hend - h) >= sizeof cfg->host || hend == h) return false;
    memcpy(cfg->host, h, (size_t)(hend - h));
    cfg->host[hend - h] = '\0';
    if (*p == ':') {
        p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n >= sizeof cfg->port_str) return false;
        memcpy(cfg->port_str, p, n);
        cfg->port_str[n] = '\0';
        p += n;
    } else {
        strcpy(cfg->port_str, "80");
    }
    if (*p == '\0') p = "/";
    if (*p != '/' || strlen(p) >= sizeof cfg->path) return false;
    strcpy(cfg->path, p);
    return true;
}

static int parse_args(int argc, char **argv, lg_config *cfg) {
    enum { OPT_HOST = 1000, OPT_PORT, OPT_PATH, OPT_URL, OPT_MODE, OPT_WARMUP, OPT_CC, OPT_CT, OPT_DT, OPT_MIN, OPT_TEXT, OPT_JSON, OPT_LABEL, OPT_HELP };
    static const struct option opts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"path", required_argument, NULL, OPT_PATH},
        {"url", required_argument, NULL, OPT_URL},
        {"mode", required_argument, NULL, OPT_MODE},
        {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"window", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"connect-concurrency", required_argument, NULL, OPT_CC},
        {"connect-timeout", required_argument, NULL, OPT_CT},
        {"drain-timeout", required_argument, NULL, OPT_DT},
        {"min-messages", required_argument, NULL, OPT_MIN},
        {"text", no_argument, NULL, OPT_TEXT},
        {"json", no_argument, NULL, OPT_JSON},
        {"label", required_argument, NULL, OPT_LABEL},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->host, "127.0.0.1");
    strcpy(cfg->path, "/");
    cfg->mode = MODE_PINGPONG;
    cfg->connections = 100;
    cfg->size = 32;
    cfg->duration_s = 5;
    cfg->warmup_s = 1;
    cfg->connect_timeout_s = 20;
    cfg->drain_timeout_s = 5;
    cfg->close_timeout_s = 1;
    cfg->connect_concurrency = 256;
    uint32_t window = 0;
    int ch;
    uint64_t u;
    while ((ch = getopt_long(argc, argv, "c:s:w:d:h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_HOST:
            if (strlen(optarg) >= sizeof cfg->host) return 2;
            strcpy(cfg->host, optarg);
            break;
        case OPT_PORT:
            if (!parse_count(optarg, &u, 1, 65535)) return 2;
            snprintf(cfg->port_str, sizeof cfg->port_str, "%llu", (unsigned long long)u);
            break;
        case OPT_PATH:
            if (optarg[0] != '/' || strlen(optarg) >= sizeof cfg->path || strpbrk(optarg, " \r\n")) return 2;
            strcpy(cfg->path, optarg);
            break;
        case OPT_URL:
            if (!parse_url(cfg, optarg)) return 2;
            break;
        case OPT_MODE: {
            int m = -1;
            for (int i = 0; i < 4; i++)
                if (strcmp(optarg, MODE_NAMES[i]) == 0) m = i;
            if (m < 0) return 2;
            cfg->mode = (lg_mode)m;
            break;
        }
        case 'c':
            if (!parse_count(optarg, &u, 1, 1000000)) return 2;
            cfg->connections = (uint32_t)u;
            break;
        case 's':
            if (!parse_count(optarg, &u, 0, 64u << 20)) return 2;
            cfg->size = (size_t)u;
            break;
        case 'w':
            if (!parse_count(optarg, &u, 1, 65536)) return 2;
            window = (uint32_t)u;
            break;
        case 'd':
            if (!parse_double(optarg, &cfg->duration_s, 0.01, 3600)) return 2;
            break;
        case OPT_WARMUP:
            if (!parse_double(optarg, &cfg->warmup_s, 0, 600)) return 2;
            break;
        case OPT_CC:
            if (!parse_count(optarg, &u, 1, 100000)) return 2;
            cfg->connect_concurrency = (uint32_t)u;
            break;
        case OPT_CT:
            if (!parse_double(optarg, &cfg->connect_timeout_s, 0.1, 600)) return 2;
            break;
        case OPT_DT:
            if (!parse_double(optarg, &cfg->drain_timeout_s, 0.1, 600)) return 2;
            break;
        case OPT_MIN:
            if (!parse_count(optarg, &cfg->min_messages, 0, UINT32_MAX)) return 2;
            break;
        case OPT_TEXT:
            cfg->text = true;
            break;
        case OPT_JSON:
            cfg->json_only = true;
            break;
        case OPT_LABEL:
            snprintf(cfg->label, sizeof cfg->label, "%s", optarg);
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            return 2;
        }
    }
    if (optind != argc || cfg->port_str[0] == '\0') return 2;
    if (cfg->mode == MODE_PINGPONG || cfg->mode == MODE_IDLE) window = 1;
    cfg->window = window ? window : 16;
    return 0;
}

/* Resolves the host and refuses anything but loopback. */
static bool resolve_loopback(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    int rc = getaddrinfo(lg.cfg.host, lg.cfg.port_str, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ws-loadgen: cannot resolve %s: %s\n", lg.cfg.host, gai_strerror(rc));
        return false;
    }
    bool ok = false;
    for (struct addrinfo *a = res; a && !ok; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)a->ai_addr;
            ok = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a->ai_addr;
            ok = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        }
        if (ok) {
            memcpy(&lg.addr, a->ai_addr, a->ai_addrlen);
            lg.addrlen = a->ai_addrlen;
        }
    }
    freeaddrinfo(res);
    if (!ok) fprintf(stderr, "ws-loadgen: %s is not a loopback address; refusing to generate load\n", lg.cfg.host);
    return ok;
}

/* Raises RLIMIT_NOFILE toward the hard limit so that N connections fit. */
static bool raise_fd_limit(uint32_t need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
    rlim_t want = (rlim_t)need + 64;
    if (rl.rlim_cur >= want) return true;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want) {
        fprintf(stderr, "ws-loadgen: %u connections need %llu file descriptors; the limit is %llu\n", need,
                (unsigned long long)want, (unsigned long long)rl.rlim_cur);
        return false;
    }
    return true;
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

int main(int argc, char **argv) {
    if (parse_args(argc, argv, &lg.cfg) != 0) {
        usage(stderr);
        return 2;
    }
    if (!resolve_loopback() || !raise_fd_limit(lg.cfg.connections)) return 2;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    lg.mask_off = sizeof lg.mask_pool; /* fill on first use */
    pattern_init();
    lg.conns = calloc(lg.cfg.connections, sizeof *lg.conns);
    if (!lg.conns) return 1;
    for (uint32_t i = 0; i < lg.cfg.connections; i++) {
        lg.conns[i].fd = -1;
        lg.conns[i].id = i;
    }
    if (lg.cfg.mode == MODE_BROADCAST) {
        lg.pub_count = calloc(lg.cfg.window, sizeof *lg.pub_count);
        lg.pub_ns = calloc(lg.cfg.window, sizeof *lg.pub_ns);
        if (!lg.pub_count || !lg.pub_ns) return 1;
    }
    lg.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lg.epfd < 0) {
        perror("epoll_create1");
        return 1;
    }

    lg.t_start = now_ns();
    lg.t_phase_deadline = lg.t_start + seconds_to_ns(lg.cfg.connect_timeout_s);
    lg.phase = PHASE_CONNECT;
    static struct epoll_event evs[LG_MAX_EVENTS];
    bool interrupt_seen = false;
    while (lg.phase != PHASE_DONE) {
        uint64_t t = now_ns();
        if (interrupted && !interrupt_seen) {
            interrupt_seen = true;
            record_error(ERR_IO, "interrupted by a signal");
            if (lg.phase < PHASE_DRAIN) {
                if (lg.phase == PHASE_CONNECT) lg.opened ? enter_phase(PHASE_WARMUP, t) : (void)0;
                if (lg.phase == PHASE_WARMUP) enter_phase(PHASE_MEASURE, t);
                if (lg.phase == PHASE_MEASURE) enter_phase(PHASE_DRAIN, t);
            }
            lg.inflight = 0;
            if (lg.phase < PHASE_CLOSE) enter_phase(PHASE_CLOSE, t);
        }
        advance_phases(t);
        flush_dirty();
        if (lg.phase == PHASE_DONE) break;
        int n = epoll_wait(lg.epfd, evs, LG_MAX_EVENTS, 5);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            lg_conn *c = &lg.conns[evs[i].data.u32];
            uint32_t ev = evs[i].events;
            if (c->state == CS_DEAD || c->fd < 0) continue;
            if (c->state == CS_CONNECTING) {
                on_connected(c);
                continue;
            }
            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
            if (c->state != CS_DEAD && (ev & EPOLLOUT) && c->wlen > c->woff) conn_flush(c);
            else if (c->state != CS_DEAD && (ev & EPOLLOUT)) set_interest(c, false);
        }
        flush_dirty();
    }

    report();
    bool ok = total_errors() == 0;
    if (ok && lg.cfg.mode != MODE_IDLE && lg.measured_msgs == 0) {
        fprintf(stderr, "ws-loadgen: no message was received in the measured window\n");
        ok = false;
    }
    if (ok && lg.cfg.mode == MODE_IDLE && lg.recv_total != lg.opened) {
        fprintf(stderr, "ws-loadgen: %llu of %u held connections answered the check\n",
                (unsigned long long)lg.recv_total, lg.opened);
        ok = false;
    }

    for (uint32_t i = 0; i < lg.cfg.connections; i++) conn_release(&lg.conns[i]);
    free(lg.conns);
    free(lg.pattern);
    free(lg.pub_count);
    free(lg.pub_ns);
    close(lg.epfd);
    return ok ? 0 : 1;
}
