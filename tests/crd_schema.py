"""What the Kubernetes API server does with our CRDs' schemas, done offline for the tests.

No API server can run on these machines, so the parts of its behaviour that decide whether a
custom resource is accepted are reproduced here as plain functions:

- ``structural_violations``: the structural-schema rules a CRD must follow to be accepted, plus
  our own bounds rule (every string, array and map bounded, so CEL cost estimates stay small).
- ``apply_defaults``: defaulting, as on create (nulls of non-nullable fields pruned first).
- ``schema_problems``: the OpenAPI checks (as JSON Schema, with ``jsonschema``), the list-map and
  set uniqueness of ``x-kubernetes-list-type`` and strict field validation (unknown fields).
- ``rule_results``: every ``x-kubernetes-validations`` rule evaluated with cel-python at each node
  of the object where its schema node applies (``self`` = that node, typed by the schema: a
  ``number`` is a double even when written as ``5``; ``oldSelf`` for transition rules on update).
- ``validate``: all of it in the API server's order; problems as ``Problem(path, message, kind)``.

Not reproduced: the CEL cost estimate and type checking of the real API server (``kubernetes-validate``
checks the CRD object's shape; the bounds rule above keeps costs small), and ``format`` checks.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes

REPO_ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = REPO_ROOT / "crds"
MANIFEST_DIR = REPO_ROOT / "manifests"

ALLOWED_REASONS = frozenset({"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"})
"""The reasons an ``x-kubernetes-validations`` rule may give (apiextensions.k8s.io/v1)."""
ROOT_FIELDS_EXEMPT_FROM_BOUNDS = frozenset({"apiVersion", "kind"})
"""Filled by the API server and never referenced by our rules."""
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
FORBIDDEN_IN_JUNCTORS = frozenset({"type", "default", "additionalProperties", "nullable", "description",
                                   "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations"})


@dataclass(frozen=True)
class Problem:
    """One reason the API server would refuse an object: where, what, and which check said so."""

    path: str
    message: str
    kind: str
    """``cel`` for an x-kubernetes-validations rule, ``duplicate`` for list uniqueness, otherwise
    the JSON Schema keyword that failed (``enum``, ``maximum``, ``required``, ...)."""


@dataclass(frozen=True)
class Rule:
    """One ``x-kubernetes-validations`` entry and the schema node it sits on."""

    schema_path: str
    """The node, e.g. ``spec.routes[*].llms`` (``[*]``: every item, ``{*}``: every map value)."""
    rule: str
    message: str
    reason: str | None
    field_path: str | None

    @property
    def is_transition(self) -> bool:
        return "oldSelf" in self.rule


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    path: str
    """The node of the object the rule was evaluated on, e.g. ``spec.routes[2].llms``."""
    passed: bool
    error: str | None = None
    """Set when the expression could not be evaluated (a bug in the rule)."""


# ------------------------------------------------------------------ loading


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def load_crds() -> dict[str, dict[str, Any]]:
    """Every CRD in ``crds/``, by kind."""
    crds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for document in load_yaml_documents(path):
            crds[document["spec"]["names"]["kind"]] = document
    return crds


def storage_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of the CRD's storage version."""
    version = next(version for version in crd["spec"]["versions"] if version["storage"])
    return version["schema"]["openAPIV3Schema"]


# --------------------------------------------------------------- structural


def structural_violations(schema: dict[str, Any]) -> list[str]:
    """Everything in ``schema`` (an openAPIV3Schema) that breaks the structural-schema rules or our
    bounds rule; empty when the schema is fine. Each entry starts with the node's path."""
    violations: list[str] = []
    _check_node(schema, "", violations, root=True)
    return violations


def _check_node(node: dict[str, Any], path: str, out: list[str], *, root: bool = False) -> None:
    where = path or "<root>"
    node_type = node.get("type")
    free_form = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    if node_type is None and not free_form:
        out.append(f"{where}: no type")
    if "properties" in node and "additionalProperties" in node:
        out.append(f"{where}: properties and additionalProperties together")
    if "$ref" in node:
        out.append(f"{where}: $ref is not allowed")
    name = path.rsplit(".", 1)[-1]
    exempt = path.count(".") == 0 and name in ROOT_FIELDS_EXEMPT_FROM_BOUNDS and not root
    if node_type == "string" and "maxLength" not in node and "enum" not in node and not exempt:
        out.append(f"{where}: string without maxLength")
    if node_type == "array":
        if "maxItems" not in node:
            out.append(f"{where}: array without maxItems")
        if not isinstance(node.get("items"), dict):
            out.append(f"{where}: array without an items schema")
    if isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
        out.append(f"{where}: map without maxProperties")
    for junctor in JUNCTORS:
        for sub in _as_list(node.get(junctor)):
            for key in sorted(FORBIDDEN_IN_JUNCTORS & set(_walk_keys(sub))):
                out.append(f"{where}: {key} inside {junctor}")
    _check_list_type(node, where, out)
    _check_rules(node, where, out)
    _check_default(node, where, out)
    for key, child in node.get("properties", {}).items():
        child_path = f"{path}.{key}" if path else key
        if root and key == "metadata":
            _check_metadata(child, out)
        else:
            _check_node(child, child_path, out)
    if isinstance(node.get("items"), dict):
        _check_node(node["items"], f"{path}[*]", out)
    if isinstance(node.get("additionalProperties"), dict):
        _check_node(node["additionalProperties"], f"{path}{{*}}", out)


