/*
 * Ids of the WebSocket subsystem (start-up and shutdown: ws_runtime.c).
 *
 * Ids: one counter for servers and connections, starting at 1, never reused in a process.
 * Server connections get theirs when the opening handshake succeeds (a TCP connection that
 * never upgrades costs no id). A retired id stays in the table (about 40 bytes) so that later
 * calls can say "already closed" or "was stopped" instead of "unknown", but only the most
 * recent OSP_WS_RETIRED_KEEP of them: older ones are forgotten (then "unknown"), so the table
 * is bounded by live objects plus that many, whatever the number of connections over time.
 *
 * The bottom of the WebSocket modules: it calls none of them (tests/runtime/module-graph).
 */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t id; /* 0: empty slot */
    osp_ws_entry entry;
} slot;

/* Open addressing with linear probing; forgotten ids are deleted by backward shifting. */
static slot *table;
static size_t table_cap, table_used;
static int64_t next_id = 1;

/* The retired ids still remembered, oldest first (a ring of osp_ws_retired_keep). */
size_t osp_ws_retired_keep = OSP_WS_RETIRED_KEEP;
static size_t retired_cap;
static int64_t *retired;
static size_t retired_head, retired_count;


static size_t slot_of(int64_t id, size_t cap) {
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 17) & (cap - 1);
}

static bool grow(void) {
    size_t cap = table_cap ? table_cap * 2 : 256;
    slot *t = calloc(cap, sizeof *t);
    if (t == NULL) return false;
    for (size_t i = 0; i < table_cap; i++) {
        if (table[i].id == 0) continue;
        size_t j = slot_of(table[i].id, cap);
        while (t[j].id != 0) j = (j + 1) & (cap - 1);
        t[j] = table[i];
    }
    free(table);
    table = t;
    table_cap = cap;
    return true;
}

/* Recursive: a lookup helper takes it whether or not its caller already holds it. */
pthread_mutex_t osp_ws_tx_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

int64_t osp_ws_registry_add(osp_ws_kind kind, void *object, int64_t owner) {
    return osp_ws_registry_add_in(kind, object, owner, 0);
}

int64_t osp_ws_registry_add_in(osp_ws_kind kind, void *object, int64_t owner, int64_t base) {
    /* websocketSend looks ids up on the program's thread (osp_ws_send): the table must not
     * move or change under it. */
    pthread_mutex_lock(&osp_ws_tx_lock);
    if ((table_used + 1) * 4 >= table_cap * 3 && !grow()) {
        pthread_mutex_unlock(&osp_ws_tx_lock);
        return 0;
    }
    int64_t id = base | next_id++;
    size_t j = slot_of(id, table_cap);
    while (table[j].id != 0) j = (j + 1) & (table_cap - 1);
    table[j].id = id;
    table[j].entry.kind = kind;
    table[j].entry.object = object;
    table[j].entry.code = 0;
    table[j].entry.owner = owner;
    osp_ws_loop *here = osp_ws_loop_current();
    table[j].entry.loop = here ? (uint16_t)here->index : 0;
    table_used++;
    pthread_mutex_unlock(&osp_ws_tx_lock);
    return id;
}

static slot *find(int64_t id) {
    if (id <= 0 || table_cap == 0) return NULL;
    size_t j = slot_of(id, table_cap);
    while (table[j].id != 0) {
        if (table[j].id == id) return &table[j];
        j = (j + 1) & (table_cap - 1);
    }
    return NULL;
}

/* Removes a slot and closes the gap (linear probing's backward-shift deletion), so lookups
 * never stop early at a hole. With osp_ws_tx_lock held. */
