/*
 * String built-ins of docs/guide/12-strings-and-display.md#string-functions (`length`, `contains`, `substring`) and `input` (docs/guide/14-builtins.md#input).
 * A String carries its byte length (runtime.h) and may hold NUL bytes; lengths and offsets count bytes.
 */
#include "runtime.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

OspResult osp_string_length(const char *s) {
    if (s == NULL) return osp_result_errorf("length: the string is missing (null pointer)");
    return osp_result_success((int64_t)osp_str_len(s));
}

OspResult osp_string_contains(const char *haystack, const char *needle) {
    if (haystack == NULL || needle == NULL)
        return osp_result_errorf("contains: the %s is missing (null pointer)", haystack == NULL ? "haystack" : "needle");
    size_t needle_len = osp_str_len(needle);
    if (needle_len == 0) return osp_result_success(1);
    return osp_result_success(memmem(haystack, osp_str_len(haystack), needle, needle_len) != NULL ? 1 : 0);
}

OspResult osp_string_substring(const char *s, int64_t start, int64_t end) {
    if (s == NULL) return osp_result_errorf("substring: the string is missing (null pointer)");
    int64_t len = (int64_t)osp_str_len(s);
    /* Clamp both bounds into [0, length] (docs/guide/12-strings-and-display.md#string-functions). */
    if (start < 0) start = 0;
    if (start > len) start = len;
    if (end < 0) end = 0;
    if (end > len) end = len;
    if (start > end) return osp_result_errorf("invalid substring range");
    return osp_result_success((int64_t)(intptr_t)osp_gc_strndup(s + start, (size_t)(end - start)));
}

/* scanf("%ld")-like: skip white space, optional sign, digits; the first non-digit stays unread.
 * End of input or no digits gives 0; a value beyond the Int range saturates. */
static int64_t read_input(void);

static void input_job(void *arg) { *(int64_t *)arg = read_input(); }

/* Reading may wait for a person: the fiber parks, not its worker. */
int64_t osp_input(void) {
    int64_t value = 0;
    osp_sched_run_blocking(input_job, &value);
    return value;
}

static int64_t read_input(void) {
    osp_output_lock();
    if (fflush(stdout) != 0) {
        /* A failed flush loses prompt text only; reading can go on. */
    }
    osp_output_unlock();
    int c;
    do {
        c = getchar();
    } while (c != EOF && isspace(c));
    int negative = 0;
    if (c == '-' || c == '+') {
        negative = c == '-';
        c = getchar();
    }
    uint64_t magnitude = 0;
    const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    int saturated = 0;
    while (c != EOF && isdigit(c)) {
        uint64_t digit = (uint64_t)(c - '0');
        if (!saturated && magnitude > (limit - digit) / 10u) saturated = 1;
        if (!saturated) magnitude = magnitude * 10u + digit;
        c = getchar();
    }
    if (c != EOF && ungetc(c, stdin) == EOF) {
        /* Only one character of push-back is guaranteed; it is the one we need. */
    }
    if (saturated) return negative ? INT64_MIN : INT64_MAX;
    if (negative) return magnitude == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)magnitude;
    return (int64_t)magnitude;
}
