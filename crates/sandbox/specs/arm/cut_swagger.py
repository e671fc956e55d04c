#!/usr/bin/env python3
"""Cut a self-contained Swagger 2.0 subset out of Azure REST API specs.

Reads one or more Swagger 2.0 files from a local checkout (or partial copy) of
https://github.com/Azure/azure-rest-api-specs and writes ONE document that holds
only the requested operations plus every definition / parameter / response they
reference, transitively.  References into other files (common-types, sibling
files such as authorization's common-types.json) are copied into the output's
own `#/definitions`, `#/parameters` (or `#/responses`) sections, so the output
has no reference to any other file.

Usage (paths of --keep are relative to --src-root):

    python3 cut_swagger.py --src-root /tmp/armcut --out resources-2024-11-01.json \
        --keep specification/resources/.../2024-11-01/resources.json \
               ResourceGroups_Get,ResourceGroups_List

`--keep SPEC OPS` may be repeated; all kept operations go into the one output
document.  Top-level `swagger`, `info`, `host`, `schemes`, `consumes`,
`produces`, `securityDefinitions` and `security` are copied from the FIRST
--keep spec.

What is kept of an operation: everything except `x-ms-examples` (example files
are not copied), i.e. path, method, parameters, responses, tags, descriptions,
`x-ms-long-running-operation(-options)`, `x-ms-pageable`, `x-ms-odata`.
Operations may come from `paths` or `x-ms-paths`; they are written back under
the same section and path key.  Path-level `parameters` are kept too.

Naming of copied components: a component keeps its original name unless that
name is already used by a different component, in which case it is suffixed
with `__` and a tag built from its file path (e.g.
`ErrorResponse__common_types_resource_management_v1_types`).  Names defined in
the --keep specs themselves are reserved first, so they never get a suffix
unless two --keep specs define the same name.

If a kept definition has a `discriminator`, the definitions of the same file
that derive from it (allOf -> it) are copied too, so polymorphic payloads can
still be validated.

An operationId that is not found is reported on stderr and skipped (use
--strict to make that an error).  After writing, the output is checked: every
`$ref` must start with `#/` and resolve inside the document, and the set of
operationIds must be exactly the kept ones; a failed check exits non-zero.

Standard library only.
"""

import argparse
import copy
import json
import os
import re
import sys

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
TOP_LEVEL_COPIED = (
    "swagger",
    "info",
    "host",
    "schemes",
    "consumes",
    "produces",
    "securityDefinitions",
    "security",
)
COMPONENT_SECTIONS = ("definitions", "parameters", "responses")
DROPPED_KEYS = ("x-ms-examples",)


class CutError(Exception):
    pass


