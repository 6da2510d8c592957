/* Workload: argv[2] children (default 250) made with argv[1] (default all, in turn):
 *   fork-execve fork-execv fork-execvp fork-execl fork-execle fork-execlp vfork-execve posix-spawn.
 * A forked child spins ~1.5 ms first (like a preexec step), so the profiler restarted in it has
 * time to signal it before exec. Children exec /bin/true without LD_PRELOAD (the hazard is a
 * signal pending across exec; the new image's own profiling is not the point). Prints
 * "children N killed K failed F", killed naming the signal of the first death. */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burn.h"

extern char **environ;

static const char *const methods[] = {"fork-execve", "fork-execv", "fork-execvp", "fork-execl",
                                      "fork-execle", "fork-execlp", "vfork-execve", "posix-spawn"};
#define NMETHODS (int)(sizeof methods / sizeof methods[0])

static char *clean_env[] = {"PATH=/usr/bin:/bin", NULL};

static void child_exec(int m) {
    unsetenv("LD_PRELOAD"); /* for the variants that pass on environ */
    char *argv[] = {"true", NULL};
    switch (m) {
    case 0: execve("/bin/true", argv, clean_env); break;
    case 1: execv("/bin/true", argv); break;
    case 2: execvp("true", argv); break;
    case 3: execl("/bin/true", "true", (char *)NULL); break;
    case 4: execle("/bin/true", "true", (char *)NULL, clean_env); break;
    case 5: execlp("true", "true", (char *)NULL); break;
    }
    _exit(127);
}

static pid_t start_child(int m) {
    if (m == 7) {
        pid_t pid;
        char *argv[] = {"true", NULL};
        return posix_spawn(&pid, "/bin/true", NULL, NULL, argv, clean_env) == 0 ? pid : -1;
    }
    if (m == 6) {
        char *argv[] = {"true", NULL};
        pid_t pid = vfork();
        if (pid == 0) {
            execve("/bin/true", argv, clean_env);
            _exit(127);
        }
        return pid;
    }
    pid_t pid = fork();
    if (pid == 0) {
        spin_cpu(1500000); /* ~1.5 ms: past the restarted wall engine's first tick */
        child_exec(m);
    }
    return pid;
}

int main(int argc, char **argv) {
    int only = -1;
    if (argc > 1 && strcmp(argv[1], "all") != 0) {
        for (int i = 0; i < NMETHODS; i++)
            if (strcmp(argv[1], methods[i]) == 0) only = i;
        if (only < 0) {
            fprintf(stderr, "unknown method %s\n", argv[1]);
            return 2;
        }
    }
    int n = argc > 2 ? atoi(argv[2]) : 250;
    int killed = 0, failed = 0, first_sig = 0;
    for (int i = 0; i < n; i++) {
        int m = only >= 0 ? only : i % NMETHODS;
        pid_t pid = start_child(m);
        if (pid < 0) {
            failed++;
            continue;
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0) {}
        if (WIFSIGNALED(st)) {
            if (!killed++) first_sig = WTERMSIG(st);
            fprintf(stderr, "child %d (%s) killed by signal %d\n", i, methods[m], WTERMSIG(st));
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
        }
    }
    printf("children %d killed %d failed %d first_signal %d\n", n, killed, failed, first_sig);
    return 0;
}
