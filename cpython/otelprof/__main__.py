"""Launcher: profiles a program without code changes.

    python -m otelprof run [--mode cpu|wall] [--interval 10ms] [--output-dir DIR] ... -- script.py args
    python -m otelprof run [options] -m package.module args
"""
import argparse
import os
import runpy
import sys

import otelprof

_OPTIONS = ("mode", "interval", "export_interval", "output_dir", "formats", "service_name",
            "resource_attributes", "max_depth", "native_frames", "log_level", "endpoint")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m otelprof", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a script or module under the profiler")
    for name in _OPTIONS:
        run.add_argument("--" + name.replace("_", "-"), dest=name, metavar=name.upper())
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module, like python -m")
    run.add_argument("target", nargs=argparse.REMAINDER, help="-- script.py args")
    args = ap.parse_args(argv)

    target = list(args.target)
    if target and target[0] == "--":
        target = target[1:]
    if not args.module and not target:
        ap.error("run: name a script (-- script.py args) or a module (-m module args)")

    options = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    try:
        otelprof.start(**options)
    except (ValueError, RuntimeError) as e:
        # The program still runs, unprofiled, like the native mode does with a bad variable.
        print(str(e), file=sys.stderr)

    if args.module:
        sys.argv = [args.module] + target
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        script = target[0]
        sys.argv = target
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