class Cutter:
    def __init__(self, src_root):
        self.src_root = os.path.abspath(src_root)
        self.docs = {}  # abs path -> parsed json
        self.names = {}  # (abs path, section, name) -> local name
        self.taken = {}  # (section, local name) -> (abs path, section, name)
        self.reserved = {}  # (section, name) -> (abs path, section, name)
        self.out = {s: {} for s in COMPONENT_SECTIONS}

    # ----------------------------------------------------------------- files
    def load(self, path):
        path = os.path.normpath(os.path.abspath(path))
        if path not in self.docs:
            if not os.path.isfile(path):
                raise CutError("referenced file is missing: %s" % path)
            with open(path, encoding="utf-8") as f:
                self.docs[path] = json.load(f)
        return path, self.docs[path]

    def rel(self, path):
        return os.path.relpath(path, self.src_root)

    # ------------------------------------------------------------ references
    def split_ref(self, ref, base_file):
        """Return (abs file, list of pointer tokens) for a $ref string."""
        if "#" in ref:
            file_part, pointer = ref.split("#", 1)
        else:
            file_part, pointer = ref, ""
        if file_part:
            target = os.path.normpath(
                os.path.join(os.path.dirname(base_file), file_part)
            )
        else:
            target = base_file
        if not pointer.startswith("/"):
            raise CutError(
                "unsupported $ref %r in %s (whole-file refs are not supported)"
                % (ref, self.rel(base_file))
            )
        tokens = [
            t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")
        ]
        if len(tokens) < 2 or tokens[0] not in COMPONENT_SECTIONS:
            raise CutError(
                "unsupported $ref %r in %s (only #/definitions, #/parameters, "
                "#/responses are handled)" % (ref, self.rel(base_file))
            )
        return target, tokens

    def tag_for(self, path):
        rel = self.rel(path)
        rel = re.sub(r"\.json$", "", rel)
        rel = re.sub(r"^specification/", "", rel)
        return re.sub(r"[^A-Za-z0-9]+", "_", rel).strip("_")

    def reserve_local_names(self, path):
        path, doc = self.load(path)
        for section in COMPONENT_SECTIONS:
            for name in doc.get(section, {}) or {}:
                self.reserved.setdefault((section, name), (path, section, name))

    def local_name(self, key):
        """Pick (once) the output name of component `key` and copy it."""
        if key in self.names:
            return self.names[key]
        path, section, name = key
        candidate = name
        owner = self.reserved.get((section, candidate))
        if (section, candidate) in self.taken or (owner is not None and owner != key):
            candidate = "%s__%s" % (name, self.tag_for(path))
            n = 2
            base = candidate
            while (section, candidate) in self.taken:
                candidate = "%s_%d" % (base, n)
                n += 1
        self.names[key] = candidate
        self.taken[(section, candidate)] = key
        _, doc = self.load(path)
        try:
            body = doc[section][name]
        except KeyError:
            raise CutError("%s has no #/%s/%s" % (self.rel(path), section, name))
        # Register before rewriting so recursive schemas terminate.
        self.out[section][candidate] = None
        self.out[section][candidate] = self.rewrite(body, path)
        if section == "definitions" and isinstance(body, dict) and "discriminator" in body:
            self.copy_subtypes(path, name)
        return candidate

    def copy_subtypes(self, path, base_name):
        _, doc = self.load(path)
        for sub_name, sub in (doc.get("definitions") or {}).items():
            for item in sub.get("allOf", []) if isinstance(sub, dict) else []:
                ref = item.get("$ref") if isinstance(item, dict) else None
                if not ref:
                    continue
                target, tokens = self.split_ref(ref, path)
                if target == path and tokens[:2] == ["definitions", base_name]:
                    self.local_name((path, "definitions", sub_name))

    def local_ref(self, ref, base_file):
        target, tokens = self.split_ref(ref, base_file)
        self.load(target)
        name = self.local_name((target, tokens[0], tokens[1]))
        rest = [t.replace("~", "~0").replace("/", "~1") for t in tokens[2:]]
        return "#/" + "/".join([tokens[0], name] + rest)

    def rewrite(self, node, base_file):
        """Deep-copy `node`, rewriting every $ref (and x-ms-odata) to local."""
        if isinstance(node, dict):
            result = {}
            for k, v in node.items():
                if k in DROPPED_KEYS:
                    continue
                if k == "$ref" and isinstance(v, str):
                    result[k] = self.local_ref(v, base_file)
                elif k == "x-ms-odata" and isinstance(v, str) and "#" in v:
                    result[k] = self.local_ref(v, base_file)
                else:
                    result[k] = self.rewrite(v, base_file)
            return result
        if isinstance(node, list):
            return [self.rewrite(v, base_file) for v in node]
        return copy.deepcopy(node)

    # ------------------------------------------------------------ operations
    def find_operations(self, path):
        """Map operationId -> (section, url path, method) for one spec."""
        _, doc = self.load(path)
        found = {}
        for section in ("paths", "x-ms-paths"):
            for url, item in (doc.get(section) or {}).items():
                for method, op in item.items():
                    if method in HTTP_METHODS and isinstance(op, dict):
                        op_id = op.get("operationId")
                        if op_id:
                            found[op_id] = (section, url, method)
        return found

    def cut(self, keeps, strict=False):
        """keeps: list of (spec path, [operationIds])."""
        for spec, _ in keeps:
            self.reserve_local_names(spec)
        first_path, first_doc = self.load(keeps[0][0])
        result = {}
        for key in TOP_LEVEL_COPIED:
            if key in first_doc:
                result[key] = copy.deepcopy(first_doc[key])
        sections = {"paths": {}, "x-ms-paths": {}}
        kept_ids = []
        for spec, op_ids in keeps:
            path, doc = self.load(spec)
            index = self.find_operations(path)
            for op_id in op_ids:
                if op_id not in index:
                    msg = "operationId %s not found in %s" % (op_id, self.rel(path))
                    if strict:
                        raise CutError(msg)
                    print("warning: " + msg + " (skipped)", file=sys.stderr)
                    continue
                if op_id in kept_ids:
                    raise CutError("operationId %s requested twice" % op_id)
                section, url, method = index[op_id]
                item = doc[section][url]
                out_item = sections[section].setdefault(url, {})
                if method in out_item:
                    raise CutError("two kept operations at %s %s" % (method, url))
                if "parameters" in item:
                    params = self.rewrite(item["parameters"], path)
                    if "parameters" in out_item and out_item["parameters"] != params:
                        raise CutError("conflicting path-level parameters at %s" % url)
                    out_item["parameters"] = params
                out_item[method] = self.rewrite(item[method], path)
                kept_ids.append(op_id)
        result["paths"] = sections["paths"]
        if sections["x-ms-paths"]:
            result["x-ms-paths"] = sections["x-ms-paths"]
        for section in COMPONENT_SECTIONS:
            if self.out[section]:
                result[section] = self.out[section]
        return result, kept_ids


