"""Ruby gem's API and start-up: start/stop/flush/stats and the block form, options and variables,
one clear error for a bad value (raised by start; one line and an unprofiled program under
auto-start), the Railtie's opt-out, `otelprof run`."""
import os
import re
import subprocess

from rbrun import build_lib, otlp_samples, ruby, run_rb


def rb(code, tmp_path, env=None):
    return run_rb(["-rotelprof", "-e", code], tmp_path, env=env)


def test_start_stop_flush_stats_block(tmp_path):
    r = rb("""
x = 0
p Otelprof.running?
p Otelprof.start(interval: "5ms", formats: %w[otlp folded], service_name: "api-test")
p Otelprof.running?
begin
  Otelprof.start
rescue Otelprof::Error => e
  puts "again: #{e.message}"
end
t = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
x += 1 while Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID) - t < 0.3
p Otelprof.flush
s = Otelprof.stats
puts "taken #{s[:samples_taken]} written #{s[:profiles_written]} threads #{s[:threads_registered]}"
p Otelprof.stop
p Otelprof.stop
p Otelprof.running?
r = Otelprof.profile(mode: :wall, interval: "10ms") { sleep 0.2; Otelprof.running? }
p r, Otelprof.running?
begin
  Otelprof.profile { raise "boom" }
rescue RuntimeError
  p Otelprof.running?
end
""", tmp_path)
    assert r.rc == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["false", "true", "true"], lines
    assert lines[3] == "again: otelprof: already started", lines
    assert lines[4] == "true"  # flush wrote a profile
    taken, written, threads = map(int, re.search(r"taken (\d+) written (\d+) threads (\d+)", r.stdout).groups())
    # 0.3 s of CPU at 5 ms: 10 runs took 58 .. 60 samples.
    assert taken >= 40 and written >= 1 and threads >= 1, r.stdout
    assert lines[6:9] == ["true", "false", "false"], lines
    assert lines[9:11] == ["true", "false"], lines  # the block ran profiled; stopped after it
    assert lines[11] == "false", lines  # stopped when the block raised
    # The first run's options: its service name, only the formats asked for (the block forms
    # that followed wrote with the defaults).
    first = r.files("api-test-*")
    assert {f.split(".", 1)[1] for f in map(os.path.basename, first)} == {"otlp.pb", "folded"}, first
    otlp_samples(r)


def test_bad_values_raise_one_clear_error(tmp_path):
    r = rb("""
[{interval: "1h"}, {mode: :fast}, {bogus: 1}, {max_depth: nil}, {formats: %w[otlp xml]}].each do |opts|
  begin
    Otelprof.start(**opts)
    puts "started?!"
  rescue ArgumentError => e
    puts e.message
  end
end
p Otelprof.running?
""", tmp_path)
    assert r.rc == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('otelprof: interval="1h" is invalid: expected a duration'), lines[0]
    assert lines[1].startswith('otelprof: mode="fast" is invalid: expected cpu, wall or off'), lines[1]
    assert lines[2].startswith('otelprof: unknown option "bogus"'), lines[2]
    assert lines[3] == "otelprof: option max_depth: nil is not a value (leave it out instead)", lines[3]
    assert lines[4].startswith('otelprof: formats="otlp,xml" is invalid'), lines[4]
    assert lines[5] == "false"
    assert r.files("*") == []


def test_variables_and_disabled(tmp_path):
    r = rb("p Otelprof.start; sleep 0.3; p Otelprof.stop", tmp_path / "a",
           env={"OTELPROF_MODE": "wall", "OTEL_SERVICE_NAME": "from-env", "OTELPROF_FORMATS": "folded"})
    assert r.rc == 0 and r.stdout.split() == ["true", "true"], r.stdout + r.stderr
    folded = r.files("from-env-*.folded")
    assert len(folded) == 1 and "Kernel#sleep" in open(folded[0]).read()
    # An option given to start wins over its variable.
    r = rb("Otelprof.start(service_name: 'from-option'); Otelprof.stop", tmp_path / "b",
           env={"OTEL_SERVICE_NAME": "from-env", "OTELPROF_FORMATS": "folded"})
    assert r.rc == 0 and len(r.files("from-option-*.folded")) == 1, r.files("*")
    for env in ({"OTEL_SDK_DISABLED": "true"}, {"OTELPROF_DISABLED": "1"}, {"OTELPROF_MODE": "off"}):
        r = rb("p Otelprof.start; p Otelprof.running?", tmp_path / "c", env=env)
        assert r.rc == 0 and r.stdout.split() == ["false", "false"], (env, r.stdout, r.stderr)


