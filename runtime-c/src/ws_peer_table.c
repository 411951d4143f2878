/*
 * Per-peer-address counts of a server (see ws_peer_table.h).
 */
#include "ws_peer_table.h"

#include <openssl/rand.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_us(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Keyed with a secret, so peers cannot choose addresses that all collide (hash flooding). */
static uint64_t ip_hash_key[2];

static size_t ip_home(const uint8_t addr[16], size_t cap) {
    uint64_t a, b;
    memcpy(&a, addr, 8);
    memcpy(&b, addr + 8, 8);
    uint64_t h = (a ^ ip_hash_key[0]) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    h = (h ^ b ^ ip_hash_key[1]) * 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return (size_t)h & (cap - 1);
}

static bool ip_slot_empty(const osp_ws_peer_count *e) { return !e->used; }

/* Nothing to remember about this address any more: no connection, no handshake, and its TLS
 * handshake rate paid off. */
static bool ip_idle(const osp_ws_peer_count *e, uint64_t now) {
    return e->conns == 0 && e->handshakes == 0 && e->tls_paid_us <= now;
}

osp_ws_peer_count *osp_ws_peer_find(osp_ws_peer_table *t, const uint8_t addr[16]) {
    if (t->cap == 0) return NULL;
    for (size_t j = ip_home(addr, t->cap);; j = (j + 1) & (t->cap - 1)) {
        osp_ws_peer_count *e = &t->slots[j];
        if (ip_slot_empty(e)) return NULL;
        if (memcmp(e->addr, addr, 16) == 0) return e;
    }
}

/* The slot for addr, added with zero counts (the caller counts at once); NULL out of memory. */
osp_ws_peer_count *osp_ws_peer_get(osp_ws_peer_table *t, const uint8_t addr[16]) {
    osp_ws_peer_count *e = osp_ws_peer_find(t, addr);
    if (e != NULL) return e;
    if ((t->used + 1) * 2 > t->cap && t->cap > 0) {
        /* Addresses kept only for their handshake rate leave once it is paid off; drop them
         * before growing. (Deleting shifts later entries back, so a few may be passed over.) */
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].used) osp_ws_peer_release_if_idle(t, &t->slots[i]);
    }
    if ((t->used + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        osp_ws_peer_count *grown = calloc(cap, sizeof *grown);
        if (grown == NULL) return NULL;
        if (ip_hash_key[0] == 0 && ip_hash_key[1] == 0 &&
            RAND_bytes((unsigned char *)ip_hash_key, sizeof ip_hash_key) != 1) {
            free(grown);
            return NULL;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (ip_slot_empty(&t->slots[i])) continue;
            size_t j = ip_home(t->slots[i].addr, cap);
            while (!ip_slot_empty(&grown[j])) j = (j + 1) & (cap - 1);
            grown[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = grown;
        t->cap = cap;
    }
    size_t j = ip_home(addr, t->cap);
    while (!ip_slot_empty(&t->slots[j])) j = (j + 1) & (t->cap - 1);
    memcpy(t->slots[j].addr, addr, 16);
    t->slots[j].used = true;
    t->used++;
    return &t->slots[j];
}

/* An address whose counts reached 0 leaves the table (backward-shift deletion). */
void osp_ws_peer_release_if_idle(osp_ws_peer_table *t, osp_ws_peer_count *e) {
    if (!ip_idle(e, now_us())) return;
    size_t mask = t->cap - 1, hole = (size_t)(e - t->slots);
    memset(&t->slots[hole], 0, sizeof t->slots[hole]);
    t->used--;
    for (size_t j = (hole + 1) & mask; !ip_slot_empty(&t->slots[j]); j = (j + 1) & mask) {
        size_t home = ip_home(t->slots[j].addr, t->cap);
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        t->slots[hole] = t->slots[j];
        memset(&t->slots[j], 0, sizeof t->slots[j]);
        hole = j;
    }
}

void osp_ws_peer_key(const struct sockaddr_storage *ss, uint8_t out[16]) {
    memset(out, 0, 16);
    if (ss->ss_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else if (ss->ss_family == AF_INET) {
        out[10] = out[11] = 0xff; /* IPv4-mapped, so both families share one table */
        memcpy(out + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    }
}

bool osp_ws_peer_tls_rate_allows(osp_ws_peer_count *e, uint32_t rate) {
    uint64_t now = now_us(), interval = 1000000u / (rate ? rate : 1);
    uint64_t from = e->tls_paid_us > now ? e->tls_paid_us : now;
    if (from + interval > now + 1000000u) return false;
    e->tls_paid_us = from + interval;
    return true;
}

void osp_ws_peer_table_free(osp_ws_peer_table *t) {
    free(t->slots);
    t->slots = NULL;
    t->cap = t->used = 0;
}
