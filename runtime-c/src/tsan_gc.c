/*
 * The collector's stop-the-world signals in ThreadSanitizer builds (build-runtime.ts --tsan;
 * runtime-c/README.md, "Boehm GC under TSan"). Nothing here exists in the release and ASan
 * builds.
 *
 * Boehm GC stops the world by sending every registered thread its suspend signal; the handler
 * acknowledges (a semaphore) and waits in sigsuspend for the restart signal. Under TSan:
 *
 * - TSan holds an asynchronous signal back until the thread next enters one of its
 *   interceptors, and runs it from there. A thread blocked in pthread_mutex_lock on the
 *   collector's own allocation lock (held by the collecting thread for the whole collection)
 *   never gets there: the collection waited for it forever. TSan runs the synchronous signals
 *   (SIGSEGV, SIGSYS, ...) at once, so the collector suspends with SIGSYS, which nothing in the
 *   runtime or a program uses (seccomp's SIGSYS kills the process with its own action anyway).
 *
 * - "At once" includes the middle of TSan's own runtime. For SIGSYS, TSan's handler first
 *   acquires the signal's synchronisation object, which takes the thread's TSan slot lock. A
 *   thread interrupted while it holds that lock (switching its trace part, creating a fiber,
 *   looking up a mutex's sync object: any TSan call that records an event) waits for itself: it
 *   never acknowledges, the collector waits for it, and every other thread waits for the
 *   collector. Seen in 12 of 400 runs of fibers/gc_parked.osp with a 100 KB initial heap (the
 *   stacks: the interrupted frame in TraceSwitchPartImpl, SlotLock, MetaMap::GetSync or
 *   FiberCreate; above it sighandler -> CallUserSignalHandler -> Acquire -> SlotLock), as a
 *   silent hang or libgc's "Signals delivery fails constantly" abort (a thread interrupted while
 *   its fiber context is being created fails TSan's CHECK on its slot instead). Only a TSan build
 *   can do this: the lock and the handler taking it are TSan's; the release and ASan builds use
 *   libgc's own signals and handler, and 12 fiber programs ran 20 to 30 times each under the same
 *   load without a hang. So the suspend
 *   signal enters here first, installed directly with the kernel: interrupted inside TSan's
 *   runtime, the signal is declined (the thread runs on and leaves the runtime); anywhere else
 *   it goes on to TSan's handler and the collector's, as before. libgc re-sends the suspend signal every
 *   100 ms to each thread that has not acknowledged (GC_retry_signals, on unless
 *   GC_NO_RETRY_SIGNALS is set), so a declined thread is stopped at the next try that finds it
 *   outside the runtime.
 *
 * - The restart signal arriving inside that sigsuspend would be held back too and run from
 *   TSan's pending-signal routine, which saves the thread's mask in one slot per thread: nested
 *   in a suspend handler itself run from that routine, it saved the all-blocked mask over the
 *   real one, and the thread ran on with every signal blocked. The restart handler is the
 *   collector's own (not instrumented; it only notes the signal), so it is installed directly
 *   with the kernel too, past TSan's interceptor, and never nests.
 */
#include "runtime.h"

#if defined(__SANITIZE_THREAD__)

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

void osp_rt_tsan_gc_signals_before_init(void) { GC_set_suspend_signal(SIGSYS); }

