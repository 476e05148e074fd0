"""A small Kubernetes API server for tests: HTTPS, bearer token, just enough of the API for kubectl.

It serves discovery (/api, /apis, /version and the group versions), Deployments, StatefulSets,
ReplicaSets, ControllerRevisions, Pods (get, list, patch, delete), the scale subresource and
HorizontalPodAutoscalers; it applies merge,
strategic-merge (as merge, plus ``$patch: replace``) and JSON patches, namespaces
``default`` and ``shop`` exist (kubectl asks after a 404), honours ``dryRun=All`` and
``resourceVersion`` conflicts, and records every request. A one-line "controller" sets each workload's
status after a write as ``rollout`` says: ``complete``, ``stuck`` or ``deadline`` (progress deadline
exceeded); a persisted HPA ``minReplicas`` raises its target's replicas. Hooks in ``after`` run after each
answered resource request (a test's way to let "someone else" change an object in between).
"""

from __future__ import annotations

import copy
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.remediation.executors.kubediscovery import discovery

TOKEN = "t0ken-for-tests"
KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "replicasets": "ReplicaSet",
         "controllerrevisions": "ControllerRevision", "horizontalpodautoscalers": "HorizontalPodAutoscaler",
         "pods": "Pod"}  # fmt: skip
OBJECT = re.compile(
    r"/apis?/(?P<gv>apps/v1|autoscaling/v2|v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?(?P<sub>/scale)?"
)


@dataclass(frozen=True)
class Recorded:
    """One request as received: method, path, query, content type, JSON body (None without one)."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """Write a CA and a server certificate for 127.0.0.1 with openssl; return (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (
        directory / n for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt")
    )
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=test-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True)
    return ca, cert, key


