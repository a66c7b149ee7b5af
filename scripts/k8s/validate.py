#!/usr/bin/env python3
"""Offline validation of the Kubernetes objects this repository ships.

Sub-commands (each prints one `PASS <what>` / `FAIL <what>: <why>` / `SKIP <what>: <why>`
line per check and ends with `RESULT passed=N failed=M skipped=K`):

  versions                 print the oldest and newest Kubernetes versions >= 1.30 that
                           kubernetes-validate knows (space separated)
  objects  --crd C [--versions a,b] FILE...
                           every document of every FILE: built-in kinds with
                           kubernetes-validate --strict for each version; RedisFailoverCluster
                           against the CRD's openAPIV3Schema (+ CEL rules); ServiceMonitor
                           against an embedded minimal schema (kubernetes-validate has no schema
                           for this third-party CRD). Then cross-object checks per file
                           (selectors, role bindings, service accounts).
  reject   --crd C FILE...  every RedisFailoverCluster document must be REJECTED, with an error
                           containing its annotation ci.redisfailover.io/expected-error.
  crd      --crd C         the CRD itself: names agreed in the design, rules compile.
"""

import argparse
import copy
import json
import re
import sys

import jsonschema
import yaml

try:
    import kubernetes_validate.utils as kv
except ImportError:  # reported as a failure by the caller's install step
    kv = None

try:
    import celpy
except ImportError:
    celpy = None

MIN_SUPPORTED = (1, 30)
CR_KIND = "RedisFailoverCluster"
CR_API_VERSION = "redisfailover.io/v1alpha1"
EXPECTED_ERROR_ANNOTATION = "ci.redisfailover.io/expected-error"
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def ok(self, what):
        self.passed += 1
        print(f"PASS {what}")

    def fail(self, what, why):
        self.failed += 1
        print(f"FAIL {what}: {why}")

    def skip(self, what, why):
        self.skipped += 1
        print(f"SKIP {what}: {why}")

    def finish(self):
        print(f"RESULT passed={self.passed} failed={self.failed} skipped={self.skipped}")
        return 1 if self.failed else 0


def load_documents(path):
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def describe(doc):
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind', '?')}/{meta.get('name', '?')}"


# ---------------------------------------------------------------- Kubernetes versions

def supported_versions():
    """Oldest and newest Kubernetes versions >= 1.30 that kubernetes-validate knows."""
    def key(version):
        return tuple(int(part) for part in version.split(".")[:2])

    known = sorted({v for v in kv.all_versions() if key(v) >= MIN_SUPPORTED}, key=key)
    if not known:
        raise SystemExit("kubernetes-validate knows no Kubernetes version >= 1.30")
    return [known[0], known[-1]] if len(known) > 1 else known


# ---------------------------------------------------------------- CRD schema handling

def load_crd(path):
    docs = load_documents(path)
    if len(docs) != 1 or docs[0].get("kind") != "CustomResourceDefinition":
        raise SystemExit(f"{path}: expected exactly one CustomResourceDefinition")
    return docs[0]


def served_version(crd, api_version):
    group, _, version = api_version.partition("/")
    if crd["spec"]["group"] != group:
        return None
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version and entry.get("served", False):
            return entry
    return None


def strict_schema(schema):
    """Copy of an openAPIV3Schema where unknown fields are errors, as with kubectl's
    default --validate=strict (the API server would otherwise prune them silently)."""
    schema = copy.deepcopy(schema)

    def walk(node, in_combinator=False):
        if not isinstance(node, dict):
            return
        branches = [b for key in ("allOf", "anyOf", "oneOf") for b in node.get(key) or [] if isinstance(b, dict)]
        # Properties declared only inside allOf/anyOf/oneOf branches are known at this level
        # too (the branch still checks their type), or closing this object would reject them.
        branch_props = {name for b in branches for name in (b.get("properties") or {})}
        if branch_props:
            props = node.setdefault("properties", {})
            for name in branch_props:
                props.setdefault(name, {})
        if (
            "properties" in node
            and not in_combinator
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for child in (node.get("properties") or {}).values():
            walk(child)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])
        if isinstance(node.get("items"), dict):
            walk(node["items"])
        for branch in branches:
            # A branch sees only part of the object: it must not close it.
            walk(branch, in_combinator=True)

    walk(schema)
    # apiVersion, kind and metadata are always allowed at the root of a custom resource.
    root_props = schema.setdefault("properties", {})
    root_props.setdefault("apiVersion", {"type": "string"})
    root_props.setdefault("kind", {"type": "string"})
    root_props.setdefault("metadata", {"type": "object"})
    return schema


