/*
 * The full native launcher (built into bin/osprey-launcher at `npm install` by
 * scripts/build-runtime.ts; bin/osprey, bin/launcher/fast.c, starts it for every command it cannot
 * serve from a hit record). It exists for start-up time: Node alone costs about 50 ms of CPU,
 * loading llvm-bindings and the compiler another 60 ms.
 *
 *  1. `osprey run` of a program the build cache holds: the launcher computes the cache key the
 *     compiler stores under (scripts/build-cache.mjs describes the key and the entry layout, and
 *     is the one definition; tests/compiler/launcher.test.ts checks both sides agree), checks the
 *     entry (its manifest: the executable's size and SHA-256, every imported module's SHA-256)
 *     and replaces itself with the executable (execve: arguments, standard streams, signals and
 *     the exit status are the program's own). Before that it writes the hit record
 *     (bin/launcher/hit_record.h) that lets bin/osprey start the same program next time from a
 *     few stat calls, while nothing it depends on changes.
 *  2. `osprey build|run|check` otherwise: the request goes to the user's resident compile server
 *     (compiler/src/cli/server.ts, started here on first use), which answers with the output and
 *     the status of the command, or with the executable to start. A server that cannot be
 *     started, dies, goes silent or answers "stale" never fails the build: the command is then
 *     run directly.
 *  3. Everything else, and every case the launcher cannot vouch for (no or outdated identity
 *     stamp, compiler sources edited since the bundle was built, OSPREY_NO_BUNDLE), runs
 *     `node bin/osprey.mjs ARGS...`, which behaves exactly as before.
 *
 * The compiler's identity comes from build/identity (scripts/compiler-bundle.mjs
 * stampedIdentity), trusted only while every file it vouches for has the size and modification
 * time recorded there and no compiler source is newer than the bundle; Node rewrites it otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* SHA256_Init/Update/Final: OpenSSL 3 deprecates them for EVP, but EVP (and the one-shot SHA256(),
 * built on it) loads the provider machinery and reads openssl.cnf first, about 2 ms of CPU: more
 * than a small program's whole run, which the cache-hit path exists to keep. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hit_record.h"

extern char **environ;

#define CACHE_FORMAT "2"
#define STAMP_FORMAT "osprey-identity 1"
#define PROTOCOL "osprey-compile 1"
enum { KIND_EXIT = 0, KIND_EXEC = 1, KIND_FALLBACK = 2, KIND_STALE = 3 };

static char root[PATH_MAX];

/* ---- small helpers ---------------------------------------------------------------------- */

static const char *env_or_null(const char *name) {
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Unset, empty or "0": off (OSPREY_NO_CACHE, OSPREY_NO_BUNDLE, ... as bin/osprey.mjs reads them). */
static int env_flag(const char *name) {
    const char *v = env_or_null(name);
    return v != NULL && strcmp(v, "0") != 0;
}

static long env_long(const char *name, long fallback) {
    const char *v = env_or_null(name);
    if (v == NULL) return fallback;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end != NULL && *end == '\0' && n > 0 ? n : fallback;
}

static int path_join(char *out, size_t size, const char *a, const char *b) {
    int n = snprintf(out, size, "%s/%s", a, b);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* Reads a whole file (at most 1 GiB) into a malloc'd buffer; NULL on failure. `st_out`, when not
 * NULL, gets the status of the file read (of the open file: the bytes and it belong together). */
static unsigned char *read_file_stat(const char *path, size_t *len, struct stat *st_out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1L << 30)) {
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) break;
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) {
            close(fd);
            *len = n;
            if (st_out != NULL) *st_out = st;
            return buf;
        }
        n += (size_t)r;
    }
    close(fd);
    free(buf);
    return NULL;
}

static unsigned char *read_file(const char *path, size_t *len) {
    return read_file_stat(path, len, NULL);
}

static void sha256_hex(const unsigned char *data, size_t len, char out[65]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, data, len) != 1 || SHA256_Final(md, &ctx) != 1) {
        memset(out, '0', 64); /* never a real digest match: the caller treats it as a miss */
        out[64] = '\0';
        return;
    }
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

/* SHA-256 of a file's bytes (and their file's status, when `st` is not NULL); -1 when it cannot be read. */
static int file_sha256(const char *path, char out[65], size_t *size, struct stat *st) {
    size_t len = 0;
    unsigned char *bytes = read_file_stat(path, &len, st);
    if (bytes == NULL) return -1;
    sha256_hex(bytes, len, out);
    if (size != NULL) *size = len;
    free(bytes);
    return 0;
}

static long long mtime_ns(const struct stat *st) {
    return (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- the direct path: node bin/osprey.mjs ------------------------------------------------ */

static _Noreturn void run_node(int argc, char **argv) {
    char script[PATH_MAX];
    if (path_join(script, sizeof script, root, "bin/osprey.mjs") != 0) {
        fprintf(stderr, "osprey: the installation path is too long\n");
        exit(70);
    }
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "osprey: %s is missing: this launcher finds the compiler beside its own real path, "
                        "so link bin/osprey onto PATH (npm link does) instead of copying it\n", script);
        exit(70);
    }
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (args == NULL) {
        fprintf(stderr, "osprey: out of memory\n");
        exit(70);
    }
    args[0] = "node";
    args[1] = script;
    for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
    execvp("node", args);
    fprintf(stderr, "osprey: cannot start node (needed to compile): %s\n", strerror(errno));
    exit(127);
}

