/*
 * The hit record of `osprey run`: what lets bin/osprey (bin/launcher/fast.c) start a cached
 * program after a handful of stat calls, without libc, without reading the source or hashing the
 * executable. Shared by its reader (fast.c, freestanding) and its writer (osprey.c, the full
 * launcher, which writes one after it has verified a cache hit by content), so only what both
 * need lives here, and nothing here calls a library.
 *
 * A record is the file <cache dir>/hits/<16 hex digits>, the digits being hit_record_name() of
 * the installation, the source's device and inode, the source path as given and the command's
 * flags as given (so two spellings of the same flags have two records, each valid). Text, one
 * field per line, every path last on its line (a path holding a newline is never recorded):
 *
 *   osprey-hit 1
 *   root PATH                     the installation (bin/osprey's real path, two levels up)
 *   path PATH                     the source path as given on the command line
 *   arg FLAG                      each flag before `--` other than -v/--verbose, in order
 *   source DEV INO SIZE MTIME_NS CTIME_NS
 *   stat DEV INO SIZE MTIME_NS CTIME_NS PATH
 *                                 a file the entry depends on: the identity stamp, the bundled
 *                                 compiler, the runtime files linked, every imported module
 *   bundle-mtime-ns NS            the bundle's modification time, from the identity stamp: a
 *                                 compiler source at least as new means the compiler is stale
 *   fresh-file PATH               a compiler source file (the stamp's fresh-file lines)
 *   fresh-root PATH               a directory of compiler sources (the stamp's fresh-dir), then
 *   fresh-entry RELATIVE          every directory ("." for itself) and .ts file under it, as the
 *                                 full launcher's scan found them: one stat each instead of a scan
 *                                 (a file added, removed or renamed changes a listed directory)
 *   entry KEY                     the cache entry (64 hex digits): KEY/program is executed
 *   program DEV INO SIZE MTIME_NS CTIME_NS
 *
 * Every `source`, `stat` and `program` line must hold exactly (the change time cannot be set by
 * a program, and a replaced file has another inode), the executable must be a regular file of
 * this user that nobody else can write, and every line must be one the reader knows; otherwise
 * the full launcher decides, by content, as before.
 *
 * Racy timestamps (as git's index): the writer records only files whose modification and change
 * times lie in a second before the one it records in. A file rewritten with the same size within
 * one clock tick keeps its times, so a file changed in the second of its recording could look
 * unchanged; one changed in a later second cannot.
 */
#ifndef OSPREY_HIT_RECORD_H
#define OSPREY_HIT_RECORD_H

#include <stdint.h>

#define HIT_RECORD_MAGIC "osprey-hit 1"
#define HIT_RECORD_DIR "hits"

/* FNV-1a, 64 bits: a file name, not a security boundary (the record repeats what it is for,
 * and the reader compares that exactly). */
static inline uint64_t hit_fnv(uint64_t h, const char *s, unsigned long len) {
    for (unsigned long i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static inline unsigned long hit_strlen(const char *s) {
    unsigned long n = 0;
    while (s[n] != '\0') n++;
    return n;
}

static inline uint64_t hit_fnv_str(uint64_t h, const char *s) {
    return hit_fnv(h, s, hit_strlen(s) + 1); /* with the NUL: "a","bc" differs from "ab","c" */
}

static inline uint64_t hit_fnv_u64(uint64_t h, uint64_t v) {
    char bytes[8];
    for (int i = 0; i < 8; i++) bytes[i] = (char)(v >> (8 * i));
    return hit_fnv(h, bytes, 8);
}

/* The record's file name (16 lowercase hex digits and a NUL) for a run of `path` (as given, with
 * this device and inode) with these flags (as given) by the installation at `root`. */
static inline void hit_record_name(const char *root, uint64_t dev, uint64_t ino, const char *path, char *const *flags, int nflags, char out[17]) {
    uint64_t h = 0xcbf29ce484222325ULL;
    h = hit_fnv_str(h, HIT_RECORD_MAGIC);
    h = hit_fnv_str(h, root);
    h = hit_fnv_u64(h, dev);
    h = hit_fnv_u64(h, ino);
    h = hit_fnv_str(h, path);
    for (int i = 0; i < nflags; i++) h = hit_fnv_str(h, flags[i]);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) out[i] = digits[(h >> (60 - 4 * i)) & 15];
    out[16] = '\0';
}

#endif
