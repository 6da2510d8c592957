# frozen_string_literal: true

require "optparse"
require "rbconfig"

module Otelprof
  # `otelprof run [options] -- command args`: runs command with profiling on from its first line.
  # The options become the OTELPROF_*/OTEL_* variables, and RUBYOPT loads otelprof/autostart into
  # every Ruby process the command starts (`ruby app.rb`, `bundle exec puma`, `rails server`).
  # A script path alone (`otelprof run app.rb`) runs under this Ruby. Usage errors exit with 2;
  # a bad value is reported by the profiled program in one line, and it runs on unprofiled.
  module Launcher
    OPTIONS = {
      "mode" => "OTELPROF_MODE", "interval" => "OTELPROF_INTERVAL",
      "export-interval" => "OTELPROF_EXPORT_INTERVAL", "output-dir" => "OTELPROF_OUTPUT_DIR",
      "formats" => "OTELPROF_FORMATS", "max-depth" => "OTELPROF_MAX_DEPTH",
      "native-frames" => "OTELPROF_NATIVE_FRAMES", "log-level" => "OTELPROF_LOG_LEVEL",
      "signal" => "OTELPROF_SIGNAL", "service-name" => "OTEL_SERVICE_NAME",
      "resource-attributes" => "OTEL_RESOURCE_ATTRIBUTES", "endpoint" => "OTEL_EXPORTER_OTLP_ENDPOINT"
    }.freeze
    USAGE = "usage: otelprof run [options] [--] command args | otelprof run [options] script.rb args"

    module_function

    def usage_error(message)
      warn USAGE
      warn "otelprof: #{message}"
      exit 2
    end

    def parse(argv)
      env = {}
      parser = OptionParser.new do |o|
        o.banner = USAGE
        OPTIONS.each do |flag, var|
          o.on("--#{flag} VALUE", "sets #{var}") { |v| env[var] = v }
        end
      end
      # Ours end at "--" or at the first argument that is not one of ours: the command.
      command = parser.order(argv)
      command.shift if command.first == "--"
      [env, command]
    rescue OptionParser::ParseError => e
      usage_error(e.message)
    end

    def main(argv)
      usage_error("name a command: run [options] -- command args") if argv.empty?
      sub, *rest = argv
      usage_error("unknown command #{sub.inspect}: the command is run") unless sub == "run"
      env, command = parse(rest)
      usage_error("run: name a command ([--] command args) or a script (script.rb args)") if command.empty?
      # A script that is not executable runs under this Ruby.
      first = command.first
      command.unshift(RbConfig.ruby) if first.end_with?(".rb") && !File.executable?(first)
      lib = File.expand_path("..", __dir__)
      rubyopt = ["-I#{lib}", "-rotelprof/autostart", ENV["RUBYOPT"]].compact.join(" ")
      begin
        Kernel.exec(env.merge("RUBYOPT" => rubyopt), *command)
      rescue SystemCallError => e
        warn "otelprof: cannot run #{first}: #{e.message}"
        exit 127
      end
    end
  end
end