/* ---- the identity stamp ------------------------------------------------------------------ */

#define MAX_FLAGS 64

/* A growing list of formatted lines (never freed: the launcher execs or exits soon). */
struct lines {
    char **line;
    size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static int lines_addf(struct lines *l, const char *fmt, ...) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **bigger = realloc(l->line, cap * sizeof *bigger);
        if (bigger == NULL) return -1;
        l->line = bigger;
        l->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&l->line[l->n], fmt, ap);
    va_end(ap);
    if (r < 0) return -1;
    l->n++;
    return 0;
}

struct identity {
    char compiler[65];
    char runtime_release[65], runtime_asan[65], runtime_inline[65];
    int nflags, nneutral;
    char *flag_arg[MAX_FLAGS], *flag_norm[MAX_FLAGS], *neutral[MAX_FLAGS];
    char *text; /* the stamp, which the strings above point into */
    /* For the hit record: the stamp's own status, the status of every watched file as it was
     * checked, and the freshness lines (bundle-mtime-ns, fresh-file, and each fresh-dir as the
     * list of what its scan found: fresh-root, fresh-entry) to write. */
    struct stat stamp;
    int nwatched;
    char *watched_path[MAX_FLAGS];
    struct stat watched[MAX_FLAGS];
    struct lines fresh;
};

/* 1 when a source under `dir` (a .ts file or a directory) is at least as new as the bundle. Every
 * directory and .ts file looked at goes into `seen` as a fresh-entry line, relative to the
 * directory of depth 0 (`top`), for the hit record: bin/osprey then checks exactly these with one
 * stat each (a file added or removed changes the modification time of a directory listed). */
static int newer_source_in(const char *dir, long long built, int depth, const char *top, struct lines *seen) {
    struct stat st;
    if (depth > 32 || stat(dir, &st) != 0) return 1;
    if (mtime_ns(&st) + 1000000LL >= built) return 1;
    size_t top_len = strlen(top);
    if (lines_addf(seen, "fresh-entry %s", depth == 0 ? "." : dir + top_len + 1) != 0) return 1;
    DIR *d = opendir(dir);
    if (d == NULL) return 1;
    struct dirent *e;
    int newer = 0;
    while (!newer && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[PATH_MAX];
        if (path_join(p, sizeof p, dir, e->d_name) != 0) {
            newer = 1;
            break;
        }
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) { /* a file system without d_type: ask */
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                newer = 1;
                break;
            }
            type = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
        }
        if (type == DT_DIR) {
            newer = newer_source_in(p, built, depth + 1, top, seen);
        } else {
            size_t n = strlen(e->d_name);
            if (n > 3 && strcmp(e->d_name + n - 3, ".ts") == 0) {
                /* Relative to the open directory: one path component to resolve, not the whole path. */
                if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || mtime_ns(&st) + 1000000LL >= built) newer = 1;
                else if (lines_addf(seen, "fresh-entry %s", p + top_len + 1) != 0) newer = 1;
            }
        }
    }
    closedir(d);
    return newer;
}

static int copy_hex(char out[65], const char *s) {
    if (strlen(s) != 64 && strcmp(s, "missing") != 0) return -1;
    snprintf(out, 65, "%s", s);
    return 0;
}

