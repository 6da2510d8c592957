# frozen_string_literal: true

module Otelprof
  # Things that need a library the application may require only later (Rails for the Railtie,
  # OpenTelemetry for span links): each waits as a check run after every Kernel#require until it
  # reports done. Once none waits, a require costs one emptiness test more.
  module RequireHook
    @waiting = []
    @installed = false

    # Prepended to Kernel.
    module Wrapper
      private def require(path)
        loaded = super
        RequireHook.run if loaded
        loaded
      end
    end

    class << self
      # check: a callable returning true when it is done (it is then dropped).
      def wait_for(&check)
        return if check.call

        @waiting << check
        return if @installed

        @installed = true
        Kernel.prepend(Wrapper)
      end

      def run
        return if @waiting.empty?

        @waiting.reject!(&:call)
      end
    end
  end
end