/* The kernel's struct sigaction (x86-64): the one rt_sigaction takes, unlike glibc's. */
#define KERNEL_SA_RESTORER 0x04000000UL /* x86-64 <asm/signal.h>; glibc does not export it */
struct kernel_sigaction {
    union {
        void (*handler)(int);
        void (*action)(int, siginfo_t *, void *); /* SA_SIGINFO */
    };
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

/* ThreadSanitizer's runtime code, [lo, hi) in run-time addresses; empty when unknown. Written
 * once before the handler is installed, read by osp_tsan_suspend_entry (assembly: `used` keeps them). */
__attribute__((used)) static volatile uintptr_t tsan_text_lo, tsan_text_hi;
/* TSan's own handler, which the kernel ran for the suspend signal before osp_tsan_suspend_entry. */
__attribute__((used)) static void (*volatile tsan_suspend_handler)(int, siginfo_t *, void *);
/* Signals declined so far (a `lock inc` in osp_tsan_suspend_entry; read with an atomic load). */
__attribute__((used)) static uint64_t suspends_declined;

uint64_t osp_rt_tsan_gc_suspends_declined(void) { return __atomic_load_n(&suspends_declined, __ATOMIC_RELAXED); }

/* osp_tsan_suspend_entry(sig, info, uctx): the kernel's handler for the suspend signal. Written in
 * assembly because everything this file's C compiles to calls into TSan (function entry and
 * exit, each memory access, each atomic): from inside TSan's runtime that re-enters it, which is
 * what it must not do (a C version crashed in TraceSwitchPart within its first few runs). It
 * reads the interrupted instruction pointer from the ucontext; inside [tsan_text_lo,
 * tsan_text_hi) it counts and returns, elsewhere it tail-calls TSan's handler with the same
 * arguments and stack. */
void osp_tsan_suspend_entry(int sig, siginfo_t *info, void *uctx);
#define UC_RIP_OFFSET 168 /* offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP]) on x86-64 glibc */
_Static_assert(offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP]) == UC_RIP_OFFSET, "ucontext_t layout");
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
__asm__(".text\n"
        ".globl osp_tsan_suspend_entry\n"
        ".hidden osp_tsan_suspend_entry\n"
        ".type osp_tsan_suspend_entry,@function\n"
        "osp_tsan_suspend_entry:\n"
        "    movq " STRINGIFY(UC_RIP_OFFSET) "(%rdx), %rax\n"
        "    cmpq tsan_text_lo(%rip), %rax\n"
        "    jb 1f\n"
        "    cmpq tsan_text_hi(%rip), %rax\n"
        "    jae 1f\n"
        "    lock incq suspends_declined(%rip)\n"
        "    ret\n"
        "1:  jmp *tsan_suspend_handler(%rip)\n"
        ".size osp_tsan_suspend_entry, .-osp_tsan_suspend_entry\n");

/* ---- where TSan's runtime is ------------------------------------------------------------- */

struct text_search {
    uintptr_t addr;     /* a runtime function */
    uintptr_t lo, hi;   /* the executable segment holding it */
    uintptr_t bias;     /* its object's load bias */
    int object;         /* its index in dl_iterate_phdr's order (0: the executable) */
    int index;
};

static int find_text_segment(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct text_search *s = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (s->addr >= lo && s->addr < lo + ph->p_memsz) {
            s->lo = lo;
            s->hi = lo + ph->p_memsz;
            s->object = s->index;
            s->bias = info->dlpi_addr;
            return 1;
        }
    }
    s->index++;
    return 0;
}

/* A function of the sanitizer runtime (namespaces __tsan, __sanitizer, __interception; the
 * interceptors; the C interface), by its (possibly mangled) name. */
static bool is_runtime_symbol(const char *name) {
    static const char *const marks[] = {"__tsan", "__sanitizer", "__interception", "__interceptor", "__sancov", "__ubsan"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(name, marks[i]) != NULL) return true;
    return false;
}

/* The statically linked runtime (clang links it into the executable, ahead of the program and
 * this archive): from the first to the end of the last of its functions in the symbol table.
 * The range also covers the runtime's static functions and the interceptors' plain aliases
 * (malloc, sem_post) that lie between; false if there is no symbol table. */
static bool runtime_range_in_executable(uintptr_t bias, uintptr_t *lo, uintptr_t *hi) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        (void)close(fd);
        return false;
    }
    size_t size = (size_t)st.st_size;
    const unsigned char *img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    (void)close(fd);
    if (img == MAP_FAILED) return false;
    uintptr_t first = UINTPTR_MAX, end = 0;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    if (eh->e_shoff != 0 && eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) <= size) {
        const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
        for (int i = 0; i < eh->e_shnum; i++) {
            if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
            const Elf64_Shdr *strs = &sh[sh[i].sh_link];
            if (sh[i].sh_offset + sh[i].sh_size > size || strs->sh_offset + strs->sh_size > size) continue;
            const Elf64_Sym *syms = (const Elf64_Sym *)(img + sh[i].sh_offset);
            const char *names = (const char *)img + strs->sh_offset;
            for (size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); k++) {
                if (ELF64_ST_TYPE(syms[k].st_info) != STT_FUNC || syms[k].st_value == 0) continue;
                if (syms[k].st_name >= strs->sh_size || memchr(names + syms[k].st_name, '\0', strs->sh_size - syms[k].st_name) == NULL)
                    continue;
                if (!is_runtime_symbol(names + syms[k].st_name)) continue;
                if (syms[k].st_value < first) first = syms[k].st_value;
                if (syms[k].st_value + syms[k].st_size > end) end = syms[k].st_value + syms[k].st_size;
            }
        }
    }
    if (munmap((void *)img, size) != 0) { /* a leaked read-only mapping; nothing else refers to it */
    }
    if (first >= end) return false;
    *lo = bias + first;
    *hi = bias + end;
    return true;
}