def _as_list(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _walk_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _walk_keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_keys(value)


def _check_metadata(node: dict[str, Any], out: list[str]) -> None:
    """At the root, metadata may only be an object with constraints on name and generateName."""
    extra = set(node) - {"type", "properties"}
    if node.get("type") != "object" or extra:
        out.append(f"metadata: only type: object and properties name/generateName are allowed, found {sorted(node)}")
    for key, child in node.get("properties", {}).items():
        if key not in ("name", "generateName"):
            out.append(f"metadata.{key}: only name and generateName may be constrained")
        elif child.get("type") != "string" or "default" in child:
            out.append(f"metadata.{key}: must be a string without default")


def _check_list_type(node: dict[str, Any], where: str, out: list[str]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    if list_type is None:
        return
    if node.get("type") != "array":
        out.append(f"{where}: x-kubernetes-list-type on a {node.get('type')}")
        return
    items = node.get("items", {})
    if list_type == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        if not keys or items.get("type") != "object":
            out.append(f"{where}: a list-map needs object items and x-kubernetes-list-map-keys")
        for key in keys:
            key_schema = items.get("properties", {}).get(key)
            if key_schema is None:
                out.append(f"{where}: list-map key {key!r} is not a property of the items")
            elif key not in items.get("required", []) and "default" not in key_schema:
                out.append(f"{where}: list-map key {key!r} must be required or defaulted")
    elif list_type == "set" and items.get("type") in ("object", "array"):
        out.append(f"{where}: a set needs scalar items")


def _check_rules(node: dict[str, Any], where: str, out: list[str]) -> None:
    for entry in node.get("x-kubernetes-validations", []):
        rule = entry.get("rule", "")
        if not rule.strip():
            out.append(f"{where}: validation rule without rule")
        message = entry.get("message", "")
        if not message.strip() or "\n" in message or "\r" in message:
            out.append(f"{where}: rule {rule!r} needs a one-line message")
        if "messageExpression" in entry:
            out.append(f"{where}: rule {rule!r} uses messageExpression (costly, and not tested here)")
        reason = entry.get("reason")
        if reason is not None and reason not in ALLOWED_REASONS:
            out.append(f"{where}: rule {rule!r} has reason {reason!r}; allowed: {sorted(ALLOWED_REASONS)}")
        field_path = entry.get("fieldPath")
        if field_path is not None and _resolve_field_path(node, field_path) is None:
            out.append(f"{where}: rule {rule!r} has fieldPath {field_path!r}, which is not in its schema")
        try:
            _program(rule)
        except celpy.CELParseError as exc:
            out.append(f"{where}: rule {rule!r} does not parse: {exc}")


def _resolve_field_path(node: dict[str, Any], field_path: str) -> dict[str, Any] | None:
    """The schema a ``fieldPath`` such as ``.timeouts.totalSeconds`` points to (dotted properties only)."""
    if not field_path.startswith("."):
        return None
    current: dict[str, Any] | None = node
    for part in field_path[1:].split("."):
        current = (current or {}).get("properties", {}).get(part)
    return current


def _check_default(node: dict[str, Any], where: str, out: list[str]) -> None:
    if "default" not in node:
        return
    defaulted = apply_defaults(copy.deepcopy(node["default"]), node)
    errors = list(_validator(_frozen(node)).iter_errors(defaulted))
    if errors:
        out.append(f"{where}: default {node['default']!r} does not validate: {errors[0].message}")


# ------------------------------------------------------------ JSON Schema


def to_json_schema(node: dict[str, Any], *, object_meta: bool = False) -> dict[str, Any]:
    """An OpenAPI v3.0 schema node as JSON Schema (draft 2020-12) for ``jsonschema``.

    ``x-kubernetes-*``, ``description``, ``default`` and ``format`` are dropped (defaults are applied
    beforehand); ``nullable`` admits null; the boolean ``exclusiveMinimum``/``exclusiveMaximum`` of
    OpenAPI 3.0 become the numeric form; objects with properties refuse unknown fields (kubectl's
    strict field validation) except metadata, which is all of ObjectMeta."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "default", "format", "nullable",
                                                      "exclusiveMinimum", "exclusiveMaximum"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(child, object_meta=(name == "metadata"))
                        for name, child in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in JUNCTORS:
            out[key] = [to_json_schema(sub) for sub in value] if isinstance(value, list) else to_json_schema(value)
        else:
            out[key] = value
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if node.get(exclusive) is True and bound in out:
            out[exclusive] = out.pop(bound)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [*_as_types(out["type"]), "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields") and not object_meta:
        out["additionalProperties"] = False
    return out


def _as_types(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _frozen(node: dict[str, Any]) -> str:
    return yaml.safe_dump(node, sort_keys=True)


@functools.lru_cache(maxsize=256)
def _validator(frozen_node: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(to_json_schema(yaml.safe_load(frozen_node)))


# --------------------------------------------------------------- defaulting


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    """``value`` with the schema's defaults filled in, as the API server stores it: nulls of
    non-nullable fields are pruned first, and a defaulted value gets its own nested defaults."""
    if isinstance(value, dict) and node.get("type") == "object":
        properties = node.get("properties", {})
        map_values = node.get("additionalProperties") if isinstance(node.get("additionalProperties"), dict) else None
        result: dict[str, Any] = {}
        for key, item in value.items():
            child = properties.get(key, map_values)
            if item is None and not (child or {}).get("nullable"):
                continue
            result[key] = apply_defaults(item, child) if child else item
        for key, child in properties.items():
            if key not in result and "default" in child:
                result[key] = apply_defaults(copy.deepcopy(child["default"]), child)
        return result
    if isinstance(value, list) and node.get("type") == "array" and isinstance(node.get("items"), dict):
        return [apply_defaults(item, node["items"]) for item in value]
    return value


# --------------------------------------------------------- schema validation


def schema_problems(obj: dict[str, Any], schema: dict[str, Any]) -> list[Problem]:
    """The OpenAPI checks and list uniqueness; ``obj`` should already be defaulted."""
    problems = []
    for error in sorted(_validator(_frozen(schema)).iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for name in sorted(set(error.instance) - set(known)):
                field = format_path([*path, name])
                problems.append(Problem(field, f"unknown field {field!r}", "unknown-field"))
            continue
        if error.validator == "required":
            path.append(error.message.split("'")[1])
        problems.append(Problem(format_path(path), error.message, str(error.validator)))
    problems.extend(_duplicate_problems(obj, schema, []))
    return problems


def _duplicate_problems(value: Any, node: dict[str, Any], path: list[str | int]) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(value, list) and node.get("type") == "array":
        list_type = node.get("x-kubernetes-list-type")
        keys = node.get("x-kubernetes-list-map-keys") or []
        seen: set[Any] = set()
        for index, item in enumerate(value):
            if list_type == "map" and isinstance(item, dict):
                identity: Any = tuple(yaml.safe_dump(item.get(key)) for key in keys)
            elif list_type == "set":
                identity = yaml.safe_dump(item)
            else:
                identity = None
            if identity is not None and identity in seen:
                problems.append(Problem(format_path([*path, index]), f"Duplicate value: {item!r}", "duplicate"))
            seen.add(identity)
            if isinstance(node.get("items"), dict):
                problems.extend(_duplicate_problems(item, node["items"], [*path, index]))
    elif isinstance(value, dict) and node.get("type") == "object":
        for key, item in value.items():
            child = node.get("properties", {}).get(key)
            if child is None and isinstance(node.get("additionalProperties"), dict):
                child = node["additionalProperties"]
            if child is not None:
                problems.extend(_duplicate_problems(item, child, [*path, key]))
    return problems


def format_path(parts: list[str | int]) -> str:
    """``['spec', 'routes', 2, 'llms']`` -> ``spec.routes[2].llms``, as the API server writes it."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def schema_nodes(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every node of a schema with its path (``spec.routes[*].llms``; ``{*}`` for map values), root first."""

    def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        yield path or "<root>", node
        for key, child in node.get("properties", {}).items():
            yield from walk(child, f"{path}.{key}" if path else key)
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[*]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{*}}")

    return walk(schema, "")


def free_form_paths(schema: dict[str, Any]) -> list[str]:
    """The nodes marked ``x-kubernetes-preserve-unknown-fields`` (whatever is written there is kept)."""
    return [path for path, node in schema_nodes(schema) if node.get("x-kubernetes-preserve-unknown-fields")]


# ---------------------------------------------------------------------- CEL


def schema_rules(schema: dict[str, Any]) -> list[Rule]:
    """Every ``x-kubernetes-validations`` rule of the schema, with the node it sits on."""
    return [Rule(path, entry["rule"], entry["message"], entry.get("reason"), entry.get("fieldPath"))
            for path, node in schema_nodes(schema) for entry in node.get("x-kubernetes-validations", [])]


@functools.lru_cache(maxsize=256)
def _program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def to_cel(value: Any, node: dict[str, Any]) -> celtypes.Value:
    """``value`` as the API server hands it to CEL: typed by its schema node, not by its JSON form."""
    node_type = node.get("type")
    if value is None:
        return None
    if node_type == "object" and isinstance(value, dict):
        properties = node.get("properties", {})
        map_values = node.get("additionalProperties") if isinstance(node.get("additionalProperties"), dict) else None
        return celtypes.MapType({
            celtypes.StringType(key): (to_cel(item, child) if (child := properties.get(key, map_values))
                                       else celpy.json_to_cel(item))
            for key, item in value.items()
        })
    if node_type == "array" and isinstance(value, list):
        return celtypes.ListType([to_cel(item, node.get("items", {})) for item in value])
    if node_type == "number":
        return celtypes.DoubleType(float(value))
    if node_type == "integer":
        return celtypes.IntType(int(value))
    if node_type == "boolean":
        return celtypes.BoolType(bool(value))
    if node_type == "string":
        return celtypes.StringType(str(value))
    return celpy.json_to_cel(value)


def rule_results(obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None = None) -> list[RuleResult]:
    """Every rule evaluated at every node of ``obj`` its schema node applies to. Transition rules
    (those using ``oldSelf``) run only on update, where the old object has that node."""
    results: list[RuleResult] = []

    def walk(value: Any, old_value: Any, node: dict[str, Any], path: list[str | int], schema_path: str) -> None:
        for entry in node.get("x-kubernetes-validations", []):
            rule = Rule(schema_path or "<root>", entry["rule"], entry["message"], entry.get("reason"),
                        entry.get("fieldPath"))
            if rule.is_transition and old_value is None:
                continue
            activation = {"self": to_cel(value, node)}
            if rule.is_transition:
                activation["oldSelf"] = to_cel(old_value, node)
            where = format_path(path) or "<root>"
            try:
                passed = bool(_program(rule.rule).evaluate(activation))
            except celpy.CELEvalError as exc:
                results.append(RuleResult(rule, where, passed=False, error=str(exc.args[0] if exc.args else exc)))
                continue
            results.append(RuleResult(rule, where, passed))
        if isinstance(value, dict):
            for key, item in value.items():
                child = node.get("properties", {}).get(key)
                child_schema_path = f"{schema_path}.{key}" if schema_path else key
                if child is None and isinstance(node.get("additionalProperties"), dict):
                    child, child_schema_path = node["additionalProperties"], f"{schema_path}{{*}}"
                if child is not None:
                    old_item = old_value.get(key) if isinstance(old_value, dict) else None
                    walk(item, old_item, child, [*path, key], child_schema_path)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for index, item in enumerate(value):
                # The API server correlates old list items only for list-maps (by key) and sets; enough here.
                walk(item, None, node["items"], [*path, index], f"{schema_path}[*]")

    walk(obj, old, schema, [], "")
    return results


def rule_problems(results: list[RuleResult]) -> list[Problem]:
    problems = []
    for result in results:
        if result.passed:
            continue
        path = result.path
        if result.rule.field_path:
            path = f"{path}{result.rule.field_path}" if path != "<root>" else result.rule.field_path[1:]
        message = result.rule.message if result.error is None else f"rule could not be evaluated: {result.error}"
        problems.append(Problem(path, message, "cel"))
    return problems


# ---------------------------------------------------------------- together


def validate(obj: dict[str, Any], crd: dict[str, Any], old: dict[str, Any] | None = None) -> list[Problem]:
    """Why the API server would refuse ``obj`` (a create, or an update from ``old``); empty if it
    would accept it. CEL rules run only on an object that passed the schema checks (the API server
    skips them after type and enum errors and runs them after others: that changes how many problems
    are listed, never whether the object is refused)."""
    schema = storage_schema(crd)
    defaulted = apply_defaults(obj, schema)
    problems = schema_problems(defaulted, schema)
    if problems:
        return problems
    old_defaulted = apply_defaults(old, schema) if old is not None else None
    return rule_problems(rule_results(defaulted, schema, old_defaulted))
