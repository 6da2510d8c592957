# Workload: CPU in an instance method, a class method, a block inside a method, a module
# function and a method defined by eval, each for ~0.3 s, so that names, files and lines can be
# checked.
require "otelprof"

def thread_cpu = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)

def burn(seconds)
  finish = thread_cpu + seconds
  x = 0
  x += 1 while thread_cpu < finish
  x
end

class Shape
  def area
    burn(0.3)
  end

  def self.build
    burn(0.3)
  end

  def each_side
    [1].each { burn(0.3) }
  end
end

module Geometry
  module_function

  def perimeter
    burn(0.3)
  end
end

Object.class_eval("def generated_fn; burn(0.3); end", "generated.rb", 100)

Otelprof.start
Shape.new.area
Shape.build
Shape.new.each_side
Geometry.perimeter
generated_fn
Otelprof.stop
