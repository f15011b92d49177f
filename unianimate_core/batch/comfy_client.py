"""A small HTTP client for ComfyUI's server API (standard library only).

Only what a batch needs: check a server (``/system_stats``, ``/object_info``), upload an input file
(``/upload/image`` - it takes videos too), queue an API-format prompt under our own prompt id
(``/prompt``), follow it (``/history/{id}``, ``/queue``), download its files (``/view``) and cancel
it (``/interrupt`` for our prompt only, ``/queue`` delete). No websocket: a batch polls the history.

Errors are split by what the caller should do:

* :class:`ServerUnavailable` - connection refused/reset, timeout, 5xx: the server is down or sick;
  the job can run on another server;
* :class:`PromptRejected` - HTTP 400 or ``node_errors``: the prompt is invalid for this job; the
  message lists each node's errors (the job fails with it);
* :class:`ComfyAPIError` - any other unexpected answer.
"""
from __future__ import annotations

import json
import mimetypes
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from ..errors import UniAnimateError


class ComfyAPIError(UniAnimateError):
    """The server answered something this client does not understand."""

    def __init__(self, message: str, payload: Any = None) -> None:
        super().__init__(message)
        self.payload = payload


class ServerUnavailable(ComfyAPIError):
    """The server cannot be reached or failed internally; try another one."""


class PromptRejected(ComfyAPIError):
    """The server refused the prompt (validation errors, named per node)."""


def format_node_errors(payload: Any) -> str:
    """ComfyUI's ``{"error": {...}, "node_errors": {id: {"class_type", "errors": [...]}}}`` as one line."""
    if not isinstance(payload, dict):
        return str(payload)
    parts = []
    error = payload.get("error")
    if isinstance(error, dict) and error.get("message"):
        parts.append(str(error["message"]).rstrip("."))
    for node_id, info in (payload.get("node_errors") or {}).items():
        if not isinstance(info, dict):
            continue
        for e in info.get("errors") or []:
            name = (e.get("extra_info") or {}).get("input_name")
            detail = e.get("details") or e.get("message") or ""
            parts.append(f"{info.get('class_type', '?')} (node {node_id})" + (f" input {name}" if name else "")
                         + f": {detail}")
    return "; ".join(parts) or json.dumps(payload)[:500]


