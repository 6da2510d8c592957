# frozen_string_literal: true

module Otelprof
  # The places where Ruby itself changes what the profiler must know, each wrapped once (by
  # Module#prepend; the wrappers cost nothing measurable and stay in place after stop):
  # - fork: Process._fork (Kernel#fork, Process.fork, IO.popen("-") all end there since Ruby 3.1)
  #   and Process.daemon: the child restarts profiling under its own pid.
  # - exec: Kernel#exec and Process.exec: no profiling signal may be pending when the new image
  #   starts (its default action for the signal is to terminate).
  # - GC.compact, GC.verify_compaction_references, GC.auto_compact=: while a compaction may run,
  #   threads without the GVL are not walked (see ruby/ext/otelprof/frame_walk.c).
  # - Thread#name=: samples carry the new name.
  module Hooks
    module Fork
      def _fork
        Native.before_fork
        pid = super
        Native.after_fork_child if pid.zero?
        pid
      end

      def daemon(*args)
        # The original process ends inside daemon (_exit, no at_exit): what it sampled so far is
        # written now, under its pid.
        Native.flush if Native.running?
        Native.before_fork
        result = super
        # Only the child returns (the parent exits inside daemon).
        Native.after_fork_child
        result
      end
    end

    module Exec
      private def exec(*args, **kwargs)
        Native.exec_prepare
        begin
          super
        ensure
          Native.exec_failed # reached only when exec failed
        end
      end
    end

    module ExecSingleton
      def exec(*args, **kwargs)
        Native.exec_prepare
        begin
          super
        ensure
          Native.exec_failed
        end
      end
    end

    module Compaction
      def compact(*args, **kwargs)
        Native.compaction(1)
        begin
          super
        ensure
          Native.compaction(-1)
        end
      end

      def verify_compaction_references(*args, **kwargs)
        Native.compaction(1)
        begin
          super
        ensure
          Native.compaction(-1)
        end
      end

      def auto_compact=(on)
        was = auto_compact
        result = super
        now = auto_compact
        Native.compaction(now ? 1 : -1) if now != was
        result
      end
    end

    module ThreadName
      def name=(name)
        result = super
        tid = native_thread_id
        Native.thread_renamed(tid, name&.to_s) if tid
        result
      end
    end

    @installed = false

    def self.install
      return if @installed

      @installed = true
      Process.singleton_class.prepend(Fork)
      Kernel.prepend(Exec)
      Kernel.singleton_class.prepend(ExecSingleton)
      Process.singleton_class.prepend(ExecSingleton)
      GC.singleton_class.prepend(Compaction)
      Native.compaction(1) if GC.respond_to?(:auto_compact) && GC.auto_compact
      Thread.prepend(ThreadName)
    end
  end
end
