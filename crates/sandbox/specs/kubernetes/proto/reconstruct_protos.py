#!/usr/bin/env python3
"""Writes the cut of Kubernetes' `generated.proto` files the sandbox serves protobuf with.

The source is the crate `k8s-pb` (crates.io; Apache-2.0), whose Rust is prost-build's
output for the official `generated.proto` files of k8s.io/api and k8s.io/apimachinery:
for every message it keeps the name, and for every field its number, wire type, label,
and (snake-cased) name. The field names are written back as the JSON names the API uses
(which is what a transcoder to JSON needs): each is found among the properties of the
same definition in the OpenAPI definitions (`_definitions.json` of the PyPI package
`kubernetes-validate`, the source of `../kubernetes.json`), comparing names without case
or underscores; the few messages the OpenAPI document has no object for (Time, Quantity,
IntOrString, runtime.Unknown...) keep the lowerCamel form of their proto names.

Usage: reconstruct_protos.py K8S_PB_SRC_DIR DEFINITIONS_JSON OUT_DIR
"""

import json
import os
import re
import sys
import textwrap
from collections import defaultdict

# The kinds the sandbox serves or may serve, their lists, and what the API itself sends.
ROOTS = {
    "k8s.io.api.core.v1": [
        "Namespace", "NamespaceList", "ServiceAccount", "ServiceAccountList", "Secret",
        "SecretList", "ConfigMap", "ConfigMapList", "ResourceQuota", "ResourceQuotaList",
        "LimitRange", "LimitRangeList", "Event", "EventList",
    ],
    "k8s.io.api.apps.v1": ["Deployment", "DeploymentList"],
    "k8s.io.api.rbac.v1": [
        "Role", "RoleList", "RoleBinding", "RoleBindingList", "ClusterRole",
        "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList",
    ],
    "k8s.io.api.networking.v1": ["NetworkPolicy", "NetworkPolicyList"],
    "k8s.io.api.authentication.v1": ["TokenRequest", "TokenReview", "SelfSubjectReview"],
    "k8s.io.api.authorization.v1": [
        "SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview",
        "LocalSubjectAccessReview",
    ],
    "k8s.io.api.events.v1": ["Event", "EventList"],
    "k8s.io.apimachinery.pkg.apis.meta.v1": [
        "Status", "DeleteOptions", "APIResourceList", "APIGroupList", "APIVersions",
        "APIGroup", "List", "PartialObjectMetadata", "PartialObjectMetadataList",
    ],
    "k8s.io.apimachinery.pkg.runtime": ["Unknown", "TypeMeta", "RawExtension"],
}

SCALARS = {"string", "bool", "bytes", "int32", "int64", "double", "float", "uint32", "uint64"}


def package_of(module_path):
    """`["api", "core", "v1"]` is `k8s.io.api.core.v1`."""
    return "k8s.io." + ".".join(module_path)


def parse_crate(src):
    """{package: {message: {"doc": str, "fields": [field]}}} from the crate's modules."""
    packages = {}
    for root, _, files in os.walk(src):
        if "mod.rs" not in files:
            continue
        module = os.path.relpath(root, src).split(os.sep)
        text = open(os.path.join(root, "mod.rs")).read()
        if "::prost::Message" not in text:
            continue
        packages[package_of(module)] = parse_module(text, module)
    return packages


STRUCT = re.compile(r"((?:///[^\n]*\n)*)#\[derive\([^)]*\)\]\npub struct (\w+) \{\n(.*?)\n\}", re.S)
FIELD = re.compile(r"#\[prost\(([^)]*)\)\]\s*pub (?:r#)?(\w+):\s*(.*?),?\s*(?=\n\s*///|\n\s*#\[prost|\Z)", re.S)


