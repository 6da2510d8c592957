# frozen_string_literal: true

require "rails/railtie"

module Otelprof
  # Starts profiling as a Rails application initializes (in a Puma cluster with preload_app!,
  # in the master: each worker restarts it under its own pid when forked). Opt out with
  # config.otelprof.autostart = false (config/application.rb) or OTELPROF_AUTOSTART=false; pass
  # options with config.otelprof.options = {mode: :wall, ...}. A bad option prints one line and
  # the application runs unprofiled.
  class Railtie < ::Rails::Railtie
    config.otelprof = ActiveSupport::OrderedOptions.new
    config.otelprof.autostart = true
    config.otelprof.options = {}

    initializer "otelprof.start", before: :load_environment_config do |app|
      settings = app.config.otelprof
      next unless settings.autostart
      next if Otelprof.running?

      # The application's name, unless OTEL_SERVICE_NAME (or the options) name the service.
      defaults = ENV.fetch("OTEL_SERVICE_NAME", "").strip.empty? ? {service_name: Railtie.service_name(app)} : {}
      Otelprof.autostart(**defaults, **settings.options)
    rescue StandardError => e
      # Profiling must never keep the application from booting.
      warn "otelprof: not started: #{e.class}: #{e.message}"
    end

    # MyShop::Application -> "my_shop"; a top-level application class: its own name.
    def self.service_name(app)
      name = app.class.module_parent_name || app.class.name.to_s.delete_suffix("Application")
      name.empty? ? "rails" : name.underscore
    end
  end
end