/* Loads build/identity; 0 when it holds for the files as they are now. */
static int load_identity(struct identity *id) {
    memset(id, 0, sizeof *id);
    char path[PATH_MAX], bundle[PATH_MAX];
    if (path_join(path, sizeof path, root, "build/identity") != 0) return -1;
    if (path_join(bundle, sizeof bundle, root, "build/compiler/osprey.mjs") != 0) return -1;
    size_t len = 0;
    char *text = (char *)read_file_stat(path, &len, &id->stamp);
    if (text == NULL) return -1;
    text[len] = '\0';
    id->text = text;
    struct stat st;
    if (stat(bundle, &st) != 0) return -1;
    long long built = mtime_ns(&st);
    char *save = NULL;
    int line_no = 0;
    for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), line_no++) {
        if (line_no == 0) {
            if (strcmp(line, STAMP_FORMAT) != 0) return -1;
        } else if (strncmp(line, "bundle-mtime-ns ", 16) == 0) {
            if (atoll(line + 16) != built || lines_addf(&id->fresh, "%s", line) != 0) return -1;
        } else if (strncmp(line, "fresh-dir ", 10) == 0) {
            if (lines_addf(&id->fresh, "fresh-root %s", line + 10) != 0 || newer_source_in(line + 10, built, 0, line + 10, &id->fresh)) return -1;
        } else if (strncmp(line, "fresh-file ", 11) == 0) {
            if (stat(line + 11, &st) != 0 || mtime_ns(&st) + 1000000LL >= built || lines_addf(&id->fresh, "%s", line) != 0) return -1;
        } else if (strncmp(line, "watch ", 6) == 0) {
            char *end = NULL;
            long long size = strtoll(line + 6, &end, 10);
            if (end == NULL || *end != ' ') return -1;
            long long mtime = strtoll(end + 1, &end, 10);
            if (end == NULL || *end != ' ') return -1;
            if (stat(end + 1, &st) != 0 || (long long)st.st_size != size || mtime_ns(&st) != mtime) return -1;
            if (id->nwatched < MAX_FLAGS) {
                id->watched_path[id->nwatched] = end + 1;
                id->watched[id->nwatched++] = st;
            }
        } else if (strncmp(line, "absent ", 7) == 0) {
            if (stat(line + 7, &st) == 0 || errno != ENOENT) return -1;
        } else if (strncmp(line, "compiler ", 9) == 0) {
            if (copy_hex(id->compiler, line + 9) != 0) return -1;
        } else if (strncmp(line, "runtime release ", 16) == 0) {
            if (copy_hex(id->runtime_release, line + 16) != 0) return -1;
        } else if (strncmp(line, "runtime asan ", 13) == 0) {
            if (copy_hex(id->runtime_asan, line + 13) != 0) return -1;
        } else if (strncmp(line, "runtime inline ", 15) == 0) {
            if (copy_hex(id->runtime_inline, line + 15) != 0) return -1;
        } else if (strncmp(line, "flag ", 5) == 0) {
            char *arg = line + 5, *sp = strchr(arg, ' ');
            if (sp == NULL || id->nflags == MAX_FLAGS) return -1;
            *sp = '\0';
            id->flag_arg[id->nflags] = arg;
            id->flag_norm[id->nflags++] = sp + 1;
        } else if (strncmp(line, "neutral ", 8) == 0) {
            if (id->nneutral == MAX_FLAGS) return -1;
            id->neutral[id->nneutral++] = line + 8;
        } else if (strncmp(line, "runtime ", 8) != 0) {
            return -1; /* a record this launcher does not know: a newer format, let Node decide */
        }
    }
    if (id->compiler[0] == '\0' || id->runtime_release[0] == '\0' || id->runtime_asan[0] == '\0' || id->runtime_inline[0] == '\0') return -1;
    return 0;
}

/* ---- `osprey run` through the build cache ------------------------------------------------- */

struct run_request {
    const char *file;
    char flags[512];
    char *raw_flags[MAX_FLAGS]; /* as given, for the hit record */
    int nraw;
    struct stat source; /* the main file as hashed into the key */
    int verbose;
    int nprogram;
    char **program_args;
};

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* build-cache.mjs normalizeRunFlags, with the flag table of the stamp; -1 for an unknown flag. */
static int normalize_flags(const struct identity *id, char **flags, int n, char *out, size_t size) {
    const char *opt = "opt=fast";
    const char *rest[MAX_FLAGS];
    int nrest = 0;
    for (int i = 0; i < n; i++) {
        int neutral = 0;
        for (int k = 0; k < id->nneutral; k++) neutral |= strcmp(flags[i], id->neutral[k]) == 0;
        if (neutral) continue;
        const char *norm = NULL;
        for (int k = 0; k < id->nflags && norm == NULL; k++) {
            if (strcmp(flags[i], id->flag_arg[k]) == 0) norm = id->flag_norm[k];
        }
        if (norm == NULL) return -1;
        if (strncmp(norm, "opt=", 4) == 0) {
            opt = norm;
            continue;
        }
        int seen = 0;
        for (int k = 0; k < nrest; k++) seen |= strcmp(rest[k], norm) == 0;
        if (!seen && nrest < MAX_FLAGS) rest[nrest++] = norm;
    }
    qsort(rest, (size_t)nrest, sizeof rest[0], cmp_str);
    size_t used = (size_t)snprintf(out, size, "%s", opt);
    for (int k = 0; k < nrest; k++) {
        if (used >= size) return -1;
        used += (size_t)snprintf(out + used, size - used, " %s", rest[k]);
    }
    return used < size ? 0 : -1;
}

/* build-cache.mjs parseRunCommand: 0 and `req` filled for a plain, cacheable run. */
static int parse_run(const struct identity *id, int argc, char **argv, struct run_request *req) {
    memset(req, 0, sizeof *req);
    int i = 1, run = 0, nflags = 0;
    char *flags[MAX_FLAGS];
    if (argc > 1 && strcmp(argv[1], "run") == 0) {
        run = 1;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            req->program_args = argv + i + 1;
            req->nprogram = argc - i - 1;
            break;
        }
        if (strcmp(a, "--run") == 0) {
            run = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            req->verbose = 1;
        } else if (strcmp(a, "--no-cache") == 0) {
            return -1;
        } else if (a[0] == '-') {
            if (nflags == MAX_FLAGS) return -1;
            flags[nflags++] = argv[i];
        } else if (req->file == NULL) {
            req->file = a;
        } else {
            return -1;
        }
    }
    if (!run || req->file == NULL) return -1;
    memcpy(req->raw_flags, flags, sizeof flags[0] * (size_t)nflags);
    req->nraw = nflags;
    return normalize_flags(id, flags, nflags, req->flags, sizeof req->flags);
}