def parse_module(text, module):
    messages = {}
    for doc, name, body in STRUCT.findall(text):
        doc_lines = [line[3:].strip() for line in doc.splitlines()]
        fields = []
        for attrs, fname, rust_type in FIELD.findall(body):
            fields.append(parse_field(attrs, fname, "".join(rust_type.split()).rstrip(",").replace(",>", ">"), module))
        messages[name] = {"doc": first_sentence(doc_lines), "fields": fields}
    return messages


def first_sentence(lines):
    """A message's comment, to its first full stop (or its first paragraph)."""
    paragraph = " ".join(lines[: lines.index("")] if "" in lines else lines)
    return paragraph.split(". ")[0].rstrip(".")


def resolve(rust_path, module):
    """A Rust type path, relative to `module`, as (package, message)."""
    parts = [p for p in rust_path.split("::") if p]
    here = list(module)
    while parts and parts[0] == "super":
        here.pop()
        parts.pop(0)
    *mods, name = parts
    return package_of(here + mods), name


def last_type(rust_type):
    """The innermost type argument: `Option<Vec<super::X>>` → `super::X`."""
    inner = rust_type
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<"):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper):-1].strip()
    return inner


def parse_field(attrs, name, rust_type, module):
    tag = int(re.search(r'tag = "(\d+)"', attrs).group(1))
    kind = attrs.split(",")[0].split("=")[0].strip()
    label = "repeated" if "repeated" in attrs else "optional"
    field = {"name": name, "tag": tag, "label": label}
    if kind == "btree_map":
        key, value = re.search(r'btree_map = "(\w+), (\w+)"', attrs).groups()
        field["label"] = "map"
        field["key"] = key
        if value == "message":
            args = rust_type[rust_type.index("BTreeMap<") + len("BTreeMap<"):-1]
            value_type = args.split(",", 1)[1].strip()
            field["type"] = resolve(value_type, module)
        else:
            field["type"] = value
    elif kind == "message":
        field["type"] = resolve(last_type(rust_type), module)
    elif kind in SCALARS:
        field["type"] = kind
    else:
        raise SystemExit(f"unexpected prost field kind {kind!r} in {attrs!r}")
    return field


def openapi_name(package, message):
    return "io.k8s." + package[len("k8s.io."):] + "." + message


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def json_names(packages, definitions):
    """Renames every field to its JSON name; returns the fields left to lowerCamel."""
    guessed = []
    for package, messages in packages.items():
        for message, m in messages.items():
            props = definitions.get(openapi_name(package, message), {}).get("properties", {})
            by_key = {p.replace("_", "").lower(): p for p in props}
            for f in m["fields"]:
                found = by_key.get(f["name"].replace("_", "").lower())
                if found is None:
                    if not f.get("inline"):
                        guessed.append(f"{package}.{message}.{f['name']}")
                    found = camel(f["name"])
                f["name"] = found
    return guessed


def reachable(packages):
    seen = set()
    todo = [(p, m) for p, ms in ROOTS.items() for m in ms]
    while todo:
        p, m = todo.pop()
        if (p, m) in seen:
            continue
        if m not in packages.get(p, {}):
            raise SystemExit(f"{p}.{m} is not in the crate")
        seen.add((p, m))
        for f in packages[p][m]["fields"]:
            if isinstance(f["type"], tuple):
                todo.append(f["type"])
    return seen


def type_name(t, package):
    if isinstance(t, str):
        return t
    p, m = t
    return m if p == package else f".{p}.{m}"


def proto_path(package):
    """`k8s.io.api.core.v1` is `k8s.io/api/core/v1/generated.proto`."""
    return "k8s.io/" + package[len("k8s.io."):].replace(".", "/") + "/generated.proto"