def apply_defaults(schema, value):
    """Structural defaulting as the API server does it: a missing property with a
    `default` gets it, then defaulting continues inside present values."""
    if isinstance(value, dict) and isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = set((schema.get("properties") or {}).keys())
            for name in value:
                if name not in known:
                    value[name] = apply_defaults(extra, value[name])
    elif isinstance(value, list) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


def cel_rules(schema, value, path="self"):
    """Yield (path, rule, value-at-path) for every x-kubernetes-validations rule whose
    node is present in `value`."""
    if not isinstance(schema, dict):
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path, rule, value
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name in value:
                yield from cel_rules(prop, value[name], f"{path}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = set((schema.get("properties") or {}).keys())
            for name, item in value.items():
                if name not in known:
                    yield from cel_rules(extra, item, f"{path}[{name!r}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from cel_rules(schema["items"], item, f"{path}[{index}]")


def evaluate_cel(rule_text, value):
    """True/False, or None with a reason when the rule cannot be evaluated here."""
    if celpy is None:
        return None, "cel-python is not installed"
    if "oldSelf" in rule_text:
        return None, "transition rule (needs the previous object)"
    try:
        env = celpy.Environment()
        program = env.program(env.compile(rule_text))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
    except Exception as exc:  # celpy raises several unrelated types
        return None, f"cel-python cannot evaluate it ({type(exc).__name__}: {exc})"
    if isinstance(result, Exception):
        return None, f"evaluation error: {result}"
    return bool(result), None


def validate_custom_resource(crd, doc):
    """Errors (list of str) and skipped-rule notes (list of str) for one custom resource."""
    errors, notes = [], []
    version = served_version(crd, doc.get("apiVersion", ""))
    if version is None or doc.get("kind") != crd["spec"]["names"]["kind"]:
        return [f"apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} is not served by the CRD"], notes
    name = (doc.get("metadata") or {}).get("name", "")
    if not DNS1123_LABEL.match(name or "") or len(name) > 63:
        errors.append(f"metadata.name {name!r} is not a DNS-1123 label")
    schema = version["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft7Validator(strict_schema(schema))
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "<root>"
        errors.append(f"{where}: {error.message}")
    if errors:
        return errors, notes
    defaulted = apply_defaults(schema, copy.deepcopy(doc))
    for path, rule, value in cel_rules(schema, defaulted):
        verdict, reason = evaluate_cel(rule["rule"], value)
        if verdict is None:
            notes.append(f"rule {rule['rule']!r} at {path} not evaluated: {reason}")
        elif not verdict:
            errors.append(f"{path}: {rule.get('message') or 'failed rule ' + rule['rule']}")
    return errors, notes


# ---------------------------------------------------------------- third-party kinds

SERVICE_MONITOR_SCHEMA = {
    # Minimal subset of monitoring.coreos.com/v1 ServiceMonitor (prometheus-operator);
    # kubernetes-validate only ships the core API schemas.
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": DNS1123_LABEL.pattern}},
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "matchExpressions": {"type": "array"},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                        },
                    },
                },
            },
        },
    },
}


# ---------------------------------------------------------------- cross-object checks

# Set on pods at run time by the operator (master tracking), never in a pod template.
RUNTIME_LABELS = {"redisfailover.io/role"}


def labels_match(selector, labels):
    return all((labels or {}).get(k) == v for k, v in (selector or {}).items())


def template_match(selector, labels):
    """A Service/PDB selector against a pod template, ignoring labels set at run time."""
    return labels_match({k: v for k, v in (selector or {}).items() if k not in RUNTIME_LABELS}, labels)


