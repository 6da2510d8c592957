/* Workload: burns CPU in parent_work, forks; the child burns in child_work and exits normally;
 * the parent waits and burns again. Each process must write its own profile under its own pid. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burn.h"

__attribute__((noinline)) uint64_t parent_work(void) { return spin_cpu(300000000); }
__attribute__((noinline)) uint64_t child_work(void) { return spin_cpu(400000000); }

int main(void) {
    parent_work();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        child_work();
        printf("child %d\n", (int)getpid());
        return 0;
    }
    parent_work();
    int st = 0;
    waitpid(pid, &st, 0);
    printf("parent %d child %d status %d\n", (int)getpid(), (int)pid, st);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
