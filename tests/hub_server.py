"""A loopback stand-in for the part of the Hugging Face Hub API that huggingface_hub's upload path calls.

Point `HF_ENDPOINT` at `FakeHub.url` (with `HF_HUB_OFFLINE=0`, and `HF_HUB_DISABLE_XET=1` so the client takes the
git-LFS path instead of Xet storage) and the real client talks to it:

    POST /api/repos/create                              create_repo (409 when it exists, as the Hub answers)
    POST /api/{type}s/{ns}/{name}/branch/{branch}       create_branch
    POST /api/validate-yaml                             the README.md front-matter check before any upload
    POST /api/{type}s/{ns}/{name}/preupload/{rev}       which files go inline ("regular") and which through LFS
    POST /{ns}/{name}.git/info/lfs/objects/batch        LFS batch: where to PUT each large object
    PUT  /lfs-objects/{sha256}?signature=...            the object itself, to a signed URL as on storage (no token)
    POST /api/{type}s/{ns}/{name}/commit/{rev}          the ndjson commit: inline files + LFS pointers
    GET  /api/{type}s/{ns}/{name}/revision/{rev}        repo_info (the client asks it when a commit would be empty)
    GET  /api/agent-harnesses                           public, no token: the client's user-agent registry (empty)

Files go through LFS as on the Hub: binary content, larger than 10 MB, or an LFS extension of the default
.gitattributes. Every request must carry `Authorization: Bearer <token>`; `fail_commits = N` makes the next N
commits answer 500 after their files were uploaded (a server error mid-push).
"""

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".png", ".parquet", ".zip", ".gz", ".npy", ".h5", ".msgpack")
REGULAR_SIZE_LIMIT = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)
REPO_API = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)/(?P<verb>preupload|commit|branch|revision)/(?P<rev>.+)$"
)
LFS_BATCH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$")
LFS_OBJECT = re.compile(r"^/lfs-objects/(?P<oid>[0-9a-f]{64})$")