static void erase(slot *victim) {
    size_t hole = (size_t)(victim - table), mask = table_cap - 1;
    table[hole].id = 0;
    table_used--;
    for (size_t j = (hole + 1) & mask; table[j].id != 0; j = (j + 1) & mask) {
        size_t home = slot_of(table[j].id, table_cap);
        /* Move j into the hole when its home is not cyclically within (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        table[hole] = table[j];
        table[j].id = 0;
        hole = j;
    }
}

/* Remembers a retired id, forgetting the oldest one when OSP_WS_RETIRED_KEEP are kept. With
 * osp_ws_tx_lock held. */
static void remember_retired(int64_t id) {
    if (retired == NULL) {
        retired_cap = osp_ws_retired_keep ? osp_ws_retired_keep : 1;
        if ((retired = malloc(retired_cap * sizeof *retired)) == NULL) return;
    }
    if (retired_count == retired_cap) {
        slot *old = find(retired[retired_head]);
        if (old != NULL && old->entry.object == NULL) erase(old);
        retired_head = (retired_head + 1) % retired_cap;
        retired_count--;
    }
    retired[(retired_head + retired_count) % retired_cap] = id;
    retired_count++;
}

size_t osp_ws_registry_size(void) {
    pthread_mutex_lock(&osp_ws_tx_lock);
    size_t n = table_used;
    pthread_mutex_unlock(&osp_ws_tx_lock);
    return n;
}

const osp_ws_entry *osp_ws_registry_get(int64_t id) {
    slot *s = find(id);
    return s ? &s->entry : NULL;
}

bool osp_ws_registry_find(int64_t id, osp_ws_entry *out) {
    pthread_mutex_lock(&osp_ws_tx_lock);
    slot *s = find(id);
    if (s != NULL) *out = s->entry;
    pthread_mutex_unlock(&osp_ws_tx_lock);
    return s != NULL;
}

void osp_ws_registry_retire(int64_t id, uint16_t code) {
    pthread_mutex_lock(&osp_ws_tx_lock); /* after it no sender can reach the object */
    slot *s = find(id);
    if (s != NULL && s->entry.object != NULL) {
        s->entry.object = NULL;
        s->entry.code = code;
        remember_retired(id);
    }
    pthread_mutex_unlock(&osp_ws_tx_lock);
}

void osp_ws_registry_each_on(osp_ws_loop *L, void (*fn)(const osp_ws_entry *e, int64_t id, void *arg), void *arg) {
    /* fn may retire entries, and retiring may forget (erase) old ones, which moves slots: walk
     * a snapshot of the live ids, looking each one up again. fn runs without the lock (it may
     * take other locks) on a copy of the entry: an object of loop L is only freed by L. */
    pthread_mutex_lock(&osp_ws_tx_lock);
    size_t n = 0;
    for (size_t i = 0; i < table_cap; i++)
        if (table[i].id != 0 && table[i].entry.object != NULL && (L == NULL || table[i].entry.loop == L->index)) n++;
    if (n == 0) {
        pthread_mutex_unlock(&osp_ws_tx_lock);
        return;
    }
    int64_t *ids = malloc(n * sizeof *ids);
    if (ids == NULL) {
        pthread_mutex_unlock(&osp_ws_tx_lock);
        fprintf(stderr, "osprey runtime: out of memory walking the WebSocket registry\n");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < table_cap && k < n; i++)
        if (table[i].id != 0 && table[i].entry.object != NULL && (L == NULL || table[i].entry.loop == L->index))
            ids[k++] = table[i].id;
    pthread_mutex_unlock(&osp_ws_tx_lock);
    for (size_t i = 0; i < k; i++) {
        pthread_mutex_lock(&osp_ws_tx_lock);
        slot *s = find(ids[i]);
        osp_ws_entry copy;
        bool live = s != NULL && s->entry.object != NULL;
        if (live) copy = s->entry;
        pthread_mutex_unlock(&osp_ws_tx_lock);
        if (live) fn(&copy, ids[i], arg);
    }
    free(ids);
}

void osp_ws_registry_each(void (*fn)(const osp_ws_entry *e, int64_t id, void *arg), void *arg) {
    osp_ws_registry_each_on(osp_ws_loop_current(), fn, arg);
}

void osp_ws_registry_release(void) {
    pthread_mutex_lock(&osp_ws_tx_lock); /* a sender on another thread may still look ids up */
    free(table);
    table = NULL;
    table_cap = table_used = 0;
    free(retired);
    retired = NULL;
    retired_head = retired_count = 0;
    pthread_mutex_unlock(&osp_ws_tx_lock);
}
