"""WSGI app for the gunicorn --preload test: profiling starts at import, in the master; workers
are forked from it and must profile themselves."""
import os
import time

import otelprof

otelprof.start()


def request_work():
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        sum(range(50))


def app(environ, start_response):
    request_work()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%d\n" % os.getpid()).encode()]
