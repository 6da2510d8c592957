/* SIGNAL CONTEXT. The crash guard: a fault (SIGSEGV, SIGBUS) inside the agent's stack walk ends
 * that sample, never the JVM. AsyncGetCallTrace has crashed JVMs in several JDK updates; a walk
 * that faults now siglongjmps back into walk(), which records the sample as [walk_fault].
 *
 * The JVM faults on purpose all the time (implicit null checks, safepoint polls, stack banging
 * that turns into StackOverflowError), so the guard sits in front of the VM's handler and hands it
 * every fault that is not inside a guarded walk, unchanged: the same signal, siginfo and ucontext,
 * under the same signal mask (the guard is installed with the VM's sa_mask and sa_flags, so the
 * kernel blocks exactly what it would for the VM's handler). A fault costs one relaxed load more.
 *
 * Left off, with the reason logged at info level, when the VM would object or the order would be
 * reversed: under -Xcheck:jni the VM checks that its SIGSEGV handler is still the one it installed
 * and prints a warning on stdout otherwise (unless -XX:+AllowUserSignalHandlers or libjsig turn
 * that check off); with libjsig preloaded our sigaction() is recorded as a handler the VM chains
 * to after its own instead of being installed in front, and a chained handler cannot decline a
 * fault. Walks then run unguarded. */
#include <dlfcn.h>
#include <signal.h>
#include <string.h>

#include "ojv.h"

/* Walks in progress on any thread: while 0, a fault goes to the VM without touching TLS. */
static int guarded_walks;
static __thread sigjmp_buf *tl_jmp;
static struct sigaction vm_segv, vm_bus;
static int installed;

int ojv_guard_active(void) {
    return __atomic_load_n(&installed, __ATOMIC_RELAXED);
}

static void chain(int sig, siginfo_t *si, void *uc) {
    const struct sigaction *vm = sig == SIGBUS ? &vm_bus : &vm_segv;
    if (vm->sa_flags & SA_SIGINFO) {
        vm->sa_sigaction(sig, si, uc);
    } else if (vm->sa_handler != SIG_IGN && vm->sa_handler != SIG_DFL) {
        vm->sa_handler(sig);
    } else {
        /* Nobody handles it: the default action, taken when the faulting instruction reruns. */
        signal(sig, SIG_DFL);
    }
}

static void guard_handler(int sig, siginfo_t *si, void *uc) {
    if (__atomic_load_n(&guarded_walks, __ATOMIC_RELAXED) > 0) {
        sigjmp_buf *jb = tl_jmp;
        if (jb) {
            tl_jmp = NULL;
            /* Back to the mask of the interrupted walk (the kernel blocked sa_mask for this
             * handler), then out: sigsetjmp saved no mask, which keeps walks free of syscalls. */
            pthread_sigmask(SIG_SETMASK, &((ucontext_t *)uc)->uc_sigmask, NULL);
            siglongjmp(*jb, 1);
        }
    }
    chain(sig, si, uc);
}

void ojv_guard_enter(sigjmp_buf *jb) {
    __atomic_fetch_add(&guarded_walks, 1, __ATOMIC_SEQ_CST);
    tl_jmp = jb;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

void ojv_guard_leave(void) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    tl_jmp = NULL;
    __atomic_fetch_sub(&guarded_walks, 1, __ATOMIC_SEQ_CST);
}

static int install_one(int sig, struct sigaction *vm) {
    if (sigaction(sig, NULL, vm) != 0) return -1;
    struct sigaction sa = *vm;
    sa.sa_sigaction = guard_handler;
    sa.sa_flags |= SA_SIGINFO;
    return sigaction(sig, &sa, NULL);
}

int ojv_guard_install(void) {
    if (installed) return 1;
    if (dlsym(RTLD_DEFAULT, "JVM_begin_signal_setting")) {
        op_log_info("crash guard off: libjsig is loaded (it would chain the guard after the VM's handler)");
        return 0;
    }
    if (ojv_vm_flag("CheckJNICalls") == 1 && ojv_vm_flag("AllowUserSignalHandlers") != 1) {
        op_log_info("crash guard off under -Xcheck:jni (the VM checks its SIGSEGV handler; "
                     "-XX:+AllowUserSignalHandlers lets the guard in)");
        return 0;
    }
    if (install_one(SIGSEGV, &vm_segv) != 0) return 0;
    if (install_one(SIGBUS, &vm_bus) != 0) {
        sigaction(SIGSEGV, &vm_segv, NULL);
        return 0;
    }
    __atomic_store_n(&installed, 1, __ATOMIC_RELAXED);
    return 1;
}

/* Puts the VM's handlers back, unless someone installed theirs over ours meanwhile (theirs then
 * still chains to the guard, which keeps handing faults to the VM). */
void ojv_guard_remove(void) {
    if (!installed) return;
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && cur.sa_sigaction == guard_handler)
        sigaction(SIGSEGV, &vm_segv, NULL);
    if (sigaction(SIGBUS, NULL, &cur) == 0 && cur.sa_sigaction == guard_handler)
        sigaction(SIGBUS, &vm_bus, NULL);
    __atomic_store_n(&installed, 0, __ATOMIC_RELAXED);
}