/* build-cache.mjs cacheDir. */
static int cache_dir(char *out, size_t size) {
    const char *explicit_dir = env_or_null("OSPREY_CACHE_DIR");
    int n;
    if (explicit_dir != NULL) {
        if (explicit_dir[0] == '/') {
            n = snprintf(out, size, "%s", explicit_dir);
        } else {
            char cwd[PATH_MAX];
            if (getcwd(cwd, sizeof cwd) == NULL) return -1;
            n = snprintf(out, size, "%s/%s", cwd, explicit_dir);
        }
    } else if (env_or_null("XDG_CACHE_HOME") != NULL) {
        n = snprintf(out, size, "%s/osprey/run", getenv("XDG_CACHE_HOME"));
    } else {
        const char *tmp = env_or_null("TMPDIR");
        if (tmp == NULL) tmp = env_or_null("TMP");
        if (tmp == NULL) tmp = env_or_null("TEMP");
        if (tmp == NULL) tmp = "/tmp";
        size_t len = strlen(tmp);
        if (len > 1 && tmp[len - 1] == '/') len--;
        n = snprintf(out, size, "%.*s/osprey-%u/run", (int)len, tmp, (unsigned)getuid());
    }
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* build-cache.mjs cacheKey. */
static int cache_key(const struct identity *id, struct run_request *req, char key[65]) {
    size_t len = 0;
    unsigned char *source = read_file_stat(req->file, &len, &req->source);
    if (source == NULL) return -1;
    char source_hex[65];
    sha256_hex(source, len, source_hex);
    free(source);
    char runtime[200];
    int sanitize = 0;
    char flags[sizeof req->flags];
    snprintf(flags, sizeof flags, "%s", req->flags);
    char *save = NULL;
    for (char *w = strtok_r(flags, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) sanitize |= strcmp(w, "sanitize") == 0;
    if (sanitize) snprintf(runtime, sizeof runtime, "%s", id->runtime_asan);
    else if (strncmp(req->flags, "opt=release", 11) == 0) snprintf(runtime, sizeof runtime, "%s %s", id->runtime_release, id->runtime_inline);
    else snprintf(runtime, sizeof runtime, "%s", id->runtime_release);
    size_t cap = strlen(req->file) + 1024;
    char *text = malloc(cap);
    if (text == NULL) return -1;
    int n = snprintf(text, cap, "osprey-run-cache " CACHE_FORMAT "\ncompiler %s\nruntime %s\nflags %s\nsource %s\npath %s", id->compiler, runtime, req->flags, source_hex, req->file);
    if (n < 0 || (size_t)n >= cap) {
        free(text);
        return -1;
    }
    sha256_hex((const unsigned char *)text, (size_t)n, key);
    free(text);
    return 0;
}

#define MAX_IMPORTS 256

/* What a verified entry was verified against: the status of each file whose bytes were hashed. */
struct verified_entry {
    char *manifest; /* the import paths point into it */
    struct stat program;
    int nimports; /* -1: more than MAX_IMPORTS, recorded by content only */
    const char *import_path[MAX_IMPORTS];
    struct stat imports[MAX_IMPORTS];
};

/* build-cache.mjs lookup: the entry's program path when every manifest line holds; `verified`
 * then holds what was checked (the caller frees verified->manifest). */
static int lookup_entry(const char *entry, char *program, size_t size, struct verified_entry *verified) {
    memset(verified, 0, sizeof *verified);
    char manifest_path[PATH_MAX];
    if (path_join(manifest_path, sizeof manifest_path, entry, "manifest") != 0) return -1;
    if (path_join(program, size, entry, "program") != 0) return -1;
    size_t len = 0;
    char *manifest = (char *)read_file(manifest_path, &len);
    if (manifest == NULL) return -1;
    manifest[len] = '\0';
    int ok = 1, saw_program = 0, line_no = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); ok && line != NULL; line = strtok_r(NULL, "\n", &save), line_no++) {
        char hex[65];
        if (line_no == 0) {
            ok = strcmp(line, "osprey-run-entry " CACHE_FORMAT) == 0;
        } else if (strncmp(line, "program ", 8) == 0) {
            char *end = NULL;
            long long want = strtoll(line + 8, &end, 10);
            size_t got = 0;
            ok = end != NULL && *end == ' ' && file_sha256(program, hex, &got, &verified->program) == 0 && (long long)got == want && strcmp(hex, end + 1) == 0;
            saw_program = 1;
        } else if (strncmp(line, "import ", 7) == 0 && strlen(line) > 7 + 65) {
            struct stat st;
            ok = line[7 + 64] == ' ' && file_sha256(line + 7 + 65, hex, NULL, &st) == 0 && strncmp(hex, line + 7, 64) == 0;
            if (ok && verified->nimports >= 0 && verified->nimports < MAX_IMPORTS) {
                verified->import_path[verified->nimports] = line + 7 + 65;
                verified->imports[verified->nimports++] = st;
            } else {
                verified->nimports = -1;
            }
        } else {
            ok = 0;
        }
    }
    if (!ok || !saw_program) {
        free(manifest);
        return -1;
    }
    verified->manifest = manifest;
    (void)utimensat(AT_FDCWD, entry, NULL, 0); /* recently used: evicted last */
    return 0;
}

