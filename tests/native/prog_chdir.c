/* Workload: started in one directory, changes into the directory named by argv[1], burns CPU
 * there across several export intervals, forks a child that burns and exits normally, waits for it
 * and exits. A relative OTELPROF_OUTPUT_DIR must still name the directory it named at start. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burn.h"

__attribute__((noinline)) uint64_t parent_work(void) { return spin_cpu(600000000); }
__attribute__((noinline)) uint64_t child_work(void) { return spin_cpu(300000000); }

int main(int argc, char **argv) {
    if (argc != 2 || chdir(argv[1]) != 0) {
        perror("prog_chdir: chdir");
        return 2;
    }
    parent_work();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        child_work();
        return 0;
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("parent %d child %d\n", (int)getpid(), (int)pid);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
