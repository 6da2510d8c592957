"""An application that uses SIGPROF itself: argv[1] handler (its own handler and ITIMER_PROF at
20 ms), handler-notimer, dfl or ign; argv[2] before or after otelprof.start(), or none (not
profiled). Burns 1.5 s of CPU, prints "calls N cpu_ms M samples S"."""
import signal
import sys
import time

import otelprof

calls = 0


def on_sigprof(signum, frame):
    global calls
    calls += 1


def apply(what):
    if what.startswith("handler"):
        signal.signal(signal.SIGPROF, on_sigprof)
    elif what == "dfl":
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
    else:
        signal.signal(signal.SIGPROF, signal.SIG_IGN)
    if what == "handler":
        signal.setitimer(signal.ITIMER_PROF, 0.02, 0.02)


def app_work(seconds):
    end = time.thread_time() + seconds
    x = 1
    while time.thread_time() < end:
        for _ in range(2000):
            x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x


def main():
    what, when = sys.argv[1], sys.argv[2]
    if when in ("before", "none"):
        apply(what)
    if when != "none":
        otelprof.start()
    if when == "after":
        apply(what)
    cpu0 = time.process_time()  # what ITIMER_PROF counts: every thread, the profiler's included
    app_work(1.5)
    cpu = time.process_time() - cpu0
    signal.setitimer(signal.ITIMER_PROF, 0, 0)
    samples = otelprof.stats().get("samples_taken", 0) if when != "none" else 0
    print(f"calls {calls} cpu_ms {int(cpu * 1000)} samples {samples}")
    if when != "none":
        otelprof.stop()


if __name__ == "__main__":
    main()