def check_workload(path, workload, by_kind, service_match, report):
    """A Deployment's or StatefulSet's selector matches its pod template, and every Service
    selecting those pods (by `service_match`) targets named ports the containers declare.
    Returns the template's labels."""
    what = f"{path}: {describe(workload)} selector matches its pod template"
    selector = workload["spec"]["selector"].get("matchLabels", {})
    template_labels = workload["spec"]["template"]["metadata"].get("labels", {})
    report.ok(what) if labels_match(selector, template_labels) else report.fail(what, f"{selector} vs {template_labels}")
    container_ports = {p.get("name") for c in workload["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    for svc in by_kind.get("Service", []):
        if service_match(svc["spec"].get("selector"), template_labels):
            what = f"{path}: {describe(svc)} targets named ports of {describe(workload)}"
            missing = [
                p["targetPort"] for p in svc["spec"]["ports"]
                if isinstance(p.get("targetPort"), str) and p["targetPort"] not in container_ports
            ]
            report.ok(what) if not missing else report.fail(what, f"unknown ports {missing}")
    return template_labels


def cross_checks(path, docs, report):
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc.get("kind"), []).append(doc)
    pods = []
    for deploy in by_kind.get("Deployment", []):
        pods.append((deploy, check_workload(path, deploy, by_kind, labels_match, report)))
        sa = deploy["spec"]["template"]["spec"].get("serviceAccountName")
        if sa and by_kind.get("ServiceAccount") is not None:
            names = {d["metadata"]["name"] for d in by_kind["ServiceAccount"]}
            what = f"{path}: {describe(deploy)} uses a ServiceAccount defined alongside"
            report.ok(what) if sa in names else report.fail(what, f"{sa} not in {sorted(names)}")
    # The operator's own objects (rf-operator render): StatefulSets of servers/sentinels;
    # their Services select on a role label set at run time.
    for sts in by_kind.get("StatefulSet", []):
        pods.append((sts, check_workload(path, sts, by_kind, template_match, report)))
    for svc in by_kind.get("Service", []):
        if pods and svc["spec"].get("selector"):
            what = f"{path}: {describe(svc)} selects pods defined alongside"
            hit = any(template_match(svc["spec"]["selector"], labels) for _, labels in pods)
            report.ok(what) if hit else report.fail(what, "its selector matches no pod template")
    for monitor in by_kind.get("ServiceMonitor", []):
        what = f"{path}: {describe(monitor)} selects a Service with the scraped port"
        selector = monitor["spec"]["selector"].get("matchLabels", {})
        wanted = {e.get("port") for e in monitor["spec"]["endpoints"]}
        hit = [
            s for s in by_kind.get("Service", [])
            if labels_match(selector, s["metadata"].get("labels"))
            and wanted <= {p.get("name") for p in s["spec"]["ports"]}
        ]
        report.ok(what) if hit else report.fail(what, "no Service matches its selector and port names")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        what = f"{path}: {describe(pdb)} selects pods defined alongside"
        hit = any(template_match(pdb["spec"]["selector"].get("matchLabels"), labels) for _, labels in pods)
        report.ok(what) if hit else report.fail(what, "its selector matches no pod template")
    roles = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in
             by_kind.get("Role", []) + by_kind.get("ClusterRole", [])}
    accounts = {(d["metadata"]["name"], d["metadata"].get("namespace")) for d in by_kind.get("ServiceAccount", [])}
    for binding in by_kind.get("RoleBinding", []) + by_kind.get("ClusterRoleBinding", []):
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        what = f"{path}: {describe(binding)} references a {ref['kind']} defined alongside"
        if (ref["kind"], ref["name"], namespace) in roles:
            report.ok(what)
        else:
            report.fail(what, f"{ref['kind']}/{ref['name']} (namespace {namespace}) not rendered")
        if accounts:
            for subject in binding.get("subjects", []):
                what = f"{path}: {describe(binding)} binds a ServiceAccount defined alongside"
                if subject["kind"] != "ServiceAccount":
                    continue
                if (subject["name"], subject.get("namespace")) in accounts:
                    report.ok(what)
                else:
                    report.fail(what, f"{subject['name']} in {subject.get('namespace')} not rendered")


