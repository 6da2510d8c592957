# Puma in cluster mode: 2 workers forked from a master that loaded the application (and started
# the profiler) once; each worker profiles itself under its own pid.
workers 2
threads 2, 2
preload_app!
bind "tcp://127.0.0.1:#{ENV.fetch("PORT", 3000)}"
rackup File.join(__dir__, "config.ru")
