"""Starts argv[2] children (default 300) with argv[1] (default all, in turn): spawnv (os.spawnv),
fork-execv (os.fork then os.execv), preexec (subprocess with a preexec_fn), each exec'ing
/bin/true, and the forked child doing ~2 ms of Python work first (as a real preexec step would).
Prints "children N killed K failed F"."""
import os
import signal
import subprocess
import sys
import time

METHODS = ["spawnv", "fork-execv", "preexec"]


def busy(seconds=0.002):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run_one(method):
    if method == "spawnv":
        return os.spawnv(os.P_WAIT, "/bin/true", ["true"])
    if method == "fork-execv":
        pid = os.fork()
        if pid == 0:
            try:
                busy()
                os.execv("/bin/true", ["true"])
            finally:
                os._exit(127)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if method == "preexec":
        return subprocess.run(["/bin/true"], preexec_fn=busy).returncode
    raise SystemExit(f"unknown method {method}")


def main():
    method = sys.argv[1] if len(sys.argv) > 1 else "all"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    killed = failed = 0
    for i in range(n):
        m = METHODS[i % len(METHODS)] if method == "all" else method
        rc = run_one(m)
        if rc < 0:
            killed += 1
            print(f"child {i} ({m}) killed by {signal.Signals(-rc).name}", file=sys.stderr)
        elif rc != 0:
            failed += 1
    print(f"children {n} killed {killed} failed {failed}")


if __name__ == "__main__":
    main()
