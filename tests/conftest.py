"""End-to-end fixtures: a whole kesu system of real binaries, a real Postgres
cluster, real ZeroMQ and HTTP, on ports of its own (KESU_PORT_OFFSET), with the
controllable clock. The only stand-ins are the external providers (an HTTP SMS
gateway) — local servers that speak the real protocol."""
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KESU_BUILD", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")
sys.path.insert(0, os.path.join(BUILD, "gen", "py"))
PGBIN = "/usr/lib/postgresql/15/bin"
SERVICES = ["intake", "router", "handler", "sla", "notifier", "analytics"]
HTTP_PORT = {"intake": 8080, "handler": 8081, "analytics": 8082, "notifier": 8083,
             "sla": 8084, "router": 8085}
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_offset():
    """An offset whose every port is free, so tests run beside `make run`."""
    for _ in range(200):
        off = random.randrange(20000, 50000, 10)
        ports = [p + off for p in list(HTTP_PORT.values()) + [7100, 7101, 7110, 7111, 7112,
                                                              7120, 7121, 5433]]
        if all(port_free(p) for p in ports):
            return off
    raise RuntimeError("no free port range")


class SmsGateway:
    """An HTTP SMS gateway stand-in that behaves like a real provider: records
    every POST it accepts, and dedupes by Idempotency-Key — a request whose key
    was already accepted is answered 200 again but not delivered again.
    messages()/for_order() are the delivered messages (one per key);
    request_count() counts every request, keys() the distinct keys with how
    many requests carried each. Can be told to fail (the next fail_next
    requests, or every request to a number in fail_to: 503) or to answer
    slowly (delay seconds, after recording)."""

    def __init__(self):
        self.requests = []      # delivered: one per distinct key
        self.lock = threading.Lock()
        self.fail_next = 0
        self.fail_to = set()    # recipients ("to") whose every request fails (503)
        self.delay = 0.0
        self.total = 0          # every POST, including failed and duplicate ones
        self.log = []           # every POST: (Idempotency-Key, body's order_no)
        self.key_counts = {}    # Idempotency-Key -> requests carrying it
        self.delivered = set()  # keys accepted (delivered) once
        gw = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                key = self.headers.get("Idempotency-Key")
                with gw.lock:
                    gw.total += 1
                    try:
                        ono = json.loads(body.decode("utf-8")).get("order_no")
                    except (ValueError, AttributeError):
                        ono = None
                    gw.log.append((key, ono))
                    delay = gw.delay
                    if key:
                        gw.key_counts[key] = gw.key_counts.get(key, 0) + 1
                    try:
                        to = json.loads(body.decode("utf-8")).get("to")
                    except (ValueError, AttributeError):
                        to = None
                    if to in gw.fail_to:
                        status = 503
                    elif gw.fail_next > 0:
                        gw.fail_next -= 1
                        status = 503
                    else:
                        status = 200
                        if not key or key not in gw.delivered:
                            if key:
                                gw.delivered.add(key)
                            gw.requests.append({"headers": dict(self.headers),
                                                "path": self.path,
                                                "body": json.loads(body.decode("utf-8"))})
                if delay:
                    time.sleep(delay)
                out = b'{"ok":true}' if status == 200 else b'{"error":"busy"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the client died while we were slow

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/sms" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self):
        with self.lock:
            return list(self.requests)

    def for_order(self, order_no):
        return [m for m in self.messages() if m["body"].get("order_no") == order_no]

    def request_count(self):
        with self.lock:
            return self.total

    def requests_since(self, n):
        """(Idempotency-Key, order_no) of every POST after the first n."""
        with self.lock:
            return list(self.log[n:])

    def keys(self):
        with self.lock:
            return dict(self.key_counts)

    def close(self):
        self.server.shutdown()


