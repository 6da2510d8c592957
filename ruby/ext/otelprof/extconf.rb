# Builds otelprof_native, the Ruby adapter's extension: the C core as core/build.txt defines it
# (its sources less the LD_PRELOAD-only ones, protobuf-c sources generated from its protos, its
# include directories, flags and libraries) plus this directory's *.c. Nothing of the core's
# definition is repeated here. OTELPROF_SANITIZE=address builds it with AddressSanitizer (run
# Ruby with LD_PRELOAD=$(gcc -print-file-name=libasan.so)).
#
# Runtime APIs newer than Ruby 3.1 are probed with have_func; each becomes one capability macro
# (ORB_HAVE_*) that ruby/ext/otelprof/orb.h documents. Their code paths are not exercised on this
# project's Ruby (3.1).
require "mkmf"
require "fileutils"
require "shellwords"

HERE = File.expand_path(__dir__)

# The core: the repository around this gem when building from a checkout (bundle's path: gems),
# else the copy the gemspec packed into the gem (vendor/).
def core_root
  [File.expand_path("../../..", HERE), File.join(HERE, "vendor")].find do |d|
    File.file?(File.join(d, "core", "build.txt"))
  end or abort "otelprof: core/build.txt not found (neither in the repository nor in #{HERE}/vendor)"
end

ROOT = core_root
MANIFEST = File.join(ROOT, "core", "build.txt")

# core/build.txt: `key = values` lines, an indented line continues the previous key, `#` starts
# a comment.
def read_manifest(path)
  keys = {}
  key = nil
  File.readlines(path).each_with_index do |raw, i|
    line = raw.split("#", 2)[0].rstrip
    next if line.strip.empty?
    if line =~ /\A\s/ && key
      keys[key].concat(line.split)
      next
    end
    k, eq, values = line.partition("=")
    k = k.rstrip
    abort "otelprof: #{path}:#{i + 1}: expected `key = values` (each key once)" if eq.empty? || k !~ /\A[a-z_]+\z/ || keys.key?(k)
    key = k
    keys[k] = values.split
  end
  keys
end

CORE = read_manifest(MANIFEST)

def core_one(key)
  v = CORE.fetch(key, [])
  abort "otelprof: core/build.txt: #{key} takes one value" unless v.size == 1
  v[0]
end

def core_files(key, required: true)
  CORE.fetch(key, []).flat_map do |pattern|
    found = Dir.glob(File.join(ROOT, pattern)).select { |p| File.file?(p) }.sort
    abort "otelprof: core/build.txt: #{pattern} (#{key}) names no file" if found.empty? && required
    found
  end.uniq
end

# Protobuf-c sources, generated into this build's own directory.
protoc = find_executable("protoc-c") or
  abort "otelprof: protoc-c not found: install protobuf-c-compiler (bash scripts/setup.sh installs every build dependency)"
gen = File.expand_path("gen")
FileUtils.mkdir_p(gen)
proto_dir = File.join(ROOT, core_one("proto_dir"))
generated = CORE.fetch("protos").map do |p|
  out = File.join(gen, p.sub(/\.proto\z/, ".pb-c.c"))
  src = File.join(proto_dir, p)
  # Regenerated only when older than its proto, so a rebuild recompiles only what changed.
  unless File.exist?(out) && File.mtime(out) >= File.mtime(src)
    system(protoc, "--c_out=#{gen}", "-I#{proto_dir}", src) or abort "otelprof: protoc-c failed on #{p}"
  end
  out
end

# Only the LD_PRELOAD library carries these (the gem does not even pack them).
preload = core_files("preload_sources", required: false)
core = core_files("sources") - preload
ours = Dir.glob(File.join(HERE, "*.c")).sort
sources = core + generated + ours
basenames = sources.map { |s| File.basename(s) }
dup = basenames.select { |b| basenames.count(b) > 1 }.uniq
abort "otelprof: source files share a name (objects would collide): #{dup.join(", ")}" unless dup.empty?

# mkmf compiles $srcs found through VPATH; objects are named after each file's basename.
$srcs = sources
$VPATH.concat(sources.map { |s| File.dirname(s) }.uniq)
$objs = sources.map { |s| File.basename(s, ".c") + ".o" }

(CORE.fetch("include_dirs") + CORE.fetch("private_include_dirs")).each do |d|
  $INCFLAGS << " -I" << File.join(ROOT, d).shellescape
end
$INCFLAGS << " -I" << gen.shellescape << " -I" << HERE.shellescape

# Runtime capabilities (see orb.h). Each probe is one have_func; its macro selects a code path.
have_func("rb_profile_frames", "ruby/debug.h") or abort "otelprof: this Ruby lacks rb_profile_frames"
have_func("rb_profile_thread_frames", "ruby/debug.h")       # 3.3: another thread's frames
have_func("rb_postponed_job_preregister", "ruby/debug.h")   # 3.3: postponed jobs safe from any thread
have_func("rb_internal_thread_add_event_hook", "ruby/thread.h") # 3.2: thread start/exit/GVL events
# libruby's thread-local pointer to the running execution context, which walk() checks before it
# calls rb_profile_frames (exported by every Ruby from 3.0 on Linux). Without it the gem installs
# and start says it cannot run.
checking_for("ruby_current_ec") do
  try_link(<<~C) and $defs << "-DORB_HAVE_CURRENT_EC"
    extern __thread void *ruby_current_ec;
    int main(void) { return ruby_current_ec != 0; }
  C
end

# The core's flags first, then the adapter's (they apply to the whole extension, core included):
# Ruby's public headers are not -Wextra-clean; Debian's Ruby compiles extensions with
# _FORTIFY_SOURCE, which flags results the core ignores on purpose (a chmod that may fail);
# frame pointers are kept.
cflags = ["-std=" + core_one("c_std"), *CORE.fetch("cflags"), "-fvisibility=" + core_one("visibility"),
          "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-Wno-sign-compare",
          "-Wno-unused-result", "-fno-omit-frame-pointer"]
CORE.fetch("defines").each { |d| $defs << "-D#{d}" }
ldflags = CORE.fetch("ldflags").dup
libs = []

pkg = CORE.fetch("pkg_config")
# pkg_config_headers: headers only (--cflags), never linked (libcurl is loaded at run time).
pc_cflags = `pkg-config --cflags #{(pkg + CORE.fetch("pkg_config_headers", [])).shelljoin} 2>/dev/null`
pc_ok = $?.success?
pc_libs = `pkg-config --libs #{pkg.shelljoin} 2>/dev/null`
if pc_ok && $?.success?
  cflags.concat(pc_cflags.shellsplit)
  libs.concat(pc_libs.shellsplit)
else
  libs.concat(CORE.fetch("pkg_config_libs").map { |l| "-l#{l}" })
end
libs.concat(CORE.fetch("system_libs").map { |l| "-l#{l}" })

sanitize = ENV.fetch("OTELPROF_SANITIZE", "")
unless sanitize.empty?
  cflags.concat(["-fsanitize=#{sanitize}", "-O1", "-g"])
  ldflags << "-fsanitize=#{sanitize}"
end

# Ruby's own CFLAGS come first in the Makefile; ours override them (-std, -O for sanitizers).
$CFLAGS << " " << cflags.shelljoin
$LDFLAGS << " " << ldflags.shelljoin
# Libraries after the objects ($LIBS), where --as-needed linkers look for them.
$LIBS << " " << libs.shelljoin
# mkmf's default warnings include some that -Werror would turn into errors in Ruby's headers.
$warnflags = ""

create_makefile("otelprof/otelprof_native")
