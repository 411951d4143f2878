/*
 * Runs several commands in turn, round after round (the order rotating every round, so no
 * command always follows the same one), and prints one line per run: the command's index, its
 * CPU time (user + system, from wait4: exact, not sampled at the tick) and its wall time, both in
 * microseconds. Used by scripts/bench/compile-latency.ts for commands of about a millisecond,
 * where spawning each from Node would cost more than the command itself.
 *
 *   alternate ROUNDS -- CMD1 ARGS... -- CMD2 ARGS... [-- ...]
 *
 * Standard output and error of the commands go to /dev/null. Exit status 1 when a command fails.
 * posix_spawn (a vfork underneath) keeps what the child does before its execve, which its rusage
 * counts too, to a minimum.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_COMMANDS 8

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: alternate ROUNDS -- CMD ARGS... [-- CMD ARGS...]\n");
        return 2;
    }
    long rounds = strtol(argv[1], NULL, 10);
    char **commands[MAX_COMMANDS];
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            argv[i] = NULL; /* ends the previous command's argv */
            if (i + 1 < argc && n < MAX_COMMANDS) commands[n++] = argv + i + 1;
        }
    }
    posix_spawn_file_actions_t quiet;
    if (rounds <= 0 || n == 0 || posix_spawn_file_actions_init(&quiet) != 0 ||
        posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0) != 0 || posix_spawn_file_actions_adddup2(&quiet, 1, 2) != 0)
        return 2;
    extern char **environ;
    for (long r = 0; r < rounds; r++) {
        for (int k = 0; k < n; k++) {
            int c = (int)((k + r) % n);
            long long start = now_us();
            pid_t pid;
            int err = posix_spawn(&pid, commands[c][0], &quiet, NULL, commands[c], environ);
            if (err != 0) {
                fprintf(stderr, "alternate: cannot start %s: %s\n", commands[c][0], strerror(err));
                return 1;
            }
            int status = 0;
            struct rusage ru;
            if (wait4(pid, &status, 0, &ru) != pid) return 1;
            long long wall = now_us() - start;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "alternate: %s failed (status %d)\n", commands[c][0], status);
                return 1;
            }
            long long cpu = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
            printf("%d %lld %lld\n", c, cpu, wall);
        }
    }
    return 0;
}