/* ---- the hit record (bin/launcher/hit_record.h) ------------------------------------------- */

/* Whether a file's times lie in a second before `now_sec`: only then can a later change not leave
 * them as they are (the racy-timestamp rule of hit_record.h). */
static int settled(const struct stat *st, time_t now_sec) {
    return st->st_mtim.tv_sec < now_sec && st->st_ctim.tv_sec < now_sec;
}

static int put_identity(FILE *f, const char *what, const struct stat *st) {
    return fprintf(f, "%s %llu %llu %lld %lld %lld", what, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino, (long long)st->st_size, mtime_ns(st),
                   (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec) < 0 ? -1 : 0;
}

/* The status of a file the stamp watched, as checked; NULL when it did not watch it. */
static const struct stat *watched_stat(const struct identity *id, const char *path) {
    for (int i = 0; i < id->nwatched; i++)
        if (strcmp(id->watched_path[i], path) == 0) return &id->watched[i];
    return NULL;
}

/* Writes the hit record of a run whose entry was just verified by content, so the next identical
 * run is decided by bin/osprey from the status of the same files. Nothing is written when a file
 * changed in the current second, or when something cannot be recorded; failures only mean the
 * next run is decided here again. */
static void write_hit_record(const struct identity *id, const struct run_request *req, const char *dir, const char *key, const struct verified_entry *verified) {
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME_COARSE, &now) != 0 || verified->nimports < 0) return;
    /* The compiler and the runtime files this build links, as the stamp vouched for them. */
    const char *depends[4];
    int ndepends = 0;
    char bundle[PATH_MAX], runtime_a[PATH_MAX], runtime_b[PATH_MAX];
    if (path_join(bundle, sizeof bundle, root, "build/compiler/osprey.mjs") != 0) return;
    depends[ndepends++] = bundle;
    int sanitize = 0;
    char flags[sizeof req->flags];
    snprintf(flags, sizeof flags, "%s", req->flags);
    char *save = NULL;
    for (char *w = strtok_r(flags, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) sanitize |= strcmp(w, "sanitize") == 0;
    if (path_join(runtime_a, sizeof runtime_a, root, sanitize ? "build/runtime/asan/libosprey_runtime.a" : "build/runtime/release/libosprey_runtime.a") != 0) return;
    depends[ndepends++] = runtime_a;
    if (!sanitize && strncmp(req->flags, "opt=release", 11) == 0) {
        if (path_join(runtime_b, sizeof runtime_b, root, "build/runtime/release/inline.bc") != 0) return;
        depends[ndepends++] = runtime_b;
    }
    const struct stat *depend_stat[4];
    for (int i = 0; i < ndepends; i++) {
        depend_stat[i] = watched_stat(id, depends[i]);
        if (depend_stat[i] == NULL || !settled(depend_stat[i], now.tv_sec)) return;
    }
    if (!settled(&id->stamp, now.tv_sec) || !settled(&req->source, now.tv_sec) || !settled(&verified->program, now.tv_sec)) return;
    for (int i = 0; i < verified->nimports; i++)
        if (!settled(&verified->imports[i], now.tv_sec) || strchr(verified->import_path[i], '\n') != NULL) return;
    if (strchr(req->file, '\n') != NULL || strchr(root, '\n') != NULL) return;
    for (size_t i = 0; i < id->fresh.n; i++)
        if (strchr(id->fresh.line[i], '\n') != NULL) return;
    for (int i = 0; i < req->nraw; i++)
        if (strchr(req->raw_flags[i], '\n') != NULL) return;

    char hits[PATH_MAX], name[17], final_path[PATH_MAX], tmp[PATH_MAX], stamp_path[PATH_MAX];
    if (path_join(hits, sizeof hits, dir, HIT_RECORD_DIR) != 0 || path_join(stamp_path, sizeof stamp_path, root, "build/identity") != 0) return;
    if (mkdir(hits, 0700) != 0 && errno != EEXIST) return;
    hit_record_name(root, (uint64_t)req->source.st_dev, (uint64_t)req->source.st_ino, req->file, req->raw_flags, req->nraw, name);
    if (path_join(final_path, sizeof final_path, hits, name) != 0) return;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.%s.%d.tmp", hits, name, (int)getpid()) >= sizeof tmp) return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        (void)unlink(tmp);
        return;
    }
    int bad = fprintf(f, HIT_RECORD_MAGIC "\nroot %s\npath %s\n", root, req->file) < 0;
    for (int i = 0; i < req->nraw; i++) bad |= fprintf(f, "arg %s\n", req->raw_flags[i]) < 0;
    bad |= put_identity(f, "source", &req->source) != 0 || fputc('\n', f) == EOF;
    bad |= put_identity(f, "stat", &id->stamp) != 0 || fprintf(f, " %s\n", stamp_path) < 0;
    for (int i = 0; i < ndepends; i++) bad |= put_identity(f, "stat", depend_stat[i]) != 0 || fprintf(f, " %s\n", depends[i]) < 0;
    for (int i = 0; i < verified->nimports; i++) bad |= put_identity(f, "stat", &verified->imports[i]) != 0 || fprintf(f, " %s\n", verified->import_path[i]) < 0;
    for (size_t i = 0; i < id->fresh.n; i++) bad |= fprintf(f, "%s\n", id->fresh.line[i]) < 0;
    bad |= fprintf(f, "entry %s\n", key) < 0;
    bad |= put_identity(f, "program", &verified->program) != 0 || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, final_path) != 0) (void)unlink(tmp);
}