class KubeApiServer:
    """The test API server; ``objects`` maps (plural, namespace, name) to the stored JSON."""

    def __init__(self, certs: tuple[Path, Path, Path]) -> None:
        self.ca = certs[0]
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.rollout = "complete"
        self.after: list[Callable[[Recorded], None]] = []  # called after each answered request
        self._version = 100
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certs[1]), str(certs[2]))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(
        self, path: Path, *, context: str = "test", namespace: str = "default", ca: bool = True
    ) -> Path:
        """Write a kubeconfig for this server (token auth, its CA unless ``ca`` is False) and return it."""
        cluster: dict[str, Any] = {"server": self.url}
        if ca:
            cluster["certificate-authority"] = str(self.ca)
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "bot", "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": "test", "user": "bot", "namespace": namespace}}],
        }  # fmt: skip
        path.write_text(json.dumps(config), encoding="utf-8")
        return path

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object (plural from its kind) with a fresh resourceVersion; return the stored copy."""
        plural = next(p for p, k in KINDS.items() if k == obj["kind"])
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        self._version += 1
        meta["resourceVersion"] = str(self._version)
        self.objects[(plural, meta["namespace"], meta["name"])] = obj
        return obj

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        """Return the stored object."""
        return self.objects[(plural, namespace, name)]

    def writes(self) -> list[Recorded]:
        """Return the recorded requests that change something (dry runs included)."""
        return [r for r in self.requests if r.method not in ("GET", "HEAD")]

    # ------------------------------------------------------------------ request handling

    def handle(self, method: str, raw_path: str, content_type: str | None, body: Any) -> tuple[int, Any]:
        """Answer one request (already authenticated) with a status code and JSON."""
        url = urlparse(raw_path)
        query = parse_qs(url.query)
        recorded = Recorded(method, url.path, query, content_type, body)
        self.requests.append(recorded)
        found = discovery(url.path, self.url)
        if found is not None and method == "GET":
            return 200, found
        namespace = re.fullmatch(r"/api/v1/namespaces/([^/]+)", url.path)
        if namespace is not None and method == "GET" and namespace[1] in ("default", "shop"):
            return 200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace[1]}}
        match = OBJECT.fullmatch(url.path)
        if match is None or match["plural"] not in KINDS:
            return _status(404, "NotFound", f"the server could not find the requested resource {url.path}")
        with self._lock:
            answer = copy.deepcopy(self._resource(method, match, query, content_type, body))
            for hook in self.after:
                hook(recorded)
            return answer

    def _resource(
        self, method: str, m: re.Match[str], query: dict[str, list[str]], ctype: str | None, body: Any
    ) -> tuple[int, Any]:
        plural, ns, name = m["plural"], m["ns"], m["name"]
        if name is None:
            items = [o for (p, n, _), o in sorted(self.objects.items()) if p == plural and n == ns]
            items = [o for o in items if _selected(o, query.get("labelSelector", [""])[0])]
            return 200, {
                "apiVersion": m["gv"],
                "kind": KINDS[plural] + "List",
                "metadata": {},
                "items": items,
            }
        key = (plural, ns, name)
        if key not in self.objects:
            return _status(404, "NotFound", f'{plural} "{name}" not found')
        current = self.objects[key]
        if m["sub"]:
            return self._scale(method, current, body, query)
        if method == "GET":
            return 200, current
        if method == "DELETE":  # no controller starts a replacement: a test sees which pods went
            if query.get("dryRun") != ["All"]:
                del self.objects[key]
            return 200, current
        if method != "PATCH":
            return _status(405, "MethodNotAllowed", f"{method} is not supported here")
        try:
            updated = apply_patch(copy.deepcopy(current), body, ctype or "")
        except PatchError as exc:
            return _status(422, "Invalid", str(exc))
        return 200, self._commit(current, updated, query)

    def _scale(
        self, method: str, obj: dict[str, Any], body: Any, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        meta = obj["metadata"]
        scale = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                 "metadata": {"name": meta["name"], "namespace": meta["namespace"], "resourceVersion": meta["resourceVersion"]},
                 "spec": {"replicas": obj["spec"].get("replicas", 1)},
                 "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)}}  # fmt: skip
        if method == "GET":
            return 200, scale
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion") if method == "PUT" else None
        if wanted_rv and wanted_rv != meta["resourceVersion"]:
            return _status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version",
            )
        updated = copy.deepcopy(obj)
        replicas = (body.get("spec") or {}).get("replicas")
        updated["spec"]["replicas"] = replicas
        self._commit(obj, updated, query)
        return 200, {**scale, "spec": {"replicas": replicas}}

    def _commit(
        self, before: dict[str, Any], after: dict[str, Any], query: dict[str, list[str]]
    ) -> dict[str, Any]:
        if after.get("spec") != before.get("spec"):
            after["metadata"]["generation"] = int(before["metadata"].get("generation", 1)) + 1
        if query.get("dryRun") == ["All"]:
            return after
        stored = self.put(after)
        if stored["kind"] in ("Deployment", "StatefulSet"):
            self._control(stored)
        elif stored["kind"] == "HorizontalPodAutoscaler":
            ref = stored["spec"]["scaleTargetRef"]
            plural = {"Deployment": "deployments", "StatefulSet": "statefulsets"}[ref["kind"]]
            target = self.objects[(plural, stored["metadata"]["namespace"], ref["name"])]
            if target["spec"].get("replicas", 1) < stored["spec"]["minReplicas"]:
                target["spec"]["replicas"] = stored["spec"]["minReplicas"]
                target["metadata"]["generation"] += 1
                self._control(self.put(target))
        return stored

    def _control(self, obj: dict[str, Any]) -> None:
        replicas = obj["spec"].get("replicas", 1)
        generation = obj["metadata"]["generation"]
        status: dict[str, Any] = {"observedGeneration": generation, "replicas": replicas,
                                  "updatedReplicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas,
                                  "currentRevision": f"{obj['metadata']['name']}-r{generation}",
                                  "updateRevision": f"{obj['metadata']['name']}-r{generation}"}  # fmt: skip
        if self.rollout == "stuck":
            status |= {
                "updatedReplicas": 0,
                "readyReplicas": 0,
                "availableReplicas": 0,
                "currentRevision": "old",
            }
        if self.rollout == "deadline":
            status |= {"updatedReplicas": 0, "availableReplicas": 0}
            status["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                     "message": f'ReplicaSet "{obj["metadata"]["name"]}-new" has timed out progressing.'}]  # fmt: skip
        obj["status"] = status


class PatchError(Exception):
    """A patch that cannot be applied (a failed JSON-patch test, a missing path)."""


def apply_patch(obj: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """Apply a merge, strategic-merge or JSON patch as the API server would, for the bodies tests send."""
    if content_type.startswith("application/json-patch+json"):
        for op in patch:
            *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
            node = obj
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
            if op["op"] == "test" and node.get(last) != op["value"]:
                raise PatchError(
                    f"the test of {op['path']} failed: {node.get(last)!r} is not {op['value']!r}"
                )
            if op["op"] == "replace" and last not in node:
                raise PatchError(f"replace of {op['path']}: the path does not exist")
            if op["op"] in ("add", "replace"):
                node[last] = op["value"]
            elif op["op"] == "remove":
                node.pop(last)
        return obj
    if content_type.startswith(("application/merge-patch+json", "application/strategic-merge-patch+json")):
        return _merge(obj, patch)
    raise PatchError(f"unsupported patch content type {content_type!r}")


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    base = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = _merge(base.get(key), value)
    return base


def _selected(obj: dict[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    pairs = [part.split("=", 1) for part in selector.split(",") if part]
    return all(labels.get(k) == v for k, v in pairs)


def _status(code: int, reason: str, message: str) -> tuple[int, Any]:
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}  # fmt: skip


def _handler(api: KubeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.headers.get("Authorization", "").lower() != f"bearer {TOKEN}":
                code, payload = _status(401, "Unauthorized", "Unauthorized")
            else:
                body = json.loads(raw) if raw else None
                code, payload = api.handle(self.command, self.path, self.headers.get("Content-Type"), body)
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler
