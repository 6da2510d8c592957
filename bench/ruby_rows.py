"""The Ruby rows of bench/run: workloads (bench/ruby/) in the harness's Workload shape and the
profilers in its Profiler shape — otelprof's gem and stackprof (Debian's ruby-stackprof,
mode: :cpu, interval: 10000, i.e. 100 Hz). Rows: one thread with a 70/30 split, 8 threads with the
same split, and the example Rails app on Puma (2 workers, preload) under a bounded load."""
import glob
import os
import re
import shutil
import subprocess

from peers import Otelprof, Profiler, parse_folded
from workloads import Workload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEM = os.path.join(ROOT, "ruby")
RB_SPLIT = {"Object#rb_hot": 0.70, "Object#rb_cold": 0.30}


def _ruby():
    return shutil.which("ruby")


def ruby_workloads(root, quick):
    ruby = _ruby()
    if not ruby:
        if os.environ.get("CI") == "true":
            raise RuntimeError("ruby missing (bash scripts/setup_ruby.sh)")
        return []
    script = os.path.join(root, "bench", "ruby", "workload.rb")
    unit = float(subprocess.run([ruby, script, "calibrate"], capture_output=True, text=True,
                                check=True).stdout.split()[0])
    target = 0.5 if quick else 3.0  # seconds of CPU per run
    units = str(max(1, int(target / unit)))
    return [
        Workload("ruby 1 thread", [ruby, script, "single", units], RB_SPLIT, kind="ruby"),
        Workload("ruby 8 threads", [ruby, script, "threads", units], RB_SPLIT, kind="ruby"),
        # Boot, load and shutdown of a server with waits: the wall ratio is the throughput's; no
        # known split, and no "expected" samples (not CPU-bound).
        Workload("ruby rails puma 2 workers", [ruby, os.path.join(root, "bench", "ruby", "rails_load.rb"),
                                               "40" if quick else "150"], {}, cpu_bound=False, kind="ruby"),
    ]


class OtelprofRuby(Profiler):
    """The gem, built in place (rake compile) and started from the first line with RUBYOPT, as
    `otelprof run` does."""
    name = "otelprof (ruby)"
    built = None

    def unavailable(self):
        if not _ruby():
            return "ruby missing (bash scripts/setup_ruby.sh)"
        if OtelprofRuby.built is None:
            r = subprocess.run(["rake", "compile"], cwd=GEM, capture_output=True, text=True)
            OtelprofRuby.built = None if r.returncode == 0 else "rake compile failed: " + r.stderr[-500:]
        return OtelprofRuby.built

    def env(self, workdir, workload):
        return {"RUBYOPT": f"-I{os.path.join(GEM, 'lib')} -rotelprof/autostart", "OTELPROF_INTERVAL": "10ms",
                "OTELPROF_OUTPUT_DIR": os.path.join(workdir, "out"), "OTELPROF_LOG_LEVEL": "debug",
                "OTEL_SERVICE_NAME": "bench", "OTELPROF_AUTOSTART": "true"}

    def analyse(self, m, workload):
        res = Otelprof.analyse(self, m, workload)
        if len(glob.glob(os.path.join(m.workdir, "out", "*.folded"))) > 1:
            # Several processes (Puma's master and workers): samples of all of them, from the files.
            res["samples"] = sum(res["stacks"].values())
            res["p50_ns"] = res["p99_ns"] = None
            res["note"] = "master + 2 workers; signal path per process in their logs"
        return res


class Stackprof(Profiler):
    """stackprof 0.2 (ruby-stackprof): ITIMER_PROF, frames recorded at the next safe point."""
    name = "stackprof"

    def unavailable(self):
        if not _ruby():
            return "ruby missing"
        r = subprocess.run([_ruby(), "-rstackprof", "-e", ""], capture_output=True)
        return None if r.returncode == 0 else "stackprof missing (apt-get install ruby-stackprof)"

    def env(self, workdir, workload):
        return {"RUBYOPT": "-r" + os.path.join(ROOT, "bench", "ruby", "stackprof_wrap.rb"),
                "STACKPROF_OUT": os.path.join(workdir, "stackprof")}

    def analyse(self, m, workload):
        dumps = glob.glob(os.path.join(m.workdir, "stackprof-*.dump"))
        if not dumps:
            return {"note": "no profile written"}
        folded = os.path.join(m.workdir, "stackprof.folded")
        code = ("d = Marshal.load(File.binread(ARGV[0])); puts \"samples #{d[:samples]}\"; "
                "StackProf::Report.new(d).print_stackcollapse")
        samples = 0
        with open(folded, "w") as out:
            for d in dumps:
                text = subprocess.run([_ruby(), "-rstackprof", "-e", code, d], capture_output=True,
                                      text=True, check=True).stdout
                samples += int(re.match(r"samples (\d+)", text).group(1))
                out.write(text.split("\n", 1)[1] if "\n" in text else "")
        note = "signal path n/a (no self-metrics)"
        if len(dumps) > 1:
            note = f"{len(dumps)} processes; forked workers inherit no timer"
        return {"stacks": parse_folded(folded), "samples": samples, "note": note}


PEERS_RUBY = [Stackprof]
