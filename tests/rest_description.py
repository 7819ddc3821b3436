"""GitHub's published REST description (OpenAPI 3.0), trimmed to the operations the fake serves.

`data/github-rest-description.json` keeps, for each operation ("POST /repos/{owner}/{repo}/pulls"),
its parameters and request body schema exactly as GitHub publishes them in the npm package
`@octokit/openapi` (`generated/api.github.com.deref.json`), with prose and examples removed. The
fake server checks every request against it, so a client sending what GitHub's description does
not take fails a test, whatever the fake itself would have accepted.

Refresh it (or add an operation) from the npm registry:

    python -m tests.rest_description [--version X.Y.Z] [--add "METHOD /path"]...
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import io
import json
import re
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

FILE = Path(__file__).parent / "data" / "github-rest-description.json"
PACKAGE = "@octokit/openapi"
MEMBER = "package/generated/api.github.com.deref.json"
REGISTRY = "https://registry.npmjs.org"
DIGITS, SEGMENT = r"\d+", r"[^/]+"
# schema keys that describe rather than constrain
_PROSE = {"description", "example", "examples", "title", "externalDocs", "deprecated", "readOnly"}


@dataclass(frozen=True)
class Operation:
    key: str  # "METHOD /path/{param}"
    path: dict[str, dict[str, Any]]  # path parameter -> schema
    query: dict[str, dict[str, Any]]  # query parameter -> schema
    body: dict[str, Any] | None  # request body schema; None when the operation takes none
    body_required: bool

    @property
    def method(self) -> str:
        return self.key.partition(" ")[0]

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """The path as a regular expression; integer parameters match digits only."""

        def group(match: re.Match[str]) -> str:
            name = match.group(1)
            digits = self.path.get(name, {}).get("type") == "integer"
            return f"(?P<{name}>{DIGITS if digits else SEGMENT})"

        return re.compile(re.sub(r"\{(\w+)\}", group, self.key.partition(" ")[2]))

    def violations(self, query: dict[str, str], body: Any) -> list[str]:
        """What in this request GitHub's description does not allow, one line each."""
        found = [
            f"query parameter {n!r} is not in the description" for n in query if n not in self.query
        ]
        for name, value in query.items():
            if (schema := self.query.get(name)) is not None:
                found += [f"query {name}={value!r}: {e}" for e in _errors(schema, _typed(value))]
        if self.body is None:
            return found + ([] if body is None else ["this operation takes no request body"])
        if body is None:
            return found + (["the request body is required"] if self.body_required else [])
        found += [f"body{_where(e.absolute_path)}: {e.message}" for e in _errors(self.body, body)]
        unknown = sorted(set(body) - _properties(self.body)) if isinstance(body, dict) else []
        # GitHub ignores fields it does not know: what the client meant by them never happens
        return found + [f"body field {name!r} is not in the description" for name in unknown]


def _errors(schema: dict[str, Any], value: Any) -> list[Any]:
    return sorted(Draft4Validator(schema).iter_errors(value), key=lambda e: list(e.path))


def _where(path: Any) -> str:
    return "".join(f"[{p!r}]" for p in path)


def _typed(value: str) -> Any:
    """A query string value as the description types it: digits are integers, true/false
    booleans (GitHub parses them so)."""
    if value.isdigit():
        return int(value)
    return {"true": True, "false": False}.get(value, value)


def _properties(schema: dict[str, Any]) -> set[str]:
    names = set(schema.get("properties", {}))
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(key, []):
            names |= _properties(branch)
    return names


@functools.cache
def operations() -> dict[str, Operation]:
    data = json.loads(FILE.read_text(encoding="utf-8"))
    return {key: Operation(key, **op) for key, op in data["operations"].items()}


def operation(key: str) -> Operation:
    if key not in operations():
        raise KeyError(
            f"{key} is not in {FILE.name}: add it with `python -m tests.rest_description`"
        )
    return operations()[key]


# -- refreshing from the registry -------------------------------------------------------------------
def refresh(keys: list[str], version: str | None) -> dict[str, Any]:
    meta = _get_json(f"{REGISTRY}/{PACKAGE.replace('/', '%2f')}/{version or 'latest'}")
    tarball = _get(meta["dist"]["tarball"])
    algorithm, _, digest = meta["dist"]["integrity"].partition("-")
    if base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode() != digest:
        raise SystemExit(f"{PACKAGE} {meta['version']}: the tarball does not match its integrity")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        member = archive.extractfile(MEMBER)
        assert member is not None
        description = json.load(member)
    source = {
        "package": PACKAGE,
        "version": meta["version"],
        "file": MEMBER.removeprefix("package/"),
        "integrity": meta["dist"]["integrity"],
        "openapi": description["openapi"],
    }
    return {
        "source": source,
        "operations": {key: _trim_operation(description, key) for key in keys},
    }


def _trim_operation(description: dict[str, Any], key: str) -> dict[str, Any]:
    method, _, path = key.partition(" ")
    op = description["paths"][path][method.lower()]
    params = op.get("parameters", [])
    by_place = {
        place: {p["name"]: _trim(p["schema"]) for p in params if p["in"] == place}
        for place in ("path", "query")
    }
    body = op.get("requestBody")
    schema = body["content"]["application/json"]["schema"] if body else None
    return {
        **by_place,
        "body": _trim(schema) if schema is not None else None,
        "body_required": bool(body and body.get("required")),
    }


def _trim(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema without prose, OpenAPI 3.0's `nullable` spelled as JSON Schema's type list."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _PROSE or key.startswith("x-"):
            continue
        if key == "properties":
            out[key] = {name: _trim(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _trim(value)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [_trim(sub) for sub in value]
        elif key != "nullable":
            out[key] = value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def _get_json(url: str) -> dict[str, Any]:
    return json.loads(_get(url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help=f"{PACKAGE} version (default: the latest)")
    parser.add_argument("--add", action="append", default=[], metavar="'METHOD /path'")
    args = parser.parse_args()
    keys = sorted(
        {*json.loads(FILE.read_text())["operations"], *args.add} if FILE.exists() else args.add
    )
    data = refresh(keys, args.version)
    FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{FILE.name}: {len(keys)} operations from {PACKAGE} {data['source']['version']}")


if __name__ == "__main__":
    main()
