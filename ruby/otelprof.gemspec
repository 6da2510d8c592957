# frozen_string_literal: true

require_relative "lib/otelprof/version"

# The extension is built from the C core of this repository (core/, proto/; see
# ext/otelprof/extconf.rb). Built from a checkout, the gem carries a copy of what core/build.txt
# names under ext/otelprof/vendor/, refreshed each time this file is evaluated, so a .gem from
# `gem build` installs anywhere offline; a path: gem in a Gemfile builds from the checkout itself.
module OtelprofGemCore
  REPO = File.expand_path("..", __dir__)
  VENDOR = File.join(__dir__, "ext", "otelprof", "vendor")

  module_function

  # The files the core's build reads: build.txt, the globs of its file keys (and the headers
  # beside them), the public and internal headers, the protos.
  def files
    build = File.join(REPO, "core", "build.txt")
    return [] unless File.file?(build)

    keys = {}
    key = nil
    File.readlines(build).each do |raw|
      line = raw.split("#", 2)[0].rstrip
      next if line.strip.empty?
      if line =~ /\A\s/ && key
        keys[key].concat(line.split)
      else
        key, _, values = line.partition("=")
        key = key.strip
        keys[key] = values.split
      end
    end
    globs = ["core/build.txt"] + keys.fetch("sources", []) +
            (keys.fetch("include_dirs", []) + keys.fetch("private_include_dirs", [])).map { |d| "#{d}/**/*.h" } +
            keys.fetch("protos", []).map { |p| File.join(keys.fetch("proto_dir", ["proto"])[0], p) }
    globs.flat_map { |g| Dir.glob(g, base: REPO) }.uniq.sort
  end

  def stage
    wanted = files
    return if wanted.empty?

    require "fileutils"
    wanted.each do |rel|
      src = File.join(REPO, rel)
      dst = File.join(VENDOR, rel)
      next if File.exist?(dst) && File.mtime(dst) >= File.mtime(src) && File.size(dst) == File.size(src)

      FileUtils.mkdir_p(File.dirname(dst))
      FileUtils.cp(src, dst)
    end
    # Files the core no longer has.
    Dir.glob("**/*", base: VENDOR).each do |rel|
      path = File.join(VENDOR, rel)
      File.delete(path) if File.file?(path) && !wanted.include?(rel)
    end
  end
end

OtelprofGemCore.stage

Gem::Specification.new do |s|
  s.name = "otelprof"
  s.version = Otelprof::VERSION
  s.summary = "Always-on in-process profiler with OpenTelemetry span links (OTLP Profiles)"
  s.description = "Samples Ruby threads on their own CPU timers or the wall clock, names frames at " \
                  "safe points, links every sample to the active OpenTelemetry span and writes " \
                  "OTLP Profiles, pprof, folded stacks and HTML flame graphs, or sends them over OTLP/HTTP."
  s.authors = ["otelprof"]
  s.license = "Apache-2.0"
  s.required_ruby_version = ">= 3.1"
  s.files = Dir.glob(%w[lib/**/*.rb exe/* ext/otelprof/*.{c,h,rb} ext/otelprof/vendor/**/*], base: __dir__)
                .select { |f| File.file?(File.join(__dir__, f)) }.sort
  s.bindir = "exe"
  s.executables = ["otelprof"]
  s.extensions = ["ext/otelprof/extconf.rb"]
  s.require_paths = ["lib"]
end
