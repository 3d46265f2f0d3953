"""A small Hugging Face Hub stand-in on 127.0.0.1 for tests: the endpoints that huggingface_hub's create_repo,
upload_folder (preupload + commit, every file "regular") and hf_hub_download (resolve) use. In memory only."""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class HubState:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo_id -> {"sha": str, "files": {path: bytes}, "history": [sha]}
        self.unhandled: list[str] = []
        self.lock = threading.Lock()


def _sha(*parts: bytes) -> str:
    return hashlib.sha1(b"".join(parts)).hexdigest()


class Handler(BaseHTTPRequestHandler):
    state: HubState

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data, headers: dict | None = None):
        self._send(status, json.dumps(data).encode(), headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _unhandled(self):
        self.state.unhandled.append(f"{self.command} {self.path}")
        self._json(404, {"error": f"not implemented: {self.command} {self.path}"}, {"X-Error-Code": "RepoNotFound"})

    def do_POST(self):
        path = urlparse(self.path).path
        if path == "/api/repos/create":
            payload = json.loads(self._body())
            repo_id = (
                f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            )
            with self.state.lock:
                if repo_id in self.state.repos:
                    return self._json(409, {"error": "You already created this model repo"})
                self.state.repos[repo_id] = {"sha": _sha(repo_id.encode()), "files": {}, "history": []}
            return self._json(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":  # the real Hub checks README.md metadata; so does this one
            import yaml

            content = json.loads(self._body())["content"]
            try:
                metadata = yaml.safe_load(content.split("---")[1]) if content.startswith("---") else {}
                assert isinstance(metadata, dict)
            except Exception as error:  # noqa: BLE001 - any parse failure is a 400, as on the Hub
                return self._json(400, {"errors": [{"message": f"invalid YAML: {error}"}]})
            return self._json(200, {"errors": [], "warnings": []})
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path)
        if not match or match.group(1) not in self.state.repos:
            return self._unhandled()
        repo_id, action = match.group(1), match.group(2)
        body = self._body()
        if action == "preupload":
            files = json.loads(body)["files"]
            return self._json(
                200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        repo = self.state.repos[repo_id]
        with self.state.lock:
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    repo["files"].pop(item["value"]["path"], None)
                elif item["key"] != "header":
                    return self._json(400, {"error": f"unsupported commit item {item['key']}"})
            repo["sha"] = _sha(repo["sha"].encode(), body)
            repo["history"].append(repo["sha"])
        host = self.headers["Host"]
        return self._json(200, {"commitUrl": f"http://{host}/{repo_id}/commit/{repo['sha']}", "commitOid": repo["sha"],
                                "pullRequestUrl": None})  # fmt: skip

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = unquote(urlparse(self.path).path)
        if path == "/api/agent-harnesses":  # huggingface_hub's client-detection registry: none here
            return self._json(200, {"standardEnvVars": [], "harnesses": {}})
        if path == "/api/whoami-v2":
            return self._json(
                200, {"name": "tester", "type": "user", "orgs": [], "auth": {"accessToken": {"role": "write"}}}
            )
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            repo = self.state.repos.get(match.group(1))
            if repo is None:
                return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if match.group(2) not in ("main", repo["sha"], *repo["history"]):
                return self._json(404, {"error": "Revision not found"}, {"X-Error-Code": "RevisionNotFound"})
            content = repo["files"].get(match.group(3))
            if content is None:
                return self._json(
                    404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo["sha"]}
                )
            headers = {"X-Repo-Commit": repo["sha"], "ETag": f'"{_sha(content)}"'}
            return self._send(200, content, headers, "application/octet-stream")
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)/?(.*)", path)
        if match and match.group(1) in self.state.repos:
            prefix = match.group(3).strip("/") + "/" if match.group(3) else ""
            files = {
                name: data
                for name, data in self.state.repos[match.group(1)]["files"].items()
                if name.startswith(prefix)
            }
            if prefix and not files:
                return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return self._json(
                200,
                [
                    {"type": "file", "path": name, "size": len(data), "oid": _sha(data)}
                    for name, data in sorted(files.items())
                ],
            )
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if match and match.group(1) in self.state.repos:
            repo = self.state.repos[match.group(1)]
            siblings = [{"rfilename": name} for name in sorted(repo["files"])]
            return self._json(200, {"id": match.group(1), "sha": repo["sha"], "siblings": siblings, "private": False})
        return self._unhandled()


class LocalHub:
    """`with LocalHub() as hub:` serves on `hub.endpoint` until the block ends."""

    def __enter__(self):
        self.state = HubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