static void exec_program(const char *program, int nargs, char **args) {
    char **argv = calloc((size_t)nargs + 2, sizeof *argv);
    if (argv == NULL) return;
    argv[0] = (char *)program;
    for (int i = 0; i < nargs; i++) argv[i + 1] = args[i];
    execve(program, argv, environ);
    free(argv); /* vanished between the lookup and here: compile again */
}

/* ---- the compile server ------------------------------------------------------------------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A directory that is ours alone: created 0700 if missing, refused if anyone else can reach in. */
static int private_dir(const char *path) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0) return -1;
    return 0;
}

/* The server's directory: $OSPREY_SERVER_DIR, else $XDG_RUNTIME_DIR/osprey, else <tmp>/osprey-UID/server. */
static int server_dir(char *out, size_t size) {
    const char *explicit_dir = env_or_null("OSPREY_SERVER_DIR");
    if (explicit_dir != NULL) {
        if ((size_t)snprintf(out, size, "%s", explicit_dir) >= size) return -1;
        return private_dir(out);
    }
    char base[PATH_MAX];
    const char *runtime_dir = env_or_null("XDG_RUNTIME_DIR");
    if (runtime_dir != NULL) {
        if ((size_t)snprintf(base, sizeof base, "%s/osprey", runtime_dir) >= sizeof base) return -1;
    } else {
        const char *tmp = env_or_null("TMPDIR");
        if (tmp == NULL) tmp = "/tmp";
        if ((size_t)snprintf(base, sizeof base, "%s/osprey-%u", tmp, (unsigned)getuid()) >= sizeof base) return -1;
    }
    if (private_dir(base) != 0) return -1;
    if (path_join(out, size, base, "server") != 0) return -1;
    return private_dir(out);
}

static int connect_socket(const char *sock_path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(sock_path) >= sizeof addr.sun_path) return -1;
    memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    /* Only a server running as this user is talked to. */
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != getuid()) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Starts a server (detached: its own session, never a child of the program run later) and waits
 * until it says it listens; the caller holds the start lock. */
static int start_server(const char *sock_path) {
    char script[PATH_MAX], log_path[PATH_MAX], idle[32];
    if (path_join(script, sizeof script, root, "build/compiler/server.mjs") != 0) return -1;
    if ((size_t)snprintf(log_path, sizeof log_path, "%s.log", sock_path) >= sizeof log_path) return -1;
    snprintf(idle, sizeof idle, "%ld", env_long("OSPREY_SERVER_IDLE_SECONDS", 600));
    if (unlink(sock_path) != 0 && errno != ENOENT) return -1;
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return -1;
    pid_t child = fork();
    if (child < 0) {
        close(ready[0]);
        close(ready[1]);
        return -1;
    }
    if (child == 0) {
        if (setsid() < 0) _exit(1);
        pid_t server = fork();
        if (server != 0) _exit(server < 0 ? 1 : 0);
        int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (null_fd < 0 || log_fd < 0) _exit(1);
        if (dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(log_fd, 2) < 0 || dup2(ready[1], 3) < 0) _exit(1);
        if (chdir("/") != 0) _exit(1);
        char *args[] = {"node", script, (char *)sock_path, idle, "3", NULL};
        execvp("node", args);
        _exit(127);
    }
    close(ready[1]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    /* The server writes one byte once it listens; end of file first means it died. */
    long timeout = env_long("OSPREY_SERVER_START_TIMEOUT_MS", 20000);
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, (int)timeout)) < 0 && errno == EINTR) {
    }
    char byte = 0;
    ssize_t got = r == 1 ? read(ready[0], &byte, 1) : -1;
    close(ready[0]);
    return got == 1 ? 0 : -1;
}

