"""fleet/slow.py against loopback servers started here: slow clients are held (counted on
the server side), closed ones come back, a threaded server still answers the probe and
a single-threaded one does not; anything but loopback or the fleet's addresses is refused."""

import http.server
import json
import socket
import threading
import time

import pytest

from fleet import slow


class Counting(http.server.BaseHTTPRequestHandler):
    """Answers 200; counts the connections it is holding."""

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.live += 1

    def finish(self):
        with self.server.lock:
            self.server.live -= 1
        super().finish()

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Quiet:
    request_queue_size = 256  # the listen backlog: room for every slow client at once

    def handle_error(self, request, client_address):
        pass  # a probe that gave up before the answer: a broken pipe, expected


class Threaded(Quiet, http.server.ThreadingHTTPServer):
    # Its request threads are joined when it closes: a thread alive later would be there
    # when a test imports pyinfra's CLI, which patches threading for gevent.
    daemon_threads = False
    block_on_close = True


class Single(Quiet, http.server.HTTPServer):
    pass


def serve(server_class):
    server = server_class(("127.0.0.1", 0), Counting)
    server.lock, server.live = threading.Lock(), 0
    server.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    server.thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def stop(server):
    server.shutdown()
    server.server_close()
    server.thread.join(10)


@pytest.fixture
def threaded():
    server, url = serve(Threaded)
    yield server, url
    stop(server)


@pytest.fixture
def single():
    server, url = serve(Single)
    yield server, url
    stop(server)  # the slow clients are gone by now: the handler returns


def until(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_holds_connections_and_trickles_then_closes_them(threaded):
    server, url = threaded
    with slow.SlowClients(url, connections=30, trickle_every=0.1) as clients:
        assert clients.wait_held()
        assert until(lambda: server.live == 30), server.live
        time.sleep(0.5)
        stats = clients.stats()
        assert stats["held"] == 30 and stats["header_lines_sent"] > 60  # request + trickles
        assert server.live == 30  # nothing finished its headers
    assert clients.stats()["held"] == 0 and not clients.running
    assert until(lambda: server.live == 0), server.live


def test_reconnects_what_the_server_closes():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def close_each():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.recv(100)
            conn.close()

    closer = threading.Thread(target=close_each, daemon=True)
    closer.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        with slow.SlowClients(url, connections=3, trickle_every=0.1) as clients:
            assert until(lambda: clients.stats()["reconnections"] >= 3 and len(accepted) >= 6, timeout=10)
        stats = clients.stats()
        assert stats["closed_by_server"] >= stats["reconnections"] >= 3
        assert len(accepted) >= 6
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes its accept(), which close() alone does not
        listener.close()
        closer.join(10)


def test_probe_is_answered_by_a_threaded_server_while_held(threaded):
    server, url = threaded
    with slow.SlowClients(url, connections=50) as clients:
        assert clients.wait_held() and until(lambda: server.live == 50)
        result = slow.probe([url], seconds=1.0, interval=0.05, timeout=2.0)
    assert result["requests"] >= 5
    assert result["ok"] == result["requests"] and result["failed"] == 0
    assert result["over_1s"] == 0 and result["max_latency_s"] < 1.0
    assert result["p50_latency_s"] <= result["max_latency_s"]


def test_probe_sees_a_single_threaded_server_stop(single):
    server, url = single
    with slow.SlowClients(url, connections=3, trickle_every=0.2):
        assert until(lambda: server.live == 1)  # the one worker is held
        result = slow.probe([url], seconds=2.0, interval=0.05, timeout=1.2)
    assert result["requests"] >= 1 and result["ok"] == 0
    assert result["failed"] == result["requests"]
    assert result["failures"] == {"timeout": result["requests"]}
    assert result["over_1s"] == result["requests"] and result["max_latency_s"] >= 1.2
    assert result["max_gap_s"] >= 1.2


def test_the_probe_alone_on_an_idle_server(single):
    _, url = single
    result = slow.probe(url, seconds=0.3, interval=0.05, timeout=1.0)
    assert result["requests"] >= 2 and result["ok"] == result["requests"]
    assert result["max_gap_s"] == 0


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://8.8.8.8:8080/", "http://169.254.169.254/",
    "http://example.com/", "http://[::1]/", "ftp://127.0.0.1/",
])
def test_only_loopback_and_fleet_addresses(url):
    with pytest.raises(SystemExit):
        slow.SlowClients(url, connections=1)
    with pytest.raises(SystemExit):
        slow.probe([url], seconds=0.1)


def test_bounds(threaded):
    _, url = threaded
    with pytest.raises(ValueError):
        slow.SlowClients(url, connections=slow.MAX_CONNECTIONS + 1)
    with pytest.raises(ValueError):
        slow.SlowClients([url, url], connections=600)
    with slow.SlowClients(url, connections=600):  # 600 + 600 open at once: refused
        with pytest.raises(ValueError):
            slow.SlowClients(url, connections=600).__enter__()
    with slow.SlowClients(url, connections=600):  # released again
        pass


def test_stops_itself_after_max_seconds(threaded):
    server, url = threaded
    clients = slow.SlowClients(url, connections=5, max_seconds=0.3).__enter__()
    assert clients.wait_held()
    assert until(lambda: not clients.running)
    assert clients.stats()["held"] == 0 and until(lambda: server.live == 0)
    clients.close()


def test_https_target_defaults_to_port_443():
    assert slow.target("https://169.254.1.2/x?y=1") == ("https", "169.254.1.2", 443, "/x?y=1")
    assert slow.target("http://127.0.0.1:8080") == ("http", "127.0.0.1", 8080, "/")


def test_command_prints_one_json_object(threaded, capsys):
    server, url = threaded
    assert slow.main([url, url, "--connections", "10", "--seconds", "0.3",
                      "--interval", "0.05"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["held_at_start"] == 20 and out["connections_per_url"] == 10
    assert out["probe"]["ok"] == out["probe"]["requests"] >= 2
    assert out["slow"]["running"] is True  # still held while the probe ran
    assert until(lambda: server.live == 0)
