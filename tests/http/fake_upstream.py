"""A small OpenAI-compatible chat-completions server for tests (standard library only).

POST any path with {"messages": [...], "stream": bool}. What it answers depends on the last
message's content: containing "fail" → HTTP 500; "slow" → waits `slow_seconds` first; "cut" →
(streaming) sends two chunks and closes the connection without [DONE]; "drip" → (streaming)
waits 0.1 s before each chunk. Otherwise the reply is
"upstream: <content>", sent as a JSON completion or, with "stream": true, as Server-Sent Events
of three-character deltas ending with "data: [DONE]".
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeUpstream:
    def __init__(self, slow_seconds=1.0):
        self.slow_seconds = slow_seconds
        self.requests = []
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with upstream._lock:
                    upstream.requests.append(body)
                said = body["messages"][-1]["content"]
                if "slow" in said:
                    time.sleep(upstream.slow_seconds)
                if "fail" in said:
                    self._send(500, "application/json", b'{"error":{"message":"upstream failure"}}')
                    return
                reply = "upstream: " + said
                if not body.get("stream"):
                    data = {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                         "finish_reason": "stop"}]}
                    self._send(200, "application/json", json.dumps(data).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                pieces = [reply[i:i + 3] for i in range(0, len(reply), 3)]
                for n, piece in enumerate(pieces):
                    if "cut" in said and n == 2:
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    if "drip" in said:
                        time.sleep(0.1)
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                    try:
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    except OSError:  # the caller went away
                        self.close_connection = True
                        return
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _send(self, status, ctype, data):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # many callers at once (the default backlog is 5)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/chat/completions"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