/* A connection to a live server, started if needed; -1 when there is none to be had. */
static int server_connection(const char *sock_path, int force_start) {
    int fd = force_start ? -1 : connect_socket(sock_path);
    if (fd >= 0) return fd;
    char lock_path[PATH_MAX];
    if ((size_t)snprintf(lock_path, sizeof lock_path, "%s.lock", sock_path) >= sizeof lock_path) return -1;
    int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0) return -1;
    long long deadline = now_ms() + env_long("OSPREY_SERVER_START_TIMEOUT_MS", 20000);
    while (flock(lock, LOCK_EX | LOCK_NB) != 0) {
        if (now_ms() > deadline) {
            close(lock);
            return -1;
        }
        sleep_ms(10);
    }
    /* Another launcher may have started one while we waited for the lock. */
    fd = connect_socket(sock_path);
    if (fd < 0 && start_server(sock_path) == 0) fd = connect_socket(sock_path);
    close(lock); /* releases the lock */
    return fd;
}

struct reply {
    uint32_t status, kind;
    char *exec, *out, *err;
    uint32_t out_len, err_len;
};

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The server at the other end of a connection, for telling a busy server from a hung one. */
struct peer {
    pid_t pid;
    long long cpu; /* utime + stime in clock ticks when last looked at; -1 before */
};

/* Whether the server did any work since the last look: a long synchronous compile (a big program's
 * front end) keeps it from sending its heartbeat but not from using CPU; a stopped, deadlocked or
 * dead server does neither. */
static int peer_progressed(struct peer *peer) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)peer->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ') return 0;
    char state = p[2];
    if (state == 'T' || state == 't' || state == 'Z' || state == 'X') return 0;
    /* Fields after the state: ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime. */
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 4, "%*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return 0;
    long long cpu = (long long)(utime + stime);
    int progressed = peer->cpu < 0 || cpu > peer->cpu;
    peer->cpu = cpu;
    return progressed;
}

/* Reads exactly `len` bytes. After `silence_ms` without any, the server is given up on unless it
 * used CPU meanwhile (then it is working, and the wait goes on). */
static int read_exact(int fd, unsigned char *buf, size_t len, int silence_ms, struct peer *peer) {
    size_t n = 0;
    while (n < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, silence_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0 && peer_progressed(peer)) continue;
        if (r <= 0) return -2; /* hung */
        ssize_t got = read(fd, buf + n, len - n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1; /* the server went away */
        n += (size_t)got;
    }
    return 0;
}

/* Sends the command; 0 with `rep` filled, -1 when the server died or failed, -2 when it hung. */
static int server_request(int fd, const struct identity *id, int argc, char **argv, struct reply *rep) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) return -1;
    mode_t mask = umask(022);
    umask(mask);
    char mask_text[16], argc_text[16], envc_text[16];
    snprintf(mask_text, sizeof mask_text, "%o", (unsigned)mask);
    snprintf(argc_text, sizeof argc_text, "%d", argc - 1);
    int envc = 0;
    while (environ[envc] != NULL) envc++;
    snprintf(envc_text, sizeof envc_text, "%d", envc);
    const char *head[] = {PROTOCOL, id->compiler, cwd, mask_text, argc_text};
    size_t len = 0;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) len += strlen(head[i]) + 1;
    for (int i = 1; i < argc; i++) len += strlen(argv[i]) + 1;
    len += strlen(envc_text) + 1;
    for (int i = 0; i < envc; i++) len += strlen(environ[i]) + 1;
    if (len > 4u * 1024 * 1024) return -1;
    unsigned char *msg = malloc(len + 4), *p = msg + 4;
    if (msg == NULL) return -1;
    msg[0] = (unsigned char)len;
    msg[1] = (unsigned char)(len >> 8);
    msg[2] = (unsigned char)(len >> 16);
    msg[3] = (unsigned char)(len >> 24);
#define PUT(s)                          \
    do {                                \
        size_t l_ = strlen(s) + 1;      \
        memcpy(p, (s), l_);             \
        p += l_;                        \
    } while (0)
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) PUT(head[i]);
    for (int i = 1; i < argc; i++) PUT(argv[i]);
    PUT(envc_text);
    for (int i = 0; i < envc; i++) PUT(environ[i]);
#undef PUT
    size_t off = 0;
    while (off < len + 4) {
        ssize_t w = send(fd, msg + off, len + 4 - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            free(msg);
            return -1;
        }
        off += (size_t)w;
    }
    free(msg);
    /* At least 1.5 s: the heartbeat comes once a second, and while clang runs the server itself
     * uses no CPU. */
    long silence_setting = env_long("OSPREY_SERVER_TIMEOUT_MS", 10000);
    int silence = silence_setting < 1500 ? 1500 : silence_setting > 3600000 ? 3600000 : (int)silence_setting;
    struct peer peer = {.pid = 0, .cpu = -1};
    struct ucred cred;
    socklen_t cred_len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) return -1;
    peer.pid = cred.pid;
    (void)peer_progressed(&peer);
    unsigned char c = '.';
    while (c == '.') {
        int r = read_exact(fd, &c, 1, silence, &peer);
        if (r != 0) return r;
    }
    if (c != 'R') return -1;
    unsigned char h[20];
    int r = read_exact(fd, h, sizeof h, silence, &peer);
    if (r != 0) return r;
    rep->status = le32(h);
    rep->kind = le32(h + 4);
    uint32_t lens[3] = {le32(h + 8), le32(h + 12), le32(h + 16)};
    char **bufs[3] = {&rep->exec, &rep->out, &rep->err};
    for (int i = 0; i < 3; i++) {
        if (lens[i] > (1u << 30)) return -1;
        *bufs[i] = malloc((size_t)lens[i] + 1);
        if (*bufs[i] == NULL) return -1;
        r = read_exact(fd, (unsigned char *)*bufs[i], lens[i], silence, &peer);
        if (r != 0) return r;
        (*bufs[i])[lens[i]] = '\0';
    }
    rep->out_len = lens[1];
    rep->err_len = lens[2];
    return 0;
}

