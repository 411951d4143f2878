/*
 * Process built-ins of docs/guide/14-builtins.md#processes: spawnProcess / awaitProcess / cleanupProcess.
 *
 * No monitor thread: the child's stdout and stderr are pipes that stay unread until the program
 * calls awaitProcess (or cleanupProcess, or exits). Then the calling thread polls both pipes and
 * runs the callback for each chunk in arrival order, reaps the child and delivers the exit event
 * last, all before returning (deterministic, as docs/guide/14-builtins.md#processes promises). Output a child writes meanwhile
 * waits in the pipe (the child blocks when a pipe is full).
 *
 * The table lives in garbage-collected memory reachable from a static root, so the callback's
 * environment and queued strings stay alive.
 */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { EVENT_STDOUT = 1, EVENT_STDERR = 2, EVENT_EXIT = 3 };

/* Two fibers may await (or clean up) one process at once, and the shutdown hook may run while
 * they do: `run_lock` makes one of them read the pipes, reap the child and deliver the events,
 * and the others wait for it (on their helper threads) and find it reaped. `finished` is
 * published after the exit event was delivered (release), so a caller that sees it set reads
 * the code without the lock and every event came before its awaitProcess returned. Recursive:
 * a callback that awaits its own process runs on the thread holding it (and, from the exit
 * event, finds it reaped). */
typedef struct Process {
    int64_t id;
    pid_t pid;
    int fds[2]; /* stdout, stderr read ends; -1 once at end of file (run_lock) */
    osp_process_event_handler_fn handler;
    void *env;
    pthread_mutex_t run_lock;
    int reaped;          /* waitpid done, exit event being delivered (run_lock) */
    atomic_int finished; /* exit event delivered */
    int released;        /* cleanupProcess ran (run_lock) */
    int64_t exit_code;
} Process;

static pthread_mutex_t table_mutex = PTHREAD_MUTEX_INITIALIZER;
static Process **table; /* GC memory: index id-1 */
static int64_t table_len, table_cap;
static int hook_registered;

static void finish_all(void);

static Process *find(int64_t id) {
    Process *p = NULL;
    pthread_mutex_lock(&table_mutex);
    if (id >= 1 && id <= table_len) p = table[id - 1];
    pthread_mutex_unlock(&table_mutex);
    return p;
}

static void close_fd(int *fd) {
    if (*fd >= 0) {
        if (close(*fd) != 0) {
            /* EINTR/EIO on a pipe read end: the descriptor is released either way. */
        }
        *fd = -1;
    }
}

OspResult osp_process_spawn(const char *command, osp_process_event_handler_fn handler, void *handler_env) {
    if (command == NULL) return osp_result_errorf("spawnProcess: the command is missing (null pointer)");
    if (handler == NULL) return osp_result_errorf("spawnProcess: the callback is missing (null function pointer)");
    if (command[0] == '\0') return osp_result_errorf("spawnProcess: the command is empty; pass a shell command line such as \"ls -l\"");
    OspResult refused;
    if (osp_str_refuse_nul("spawnProcess", "command", command, &refused)) return refused;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return osp_result_errorf("spawnProcess: cannot create a pipe for '%s': %s", command, strerror(errno));
    if (pipe2(err, O_CLOEXEC) != 0) {
        int e = errno;
        close_fd(&out[0]);
        close_fd(&out[1]);
        return osp_result_errorf("spawnProcess: cannot create a pipe for '%s': %s", command, strerror(e));
    }
    posix_spawn_file_actions_t actions;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    /* The runtime blocks SIGTERM/SIGINT/SIGHUP in its threads (signals.c); the child must start
     * with no signal blocked, as any process does, or it could not be stopped. */
    posix_spawnattr_t attrs;
    bool attrs_ready = false;
    if (rc == 0) {
        rc = posix_spawnattr_init(&attrs);
        attrs_ready = rc == 0;
    }
    sigset_t none;
    if (rc == 0 && sigemptyset(&none) != 0) rc = EINVAL;
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attrs, &none);
    if (rc == 0) rc = posix_spawnattr_setflags(&attrs, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    if (rc == 0) {
        char *argv[] = {"sh", "-c", (char *)command, NULL};
        osp_output_lock();
        fflush(stdout); /* the child writes to its own pipes, but keep our order obvious */
        osp_output_unlock();
        rc = posix_spawn(&pid, "/bin/sh", &actions, &attrs, argv, environ);
    }
    if (attrs_ready && posix_spawnattr_destroy(&attrs) != 0) {
        /* Nothing was allocated that matters after the spawn. */
    }
    if (posix_spawn_file_actions_destroy(&actions) != 0) {
        /* Nothing was allocated that matters after the spawn. */
    }
    close_fd(&out[1]);
    close_fd(&err[1]);
    if (rc != 0) {
        close_fd(&out[0]);
        close_fd(&err[0]);
        return osp_result_errorf("spawnProcess: cannot start '/bin/sh -c %s': %s", command, strerror(rc));
    }
    Process *p = GC_MALLOC(sizeof *p);
    if (p == NULL) {
        close_fd(&out[0]);
        close_fd(&err[0]);
        return osp_result_errorf("spawnProcess: out of memory recording process %d", (int)pid);
    }
    pthread_mutexattr_t lock_attrs;
    if (pthread_mutexattr_init(&lock_attrs) != 0 || pthread_mutexattr_settype(&lock_attrs, PTHREAD_MUTEX_RECURSIVE) != 0 ||
        pthread_mutex_init(&p->run_lock, &lock_attrs) != 0) {
        close_fd(&out[0]);
        close_fd(&err[0]);
        return osp_result_errorf("spawnProcess: cannot create the lock for process %d", (int)pid);
    }
    (void)pthread_mutexattr_destroy(&lock_attrs);
    p->pid = pid;
    p->fds[0] = out[0];
    p->fds[1] = err[0];
    p->handler = handler;
    p->env = handler_env;
    pthread_mutex_lock(&table_mutex);
    if (table_len == table_cap) {
        int64_t ncap = table_cap ? table_cap * 2 : 8;
        Process **nt = GC_MALLOC((size_t)ncap * sizeof *nt);
        if (nt == NULL) {
            pthread_mutex_unlock(&table_mutex);
            return osp_result_errorf("spawnProcess: out of memory recording process %d", (int)pid);
        }
        if (table_len) memcpy(nt, table, (size_t)table_len * sizeof *nt);
        table = nt;
        table_cap = ncap;
    }
    p->id = table_len + 1;
    table[table_len++] = p;
    int first = !hook_registered;
    hook_registered = 1;
    pthread_mutex_unlock(&table_mutex);
    if (first) osp_rt_at_shutdown(finish_all);
    return osp_result_success(p->id);
}

