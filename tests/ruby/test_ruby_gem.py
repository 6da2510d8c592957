"""The Ruby gem's packaging, offline: `gem build` packs the core into the gem, `gem install --local`
compiles it anywhere, the installed `otelprof` executable profiles a command; a Gemfile with
`gem "otelprof", path: ...` installs with `bundle install --local` (after `rake compile`, since
Bundler does not compile path: gems) and the application requires it under `bundle exec`."""
import glob
import os
import subprocess

from conftest import ROOT
from rbrun import GEM, missing, ruby


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL", "OTELPROF", "GEM_", "BUNDLE", "RUBY"))}
    env.update(MAKEFLAGS="-j2", **extra)
    return env


def sh(cmd, timeout=600, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert p.returncode == 0, "%s:\n%s\n%s" % (" ".join(cmd), p.stdout[-3000:], p.stderr[-3000:])
    return p


def test_gem_build_and_install_offline(tmp_path):
    ruby()
    gem = str(tmp_path / "otelprof.gem")
    sh(["gem", "build", "-C", GEM, "otelprof.gemspec", "--output", gem], env=clean_env())
    listing = sh(["gem", "spec", gem, "files"], env=clean_env()).stdout
    # The core travels inside the gem, as core/build.txt names it; the LD_PRELOAD-only sources do not.
    for f in ("ext/otelprof/vendor/core/build.txt", "ext/otelprof/vendor/core/src/capture.c",
              "ext/otelprof/vendor/core/include/otelprof/otelprof.h",
              "ext/otelprof/vendor/proto/opentelemetry/proto/profiles/v1development/profiles.proto",
              "ext/otelprof/extconf.rb", "lib/otelprof.rb", "exe/otelprof"):
        assert f in listing, f
    assert "native/" not in listing
    home = str(tmp_path / "gems")
    sh(["gem", "install", "--local", "--no-document", "--install-dir", home, gem], env=clean_env())
    built = glob.glob(os.path.join(home, "gems", "otelprof-*", "lib", "otelprof", "otelprof_native.so"))
    assert built, os.listdir(home)
    out = str(tmp_path / "out")
    env = clean_env(GEM_HOME=home, GEM_PATH=home)
    p = sh([os.path.join(home, "bin", "otelprof"), "run", "--output-dir", out, "--service-name", "installed",
            "--", ruby(), "-e", "puts $LOADED_FEATURES.grep(/otelprof_native/); x = 0; 4_000_000.times { x += 1 }"],
           env=env, cwd=str(tmp_path))
    assert p.stdout.strip() == built[0], (p.stdout, built)
    folded = glob.glob(os.path.join(out, "installed-*.folded"))
    assert len(folded) == 1 and "Integer#times" in open(folded[0]).read()


def test_bundle_install_local_with_path_gem(tmp_path):
    ruby()
    if subprocess.run(["bundle", "--version"], capture_output=True).returncode != 0:
        missing("bundler not found: bash scripts/setup_ruby.sh installs it")
    sh(["rake", "compile"], cwd=GEM, env=clean_env())
    app = tmp_path / "app"
    app.mkdir()
    gemfile = open(os.path.join(ROOT, "examples", "ruby", "Gemfile")).read()
    assert 'gem "otelprof", path: "../../ruby"' in gemfile
    (app / "Gemfile").write_text(gemfile.replace('path: "../../ruby"', 'path: "%s"' % GEM))
    env = clean_env(BUNDLE_GEMFILE=str(app / "Gemfile"), BUNDLE_APP_CONFIG=str(app / ".bundle"))
    sh(["bundle", "install", "--local"], env=env, cwd=str(app))
    p = sh(["bundle", "exec", "ruby", "-e",
            'require "otelprof"; require "action_controller/railtie"; puts Otelprof::VERSION, Otelprof.start(formats: "folded", output_dir: "out"), Otelprof.stop'],
           env=env, cwd=str(app))
    assert p.stdout.split()[1:] == ["true", "true"], p.stdout
