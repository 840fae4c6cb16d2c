"""Helpers shared by the HTTP server tests (Python 3 standard library only)."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import threading
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(sub, secret, alg="HS256", exp_in=3600, nbf_in=None, header=None, claims=None,
               digest=hashlib.sha256, drop=()):
    """A JWT signed with HMAC (HS256 unless told otherwise); the extras build bad tokens."""
    now = int(time.time())
    hdr = {"alg": alg, "typ": "JWT"} if header is None else header
    body = {"sub": sub, "exp": now + exp_in, "iat": now}
    if nbf_in is not None:
        body["nbf"] = now + nbf_in
    body.update(claims or {})
    for k in drop:
        body.pop(k, None)
    signing_input = b64url(json.dumps(hdr).encode()) + "." + b64url(json.dumps(body).encode())
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


def sign_raw(header_text, payload_text, secret):
    """A JWT from exact JSON texts (duplicate keys, huge numbers: what json.dumps cannot write)."""
    signing_input = b64url(header_text.encode()) + "." + b64url(payload_text.encode())
    return signing_input + "." + b64url(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())


def stop_process(proc, sig=signal.SIGTERM, timeout=15):
    """Sends sig and waits; returns the exit status, or None when it had to be SIGKILLed."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


class Server:
    """One http_server on a free port of 127.0.0.1 (--port 0), with secret as its JWT key.

    log: the lines of its stderr (the JSON log), as bytes, read by a thread so that the server
    never blocks on a full pipe. preexec_fn runs in the child before exec (resource limits)."""

    def __init__(self, binary, db_url, secret, extra_env=None, args=(), threads=4, preexec_fn=None):
        env = dict(os.environ)
        env["CONVSTATE_JWT_SECRET"] = secret
        env.update(extra_env or {})
        self.proc = subprocess.Popen([binary, "--port", "0", "--db", db_url, "--threads", str(threads),
                                      "--max-body", str(1 << 20), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     preexec_fn=preexec_fn)
        line = self.proc.stdout.readline().decode(errors="replace")
        if not line.startswith("listening on "):
            self.proc.kill()
            err = self.proc.stderr.read().decode(errors="replace")
            self.proc.wait()
            raise RuntimeError("server did not start: " + line + err)
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.pid = self.proc.pid
        self.log = []
        self._reader = threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def request(self, method, path, body=None, token=None, headers=None, conn=None, timeout=30):
        """(status, parsed JSON body or raw bytes) of one request, on conn or a new connection."""
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw
            return resp.status, data
        finally:
            if own:
                conn.close()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig, waits for the exit (SIGKILL after timeout: None) and for the log's end."""
        code = stop_process(self.proc, sig, timeout)
        self._reader.join(timeout=5)
        return code

    def log_text(self):
        """The log lines decoded as UTF-8 (strictly: a line that is not UTF-8 raises)."""
        return [line.decode("utf-8") for line in self.log]


class Checks:
    """Named checks: counts passes, prints failures (and, with VERBOSE set, passes)."""

    def __init__(self):
        self.passed = 0
        self.failed = []

    def __call__(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            if os.environ.get("VERBOSE"):
                print(f"ok   {name} {detail}", flush=True)
        else:
            self.failed.append(name)
            print(f"FAIL {name} {str(detail)[:400]}", flush=True)

    def summary(self):
        """The closing line, 'N passed, M failed'."""
        return f"{self.passed} passed, {len(self.failed)} failed"