def write(packages, keep, out, source):
    by_package = defaultdict(list)
    for p, m in keep:
        by_package[p].append(m)
    for package, names in sorted(by_package.items()):
        imports = sorted({
            f["type"][0]
            for m in names
            for f in packages[package][m]["fields"]
            if isinstance(f["type"], tuple) and f["type"][0] != package
        })
        lines = [
            f"// Cut of {proto_path(package)} (Apache-2.0, The Kubernetes Authors):",
            "// the messages the sandbox's kinds reach, reconstructed by reconstruct_protos.py",
            f"// from {source}. Field names are the API's JSON names.",
            "",
            'syntax = "proto2";',
            "",
            f"package {package};",
            "",
        ]
        lines += [f'import "{proto_path(p)}";' for p in imports]
        if imports:
            lines.append("")
        for name in sorted(names):
            m = packages[package][name]
            if m["doc"]:
                lines += textwrap.wrap(m["doc"], 88, initial_indent="// ", subsequent_indent="// ")
            lines.append(f"message {name} {{")
            for f in sorted(m["fields"], key=lambda f: f["tag"]):
                t = type_name(f["type"], package)
                if f["label"] == "map":
                    lines.append(f"  map<{f['key']}, {t}> {f['name']} = {f['tag']};")
                else:
                    inline = " [(inline) = true]" if f.get("inline") else ""
                    lines.append(f"  {f['label']} {t} {f['name']} = {f['tag']}{inline};")
            lines += ["}", ""]
        path = os.path.join(out, proto_path(package))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write("\n".join(lines))
        print(f"{path}: {len(names)} messages")


def original_names(packages, definitions):
    """prost writes `SELinuxOptions` as `SeLinuxOptions`: takes the OpenAPI name back."""
    for package, messages in packages.items():
        prefix = openapi_name(package, "")
        by_key = {d[len(prefix):].lower(): d[len(prefix):] for d in definitions if d.startswith(prefix)}
        renamed = {by_key.get(m.lower(), m): body for m, body in messages.items()}
        messages.clear()
        messages.update(renamed)
    for messages in packages.values():
        for body in messages.values():
            for f in body["fields"]:
                if isinstance(f["type"], tuple):
                    p, m = f["type"]
                    prefix = openapi_name(p, "")
                    match = [d[len(prefix):] for d in definitions if d.lower() == (prefix + m).lower()]
                    f["type"] = (p, match[0] if match else m)


def properties(definitions, package, message):
    return set(definitions.get(openapi_name(package, message), {}).get("properties", {}))


def key(name):
    return name.replace("_", "").lower()


def inline_fields(packages, definitions):
    """Go embeds some structs (`Volume` embeds `VolumeSource`): their JSON is inlined into
    the parent's object. Such a field has no property of its own, and every field of its
    type is one of the parent's properties. Embedded types the OpenAPI document has no
    object for take the properties of the parent that embeds them."""
    for package, messages in packages.items():
        for message, body in messages.items():
            props = properties(definitions, package, message)
            if not props:
                continue
            keys = {key(p) for p in props}
            for f in body["fields"]:
                if not isinstance(f["type"], tuple) or key(f["name"]) in keys:
                    continue
                p, m = f["type"]
                inner = packages.get(p, {}).get(m)
                if inner and all(key(g["name"]) in keys or g.get("inline") for g in inner["fields"]):
                    f["inline"] = True
                    own = openapi_name(p, m)
                    if own not in definitions:
                        definitions[own] = {"properties": {q: {} for q in props}}


def main():
    src, definitions_path, out = sys.argv[1:4]
    packages = parse_crate(src)
    definitions = json.load(open(definitions_path))
    definitions = definitions.get("$defs", definitions)
    original_names(packages, definitions)
    inline_fields(packages, definitions)
    inline_fields(packages, definitions)  # embedded types embedding others (ProbeHandler)
    keep = reachable(packages)
    guessed = json_names({p: {m: packages[p][m] for (pp, m) in keep if pp == p} for p in packages}, definitions)
    write(packages, keep, out, "the crate k8s-pb 0.9.0")
    print("fields named by lowerCamel (no OpenAPI property):", *sorted(guessed), sep="\n  ")


if __name__ == "__main__":
    main()