class ComfyClient:
    """``ComfyClient("http://127.0.0.1:8188")``; every call raises one of the errors above."""

    def __init__(self, url: str, timeout: float = 30.0, client_id: str | None = None) -> None:
        url = url.strip().rstrip("/")
        if "://" not in url:
            url = "http://" + url
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ComfyAPIError(f"{url!r} is not a ComfyUI server address; use http://HOST:PORT (e.g. "
                                "http://127.0.0.1:8188).")
        self.url = url
        self.timeout = timeout
        self.client_id = client_id or uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"ComfyClient({self.url!r})"

    # ------------------------------------------------------------------ transport
    def request(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                payload: Any = json.loads(body)
            except ValueError:
                payload = body.decode(errors="replace")[:2000]
            if exc.code == 400:
                raise PromptRejected(f"{self.url} refused {method} {path}: {format_node_errors(payload)}", payload) from None
            if exc.code >= 500:
                raise ServerUnavailable(f"{self.url} failed on {method} {path} (HTTP {exc.code})", payload) from None
            raise ComfyAPIError(f"{self.url} answered HTTP {exc.code} to {method} {path}: {payload}", payload) from None
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnavailable(f"cannot reach {self.url} ({method} {path}: {reason})") from None

    def json(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        raw = self.request(method, path, data, {"Content-Type": "application/json"} if data is not None else None,
                           timeout)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ComfyAPIError(f"{self.url}{path} did not answer JSON ({exc}); is this a ComfyUI server?") from exc

    # ------------------------------------------------------------------ API
    def system_stats(self) -> dict[str, Any]:
        return self.json("GET", "/system_stats", timeout=10)

    def object_info(self, node: str | None = None) -> dict[str, Any]:
        return self.json("GET", "/object_info" + ("/" + urllib.parse.quote(node) if node else ""), timeout=120)

    def upload(self, name: str, data: bytes, subfolder: str = "", kind: str = "input") -> str:
        """Put a file into the server's input folder; returns the value a loader node takes (``sub/name``).

        An identical file already there is reused (ComfyUI compares the bytes); a different file of
        the same name is stored under a new name, which is returned.
        """
        boundary = uuid.uuid4().hex
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        fields = [("type", kind), ("subfolder", subfolder)]
        body = bytearray()
        for key, value in fields:
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n").encode()
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                 f"Content-Type: {ctype}\r\n\r\n").encode()
        body += data + f"\r\n--{boundary}--\r\n".encode()
        raw = self.request("POST", "/upload/image", bytes(body),
                           {"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=max(self.timeout, 300))
        try:
            answer = json.loads(raw)
            stored = answer["name"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ComfyAPIError(f"{self.url} answered the upload of {name} unexpectedly ({exc}).") from exc
        sub = answer.get("subfolder") or ""
        return f"{sub}/{stored}" if sub else stored

    def queue_prompt(self, prompt: dict[str, Any], prompt_id: str | None = None) -> str:
        """Queue an API-format prompt; returns its id. Any node error refuses the whole prompt (PromptRejected)."""
        prompt_id = prompt_id or uuid.uuid4().hex
        answer = self.json("POST", "/prompt", {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id})
        if not isinstance(answer, dict) or "prompt_id" not in answer:
            raise ComfyAPIError(f"{self.url} answered the prompt unexpectedly: {answer!r}"[:500], answer)
        if answer.get("node_errors"):  # ComfyUI queues the valid outputs and drops the rest: not a whole job
            self.cancel(answer["prompt_id"])
            raise PromptRejected(f"{self.url} refused part of the prompt: {format_node_errors(answer)}", answer)
        return str(answer["prompt_id"])

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's history entry (``status``, ``outputs``) once it has run, else None."""
        answer = self.json("GET", f"/history/{urllib.parse.quote(prompt_id)}")
        return answer.get(prompt_id) if isinstance(answer, dict) else None

    def queue(self) -> tuple[list[str], list[str]]:
        """Prompt ids (running, pending)."""
        answer = self.json("GET", "/queue") or {}

        def ids(items: Any) -> list[str]:
            return [str(item[1]) for item in items or [] if isinstance(item, (list, tuple)) and len(item) > 1]

        return ids(answer.get("queue_running")), ids(answer.get("queue_pending"))

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        return self.request("GET", f"/view?{query}", timeout=max(self.timeout, 300))

    def cancel(self, prompt_id: str) -> None:
        """Remove the prompt from the queue, or interrupt it if it is running (only this prompt)."""
        self.json("POST", "/queue", {"delete": [prompt_id]})
        self.json("POST", "/interrupt", {"prompt_id": prompt_id})


def output_files(entry: dict[str, Any]) -> list[dict[str, str]]:
    """Every file a history entry lists (``{"filename", "subfolder", "type"}``), in node order."""
    files = []
    outputs = entry.get("outputs") or {}
    for node_id in sorted(outputs, key=lambda k: (len(k), k)):
        for items in (outputs[node_id] or {}).values():
            if isinstance(items, list):
                files += [i for i in items if isinstance(i, dict) and "filename" in i]
    return files


def execution_error(entry: dict[str, Any]) -> str | None:
    """The reason a history entry failed (node type, id and message), or None if it did not fail."""
    status = entry.get("status") or {}
    messages = status.get("messages") or []
    for event, data in messages:
        if event == "execution_error" and isinstance(data, dict):
            return (f"{data.get('node_type', '?')} (node {data.get('node_id', '?')}) failed: "
                    f"{str(data.get('exception_message', '')).strip()}")
    for event, data in messages:
        if event == "execution_interrupted":
            return "interrupted on the server"
    if status.get("status_str") == "error":
        return "the server reported an error without details"
    return None


__all__ = ["ComfyAPIError", "ComfyClient", "PromptRejected", "ServerUnavailable", "execution_error",
           "format_node_errors", "output_files"]