class Postgres:
    def __init__(self, base, port):
        self.dir = os.path.join(base, "pg")
        self.port = port
        os.makedirs(self.dir)
        self.run_as = []
        if os.geteuid() == 0:  # Postgres refuses to run as root
            shutil.chown(base, "postgres")
            shutil.chown(self.dir, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        subprocess.run(self.run_as + [PGBIN + "/initdb", "-D", self.dir + "/data", "-E", "UTF8",
                                      "--locale=C.UTF-8", "-A", "trust", "-U", "postgres"],
                       check=True, stdout=subprocess.DEVNULL)
        self.start()
        subprocess.run(self.run_as + [PGBIN + "/createdb", "-h", self.dir, "-p", str(port),
                                      "-U", "postgres", "kesu"], check=True)
        self.conninfo = "host=%s port=%d dbname=kesu" % (self.dir, port)

    def start(self):
        subprocess.run(self.run_as + [PGBIN + "/pg_ctl", "-D", self.dir + "/data", "-w", "-l",
                                      self.dir + "/log", "-o",
                                      "-p %d -k %s -c listen_addresses='' -c max_connections=100 "
                                      "-c shared_buffers=128MB" % (self.port, self.dir), "start"],
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run(self.run_as + [PGBIN + "/pg_ctl", "-D", self.dir + "/data", "-m", "fast",
                                      "-w", "stop"], stdout=subprocess.DEVNULL)

    def connect(self, user="postgres"):
        import psycopg2
        c = psycopg2.connect(host=self.dir, port=self.port, dbname="kesu", user=user)
        c.autocommit = True
        return c

    def query(self, sql, args=(), user="postgres"):
        c = self.connect(user)
        try:
            with c.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def scalar(self, sql, args=()):
        return self.query(sql, args)[0][0]


class Service:
    def __init__(self, system, name, extra_env=None):
        self.system = system
        self.name = name
        self.env = dict(system.env)
        self.env.update(extra_env or {})
        self.proc = None
        self.log_path = os.path.join(system.base, "%s.log" % name)
        self.port = HTTP_PORT.get(name.split("-")[0], 0) + system.offset

    def start(self, wait=True):
        binary = os.path.join(BIN, "kesu-" + self.name.split("-")[0])
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary], env=self.env, stdout=self.log, stderr=self.log)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=20, path="/readyz"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (%s); log: %s" % (self.name, self.proc.returncode,
                                                                self.tail()))
            try:
                if requests.get("http://127.0.0.1:%d%s" % (self.port, path), timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %ss; log: %s" % (self.name, timeout, self.tail()))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def restart(self):
        self.stop()
        self.start()

    def tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)