/* Whether builds go through the compile server: OSPREY_NO_SERVER=1 says no, =0 yes; unset, no
 * on CI machines (the CI variable set), where a process outliving the job is unwelcome. */
static int server_wanted(void) {
    const char *v = getenv("OSPREY_NO_SERVER");
    if (v != NULL && v[0] != '\0') return strcmp(v, "0") == 0;
    return env_or_null("CI") == NULL;
}

/* The command through the server; returns only when it must be run directly instead. */
static void via_server(const struct identity *id, int argc, char **argv, const struct run_request *run) {
    /* One server per installation (a user with two checkouts has two compilers): its files are
     * named after a digest of the installation's path. */
    char dir[PATH_MAX], sock_path[PATH_MAX], root_hex[65], name[64];
    sha256_hex((const unsigned char *)root, strlen(root), root_hex);
    snprintf(name, sizeof name, "compile-%.16s.sock", root_hex);
    if (server_dir(dir, sizeof dir) != 0 || path_join(sock_path, sizeof sock_path, dir, name) != 0) return;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = server_connection(sock_path, attempt > 0);
        if (fd < 0) return;
        struct reply rep;
        memset(&rep, 0, sizeof rep);
        int r = server_request(fd, id, argc, argv, &rep);
        if (r == -2) {
            /* Hung: stop it (it is ours: SO_PEERCRED said so) so the next build starts a fresh one. */
            struct ucred cred;
            socklen_t len = sizeof cred;
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid() && cred.pid > 1) kill(cred.pid, SIGKILL);
            (void)unlink(sock_path);
        }
        close(fd);
        if (r != 0 || rep.kind == KIND_FALLBACK || (rep.kind == KIND_EXEC && run == NULL)) return;
        if (rep.kind == KIND_STALE) continue; /* it exits; start one with the current compiler */
        if (rep.kind != KIND_EXIT && rep.kind != KIND_EXEC) return;
        if (write_all(1, rep.out, rep.out_len) != 0 || write_all(2, rep.err, rep.err_len) != 0) exit(1);
        if (rep.kind == KIND_EXEC) {
            exec_program(rep.exec, run->nprogram, run->program_args);
            return; /* evicted meanwhile: compile directly */
        }
        exit((int)rep.status);
    }
}

/* ---- main --------------------------------------------------------------------------------- */

static int find_root(void) {
    char self[PATH_MAX];
    if (realpath("/proc/self/exe", self) == NULL) return -1;
    /* <root>/bin/osprey */
    char *slash = strrchr(self, '/');
    if (slash == NULL) return -1;
    *slash = '\0';
    slash = strrchr(self, '/');
    if (slash == NULL) return -1;
    *slash = '\0';
    snprintf(root, sizeof root, "%s", self[0] ? self : "/");
    return 0;
}

int main(int argc, char **argv) {
    if (find_root() != 0) {
        fprintf(stderr, "osprey: cannot find the installation (/proc/self/exe)\n");
        return 70;
    }
    const char *command = argc > 1 ? argv[1] : "";
    int run_like = strcmp(command, "run") == 0;
    for (int i = 1; i < argc && !run_like; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        run_like = strcmp(argv[i], "--run") == 0;
    }
    int served = run_like || strcmp(command, "build") == 0 || strcmp(command, "check") == 0;
    struct identity id;
    if (!served || env_flag("OSPREY_NO_BUNDLE") || load_identity(&id) != 0) run_node(argc, argv);

    struct run_request req;
    int cacheable = run_like && !env_flag("OSPREY_NO_CACHE") && parse_run(&id, argc, argv, &req) == 0;
    if (cacheable) {
        char dir[PATH_MAX], key[65], entry[PATH_MAX], program[PATH_MAX];
        struct verified_entry verified;
        if (cache_dir(dir, sizeof dir) == 0 && cache_key(&id, &req, key) == 0 && path_join(entry, sizeof entry, dir, key) == 0 &&
            lookup_entry(entry, program, sizeof program, &verified) == 0) {
            write_hit_record(&id, &req, dir, key, &verified);
            free(verified.manifest);
            if (req.verbose) fprintf(stderr, "osprey: cache hit, running %s\n", program);
            exec_program(program, req.nprogram, req.program_args);
        }
    }
    /* A run the cache cannot hold (--no-cache, unknown flags) must run as the compiler's child. */
    if (server_wanted() && (!run_like || cacheable)) via_server(&id, argc, argv, cacheable ? &req : NULL);
    run_node(argc, argv);
}
