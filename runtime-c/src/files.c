/*
 * File built-ins of docs/guide/14-builtins.md#files. Paths are relative to the working directory. Every
 * failure is an Error whose message names the function, the path and the system's reason.
 */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

OspResult osp_file_write(const char *path, const char *content) {
    if (path == NULL || content == NULL) return osp_result_errorf("writeFile: the %s is missing (null pointer)", path == NULL ? "path" : "content");
    OspResult refused;
    if (osp_str_refuse_nul("writeFile", "path", path, &refused)) return refused;
    FILE *f = fopen(path, "wb");
    if (f == NULL) return osp_result_errorf("writeFile: cannot open '%s' for writing: %s", path, strerror(errno));
    size_t n = osp_str_len(content); /* every byte, NUL bytes included */
    if (n > 0 && fwrite(content, 1, n, f) != n) {
        int err = errno;
        if (fclose(f) != 0) {
            /* The write error is the one to report. */
        }
        return osp_result_errorf("writeFile: cannot write '%s': %s", path, strerror(err));
    }
    if (fclose(f) != 0) return osp_result_errorf("writeFile: cannot finish writing '%s': %s", path, strerror(errno));
    return osp_result_success(0);
}

OspResult osp_file_read(const char *path) {
    if (path == NULL) return osp_result_errorf("readFile: the path is missing (null pointer)");
    OspResult refused;
    if (osp_str_refuse_nul("readFile", "path", path, &refused)) return refused;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return osp_result_errorf("readFile: cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = GC_MALLOC_ATOMIC(cap);
    if (buf == NULL) {
        if (fclose(f) != 0) {
            /* Nothing more to report than the allocation failure. */
        }
        return osp_result_errorf("readFile: out of memory reading '%s'", path);
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap * 2;
            char *nbuf = GC_REALLOC(buf, ncap);
            if (nbuf == NULL) {
                if (fclose(f) != 0) {
                    /* Nothing more to report than the allocation failure. */
                }
                return osp_result_errorf("readFile: out of memory reading '%s' (%zu bytes so far)", path, len);
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int err = errno;
        if (fclose(f) != 0) {
            /* The read error is the one to report. */
        }
        return osp_result_errorf("readFile: cannot read '%s': %s", path, strerror(err));
    }
    if (fclose(f) != 0) return osp_result_errorf("readFile: cannot close '%s': %s", path, strerror(errno));
    return osp_result_success((int64_t)(intptr_t)osp_gc_strndup(buf, len));
}

OspResult osp_file_delete(const char *path) {
    if (path == NULL) return osp_result_errorf("deleteFile: the path is missing (null pointer)");
    OspResult refused;
    if (osp_str_refuse_nul("deleteFile", "path", path, &refused)) return refused;
    if (unlink(path) != 0) {
        int err = errno;
        if (err == EISDIR || err == EPERM) {
            struct stat st;
            if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
                return osp_result_errorf("deleteFile: '%s' is a directory, not a file", path);
        }
        return osp_result_errorf("deleteFile: cannot delete '%s': %s", path, strerror(err));
    }
    return osp_result_success(0);
}

OspResult osp_directory_create(const char *path) {
    if (path == NULL) return osp_result_errorf("createDirectory: the path is missing (null pointer)");
    OspResult refused;
    if (osp_str_refuse_nul("createDirectory", "path", path, &refused)) return refused;
    if (mkdir(path, 0777) != 0) {
        int err = errno;
        if (err == EEXIST) return osp_result_errorf("createDirectory: '%s' already exists", path);
        return osp_result_errorf("createDirectory: cannot create '%s': %s", path, strerror(err));
    }
    return osp_result_success(0);
}

int64_t osp_file_exists(const char *path) {
    /* No file's path holds a NUL byte: such a String names nothing that exists. */
    if (path == NULL || osp_str_has_nul(path)) return 0;
    struct stat st;
    return stat(path, &st) == 0 ? 1 : 0;
}