class System:
    def __init__(self):
        self.offset = pick_offset()
        self.base = tempfile.mkdtemp(prefix="kesu-e2e-")
        os.chmod(self.base, 0o755)
        self.pg = Postgres(self.base, 5433 + self.offset)
        self.sms = SmsGateway()
        self.clock_file = os.path.join(self.base, "clock")
        self.env = dict(os.environ)
        self.env.update({
            "KESU_PG": self.pg.conninfo,
            "KESU_PG_ADMIN": self.pg.conninfo + " user=postgres",
            "KESU_PORT_OFFSET": str(self.offset),
            "KESU_CLOCK": "control:" + self.clock_file,
            "KESU_HOME": ROOT,
            "KESU_SMS_URL": self.sms.url,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
            "UBSAN_OPTIONS": "print_stacktrace=1",
        })
        self.kesuctl("migrate")
        self.kesuctl("load")
        # Today's morning, local time, so that what the tests send is
        # not held by the notifier's quiet/business hours whatever the
        # wall clock says; tests that need other times advance from here.
        self.kesuctl("clock", "set", time.strftime("%Y-%m-%dT09:30:00+08:00",
                                                   time.gmtime(time.time() + 8 * 3600)))
        self.admin = self.token("e2e-admin", "admin")
        self.services = {}

    def kesuctl(self, *args, check=True):
        r = subprocess.run([os.path.join(BIN, "kesuctl")] + list(args), env=self.env,
                           capture_output=True, text=True, cwd=ROOT)
        if check and r.returncode != 0:
            raise RuntimeError("kesuctl %s failed: %s %s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def token(self, name, role, scope="000000"):
        return self.kesuctl("token", "create", "--name", name, "--role", role,
                            "--scope", scope).stdout.strip()

    def start_all(self):
        for name in SERVICES:
            self.services[name] = Service(self, name)
            self.services[name].start(wait=False)
        for name in SERVICES:
            self.services[name].wait_ready()

    def __getitem__(self, name):
        return self.services[name]

    def headers(self, token=None):
        return {"Authorization": "Bearer " + (token or self.admin)}

    def get(self, svc, path, token=None, **kw):
        return requests.get(self.services[svc].url(path), headers=self.headers(token),
                            timeout=10, **kw)

    def post(self, svc, path, body, token=None, headers=None, **kw):
        h = self.headers(token)
        h.update(headers or {})
        return requests.post(self.services[svc].url(path), json=body, headers=h, timeout=10,
                             **kw)

    def advance(self, seconds):
        r = requests.post(self.services["intake"].url("/v1/admin/clock"),
                          json={"advance_ms": int(seconds * 1000)}, headers=self.headers(),
                          timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def shutdown(self):
        problems = []
        for s in self.services.values():
            s.stop()
            log = s.tail(1 << 20)
            if "AddressSanitizer" in log or "runtime error:" in log:
                problems.append("%s: sanitizer report in %s" % (s.name, s.log_path))
        self.pg.stop()
        self.sms.close()
        if os.path.isdir(ARTIFACTS) or problems:
            os.makedirs(ARTIFACTS, exist_ok=True)
            for s in self.services.values():
                shutil.copy(s.log_path, os.path.join(ARTIFACTS, os.path.basename(s.log_path)))
        return problems


@pytest.fixture(scope="session")
def system():
    s = System()
    try:
        s.start_all()
        yield s
    finally:
        problems = s.shutdown()
    assert not problems, problems


def complaint(**over):
    body = {
        "channel": "hotline",
        "customer": {"name": "张三", "phone": "13800138000", "home_region": "310115",
                     "address": "上海市浦东新区张杨路100号"},  # a hand-off needs it
        "region": "310115",
        "business_type": "broadband",
        "problem_type": "network",
        "title": "宽带断网",
        "content": "家里宽带从周一开始断网，报修两次无人上门，要求尽快修复并赔偿。",
    }
    body.update(over)
    # a complaint handed off needs the customer's address; an overridden customer
    # gets the default one unless it says otherwise ("address": None to leave it out)
    cu = body.get("customer")
    if isinstance(cu, dict) and "address" not in cu and "answer_on_spot" not in body:
        body["customer"] = dict(cu, address="上海市浦东新区张杨路100号")
    return body


def wait_for(fn, timeout=30, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


@contextlib.contextmanager
def notifier_with_sinks(system, extra=None):
    """For one test: the shared system's notifier restarted with an SMTP sink and a local
    IM/webhook gateway; afterwards the contacts whose address is that gateway's are removed
    and the notifier is restarted as it was. Yields (notifier, im, smtp)."""
    from smtp_sink import SmtpSink
    im = SmsGateway()
    smtp = SmtpSink()
    system.services["notifier"].stop()
    notifier = Service(system, "notifier", dict({"KESU_SMTP_URL": smtp.url,
                                                 "KESU_SMTP_FROM": "kesu@example.com"},
                                                **(extra or {})))
    system.services["notifier"] = notifier
    try:
        notifier.start()
        yield notifier, im, smtp
    finally:
        system.pg.query("DELETE FROM notify.contacts WHERE address LIKE %s", (im.url + "%",))
        notifier.stop()
        restored = Service(system, "notifier")
        system.services["notifier"] = restored
        restored.start()
        im.close()
        smtp.close()
