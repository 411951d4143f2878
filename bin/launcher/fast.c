/*
 * bin/osprey: the first program every `osprey` command starts. It exists for one case, `osprey
 * run` of a program that has not changed since the last run, where it must cost next to nothing
 * next to the program itself: it checks the hit record the full launcher wrote for this source
 * and these flags (bin/launcher/hit_record.h: the format and why it is safe) with a few stat
 * calls and replaces itself with the cached executable. Everything else, and every doubt, goes
 * to the full launcher (bin/osprey-launcher, from bin/launcher/osprey.c) with the arguments
 * untouched, which decides by content, compiles, or runs Node.
 *
 * Freestanding on purpose: no libc, no dynamic linker, no relocations, a few pages. Starting a
 * statically linked glibc program costs more CPU than a small Osprey program's whole run
 * (docs/BENCHMARKS-LANG.md has the figures), so this file makes its own system calls. x86-64
 * Linux only, as the compiler's output.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* AT_EMPTY_PATH */
#endif
#include <asm/unistd.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "hit_record.h"

#define PATH_BUF 4096
#define RECORD_BUF 65536 /* a record lists every import and compiler source; only the pages read are touched */
#define MAX_FLAGS 64

/* ---- system calls ---------------------------------------------------------------------------- */

static long sys6(long n, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
#define SYS(n, a, b, c, d) sys6((n), (long)(a), (long)(b), (long)(c), (long)(d))

static long sys_read(int fd, void *buf, unsigned long len) { return SYS(__NR_read, fd, buf, len, 0); }
static long sys_write(int fd, const void *buf, unsigned long len) { return SYS(__NR_write, fd, buf, len, 0); }
static int sys_close(int fd) { return (int)SYS(__NR_close, fd, 0, 0, 0); }
static int sys_openat(int dirfd, const char *path, int flags) { return (int)SYS(__NR_openat, dirfd, path, flags, 0); }
static int sys_fstatat(int dirfd, const char *path, struct stat *st, int flags) { return (int)SYS(__NR_newfstatat, dirfd, path, st, flags); }
static long sys_readlink(const char *path, char *buf, unsigned long len) { return SYS(__NR_readlink, path, buf, len, 0); }
static long sys_getcwd(char *buf, unsigned long len) { return SYS(__NR_getcwd, buf, len, 0, 0); }
static unsigned sys_getuid(void) { return (unsigned)SYS(__NR_getuid, 0, 0, 0, 0); }
static int sys_utimensat_now(const char *path) { return (int)SYS(__NR_utimensat, AT_FDCWD, path, 0, 0); }
static long sys_execve(const char *path, char *const *argv, char *const *envp) { return SYS(__NR_execve, path, argv, envp, 0); }
static _Noreturn void sys_exit(int status) {
    for (;;) SYS(__NR_exit_group, status, 0, 0, 0);
}

/* The compiler may emit calls to these for struct copies and zeroing. */
void *memset(void *dst, int c, unsigned long n);
void *memcpy(void *dst, const void *src, unsigned long n);
void *memset(void *dst, int c, unsigned long n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
void *memcpy(void *dst, const void *src, unsigned long n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

/* ---- strings ---------------------------------------------------------------------------------- */

static int str_eq(const char *a, const char *b) {
    while (*a != '\0' && *a == *b) a++, b++;
    return *a == *b;
}

static int starts_with(const char *s, const char *prefix) {
    while (*prefix != '\0')
        if (*s++ != *prefix++) return 0;
    return 1;
}

/* Appends `s` at out[*used]; 0, or -1 when it does not fit. */
static int append(char *out, unsigned long size, unsigned long *used, const char *s) {
    unsigned long n = hit_strlen(s);
    if (*used + n >= size) return -1;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
    return 0;
}

static void write_str(int fd, const char *s) { (void)sys_write(fd, s, hit_strlen(s)); }

static const char *getenv_nonempty(char **envp, const char *name) {
    unsigned long n = hit_strlen(name);
    for (char **e = envp; *e != NULL; e++) {
        const char *v = *e;
        if (starts_with(v, name) && v[n] == '=') return v[n + 1] != '\0' ? v + n + 1 : NULL;
    }
    return NULL;
}

/* Unset, empty or "0": off (as bin/osprey.mjs and the full launcher read OSPREY_NO_CACHE ...). */
static int env_flag(char **envp, const char *name) {
    const char *v = getenv_nonempty(envp, name);
    return v != NULL && !str_eq(v, "0");
}

/* An unsigned decimal number up to the next space or the end; -1 when malformed. */
static int parse_u64(const char **p, uint64_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    *p = s;
    *out = v;
    return 0;
}

static void u32_decimal(unsigned v, char out[12]) {
    char tmp[12];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10), v /= 10;
    while (v != 0);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
}

/* ---- the checks --------------------------------------------------------------------------------- */

static uint64_t mtime_ns(const struct stat *st) { return (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec; }
static uint64_t ctime_ns(const struct stat *st) { return (uint64_t)st->st_ctim.tv_sec * 1000000000ULL + (uint64_t)st->st_ctim.tv_nsec; }

/* "DEV INO SIZE MTIME_NS CTIME_NS" at *p against `st`; *p is left after the numbers. */
static int identity_matches(const char **p, const struct stat *st) {
    uint64_t v[5];
    for (int i = 0; i < 5; i++) {
        if (i > 0 && *(*p)++ != ' ') return 0;
        if (parse_u64(p, &v[i]) != 0) return 0;
    }
    return v[0] == (uint64_t)st->st_dev && v[1] == (uint64_t)st->st_ino && v[2] == (uint64_t)st->st_size && v[3] == mtime_ns(st) && v[4] == ctime_ns(st);
}

/* build-cache.mjs cacheDir, as the full launcher computes it. */
static int cache_dir(char **envp, char *out, unsigned long size) {
    unsigned long used = 0;
    out[0] = '\0';
    const char *explicit_dir = getenv_nonempty(envp, "OSPREY_CACHE_DIR");
    if (explicit_dir != NULL) {
        if (explicit_dir[0] != '/') {
            if (sys_getcwd(out, size) <= 0) return -1;
            used = hit_strlen(out);
            if (append(out, size, &used, "/") != 0) return -1;
        }
        return append(out, size, &used, explicit_dir);
    }
    const char *xdg = getenv_nonempty(envp, "XDG_CACHE_HOME");
    if (xdg != NULL) return append(out, size, &used, xdg) == 0 && append(out, size, &used, "/osprey/run") == 0 ? 0 : -1;
    const char *tmp = getenv_nonempty(envp, "TMPDIR");
    if (tmp == NULL) tmp = getenv_nonempty(envp, "TMP");
    if (tmp == NULL) tmp = getenv_nonempty(envp, "TEMP");
    if (tmp == NULL) tmp = "/tmp";
    if (append(out, size, &used, tmp) != 0) return -1;
    if (used > 1 && out[used - 1] == '/') out[--used] = '\0';
    char uid[12];
    u32_decimal(sys_getuid(), uid);
    return append(out, size, &used, "/osprey-") == 0 && append(out, size, &used, uid) == 0 && append(out, size, &used, "/run") == 0 ? 0 : -1;
}

struct request {
    const char *file;
    char *flags[MAX_FLAGS];
    int nflags, verbose;
    int dashdash; /* argv index of "--", or -1 */
};

/* The full launcher's parse_run, flags kept as given; -1 for anything but a plain run. */
static int parse_request(int argc, char **argv, struct request *req) {
    int i = 1, run = 0;
    req->file = 0;
    req->nflags = req->verbose = 0;
    req->dashdash = -1;
    if (argc > 1 && str_eq(argv[1], "run")) {
        run = 1;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (str_eq(a, "--")) {
            req->dashdash = i;
            break;
        }
        if (str_eq(a, "--run")) run = 1;
        else if (str_eq(a, "-v") || str_eq(a, "--verbose")) req->verbose = 1;
        else if (str_eq(a, "--no-cache")) return -1;
        else if (a[0] == '-') {
            if (req->nflags == MAX_FLAGS) return -1;
            req->flags[req->nflags++] = argv[i];
        } else if (req->file == 0) req->file = a;
        else return -1;
    }
    return run && req->file != 0 ? 0 : -1;
}

/* Starts the cached program when the record holds; returns otherwise. */
static void try_hit(int argc, char **argv, char **envp, const char *root) {
    if (env_flag(envp, "OSPREY_NO_CACHE") || env_flag(envp, "OSPREY_NO_BUNDLE")) return;
    struct request req;
    if (parse_request(argc, argv, &req) != 0) return;
    struct stat source, st;
    unsigned uid = sys_getuid();
    if (sys_fstatat(AT_FDCWD, req.file, &source, 0) != 0 || !S_ISREG(source.st_mode)) return;

    char dir[PATH_BUF], path[PATH_BUF], name[17];
    if (cache_dir(envp, dir, sizeof dir) != 0) return;
    hit_record_name(root, (uint64_t)source.st_dev, (uint64_t)source.st_ino, req.file, req.flags, req.nflags, name);
    unsigned long used = 0;
    path[0] = '\0';
    if (append(path, sizeof path, &used, dir) != 0 || append(path, sizeof path, &used, "/" HIT_RECORD_DIR "/") != 0 || append(path, sizeof path, &used, name) != 0) return;

    /* The record: ours alone, read whole. */
    static char record[RECORD_BUF];
    int fd = sys_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    long len = 0;
    if (sys_fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && S_ISREG(st.st_mode) && st.st_uid == uid && (st.st_mode & 022) == 0 && st.st_size < RECORD_BUF) {
        long n;
        while (len < RECORD_BUF - 1 && (n = sys_read(fd, record + len, (unsigned long)(RECORD_BUF - 1 - len))) > 0) len += n;
    }
    sys_close(fd);
    if (len <= 0 || len != st.st_size) return;
    record[len] = '\0';

    /* Every line must hold. */
    int line_no = 0, flag_at = 0, saw_root = 0, saw_path = 0, saw_source = 0, saw_program = 0;
    uint64_t built = 0;
    int have_built = 0;
    int fresh_root = -1; /* not closed on the way out: the program or the full launcher replaces us */
    char entry[PATH_BUF];
    entry[0] = '\0';
    for (char *line = record; *line != '\0'; line_no++) {
        char *end = line;
        while (*end != '\0' && *end != '\n') end++;
        if (*end != '\n') return; /* every line ends with a newline: no torn record */
        *end = '\0';
        const char *p = line;
        if (line_no == 0) {
            if (!str_eq(line, HIT_RECORD_MAGIC)) return;
        } else if (starts_with(line, "root ")) {
            if (!str_eq(line + 5, root)) return;
            saw_root = 1;
        } else if (starts_with(line, "path ")) {
            if (!str_eq(line + 5, req.file)) return;
            saw_path = 1;
        } else if (starts_with(line, "arg ")) {
            if (flag_at >= req.nflags || !str_eq(line + 4, req.flags[flag_at])) return;
            flag_at++;
        } else if (starts_with(line, "source ")) {
            p += 7;
            if (!identity_matches(&p, &source) || *p != '\0') return;
            saw_source = 1;
        } else if (starts_with(line, "stat ")) {
            p += 5;
            const char *numbers = p;
            while (*p != '\0' && !(*p == ' ' && p[1] == '/')) p++; /* the path is absolute */
            if (*p != ' ' || sys_fstatat(AT_FDCWD, p + 1, &st, 0) != 0) return;
            if (!identity_matches(&numbers, &st) || numbers != p) return;
        } else if (starts_with(line, "bundle-mtime-ns ")) {
            p += 16;
            if (parse_u64(&p, &built) != 0 || *p != '\0') return;
            have_built = 1;
        } else if (starts_with(line, "fresh-root ")) {
            /* A directory of compiler sources; the fresh-entry lines after it are relative to it. */
            if (fresh_root >= 0) sys_close(fresh_root);
            fresh_root = sys_openat(AT_FDCWD, line + 11, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (fresh_root < 0) return;
        } else if (starts_with(line, "fresh-entry ")) {
            if (!have_built || fresh_root < 0 || sys_fstatat(fresh_root, line + 12, &st, 0) != 0 || mtime_ns(&st) + 1000000ULL >= built) return;
        } else if (starts_with(line, "fresh-file ")) {
            if (!have_built || sys_fstatat(AT_FDCWD, line + 11, &st, 0) != 0 || mtime_ns(&st) + 1000000ULL >= built) return;
        } else if (starts_with(line, "entry ")) {
            const char *key = line + 6;
            int i = 0;
            for (; key[i] != '\0'; i++)
                if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) return;
            used = 0;
            if (i != 64 || append(entry, sizeof entry, &used, dir) != 0 || append(entry, sizeof entry, &used, "/") != 0 || append(entry, sizeof entry, &used, key) != 0) return;
        } else if (starts_with(line, "program ")) {
            /* The executable is KEY/program of the cache directory, never a path from the record. */
            if (entry[0] == '\0') return;
            used = 0;
            if (append(path, sizeof path, &used, entry) != 0 || append(path, sizeof path, &used, "/program") != 0) return;
            p += 8;
            if (sys_fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_uid != uid || (st.st_mode & 022) != 0 || (st.st_mode & 0100) == 0) return;
            if (!identity_matches(&p, &st) || *p != '\0') return;
            saw_program = 1;
        } else {
            return; /* a line this launcher does not know */
        }
        line = end + 1;
    }
    if (!saw_root || !saw_path || !saw_source || !saw_program || flag_at != req.nflags) return;

    (void)sys_utimensat_now(entry); /* recently used: evicted last */
    if (req.verbose) {
        write_str(2, "osprey: cache hit (unchanged since verified), running ");
        write_str(2, path);
        write_str(2, "\n");
    }
    /* The program's argv: its path, then what follows "--". */
    char *none[2] = {path, 0};
    char **args = none;
    char *saved = 0;
    if (req.dashdash >= 0) {
        saved = argv[req.dashdash];
        argv[req.dashdash] = path;
        args = argv + req.dashdash;
    }
    (void)sys_execve(path, args, envp);
    if (saved != 0) argv[req.dashdash] = saved; /* vanished meanwhile: the full launcher decides */
}

/* ---- entry point ---------------------------------------------------------------------------------- */

__attribute__((used, noreturn)) void osprey_start(long *sp);
__attribute__((used, noreturn)) void osprey_start(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;

    /* The installation: <root>/bin/osprey, from the kernel's record of what was executed (already
     * absolute, symbolic links resolved). */
    static char root[PATH_BUF], full[PATH_BUF];
    long n = sys_readlink("/proc/self/exe", root, sizeof root - 1);
    if (n <= 0) {
        write_str(2, "osprey: cannot find the installation (/proc/self/exe)\n");
        sys_exit(70);
    }
    root[n] = '\0';
    for (int strip = 0; strip < 2; strip++) {
        while (n > 0 && root[n] != '/') n--;
        root[n] = '\0';
    }
    if (n == 0) root[0] = '/', root[1] = '\0';

    unsigned long used = 0;
    full[0] = '\0';
    if (append(full, sizeof full, &used, root) != 0 || append(full, sizeof full, &used, n == 0 ? "bin/osprey-launcher" : "/bin/osprey-launcher") != 0) {
        write_str(2, "osprey: the installation path is too long\n");
        sys_exit(70);
    }
    if (argc > 1) try_hit(argc, argv, envp, root);

    long err = -sys_execve(full, argv, envp);
    write_str(2, "osprey: ");
    write_str(2, full);
    if (err == 2 /* ENOENT */) {
        write_str(2, " is missing: this launcher finds the compiler beside its own real path, so link bin/osprey onto PATH (npm link does) instead of copying it\n");
    } else {
        char code[12];
        u32_decimal((unsigned)err, code);
        write_str(2, " cannot be started (errno ");
        write_str(2, code);
        write_str(2, "): run npm install in the installation to rebuild it\n");
    }
    sys_exit(70);
}

/* The kernel enters here with argc, argv and the environment on the stack. */
__asm__(".text\n.globl _start\n.type _start,@function\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall osprey_start\n\thlt\n");