class HubError(Exception):
    def __init__(self, status, message, code=None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


@dataclass
class Commit:
    oid: str
    branch: str
    message: str
    paths: list


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict = field(default_factory=dict)  # branch -> {path: bytes}
    commits: list = field(default_factory=list)


class FakeHub:
    def __init__(self, token, namespace="test-user"):
        self.token = token
        self.namespace = namespace  # whose repo a name without `org/` lands in
        self.repos = {}
        self.lfs_objects = {}
        self.requests = []  # (method, path, authorised)
        self.unexpected = []  # requests for endpoints this server does not know
        self.fail_commits = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id, branch="main"):
        """{path: bytes} of the branch head."""
        return dict(self.repos[repo_id].branches[branch])

    def env(self):
        """Environment for a subprocess that should talk to this server through huggingface_hub."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}

    # ---------------------------------------------------------------------------------------------------- API

    def create_repo(self, body):
        repo_id = f"{body.get('organization') or self.namespace}/{body['name']}"
        with self.lock:
            if repo_id in self.repos:
                # the Hub's 409 still names the repo: create_repo(exist_ok=True) reads its url from it
                raise HubError(409, "You already created this model repo", url=f"{self.url}/{repo_id}")
            private = body.get("visibility") == "private" or bool(body.get("private"))
            repo = self.repos[repo_id] = Repo(repo_id, private, {"main": {}})
            self._apply(repo, "main", "initial commit", {".gitattributes": GITATTRIBUTES.encode()})
        return {"url": f"{self.url}/{repo_id}", "name": repo_id}

    def create_branch(self, repo, branch, body):
        with self.lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            repo.branches[branch] = dict(repo.branches[body.get("startingPoint") or "main"])
        return {}

    def validate_yaml(self, body):
        match = re.match(r"^---\n(.*?)\n---\n", body["content"], re.S)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as error:
            raise HubError(400, f"invalid YAML: {error}")
        if not isinstance(metadata, (dict, type(None))):
            raise HubError(400, "metadata must be a mapping")
        return {"errors": [], "warnings": []}

    def preupload(self, repo, branch, body):
        self._branch(repo, branch)
        modes = []
        for file in body["files"]:
            sample = base64.b64decode(file["sample"])
            lfs = file["size"] > REGULAR_SIZE_LIMIT or b"\0" in sample or file["path"].endswith(LFS_SUFFIXES)
            modes.append({"path": file["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        return {"files": modes}

    def lfs_batch(self, repo, body):
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs_objects:
                href = f"{self.url}/lfs-objects/{obj['oid']}?signature={self._signature(obj['oid'])}"
                entry["actions"] = {"upload": {"href": href}}
            objects.append(entry)
        return {"transfer": "basic", "objects": objects}

    def _signature(self, oid):
        return hashlib.sha256(f"{self.token}:{oid}".encode()).hexdigest()[:32]

    def put_lfs_object(self, oid, content):
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, "content does not match its sha256")
        self.lfs_objects[oid] = content
        return {}

    def commit(self, repo, branch, body_lines):
        self._branch(repo, branch)
        with self.lock:
            if self.fail_commits:
                self.fail_commits -= 1
                raise HubError(500, "Internal Error - simulated outage while committing")
        header, changes = None, {}
        for line in body_lines:
            item = json.loads(line)
            if item["key"] == "header":
                header = item["value"]
            elif item["key"] == "file":
                changes[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "lfsFile":
                oid = item["value"]["oid"]
                if oid not in self.lfs_objects:
                    raise HubError(400, f"LFS object {oid} of {item['value']['path']} was never uploaded")
                changes[item["value"]["path"]] = self.lfs_objects[oid]
            elif item["key"] in ("deletedFile", "deletedFolder"):
                changes[item["value"]["path"]] = None
            else:
                raise HubError(400, f"unknown commit operation {item['key']}")
        with self.lock:
            commit = self._apply(repo, branch, header["summary"], changes)
        return {
            "commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit.oid}",
            "commitOid": commit.oid,
            "pullRequestUrl": None,
        }

    def repo_info(self, repo, branch):
        files = self._branch(repo, branch)
        head = next(commit.oid for commit in reversed(repo.commits) if commit.branch == branch)
        return {
            "id": repo.repo_id,
            "sha": head,
            "private": repo.private,
            "siblings": [{"rfilename": path} for path in sorted(files)],
        }

    def _branch(self, repo, branch):
        if branch not in repo.branches:
            raise HubError(404, f"Revision Not Found for url: {branch}", "RevisionNotFound")
        return repo.branches[branch]

    def _apply(self, repo, branch, message, changes):
        files = repo.branches[branch]
        for path, content in changes.items():
            if content is None:
                for existing in [p for p in files if p == path or p.startswith(path.rstrip("/") + "/")]:
                    del files[existing]
            else:
                files[path] = content
        oid = hashlib.sha1(f"{repo.repo_id}{branch}{len(repo.commits)}{message}".encode()).hexdigest()
        commit = Commit(oid, branch, message, sorted(changes))
        repo.commits.append(commit)
        return commit

    # ---------------------------------------------------------------------------------------------------- HTTP

    def route(self, method, path, body):
        if method == "POST" and path == "/api/repos/create":
            return self.create_repo(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self.validate_yaml(json.loads(body))
        if method == "PUT" and (match := LFS_OBJECT.match(path)):
            return self.put_lfs_object(match["oid"], body)
        if method == "POST" and (match := LFS_BATCH.match(path)):
            return self.lfs_batch(self._repo(match["repo"]), json.loads(body))
        if match := REPO_API.match(path):
            repo, revision = self._repo(match["repo"]), unquote(match["rev"])
            if method == "POST" and match["verb"] == "preupload":
                return self.preupload(repo, revision, json.loads(body))
            if method == "POST" and match["verb"] == "commit":
                return self.commit(repo, revision, body.decode().splitlines())
            if method == "POST" and match["verb"] == "branch":
                return self.create_branch(repo, revision, json.loads(body or b"{}"))
            if method == "GET" and match["verb"] == "revision":
                return self.repo_info(repo, revision)
        self.unexpected.append((method, path))
        raise HubError(404, f"this test server does not serve {method} {path}")

    def _repo(self, repo_id):
        if repo_id not in self.repos:
            raise HubError(404, "Repository Not Found", "RepoNotFound")
        return self.repos[repo_id]

    def _handler_class(hub):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: pytest shows failures, not traffic
                pass

            def read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def answer(self, status, payload, code=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if code:
                    self.send_header("X-Error-Code", code)
                if status >= 400:
                    self.send_header("X-Error-Message", payload["error"])
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self):
                body = self.read_body()
                url = urlsplit(self.path)
                path = url.path
                authorised = self.headers.get("Authorization") == f"Bearer {hub.token}"
                if self.command == "GET" and path == "/api/agent-harnesses":  # public on the Hub
                    return self.answer(200, {"standardEnvVars": [], "harnesses": {}})
                if (match := LFS_OBJECT.match(path)) and self.command == "PUT":
                    # like a presigned storage URL: the client sends no token there, the URL carries a signature
                    authorised = parse_qs(url.query).get("signature") == [hub._signature(match["oid"])]
                hub.requests.append((self.command, path, authorised))
                if not authorised:
                    return self.answer(401, {"error": "Invalid credentials in Authorization header"})
                try:
                    self.answer(200, hub.route(self.command, path, body))
                except HubError as error:
                    self.answer(error.status, {"error": error.message, **error.extra}, error.code)

            do_GET = do_POST = do_PUT = handle_any

        return Handler