/* `runtime_function`: TSan's signal handler, as the kernel has it (a PLT stub never stands in). */
static void find_tsan_text(uintptr_t runtime_function) {
    struct text_search s = {.addr = runtime_function};
    if (dl_iterate_phdr(find_text_segment, &s) == 0) return;
    if (s.object != 0) {
        /* gcc links the shared libtsan (the C tests): its code is all runtime. */
        tsan_text_lo = s.lo;
        tsan_text_hi = s.hi;
        return;
    }
    uintptr_t lo, hi;
    if (!runtime_range_in_executable(s.bias, &lo, &hi)) return;
    uintptr_t ours = (uintptr_t)&osp_rt_tsan_gc_suspends_declined;
    if ((ours >= lo && ours < hi) || runtime_function < lo || runtime_function >= hi) {
        /* The link put this archive among the runtime's functions (the range would cover our
         * code too), or the names missed the runtime: keep TSan's handling rather than guess. */
        fprintf(stderr, "osprey runtime (ThreadSanitizer build): cannot locate the sanitizer runtime's code\n");
        return;
    }
    tsan_text_lo = lo;
    tsan_text_hi = hi;
}

/* ---- installing the handlers ------------------------------------------------------------- */

static void install_failed(const char *what) {
    fprintf(stderr, "osprey runtime (ThreadSanitizer build): cannot install the collector's %s signal handler: %s\n", what,
            strerror(errno));
}

void osp_rt_tsan_gc_signals_after_init(void) {
    /* Restart: the collector's own handler, with its own flags and mask, as TSan recorded them. */
    int restart = GC_get_thr_restart_signal();
    struct sigaction user;
    struct kernel_sigaction was;
    if (sigaction(restart, NULL, &user) != 0) {
        install_failed("restart");
    } else {
        struct kernel_sigaction direct;
        if (syscall(SYS_rt_sigaction, restart, NULL, &was, sizeof(uint64_t)) != 0) {
            install_failed("restart");
        } else {
            direct = was;
            direct.handler = user.sa_handler;
            direct.flags = (unsigned long)user.sa_flags | (was.flags & KERNEL_SA_RESTORER);
            memcpy(&direct.mask, &user.sa_mask, sizeof direct.mask);
            if (syscall(SYS_rt_sigaction, restart, &direct, NULL, sizeof(uint64_t)) != 0) install_failed("restart");
        }
    }
    /* Suspend: osp_tsan_suspend_entry in front of TSan's wrapper (which keeps calling the collector's). */
    int suspend = GC_get_suspend_signal();
    if (syscall(SYS_rt_sigaction, suspend, NULL, &was, sizeof(uint64_t)) != 0) {
        install_failed("suspend");
        return;
    }
    if (!(was.flags & SA_SIGINFO)) {
        /* TSan always installs its wrapper with SA_SIGINFO; anything else is not its wrapper. */
        fprintf(stderr, "osprey runtime (ThreadSanitizer build): the collector's suspend signal has no ThreadSanitizer handler\n");
        return;
    }
    find_tsan_text((uintptr_t)was.action);
    tsan_suspend_handler = was.action;
    struct kernel_sigaction entry = was;
    entry.action = osp_tsan_suspend_entry;
    if (syscall(SYS_rt_sigaction, suspend, &entry, NULL, sizeof(uint64_t)) != 0) install_failed("suspend");
}

#endif
