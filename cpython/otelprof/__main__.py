"""Launcher: profiles a program without code changes.

    python -m otelprof run [--mode cpu|wall] [--interval 10ms] [--output-dir DIR] ... [--] script.py args
    python -m otelprof run [options] -m package.module args

Options of ours come before the program; everything after the script's path, or after
-m module, is the program's own command line and is passed on unchanged (as python -m cProfile
does), so `run -m pytest -v` or `run app.py --mode fast` keep their options.
"""
import argparse
import os
import runpy
import sys

import otelprof

_OPTIONS = ("mode", "interval", "export_interval", "output_dir", "formats", "service_name",
            "resource_attributes", "max_depth", "native_frames", "log_level", "endpoint", "signal")
_FLAGS = ["--" + name.replace("_", "-") for name in _OPTIONS]


class _Parser(argparse.ArgumentParser):
    """Usage errors name us: "otelprof: ...", exit status 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, "otelprof: %s\n" % message)


def _takes_value(arg):
    """True when arg is one of our options (or an unambiguous prefix of one, as argparse
    accepts) written without "=value", so the next argument is its value."""
    if "=" in arg:
        return False
    matches = [f for f in _FLAGS if f.startswith(arg)]
    return arg in _FLAGS or len(matches) == 1


def _split(args):
    """Splits the arguments after "run" into (ours, module, program): ours end at the first
    argument that names the target: "--" (the script follows), "-m MODULE" / "-mMODULE", or the
    first one that is not an option (the script). program is the target's own argv, untouched:
    the script and its arguments, or the module's arguments. module is None for a script; ours
    is returned unparsed, so a missing -m argument is left in ours for argparse to report."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return args[:i], None, args[i + 1:]
        if a == "-m":
            if i + 1 == len(args):
                return args, None, []
            return args[:i], args[i + 1], args[i + 2:]
        if a.startswith("-m") and not a.startswith("--"):
            return args[:i], a[2:], args[i + 1:]
        if a.startswith("-") and a != "-":
            i += 2 if a.startswith("--") and _takes_value(a) else 1
            continue
        return args[:i], None, args[i:]
    return args, None, []


def _parser():
    ap = _Parser(prog="python -m otelprof", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a script or module under the profiler",
                         usage="python -m otelprof run [options] [--] script.py args | "
                               "python -m otelprof run [options] -m module args")
    for name, flag in zip(_OPTIONS, _FLAGS):
        run.add_argument(flag, dest=name, metavar=name.upper())
    run.add_argument("-m", dest="module", metavar="MODULE",
                     help="run a module, like python -m; what follows is the module's")
    return ap, run


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap, run = _parser()
    if not argv or argv[0] != "run":
        ap.parse_args(argv)  # help, or an error naming the command
        return 2
    ours, module, program = _split(argv[1:])
    args = run.parse_args(ours)
    if not module and not program:
        run.error("run: name a script ([--] script.py args) or a module (-m module args)")

    options = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    try:
        otelprof.start(**options)
    except (ValueError, RuntimeError) as e:
        # The program still runs, unprofiled, like the native mode does with a bad variable.
        message = str(e)
        print(message if message.startswith("otelprof:") else "otelprof: " + message, file=sys.stderr)

    if module:
        sys.argv = [module] + program
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = program[0]
        sys.argv = program
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