# ---------------------------------------------------------------- sub-commands

class Collector(Report):
    """Records failures per document instead of printing (for --expect-invalid)."""

    def __init__(self):
        super().__init__()
        self.failures = []

    def ok(self, what):
        self.passed += 1

    def fail(self, what, why):
        self.failed += 1
        self.failures.append(f"{what}: {why}")

    def skip(self, what, why):
        self.skipped += 1


def cmd_objects(args, report):
    if args.expect_invalid:
        # Every document must fail validation for every Kubernetes version.
        crd = load_crd(args.crd)
        versions = args.versions.split(",") if args.versions else supported_versions()
        for path in args.files:
            for doc in load_documents(path):
                collector = Collector()
                validate_docs(args, crd, versions, collector, path, [doc], cross=False)
                what = f"{path}: {describe(doc)} is rejected"
                rejected_in = sum(1 for v in versions if any(f" {v}:" in f for f in collector.failures))
                if doc.get("kind") not in (CR_KIND, "ServiceMonitor") and rejected_in < len(versions):
                    report.fail(what, f"accepted by {len(versions) - rejected_in} of {len(versions)} versions")
                elif not collector.failures:
                    report.fail(what, "it was ACCEPTED")
                else:
                    report.ok(f"{what} ({collector.failures[0]})")
        return
    crd = load_crd(args.crd)
    versions = args.versions.split(",") if args.versions else supported_versions()
    for path in args.files:
        docs = load_documents(path)
        if not docs:
            report.fail(path, "no Kubernetes object in the file")
            continue
        validate_docs(args, crd, versions, report, path, docs, cross=True)


def validate_docs(args, crd, versions, report, path, docs, cross):
    """Validate the documents of one file; `cross` adds the cross-object checks."""
    for doc in docs:
        what = f"{path}: {describe(doc)}"
        kind = doc.get("kind")
        if kind == CR_KIND:
            errors, notes = validate_custom_resource(crd, doc)
            for note in notes:
                report.skip(what, note)
            if errors:
                report.fail(f"{what} against the CRD schema", "; ".join(errors))
            else:
                report.ok(f"{what} against the CRD schema (+ CEL rules)")
            continue
        if kind == "ServiceMonitor":
            errors = [e.message for e in jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA).iter_errors(doc)]
            label = f"{what} against an embedded minimal monitoring.coreos.com/v1 schema " \
                    "(kubernetes-validate has none for this third-party CRD)"
            report.fail(label, "; ".join(errors)) if errors else report.ok(label)
            continue
        for version in versions:
            label = f"{what} kubernetes-validate --strict {version}"
            try:
                kv.validate(doc, version, strict=True)
                report.ok(label)
            except kv.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                report.fail(label, f"{where}: {exc.message}")
            except kv.SchemaNotFoundError as exc:
                # kubernetes-validate only warns here; for us an unknown kind is an error.
                report.fail(label, exc.message)
    if cross:
        cross_checks(path, docs, report)


def cmd_reject(args, report):
    crd = load_crd(args.crd)
    for path in args.files:
        docs = [d for d in load_documents(path) if d.get("kind") == CR_KIND]
        if not docs:
            report.fail(path, f"no {CR_KIND} document to reject")
        for doc in docs:
            what = f"{path}: {describe(doc)} is rejected"
            expected = ((doc.get("metadata") or {}).get("annotations") or {}).get(EXPECTED_ERROR_ANNOTATION)
            errors, _ = validate_custom_resource(crd, doc)
            if not errors:
                report.fail(what, "it was ACCEPTED")
            elif expected and not any(expected in e for e in errors):
                report.fail(what, f"rejected for another reason than {expected!r}: {errors}")
            else:
                report.ok(f"{what} ({errors[0]})")


