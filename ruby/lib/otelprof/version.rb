# frozen_string_literal: true

module Otelprof
  VERSION = "0.1.0"
end