def test_autostart_bad_value_one_line_program_runs(tmp_path):
    r = run_rb(["-rotelprof/autostart", "-e", "puts 'program ran'; p Otelprof.running?"], tmp_path,
               env={"OTELPROF_INTERVAL": "5years"})
    assert r.rc == 0, r.stderr
    assert r.stdout.splitlines() == ["program ran", "false"]
    assert r.stderr.splitlines() == [
        'otelprof: OTELPROF_INTERVAL="5years" is invalid: expected a duration like 10ms, 500us or 1s '
        'between 100us and 10s (profiling is off)'], r.stderr
    r = run_rb(["-rotelprof/autostart", "-e", "p Otelprof.running?"], tmp_path, env={"OTELPROF_AUTOSTART": "false"})
    assert r.rc == 0 and r.stdout.strip() == "false" and r.stderr == "", (r.stdout, r.stderr)


def test_launcher_runs_a_command_profiled(tmp_path):
    # The launcher of the freshly built lib (exe/otelprof is its three-line wrapper, run from the
    # installed gem by test_ruby_gem.py): it puts its own lib on RUBYOPT's load path.
    lib = build_lib()
    launcher = [ruby(), "-I", lib, "-rotelprof/launcher", "-e", "Otelprof::Launcher.main(ARGV)", "--"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "OTELPROF"))}
    out = str(tmp_path / "out")
    script = tmp_path / "work.rb"
    script.write_text("def busy_fn\n  t = Time.now\n  x = 0\n  x += 1 while Time.now - t < 0.4\nend\n"
                      "busy_fn\nputs ARGV.inspect\n")
    p = subprocess.run(launcher + ["run", "--output-dir", out, "--service-name", "launched",
                        "--interval", "5ms", str(script), "-v", "--mode", "x"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # The script's own arguments reach it untouched.
    assert p.stdout.strip() == '["-v", "--mode", "x"]', p.stdout
    folded = [f for f in os.listdir(out) if f.startswith("launched-") and f.endswith(".folded")]
    assert len(folded) == 1, os.listdir(out)
    assert "Object#busy_fn" in open(os.path.join(out, folded[0])).read()
    # A command after --, and the options as variables for every Ruby it starts.
    p = subprocess.run(launcher + ["run", "--mode", "wall", "--", ruby(), "-e",
                        "p [Otelprof.running?, ENV['OTELPROF_MODE']]"],
                       env=env, capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert p.returncode == 0 and p.stdout.strip() == '[true, "wall"]', (p.stdout, p.stderr)
    # Usage errors: exit status 2 and one line naming the problem.
    for args, why in ((["run"], "name a command"), (["run", "--bogus", "x"], "invalid option: --bogus"),
                      (["profile"], 'unknown command "profile"')):
        p = subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and why in p.stderr, (args, p.stderr)


def test_railtie_when_rails_is_loaded_after_the_gem(tmp_path):
    # `otelprof run` and RUBYOPT load the gem before the application loads Rails: the Railtie
    # still exists before the application's class body configures config.otelprof.
    r = run_rb(["-rotelprof", "-e", """
require "action_controller/railtie"
class DemoApp < Rails::Application
  config.eager_load = false
  config.logger = Logger.new(nil)
  config.secret_key_base = "x"
  config.otelprof.options = {formats: "folded"}
end
Rails.application.initialize!
p Otelprof.running?
"""], tmp_path, env={"OTELPROF_AUTOSTART": "false"})
    assert r.rc == 0 and r.stdout.strip() == "false", (r.stdout, r.stderr[-2000:])
    r = run_rb(["-rotelprof", "-e", """
require "action_controller/railtie"
class DemoApp < Rails::Application
  config.eager_load = false
  config.logger = Logger.new(nil)
  config.secret_key_base = "x"
  config.otelprof.options = {formats: "folded"}
end
Rails.application.initialize!
p Otelprof.running?
"""], tmp_path / "on")
    assert r.rc == 0 and r.stdout.strip() == "true", (r.stdout, r.stderr[-2000:])
    # Named after the application, in the formats its configuration asked for.
    names = [os.path.basename(f) for f in r.files("*")]
    assert len(names) == 1 and re.fullmatch(r"demo_app-\d+\.folded", names[0]), names