/* Reads every chunk until both pipes end, calling the callback for each, then reaps the child
 * and delivers the exit event. Runs on the calling thread, with run_lock held. */
static void run_to_exit(Process *p) {
    char buf[4096];
    while (p->fds[0] >= 0 || p->fds[1] >= 0) {
        struct pollfd pfd[2];
        nfds_t n = 0;
        int which[2];
        for (int i = 0; i < 2; i++) {
            if (p->fds[i] < 0) continue;
            pfd[n].fd = p->fds[i];
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            which[n] = i;
            n++;
        }
        osp_output_flush_pending(); /* what the callbacks printed, before waiting for more */
        int ready = poll(pfd, n, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            /* poll cannot fail on valid descriptors otherwise; stop reading rather than spin. */
            for (int i = 0; i < 2; i++) close_fd(&p->fds[i]);
            break;
        }
        for (nfds_t k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int i = which[k];
            ssize_t got = read(p->fds[i], buf, sizeof buf);
            if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (got <= 0) {
                close_fd(&p->fds[i]);
                continue;
            }
            p->handler(p->env, p->id, i == 0 ? EVENT_STDOUT : EVENT_STDERR, osp_gc_strndup(buf, (size_t)got));
        }
    }
    int status = 0;
    pid_t r;
    do {
        r = waitpid(p->pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        p->exit_code = -1;
    else if (WIFEXITED(status))
        p->exit_code = WEXITSTATUS(status);
    else
        p->exit_code = -1; /* killed by a signal */
    p->reaped = 1;
    char code[24];
    int len = snprintf(code, sizeof code, "%lld", (long long)p->exit_code);
    p->handler(p->env, p->id, EVENT_EXIT, osp_gc_strndup(code, len > 0 ? (size_t)len : 0));
    atomic_store_explicit(&p->finished, 1, memory_order_release);
}

/* Waiting for a process (and running its callbacks) parks the calling fiber, not its worker:
 * the wait happens on a helper thread (osp_sched_run_blocking), which then runs the callbacks,
 * still before awaitProcess returns and in arrival order. */
static bool is_finished(Process *p) { return atomic_load_explicit(&p->finished, memory_order_acquire) != 0; }

/* Whoever takes run_lock first runs the process to its end; the others find it finished. */
static void run_to_exit_job(void *arg) {
    Process *p = arg;
    pthread_mutex_lock(&p->run_lock);
    if (!p->reaped && !p->released) run_to_exit(p);
    pthread_mutex_unlock(&p->run_lock);
}

/* Events never awaited are delivered now; then the callback and its environment are let go. */
static void cleanup_job(void *arg) {
    Process *p = arg;
    pthread_mutex_lock(&p->run_lock);
    if (!p->reaped && !p->released) run_to_exit(p);
    p->released = 1;
    p->handler = NULL;
    p->env = NULL;
    pthread_mutex_unlock(&p->run_lock);
}

int64_t osp_process_await(int64_t process_id) {
    Process *p = find(process_id);
    if (p == NULL) return -1;
    if (!is_finished(p)) osp_sched_run_blocking(run_to_exit_job, p);
    return p->exit_code;
}

void osp_process_cleanup(int64_t process_id) {
    Process *p = find(process_id);
    if (p == NULL) return;
    osp_sched_run_blocking(cleanup_job, p);
}

/* At exit: deliver the events of every process nobody awaited or cleaned up. */
static void finish_all(void) {
    for (int64_t id = 1;; id++) {
        Process *p = find(id);
        if (p == NULL) break;
        run_to_exit_job(p);
    }
}
