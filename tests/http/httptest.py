"""Helpers shared by the HTTP server tests (Python 3 standard library only)."""
import base64
import hashlib
import hmac
import json
import signal
import subprocess
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


def stop_process(proc, sig=signal.SIGTERM, timeout=15):
    """Sends sig and waits; returns the exit status, or None when it had to be SIGKILLed."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
