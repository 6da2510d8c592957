"""Bounded load for the HTTP rows of bench/run: a fixed number of requests from a fixed number of
keep-alive connections (a closed loop: each connection sends its next request when the last one
is answered), then /quit. The server is the measured process; this client runs in the harness."""
import http.client
import os
import re
import threading
import time


def wait_for_port(stdout_path, exited, timeout=60):
    """The port the server printed ("listening on port P"), or None if it exited or took too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited.is_set():
            return None
        try:
            m = re.search(r"listening on port (\d+)", open(stdout_path, errors="replace").read())
        except OSError:
            m = None
        if m:
            return int(m.group(1))
        time.sleep(0.01)
    return None


def drive(port, path, requests, connections):
    """Sends `requests` GETs of `path`; returns {"requests", "errors", "seconds"} of the load phase."""
    lock = threading.Lock()
    left = [requests]
    errors = [0]

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=client) for _ in range(connections)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {"requests": requests, "errors": errors[0], "seconds": time.monotonic() - t0}


def quit_server(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/quit")
        conn.getresponse().read()
        conn.close()
    except (OSError, http.client.HTTPException):
        pass


class HttpLoad:
    """The driver of one run: started by the harness beside the server process."""

    def __init__(self, path, requests, connections, start_timeout=60):
        self.path, self.requests, self.connections = path, requests, connections
        self.start_timeout = start_timeout

    def __call__(self, workdir, exited, kill):
        """exited: set once the server has exited; kill(): ends it (when it never listens)."""
        port = wait_for_port(os.path.join(workdir, "stdout"), exited, self.start_timeout)
        if port is None:
            kill()
            return {"error": "the server never printed its port"}
        res = drive(port, self.path, self.requests, self.connections)
        quit_server(port)
        return res
