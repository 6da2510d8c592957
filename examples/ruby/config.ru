# Rack entry point for Puma (puma.rb loads it).
require_relative "app"
run Rails.application