# ------------------------------------------------------------------ checking
def iter_refs(node, where="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("$ref", "x-ms-odata") and isinstance(v, str):
                if k == "$ref" or "#" in v:
                    yield where + "/" + k, v
            else:
                yield from iter_refs(v, where + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_refs(v, "%s/%d" % (where, i))


def resolve_local(doc, ref):
    node = doc
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return False
        node = node[token]
    return True


def operation_ids(doc):
    ids = []
    for section in ("paths", "x-ms-paths"):
        for item in (doc.get(section) or {}).values():
            for method, op in item.items():
                if method in HTTP_METHODS:
                    ids.append(op.get("operationId"))
    return ids


def check(doc, expected_ids):
    problems = []
    for where, ref in iter_refs(doc):
        if not ref.startswith("#/"):
            problems.append("non-local ref %s at %s" % (ref, where))
        elif not resolve_local(doc, ref):
            problems.append("unresolved ref %s at %s" % (ref, where))
    ids = operation_ids(doc)
    if sorted(ids) != sorted(expected_ids):
        problems.append(
            "operation set mismatch: have %s, expected %s"
            % (sorted(ids), sorted(expected_ids))
        )
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Cut a self-contained Swagger 2.0 subset (see module docstring)."
    )
    ap.add_argument(
        "--src-root",
        required=True,
        help="directory holding the copied azure-rest-api-specs tree "
        "(the one that contains specification/)",
    )
    ap.add_argument(
        "--keep",
        nargs=2,
        action="append",
        required=True,
        metavar=("SPEC", "OPERATION_IDS"),
        help="spec path relative to --src-root and a comma-separated list of "
        "operationIds to keep; may be repeated",
    )
    ap.add_argument("--out", required=True, help="output JSON file")
    ap.add_argument(
        "--strict", action="store_true", help="fail if an operationId is missing"
    )
    args = ap.parse_args(argv)

    keeps = []
    for spec, ops in args.keep:
        op_ids = [o.strip() for o in ops.split(",") if o.strip()]
        keeps.append((os.path.join(args.src_root, spec), op_ids))

    cutter = Cutter(args.src_root)
    try:
        doc, kept_ids = cutter.cut(keeps, strict=args.strict)
    except CutError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1

    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)

    problems = check(json.loads(text), kept_ids)
    for p in problems:
        print("check failed: %s" % p, file=sys.stderr)
    print(
        "%s: %d operations, %d definitions, %d parameters, %d bytes%s"
        % (
            args.out,
            len(kept_ids),
            len(doc.get("definitions", {})),
            len(doc.get("parameters", {})),
            len(text.encode("utf-8")),
            "" if not problems else " (CHECK FAILED)",
        )
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