def cmd_crd(args, report):
    crd = load_crd(args.crd)
    spec = crd["spec"]
    expectations = {
        "metadata.name": (crd["metadata"]["name"], "redisfailoverclusters.redisfailover.io"),
        "group": (spec["group"], "redisfailover.io"),
        "kind": (spec["names"]["kind"], CR_KIND),
        "plural": (spec["names"]["plural"], "redisfailoverclusters"),
        "shortNames": ("rfc" in (spec["names"].get("shortNames") or []), True),
        "scope": (spec["scope"], "Namespaced"),
    }
    for field, (actual, wanted) in expectations.items():
        what = f"{args.crd}: CRD {field}"
        report.ok(f"{what} = {actual!r}") if actual == wanted else report.fail(what, f"{actual!r} != {wanted!r}")
    # Client-side `kubectl apply -f` stores the whole object in an annotation limited to
    # 262144 bytes; a bigger CRD only installs with --server-side.
    size = len(json.dumps(crd, separators=(",", ":")))
    what = f"{args.crd}: small enough for client-side kubectl apply"
    report.ok(f"{what} ({size} bytes)") if size < 262144 else report.fail(
        what, f"{size} bytes >= 262144; users must use kubectl apply --server-side")
    version = served_version(crd, CR_API_VERSION)
    if version is None:
        report.fail(args.crd, f"{CR_API_VERSION} is not served")
        return
    report.ok(f"{args.crd}: serves {CR_API_VERSION}")
    what = f"{args.crd}: {CR_API_VERSION} has the status subresource"
    report.ok(what) if "status" in (version.get("subresources") or {}) else report.fail(what, "missing")
    schema = version["schema"]["openAPIV3Schema"]
    try:
        jsonschema.Draft7Validator.check_schema(strict_schema(schema))
        report.ok(f"{args.crd}: openAPIV3Schema is a valid JSON schema")
    except jsonschema.SchemaError as exc:
        report.fail(f"{args.crd}: openAPIV3Schema", exc.message)
    # The six-line manifest of the design must be accepted and give the seed topology.
    minimal = {"apiVersion": CR_API_VERSION, "kind": CR_KIND, "metadata": {"name": "seed"}, "spec": {}}
    errors, _ = validate_custom_resource(crd, minimal)
    what = f"{args.crd}: `spec: {{}}` is accepted"
    report.fail(what, "; ".join(errors)) if errors else report.ok(what)
    defaulted = apply_defaults(schema, copy.deepcopy(minimal))["spec"]
    seed = {
        "redis.replicas": 3, "sentinel.replicas": 3, "sentinel.downAfterMilliseconds": 5000,
        "sentinel.failoverTimeout": 10000, "sentinel.parallelSyncs": 1, "persistence.mode": "None",
    }
    for dotted, wanted in seed.items():
        section, field = dotted.split(".")
        actual = (defaulted.get(section) or {}).get(field)
        what = f"{args.crd}: default spec.{dotted}"
        if actual is None:
            report.skip(what, "no schema default (the operator must apply it)")
        elif actual == wanted:
            report.ok(f"{what} = {wanted!r}")
        else:
            report.fail(what, f"{actual!r} != {wanted!r}")
    for path, rule, _ in cel_rules(schema, apply_defaults(schema, copy.deepcopy(minimal))):
        what = f"{args.crd}: CEL rule at {path} compiles"
        if celpy is None:
            report.skip(what, "cel-python is not installed")
            continue
        try:
            celpy.Environment().compile(rule["rule"])
            report.ok(f"{what}: {rule['rule']}")
        except Exception as exc:
            report.skip(what, f"cel-python cannot parse it ({exc})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("versions")
    objects = sub.add_parser("objects")
    objects.add_argument("--crd", required=True)
    objects.add_argument("--versions", default="")
    objects.add_argument("--expect-invalid", action="store_true",
                         help="every document must be rejected (for every version)")
    objects.add_argument("files", nargs="+")
    reject = sub.add_parser("reject")
    reject.add_argument("--crd", required=True)
    reject.add_argument("files", nargs="+")
    crd = sub.add_parser("crd")
    crd.add_argument("--crd", required=True)
    args = parser.parse_args()

    if kv is None and args.command in ("versions", "objects"):
        print("FAIL kubernetes-validate is not installed (pip install kubernetes-validate)")
        return 2
    if args.command == "versions":
        print(" ".join(supported_versions()))
        return 0
    report = Report()
    {"objects": cmd_objects, "reject": cmd_reject, "crd": cmd_crd}[args.command](args, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
