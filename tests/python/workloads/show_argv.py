"""Workload for the launcher: prints the command line it was given (as JSON, after "argv "),
then sleeps a little in a named function so that a wall-clock profile has samples of it.
Runs as a script or as a module (-m show_argv with this directory on PYTHONPATH)."""
import json
import sys
import time


def argv_sleeper(secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        time.sleep(0.01)


if __name__ == "__main__":
    print("argv " + json.dumps(sys.argv[1:]))
    print("name " + __name__)
    argv_sleeper(0.3)
