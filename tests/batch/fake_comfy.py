"""A small fake ComfyUI server (standard library) for the batch fan-out tests.

It speaks the part of ComfyUI's HTTP API the batch client uses, with ComfyUI's shapes (checked
against the real server in tests/host/test_batch_comfy.py): ``/system_stats``, ``/object_info[/node]``,
multipart ``/upload/image`` (identical bytes under an existing name are reused), ``/prompt`` with a
caller's ``prompt_id`` (400 + ``node_errors`` for a width that is not a multiple of 64, as our
sampler node's validation does), ``/queue`` (list, delete), ``/interrupt`` (``prompt_id``-targeted),
``/history/{id}`` (``status``: ``status_str``, ``messages`` with ``execution_error``) and ``/view``.

One prompt runs at a time, ``delay`` seconds each. Its "video" is a JSON document naming what it was
asked to render - the sampler's inputs and the SHA-256 of the files its loaders received - so a test
can check that each job reached the server with its own inputs and options. A sampler seed of 666
fails with a node error. ``kill()`` stops the server the way a crash does (connections refused).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from collections import deque
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OUR_NODES = ("LoadUniAnimateModel", "UniAnimateSampler", "UniAnimatePoseExtractor", "UniAnimatePoseAlign",
             "UniAnimateLongVideoLoop")


class FakeComfy:
    def __init__(self, delay: float = 0.3, nodes: tuple[str, ...] = OUR_NODES) -> None:
        self.delay = delay
        self.nodes = nodes
        self.inputs: dict[str, bytes] = {}
        self.outputs: dict[tuple[str, str], bytes] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()
        self.running: str | None = None
        self.prompts: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []
        self.interrupt_flag = threading.Event()
        self.lock = threading.Lock()
        self.alive = True
        self.counter = 0
        self.started = threading.Event()  # set when a prompt starts executing
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._serve = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._serve.start()
        self._exec = threading.Thread(target=self._executor, daemon=True)
        self._exec.start()

    def kill(self) -> None:
        """Stop answering at once (connections are refused from now on), like a crashed server."""
        self.alive = False
        self.httpd.shutdown()
        self.httpd.server_close()

    close = kill

    # ------------------------------------------------------------------ execution
    def _executor(self) -> None:
        while self.alive:
            with self.lock:
                item = self.pending.popleft() if self.pending else None
                if item:
                    self.running = item[0]
            if item is None:
                time.sleep(0.02)
                continue
            prompt_id, prompt = item
            self.started.set()
            self.interrupt_flag.clear()
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.delay and not self.interrupt_flag.is_set() and self.alive:
                time.sleep(0.02)
            if not self.alive:
                return
            entry = self._result(prompt_id, prompt, self.interrupt_flag.is_set())
            with self.lock:
                self.history[prompt_id] = entry
                self.running = None
                self.executed.append(prompt_id)

    def _result(self, prompt_id: str, prompt: dict[str, Any], interrupted: bool) -> dict[str, Any]:
        messages: list[list[Any]] = [["execution_start", {"prompt_id": prompt_id}]]
        if interrupted:
            messages.append(["execution_interrupted", {"prompt_id": prompt_id, "node_id": "10"}])
            return {"prompt": [0, prompt_id, prompt, {}, []], "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": messages}}
        sampler_id, sampler = next((k, v) for k, v in prompt.items()
                                   if v["class_type"] in ("UniAnimateSampler", "UniAnimateLongVideoLoop"))
        if sampler["inputs"].get("seed") == 666:
            messages.append(["execution_error", {"prompt_id": prompt_id, "node_id": sampler_id,
                                                 "node_type": sampler["class_type"],
                                                 "exception_message": "boom: the fake refuses seed 666",
                                                 "exception_type": "RuntimeError", "traceback": []}])
            return {"prompt": [0, prompt_id, prompt, {}, []], "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": messages}}
        loaded = {}
        for node_id, node in prompt.items():
            value = node["inputs"].get("image") if node["class_type"] == "LoadImage" else \
                node["inputs"].get("file") if node["class_type"] == "LoadVideo" else None
            if value is not None:
                loaded[node_id] = hashlib.sha256(self.inputs[value]).hexdigest()
        report = json.dumps({"sampler": sampler["inputs"], "loaded": loaded, "prompt_id": prompt_id},
                            sort_keys=True).encode()
        outputs: dict[str, Any] = {}
        for node_id, node in prompt.items():
            ct = node["class_type"]
            suffix = {"SaveVideo": ".mp4", "SaveLatent": ".latent", "SaveImage": ".png"}.get(ct)
            if suffix is None:
                continue
            self.counter += 1
            prefix = node["inputs"]["filename_prefix"]
            sub, _, base = prefix.rpartition("/")
            name = f"{base}_{self.counter:05d}_{suffix}"
            self.outputs[(sub, name)] = report + ct.encode()
            key = {"SaveLatent": "latents"}.get(ct, "images")
            outputs[node_id] = {key: [{"filename": name, "subfolder": sub, "type": "output"}]}
        messages.append(["execution_success", {"prompt_id": prompt_id}])
        return {"prompt": [0, prompt_id, prompt, {}, []], "outputs": outputs,
                "status": {"status_str": "success", "completed": True, "messages": messages}}

    # ------------------------------------------------------------------ API
    def queue_prompt(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return 400, {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "",
                                   "extra_info": {}}, "node_errors": {}}
        node_errors = {}
        for node_id, node in prompt.items():
            inputs = node.get("inputs", {})
            errors = []
            if node.get("class_type") in ("UniAnimateSampler", "UniAnimateLongVideoLoop") and inputs.get("width", 64) % 64:
                errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                               "details": f"width = {inputs['width']} is not a multiple of 64",
                               "extra_info": {"input_name": "width"}})
            for field in ("image", "file"):
                value = inputs.get(field)
                if node.get("class_type") in ("LoadImage", "LoadVideo") and isinstance(value, str) \
                        and value not in self.inputs:
                    errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                   "details": f"Invalid file: {value}", "extra_info": {"input_name": field}})
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": node["class_type"]}
        if node_errors:
            return 400, {"error": {"type": "prompt_outputs_failed_validation",
                                   "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
                         "node_errors": node_errors}
        prompt_id = str(body.get("prompt_id") or f"fake-{len(self.prompts)}")
        with self.lock:
            self.prompts[prompt_id] = prompt
            self.pending.append((prompt_id, prompt))
        return 200, {"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeComfy

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, payload: Any, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:  # noqa: N802
        fake = self.fake
        url = urllib.parse.urlparse(self.path)
        if url.path == "/system_stats":
            return self._send(200, {"system": {"os": "fake", "comfyui_version": "fake"}, "devices": []})
        if url.path.startswith("/object_info"):
            node = url.path[len("/object_info/"):] if url.path.startswith("/object_info/") else None
            names = [n for n in fake.nodes if node is None or n == node]
            return self._send(200, {n: {"name": n} for n in names})
        if url.path.startswith("/history/"):
            prompt_id = urllib.parse.unquote(url.path[len("/history/"):])
            with fake.lock:
                entry = fake.history.get(prompt_id)
            return self._send(200, {prompt_id: entry} if entry else {})
        if url.path == "/queue":
            with fake.lock:
                running = [[0, fake.running, {}, {}, []]] if fake.running else []
                pending = [[i, pid, {}, {}, []] for i, (pid, _) in enumerate(fake.pending)]
            return self._send(200, {"queue_running": running, "queue_pending": pending})
        if url.path == "/view":
            q = urllib.parse.parse_qs(url.query)
            key = (q.get("subfolder", [""])[0], q["filename"][0])
            if q.get("type", ["output"])[0] != "output" or key not in fake.outputs:
                return self._send(404, {"error": "not found"})
            return self._send(200, None, fake.outputs[key])
        return self._send(404, {"error": "unknown path"})

    def do_POST(self) -> None:  # noqa: N802
        fake = self.fake
        url = urllib.parse.urlparse(self.path)
        body = self._body()
        if url.path == "/upload/image":
            msg = BytesParser(policy=email_policy).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
            fields: dict[str, Any] = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields[name] = (part.get_filename(), part.get_payload(decode=True))
            filename, data = fields["image"]
            sub = (fields.get("subfolder", (None, b""))[1] or b"").decode()
            stored, i = filename, 1
            while (f"{sub}/{stored}" if sub else stored) in fake.inputs and \
                    fake.inputs[f"{sub}/{stored}" if sub else stored] != data:
                stem, dot, ext = filename.rpartition(".")
                stored, i = f"{stem} ({i}).{ext}", i + 1
            fake.inputs[f"{sub}/{stored}" if sub else stored] = data
            return self._send(200, {"name": stored, "subfolder": sub, "type": "input"})
        payload = json.loads(body) if body else {}
        if url.path == "/prompt":
            code, answer = fake.queue_prompt(payload)
            return self._send(code, answer)
        if url.path == "/queue":
            with fake.lock:
                for pid in payload.get("delete", []):
                    fake.pending = deque(item for item in fake.pending if item[0] != pid)
            return self._send(200, None, b"")
        if url.path == "/interrupt":
            if payload.get("prompt_id") in (None, fake.running):
                fake.interrupt_flag.set()
            return self._send(200, None, b"")
        return self._send(404, {"error": "unknown path"})
