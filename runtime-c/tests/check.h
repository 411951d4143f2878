/*
 * A minimal test harness shared by the runtime's C tests: CHECK counts a case, prints the
 * failing ones with their location, and check_summary() prints "N passed, M failed" and gives
 * the exit status (non-zero on any failure).
 */
#ifndef OSP_TEST_CHECK_H
#define OSP_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            check_passed++;                                                           \
        } else {                                                                      \
            check_failed++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* Does the string contain the fragment? (NULL-safe) */
static inline int check_contains(const char *s, const char *fragment) {
    return s != NULL && strstr(s, fragment) != NULL;
}

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    fflush(stdout);
    return check_failed != 0;
}

#endif /* OSP_TEST_CHECK_H */
