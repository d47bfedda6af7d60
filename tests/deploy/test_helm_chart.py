"""Offline checks of the Helm chart in deploy/helm/comuna and of deploy/docker/Dockerfile.

The chart is rendered by Helm's own Go engine (helm-python-sdk binds the Helm v4 SDK; no helm
binary or cluster), so templates, the values schema and hook annotations behave as in
`helm install`. Every rendered object is then validated, in strict mode (unknown fields are
errors), against the Kubernetes OpenAPI schemas shipped by kubernetes-validate, for the oldest
Kubernetes the chart supports, a mid version and the newest the package knows. The one custom
resource (ServiceMonitor) is checked against a hand-written subset of its CRD schema.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

try:
    import dockerfile
    import helm_python
    import kubernetes_validate
except ImportError as error:  # never skip: the deploy group is part of `make install`
    raise ImportError(
        f"{error}: install the deploy dependency group (uv sync --all-groups, or --group deploy)"
    ) from error

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "comuna"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
RELEASE = "comuna"
NAMESPACE = "comuna-prod"
METRICS_PORTS = {"identity": 9101, "consultations": 9102, "funding": 9103, "projects": 9104}
SERVICES = {  # name -> (REST port, gRPC port), as fixed in docs/conventions.md
    "identity": (8001, 50051),
    "consultations": (8002, 50052),
    "funding": (8003, 50053),
    "projects": (8004, 50054),
}
# Oldest supported (Chart.yaml kubeVersion), the reference version, and the newest known.
K8S_VERSIONS = ["1.27", "1.31", kubernetes_validate.latest_version()]
WORKLOAD_KINDS = {"Deployment", "Job", "Pod"}


# --- rendering ----------------------------------------------------------------------------


def _test_secret() -> str:
    return "test-only-" + secrets.token_urlsafe(24)


def full_values() -> dict[str, Any]:
    """Every optional feature on, every secret given (fresh random, test-only values)."""
    return {
        "image": {"repository": "registry.example.org/comuna/comuna", "tag": "1.4.2"},
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount": {"annotations": {"example.org/role": "comuna"}},
        "oidc": {"issuer": "https://auth.example.org/realms/comuna", "audience": "comuna-api"},
        "nats": {"url": "nats://nats.messaging.svc:4222"},
        "secrets": {
            "values": {
                "identity": {
                    "databaseUrl": f"postgresql+asyncpg://identity:{_test_secret()}@pg:5432/comuna_identity",
                    "migrationDatabaseUrl": (
                        f"postgresql+asyncpg://identity_owner:{_test_secret()}@pg:5432/comuna_identity"
                    ),
                    "natsPassword": _test_secret(),
                    "serviceClientId": "comuna-identity",
                    "serviceClientSecret": _test_secret(),
                    "censusHashKey": _test_secret(),
                    "rollSecret": _test_secret(),
                },
                **{
                    name: {
                        "databaseUrl": f"postgresql+asyncpg://{name}:{_test_secret()}@pg:5432/comuna_{name}",
                        "migrationDatabaseUrl": (
                            f"postgresql+asyncpg://{name}_owner:{_test_secret()}@pg:5432/comuna_{name}"
                        ),
                        "natsPassword": _test_secret(),
                        "serviceClientId": f"comuna-{name}",
                        "serviceClientSecret": _test_secret(),
                    }
                    for name in ("funding", "projects")
                },
                "consultations": {
                    "databaseUrl": f"postgresql+asyncpg://consultations:{_test_secret()}@pg:5432/comuna_consultations",
                    "migrationDatabaseUrl": (
                        f"postgresql+asyncpg://consultations_owner:{_test_secret()}@pg:5432/comuna_consultations"
                    ),
                    "natsPassword": _test_secret(),
                    "serviceClientId": "comuna-consultations",
                    "serviceClientSecret": _test_secret(),
                    "snapshotSigningKey": base64.b64encode(secrets.token_bytes(32)).decode(),
                    "voterRefSecret": _test_secret(),
                },
                "keycloak": {"adminPassword": _test_secret()},
            }
        },
        "telemetry": {"exporter": "otlp", "otlpEndpoint": "http://otel-collector.observability:4317"},
        "keycloakSync": {"enabled": True, "redirectUris": ["https://portal.comuna.example.org/*"]},
        "extraEnv": [{"name": "TZ", "value": "America/Caracas"}],
        "defaults": {
            "databasePoolSize": 10,
            "consumers": {"maxDeliveries": 8, "stallSeconds": 45.5},
            "autoscaling": {
                "enabled": True,
                "targetMemoryUtilizationPercentage": 80,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
            "probes": {"grpcLiveness": True},
            "priorityClassName": "comuna-critical",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "comuna", "effect": "NoSchedule"}],
            "podAnnotations": {"example.org/team": "civic"},
            "serviceAnnotations": {"example.org/owner": "civic"},
        },
        "services": {
            "consultations": {
                "autoscaling": {"maxReplicas": 40},
                "podDisruptionBudget": {"minAvailable": "50%"},
                "extraEnv": [{"name": "COMUNA_CONSULTATIONS_OUTBOX_POLL_SECONDS", "value": "0.2"}],
                "topologySpreadConstraints": [
                    {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}
                ],
            },
        },
        "networkPolicy": {
            "enabled": True,
            "httpFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
            ],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "egress": {"postgres": {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [5432]}},
        },
        "http": {"allowedHosts": ["*.comuna.example.org"], "trustedProxies": ["10.0.0.0/8"], "maxBodyBytes": 2097152},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [
                {
                    "host": "api.comuna.example.org",
                    "paths": [
                        {"path": "/v1/territories", "pathType": "Prefix", "service": "identity"},
                        {"path": "/v1/consultations", "pathType": "Prefix", "service": "consultations"},
                    ],
                }
            ],
            "tls": [{"secretName": "comuna-tls", "hosts": ["api.comuna.example.org"]}],
        },
    }


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    loaded = helm_python.Chart.load(CHART_DIR)
    try:
        yield loaded
    finally:
        loaded.close()


def render(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rendered objects, each tagged with the template it came from (key "_template")."""
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    objects: list[dict[str, Any]] = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document["_template"] = template
                objects.append(document)
    return objects


def notes(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> str:
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return next(text for template, text in manifests.items() if template.endswith("NOTES.txt"))


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "_template"}


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in of_kind(objects, kind)}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def deployment(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return by_name(objects, "Deployment")[f"{RELEASE}-{service}"]


@pytest.fixture(scope="module")
def default_objects(chart: helm_python.Chart) -> list[dict[str, Any]]:
    return render(chart)


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    return full_values()


@pytest.fixture(scope="module")
def full_objects(chart: helm_python.Chart, full: dict[str, Any]) -> list[dict[str, Any]]:
    return render(chart, full)


# --- schema validation of every object --------------------------------------------------

# Subset of the Prometheus Operator ServiceMonitor CRD (monitoring.coreos.com/v1) covering every
# field the chart emits; unknown fields are errors, as with the built-in kinds.
DURATION = "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"  # Prometheus duration
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
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
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                            "relabelings": {"type": "array", "items": {"type": "object"}},
                            "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}


def validate_object(obj: dict[str, Any], version: str) -> None:
    data = strip(obj)
    if data["kind"] == "ServiceMonitor":
        jsonschema.validate(data, SERVICE_MONITOR_SCHEMA)
        return
    try:
        kubernetes_validate.validate(data, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        pytest.fail(
            f"{obj['_template']}: {data['kind']}/{data['metadata']['name']} invalid for "
            f"Kubernetes {error.version} at {path}: {error.message}"
        )
    except kubernetes_validate.SchemaNotFoundError as error:
        pytest.fail(f"{obj['_template']}: no schema: {error.message}")


def existing_secret_values() -> dict[str, Any]:
    return {
        "secrets": {"existingSecret": "comuna-prod-secrets"},
        "oidc": {"issuer": "https://auth.example.org/realms/comuna"},
    }


EXAMPLE = ROOT / "deploy" / "helm" / "examples" / "values-production.yaml"


def example_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return values


SCENARIOS = {
    "defaults": lambda: None,
    "everything-enabled": full_values,
    "existing-secret": existing_secret_values,
    "production-example": example_values,
}


def walk_nulls(value: Any, path: str = "") -> Iterator[str]:
    if value is None:
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_nulls(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_nulls(item, f"{path}[{index}]")


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_object_is_valid_kubernetes(chart: helm_python.Chart, scenario: str, version: str) -> None:
    objects = render(chart, SCENARIOS[scenario]())
    assert objects
    for obj in objects:
        validate_object(obj, version)
        assert list(walk_nulls(strip(obj))) == [], f"empty fields in {obj['kind']}/{obj['metadata']['name']}"
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_validation_catches_an_invalid_object() -> None:
    """Guard against a validator that passes everything: an unknown field must be refused."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80}], "bogusField": True},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.31", strict=True)
    with pytest.raises(jsonschema.ValidationError):
        monitor = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "x", "namespace": "y"},
            "spec": {"selector": {}, "endpoints": [{"port": "http", "bogus": 1}]},
        }
        jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_is_clean(scenario: str) -> None:
    report = helm_python.lint(
        CHART_DIR, SCENARIOS[scenario](), strict=True, namespace=NAMESPACE, kube_version="v1.31.0"
    )
    assert report["total_charts_linted"] == 1
    # Severity 2 = warning, 3 = error; info (e.g. "icon is recommended") is allowed.
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert problems == [] and report["errors"] == []


# --- workloads ------------------------------------------------------------------------------


def test_four_deployments_with_probes_and_ports(default_objects: list[dict[str, Any]]) -> None:
    deployments = by_name(default_objects, "Deployment")
    assert sorted(deployments) == sorted(f"{RELEASE}-{name}" for name in SERVICES)
    services = by_name(default_objects, "Service")
    for name, (http_port, grpc_port) in SERVICES.items():
        spec = pod_spec(deployments[f"{RELEASE}-{name}"])
        (container,) = spec["containers"]
        assert container["image"] == "comuna/comuna:0.1.0"
        assert container["command"] == [f"comuna-{name}", "serve"]
        metrics_port = METRICS_PORTS[name]
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
            "http": http_port,
            "grpc": grpc_port,
            "metrics": metrics_port,
        }
        # The kubelet sends the pod IP as Host unless told otherwise: the API would refuse it.
        host = [{"name": "Host", "value": "localhost"}]
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "httpHeaders": host}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "httpHeaders": host}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "httpHeaders": host}
        assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 60
        env = env_of(container)
        assert env[f"COMUNA_{name.upper()}_HTTP_HOST"]["value"] == "0.0.0.0"
        assert env[f"COMUNA_{name.upper()}_GRPC_HOST"]["value"] == "0.0.0.0"
        assert env[f"COMUNA_{name.upper()}_HTTP_PORT"]["value"] == str(http_port)
        assert env[f"COMUNA_{name.upper()}_GRPC_PORT"]["value"] == str(grpc_port)
        # The consumers' parking limit and readiness stall, at the services' own defaults.
        assert env[f"COMUNA_{name.upper()}_CONSUMER_MAX_DELIVERIES"]["value"] == "5"
        assert env[f"COMUNA_{name.upper()}_CONSUMER_STALL_SECONDS"]["value"] == "30"
        assert env[f"COMUNA_{name.upper()}_METRICS_HOST"]["value"] == "0.0.0.0"
        assert env[f"COMUNA_{name.upper()}_METRICS_PORT"]["value"] == str(metrics_port)
        assert env[f"COMUNA_{name.upper()}_MAX_HEADER_BYTES"]["value"] == "16384"
        assert env[f"COMUNA_{name.upper()}_MAX_BODY_BYTES"]["value"] == "1048576"
        assert env[f"COMUNA_{name.upper()}_MAX_IMPORT_BYTES"]["value"] == "1073741824"
        allowed = env[f"COMUNA_{name.upper()}_ALLOWED_HOSTS"]["value"].split(",")
        # Probes (localhost), the helm test pod and in-cluster callers (the Service's names).
        assert {
            "localhost",
            "127.0.0.1",
            f"{RELEASE}-{name}",
            f"{RELEASE}-{name}.{NAMESPACE}.svc.cluster.local",
        } <= set(allowed)
        assert f"COMUNA_{name.upper()}_TRUSTED_PROXIES" not in env
        assert spec["enableServiceLinks"] is False
        service = services[f"{RELEASE}-{name}"]
        assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
            "http": (http_port, "http"),
            "grpc": (grpc_port, "grpc"),
            "metrics": (metrics_port, "metrics"),
        }
        assert service["spec"]["selector"] == deployments[f"{RELEASE}-{name}"]["spec"]["selector"]["matchLabels"]
        labels = deployments[f"{RELEASE}-{name}"]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()


def test_default_replicas_spread_and_disruption_budgets(default_objects: list[dict[str, Any]]) -> None:
    replicas = {name: deployment(default_objects, name)["spec"]["replicas"] for name in SERVICES}
    assert replicas == {"identity": 2, "consultations": 3, "funding": 2, "projects": 2}
    for name in SERVICES:
        spread = pod_spec(deployment(default_objects, name))["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for constraint in spread:
            assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
    pdbs = by_name(default_objects, "PodDisruptionBudget")
    assert sorted(pdbs) == sorted(f"{RELEASE}-{name}" for name in SERVICES)
    for name in SERVICES:
        assert pdbs[f"{RELEASE}-{name}"]["spec"]["maxUnavailable"] == 1
        assert (
            pdbs[f"{RELEASE}-{name}"]["spec"]["selector"]["matchLabels"]
            == deployment(default_objects, name)["spec"]["selector"]["matchLabels"]
        )


def test_environment_follows_the_conventions(full_objects: list[dict[str, Any]]) -> None:
    for name in SERVICES:
        prefix = f"COMUNA_{name.upper()}_"
        (container,) = pod_spec(deployment(full_objects, name))["containers"]
        env = env_of(container)
        assert env[prefix + "DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": f"{RELEASE}-secrets",
            "key": f"{name}-database-url",
            "optional": False,
        }
        assert env[prefix + "NATS_URL"]["value"] == "nats://nats.messaging.svc:4222"
        assert env[prefix + "OIDC_ISSUER"]["value"] == "https://auth.example.org/realms/comuna"
        assert env[prefix + "OIDC_AUDIENCE"]["value"] == "comuna-api"
        for variable in ("SERVICE_CLIENT_ID", "SERVICE_CLIENT_SECRET"):
            key = variable.lower().replace("_", "-")
            assert env[prefix + variable]["valueFrom"]["secretKeyRef"]["key"] == f"{name}-{key}"
        assert env[prefix + "OTEL_EXPORTER"]["value"] == "otlp"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4317"
        assert "k8s.pod.name=$(POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        assert env[prefix + "LOG_LEVEL"]["value"] == "INFO"
        assert env[prefix + "DATABASE_POOL_SIZE"]["value"] == "10"
        assert env[prefix + "CONSUMER_MAX_DELIVERIES"]["value"] == "8"
        assert env[prefix + "CONSUMER_STALL_SECONDS"]["value"] == "45.5"
        assert env["TZ"]["value"] == "America/Caracas"
        names = [entry["name"] for entry in container["env"]]
        assert len(names) == len(set(names)), "duplicate env var"
        assert container["image"] == "registry.example.org/comuna/comuna:1.4.2"
    identity_env = env_of(pod_spec(deployment(full_objects, "identity"))["containers"][0])
    assert identity_env["COMUNA_IDENTITY_CENSUS_HASH_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{RELEASE}-secrets",
        "key": "identity-census-hash-key",
        "optional": False,
    }
    assert identity_env["COMUNA_IDENTITY_ROLL_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{RELEASE}-secrets",
        "key": "identity-roll-secret",
        "optional": False,
    }
    # The ring beyond key 1 is optional: a census that never rotated has only the hash key.
    assert identity_env["COMUNA_IDENTITY_CENSUS_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{RELEASE}-secrets",
        "key": "identity-census-keys",
        "optional": True,
    }
    consultations_env = env_of(pod_spec(deployment(full_objects, "consultations"))["containers"][0])
    # Offline tables' snapshot signing key: from the Secret, optional (offline tables off without it).
    assert consultations_env["COMUNA_CONSULTATIONS_SNAPSHOT_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{RELEASE}-secrets",
        "key": "consultations-snapshot-signing-key",
        "optional": True,
    }
    assert consultations_env["COMUNA_CONSULTATIONS_OUTBOX_POLL_SECONDS"]["value"] == "0.2"
    # The ballot group commit's settings and the voter reference secret (consultations only).
    assert consultations_env["COMUNA_CONSULTATIONS_VOTER_REF_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{RELEASE}-secrets",
        "key": "consultations-voter-ref-secret",
        "optional": False,
    }
    batching = {k: v["value"] for k, v in consultations_env.items() if k.startswith("COMUNA_CONSULTATIONS_BALLOT_")}
    assert batching == {
        "COMUNA_CONSULTATIONS_BALLOT_BATCH_MAX": "500",
        "COMUNA_CONSULTATIONS_BALLOT_BATCH_MIN": "2",
        "COMUNA_CONSULTATIONS_BALLOT_BATCH_LINGER_SECONDS": "0.002",
        "COMUNA_CONSULTATIONS_BALLOT_BATCH_MAX_HOLD_SECONDS": "1",
        "COMUNA_CONSULTATIONS_BALLOT_BATCH_WRITERS": "2",
    }
    funding_env = env_of(pod_spec(deployment(full_objects, "funding"))["containers"][0])
    assert not [k for k in funding_env if "BALLOT" in k or "VOTER_REF" in k]


def grpc_targets(objects: list[dict[str, Any]], service: str) -> dict[str, str]:
    env = env_of(pod_spec(deployment(objects, service))["containers"][0])
    return {name: entry["value"] for name, entry in env.items() if name.endswith("_GRPC_TARGET")}


def dns(peer: str) -> str:
    return f"{RELEASE}-{peer}.{NAMESPACE}.svc.cluster.local:{SERVICES[peer][1]}"


def test_peers_get_in_cluster_grpc_targets(chart: helm_python.Chart, default_objects: list[dict[str, Any]]) -> None:
    # Every service but identity asks identity where a caller may act (ResolvePrincipal), and
    # caches the answer for accessCacheSeconds; identity itself calls no peer. Projects also asks
    # funding what was disbursed before an expenditure.
    for name in ("consultations", "funding", "projects"):
        prefix = f"COMUNA_{name.upper()}_"
        expected = {f"{prefix}IDENTITY_GRPC_TARGET": dns("identity")}
        if name == "projects":
            expected[f"{prefix}FUNDING_GRPC_TARGET"] = dns("funding")
        assert grpc_targets(default_objects, name) == expected
        env = env_of(pod_spec(deployment(default_objects, name))["containers"][0])
        assert env[f"{prefix}ACCESS_CACHE_SECONDS"]["value"] == "30"
        assert env[f"{prefix}SERVICE_CLIENT_ID"]["valueFrom"]["secretKeyRef"]["optional"] is False
    assert grpc_targets(default_objects, "identity") == {}
    shorter = render(chart, {"services": {"projects": {"accessCacheSeconds": 5}}})
    projects_env = env_of(pod_spec(deployment(shorter, "projects"))["containers"][0])
    assert projects_env["COMUNA_PROJECTS_ACCESS_CACHE_SECONDS"]["value"] == "5"
    # Any service can be given peers: one variable per peer, named as in the conventions.
    more = render(chart, {"services": {"projects": {"peers": ["identity", "funding", "consultations"]}}})
    assert grpc_targets(more, "projects") == {
        "COMUNA_PROJECTS_IDENTITY_GRPC_TARGET": dns("identity"),
        "COMUNA_PROJECTS_FUNDING_GRPC_TARGET": dns("funding"),
        "COMUNA_PROJECTS_CONSULTATIONS_GRPC_TARGET": dns("consultations"),
    }
    # A service calling no peer needs no client: its client keys may be absent from the Secret.
    identity_env = env_of(pod_spec(deployment(default_objects, "identity"))["containers"][0])
    assert identity_env["COMUNA_IDENTITY_SERVICE_CLIENT_ID"]["valueFrom"]["secretKeyRef"]["optional"] is True
    consultations_env = env_of(pod_spec(deployment(default_objects, "consultations"))["containers"][0])
    client_secret = consultations_env["COMUNA_CONSULTATIONS_SERVICE_CLIENT_SECRET"]
    assert client_secret["valueFrom"]["secretKeyRef"]["optional"] is False


def test_rate_limits_reach_every_service_and_merge_key_by_key(
    chart: helm_python.Chart, default_objects: list[dict[str, Any]]
) -> None:
    for name in SERVICES:
        prefix = f"COMUNA_{name.upper()}_RATE_LIMIT_"
        env = env_of(pod_spec(deployment(default_objects, name))["containers"][0])
        assert {key: env[prefix + key]["value"] for key in RATE_LIMIT_VARIABLES} == {
            "DOCUMENT_LOOKUPS_PER_MINUTE": "30",
            "DOCUMENT_LOOKUPS_BURST": "10",
            "TABLE_CHECK_INS_PER_MINUTE": "12",
            "TABLE_CHECK_INS_BURST": "20",
            "MAX_CALLERS": "100000",
        }
        assert not [key for key in env if key.startswith(prefix + "ELIGIBILITY")]  # CheckEligibility's limit is gone
    tighter = render(chart, {"services": {"identity": {"rateLimits": {"documentLookups": {"burst": 4}}}}})
    env = env_of(pod_spec(deployment(tighter, "identity"))["containers"][0])
    assert env["COMUNA_IDENTITY_RATE_LIMIT_DOCUMENT_LOOKUPS_BURST"]["value"] == "4"
    assert env["COMUNA_IDENTITY_RATE_LIMIT_DOCUMENT_LOOKUPS_PER_MINUTE"]["value"] == "30"
    assert env["COMUNA_IDENTITY_RATE_LIMIT_MAX_CALLERS"]["value"] == "100000"
    officers = render(chart, {"services": {"consultations": {"rateLimits": {"tableCheckIns": {"perMinute": 6}}}}})
    env = env_of(pod_spec(deployment(officers, "consultations"))["containers"][0])
    assert env["COMUNA_CONSULTATIONS_RATE_LIMIT_TABLE_CHECK_INS_PER_MINUTE"]["value"] == "6"
    assert env["COMUNA_CONSULTATIONS_RATE_LIMIT_TABLE_CHECK_INS_BURST"]["value"] == "20"


RATE_LIMIT_VARIABLES = (
    "DOCUMENT_LOOKUPS_PER_MINUTE",
    "DOCUMENT_LOOKUPS_BURST",
    "TABLE_CHECK_INS_PER_MINUTE",
    "TABLE_CHECK_INS_BURST",
    "MAX_CALLERS",
)


def test_migration_hook_jobs(default_objects: list[dict[str, Any]]) -> None:
    jobs = by_name(default_objects, "Job")
    assert sorted(jobs) == sorted(f"{RELEASE}-{name}-migrate" for name in SERVICES)
    secret = by_name(default_objects, "Secret")[f"{RELEASE}-secrets"]
    accounts = by_name(default_objects, "ServiceAccount")
    hook_account = accounts[f"{RELEASE}-migrations"]
    for name in SERVICES:
        job = jobs[f"{RELEASE}-{name}-migrate"]
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        spec = pod_spec(job)
        (container,) = spec["containers"]
        assert container["command"] == [f"comuna-{name}", "migrate"]
        assert (
            env_of(container)[f"COMUNA_{name.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"]
            == f"{name}-database-url"
        )
        assert spec["restartPolicy"] == "Never"
        assert spec["serviceAccountName"] == hook_account["metadata"]["name"]
        # What the hook needs must exist before it: created by earlier (lower-weight) hooks.
        for dependency in (secret, hook_account):
            assert "pre-install" in dependency["metadata"]["annotations"]["helm.sh/hook"]
            assert int(dependency["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
                annotations["helm.sh/hook-weight"]
            )
        # Migration pods must not receive the Service's traffic.
        selector = deployment(default_objects, name)["spec"]["selector"]["matchLabels"]
        assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()


# --- secrets ------------------------------------------------------------------------------


SENSITIVE = re.compile(r"DATABASE_URL|SECRET|HASH_KEY|CENSUS_KEYS|PASSWORD|TOKEN|HEADERS")


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)
    elif isinstance(value, str):
        yield value


def test_no_default_secret_values(chart: helm_python.Chart, default_objects: list[dict[str, Any]]) -> None:
    # values.yaml ships no secret: every entry under secrets.values is empty.
    defaults = chart.values
    assert defaults["secrets"]["existingSecret"] == ""
    assert set(walk_strings(defaults["secrets"]["values"])) == {""}
    # The chart-managed Secret is rendered empty: nothing made up, pods wait for real keys.
    (secret,) = of_kind(default_objects, "Secret")
    assert not secret.get("data") and not secret.get("stringData")
    # No sensitive variable carries a literal value anywhere.
    for obj in default_objects:
        if obj["kind"] in WORKLOAD_KINDS:
            for container in pod_spec(obj)["containers"]:
                for entry in container.get("env", []):
                    if SENSITIVE.search(entry["name"]):
                        assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], entry


def test_notes_warn_about_missing_configuration(chart: helm_python.Chart, full: dict[str, Any]) -> None:
    text = notes(chart)
    assert "oidc.issuer is empty" in text
    assert "identity-census-hash-key" in text and "funding-database-url" in text
    assert "identity-roll-secret" in text and "identity-census-keys" not in text
    assert "funding-migration-database-url" in text and "funding-nats-password" in text
    complete = notes(chart, full)
    assert "WARNING" not in complete
    assert "funding-nats-credentials" in notes(chart, {"nats": {"auth": "credentials"}})


def kebab(field: str) -> str:
    return re.sub("([A-Z])", r"-\1", field).lower()


# --- NATS identities and database roles ------------------------------------------------------


def secret_ref(env: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    ref: dict[str, Any] = env[name]["valueFrom"]["secretKeyRef"]
    return ref


def test_each_service_is_its_own_nats_user(default_objects: list[dict[str, Any]]) -> None:
    for name in SERVICES:
        prefix = f"COMUNA_{name.upper()}_"
        env = env_of(pod_spec(deployment(default_objects, name))["containers"][0])
        assert env[prefix + "NATS_USER"]["value"] == name
        assert secret_ref(env, prefix + "NATS_PASSWORD") == {
            "name": f"{RELEASE}-secrets",
            "key": f"{name}-nats-password",
            "optional": False,
        }
        assert prefix + "NATS_CREDENTIALS_FILE" not in env


def test_nats_credentials_files_are_mounted_read_only(chart: helm_python.Chart) -> None:
    objects = render(chart, {"nats": {"auth": "credentials"}})
    for name in SERVICES:
        spec = pod_spec(deployment(objects, name))
        (container,) = spec["containers"]
        env = env_of(container)
        prefix = f"COMUNA_{name.upper()}_"
        assert env[prefix + "NATS_CREDENTIALS_FILE"]["value"] == f"/etc/comuna/nats/{name}.creds"
        assert prefix + "NATS_PASSWORD" not in env and prefix + "NATS_USER" not in env
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "nats-credentials"]
        assert mount == {"name": "nats-credentials", "mountPath": "/etc/comuna/nats", "readOnly": True}
        [volume] = [v for v in spec["volumes"] if v["name"] == "nats-credentials"]
        assert volume["secret"]["secretName"] == f"{RELEASE}-secrets"
        assert volume["secret"]["items"] == [{"key": f"{name}-nats-credentials", "path": f"{name}.creds"}]
        assert volume["secret"]["defaultMode"] == 0o400
        for version in K8S_VERSIONS:
            validate_object(deployment(objects, name), version)
    none = render(chart, {"nats": {"auth": "none"}})
    for name in SERVICES:
        env = env_of(pod_spec(deployment(none, name))["containers"][0])
        assert not {k for k in env if "NATS_" in k} - {f"COMUNA_{name.upper()}_NATS_URL"}


def test_migrations_run_as_the_owner_role_and_services_as_the_runtime_role(
    default_objects: list[dict[str, Any]],
) -> None:
    jobs = by_name(default_objects, "Job")
    for name in SERVICES:
        prefix = f"COMUNA_{name.upper()}_"
        job_env = env_of(pod_spec(jobs[f"{RELEASE}-{name}-migrate"])["containers"][0])
        assert secret_ref(job_env, prefix + "MIGRATION_DATABASE_URL")["key"] == f"{name}-migration-database-url"
        assert secret_ref(job_env, prefix + "MIGRATION_DATABASE_URL")["optional"] is False
        # The runtime URL names the role the migration grants its privileges to.
        assert secret_ref(job_env, prefix + "DATABASE_URL")["key"] == f"{name}-database-url"
        server_env = env_of(pod_spec(deployment(default_objects, name))["containers"][0])
        assert prefix + "MIGRATION_DATABASE_URL" not in server_env, "the owner role must not reach the service"


def test_given_secrets_appear_only_in_the_secret(full: dict[str, Any], full_objects: list[dict[str, Any]]) -> None:
    given = {
        f"{service}-{kebab(field)}": value
        for service, fields in full["secrets"]["values"].items()
        for field, value in fields.items()
    }
    (secret,) = of_kind(full_objects, "Secret")
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert decoded == given
    secret_texts = [value for key, value in given.items() if not key.endswith("-service-client-id")]
    for obj in full_objects:
        if obj is secret:
            continue
        dumped = json.dumps(obj)
        for text in secret_texts:
            assert text not in dumped, f"secret leaked into {obj['kind']}/{obj['metadata']['name']}"
            assert base64.b64encode(text.encode()).decode() not in dumped


def test_existing_secret_is_used_and_none_is_created(chart: helm_python.Chart) -> None:
    objects = render(chart, existing_secret_values())
    assert of_kind(objects, "Secret") == []
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            for container in pod_spec(obj)["containers"]:
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == "comuna-prod-secrets"
            if obj["kind"] == "Deployment":
                assert "checksum/secret" not in obj["spec"]["template"]["metadata"].get("annotations", {})


# --- security -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pods_run_as_non_root_restricted(chart: helm_python.Chart, scenario: str) -> None:
    values = SCENARIOS[scenario]() or {}
    workloads = [obj for obj in render(chart, values) if obj["kind"] in WORKLOAD_KINDS]
    syncs = 1 if values.get("keycloakSync", {}).get("enabled") else 0
    assert len(workloads) == 4 + 4 + 1 + syncs  # deployments, migration jobs, `helm test` pod, keycloak sync
    for obj in workloads:
        spec = pod_spec(obj)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] != 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context.get("privileged", False) is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert "memory" in container["resources"]["limits"]


def test_projects_get_the_milestone_plan_of_the_values(chart: helm_python.Chart) -> None:
    container = pod_spec(deployment(render(chart), "projects"))["containers"][0]
    assert env_of(container)["COMUNA_PROJECTS_MILESTONE_PLAN"]["value"] == "Start-up:40,Midpoint:40,Completion:20"
    custom = {"services": {"projects": {"milestonePlan": "Obra:80,Entrega:20"}}}
    container = pod_spec(deployment(render(chart, custom), "projects"))["containers"][0]
    assert env_of(container)["COMUNA_PROJECTS_MILESTONE_PLAN"]["value"] == "Obra:80,Entrega:20"
    funding = pod_spec(deployment(render(chart), "funding"))["containers"][0]
    assert "COMUNA_FUNDING_MILESTONE_PLAN" not in env_of(funding)


def test_projects_evidence_storage_and_stall_detection(chart: helm_python.Chart) -> None:
    # Default: a local directory on a volume (an emptyDir unless a claim is named), 20 MiB files.
    container, spec = _projects_pod(render(chart, {}))
    env = env_of(container)
    assert {k: env[f"COMUNA_PROJECTS_{k}"]["value"] for k in ("EVIDENCE_BACKEND", "EVIDENCE_DIR")} == {
        "EVIDENCE_BACKEND": "local",
        "EVIDENCE_DIR": "/var/lib/comuna/evidence",
    }
    assert env["COMUNA_PROJECTS_EVIDENCE_MAX_BYTES"]["value"] == str(20 * 1024 * 1024)
    assert (env["COMUNA_PROJECTS_STALL_QUIET_DAYS"]["value"], env["COMUNA_PROJECTS_STALL_CHECK_SECONDS"]["value"]) == (
        "30",
        "60",
    )
    assert {"name": "evidence", "mountPath": "/var/lib/comuna/evidence"} in container["volumeMounts"]
    assert {"name": "evidence", "emptyDir": {}} in spec["volumes"]
    claimed = _projects_pod(render(chart, {"services": {"projects": {"evidence": {"existingClaim": "evidencia"}}}}))
    assert {"name": "evidence", "persistentVolumeClaim": {"claimName": "evidencia"}} in claimed[1]["volumes"]
    # S3: endpoint and bucket in values, the keys from the Secret; no volume.
    s3 = {"backend": "s3", "s3": {"endpoint": "https://s3.example.org", "bucket": "evidencia"}}
    container, spec = _projects_pod(render(chart, {"services": {"projects": {"evidence": s3}}}))
    env = env_of(container)
    assert env["COMUNA_PROJECTS_EVIDENCE_S3_BUCKET"]["value"] == "evidencia"
    assert "COMUNA_PROJECTS_EVIDENCE_DIR" not in env
    secret = env["COMUNA_PROJECTS_EVIDENCE_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret["key"] == "projects-evidence-s3-secret-access-key"
    assert all(v["name"] != "evidence" for v in spec["volumes"])
    with pytest.raises(Exception, match=r"evidence\.s3\.endpoint"):
        render(chart, {"services": {"projects": {"evidence": {"backend": "s3"}}}})


def _projects_pod(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = pod_spec(deployment(objects, "projects"))
    return spec["containers"][0], spec


def test_service_account_never_mounts_api_token(default_objects: list[dict[str, Any]]) -> None:
    accounts = by_name(default_objects, "ServiceAccount")
    assert set(accounts) == {RELEASE, f"{RELEASE}-migrations"}
    assert all(account["automountServiceAccountToken"] is False for account in accounts.values())
    for name in SERVICES:
        assert pod_spec(deployment(default_objects, name))["serviceAccountName"] == RELEASE


@pytest.mark.parametrize(
    "bad",
    [
        {"services": {"payments": {"httpPort": 8005}}},
        {"podSecurityContext": {"runAsNonRoot": False}},
        {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
        {"containerSecurityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
        {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
        {"defaults": {"replicas": "two"}},
        {"defaults": {"consumers": {"maxDeliveries": 0}}},
        {"defaults": {"rateLimits": {"documentLookups": {"burst": 0}}}},
        {"services": {"identity": {"rateLimits": {"documentLookups": {"perMinute": 0}}}}},
        # The limit of the removed CheckEligibility RPC is gone: a leftover value is a typo now.
        {"services": {"identity": {"rateLimits": {"eligibility": {"perMinute": 300000}}}}},
        {"services": {"identity": {"rateLimits": {"lookups": {"burst": 3}}}}},
        {"services": {"funding": {"consumers": {"stallSeconds": "soon"}}}},
        {"services": {"funding": {"autoscaling": {"enabled": "yes"}}}},
        {"services": {"consultations": {"peers": ["billing"]}}},
        {"services": {"projects": {"milestonePlan": "Start-up 40, Completion 60"}}},
        {"secrets": {"values": {"identity": {"censusKey": "typo"}}}},
        {"secrets": {"values": {"funding": {"databaseUrl": "mysql://x"}}}},
        {"telemetry": {"exporter": "jaeger"}},
        {"oidc": {"issuer": "auth.example.org/realms/comuna"}},
        {"image": {"digest": "latest"}},
        {"unknownTopLevel": True},
    ],
    ids=lambda bad: json.dumps(bad, sort_keys=True),
)
def test_values_schema_rejects_bad_values(chart: helm_python.Chart, bad: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        chart.render(bad, name=RELEASE, namespace=NAMESPACE)


def test_values_schema_accepts_the_documented_defaults(chart: helm_python.Chart, full: dict[str, Any]) -> None:
    chart.validate_schema(chart.values)
    chart.validate_schema(full)
    assert chart.schema is not None and chart.schema["additionalProperties"] is False


# --- toggles --------------------------------------------------------------------------------


def test_optional_objects_are_off_by_default(default_objects: list[dict[str, Any]]) -> None:
    kinds = {obj["kind"] for obj in default_objects}
    assert not kinds & {"HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "Ingress"}
    # Pods exist; "helm test" pod is the only bare Pod.
    assert [obj["metadata"]["name"] for obj in of_kind(default_objects, "Pod")] == [f"{RELEASE}-test-readiness"]


def test_everything_enabled(full_objects: list[dict[str, Any]]) -> None:
    count = {
        kind: len(of_kind(full_objects, kind))
        for kind in (
            "Deployment",
            "Service",
            "Job",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ServiceMonitor",
            "Ingress",
            "Secret",
            "ServiceAccount",
        )
    }
    assert count == {
        "Deployment": 4,
        "Service": 4,
        "Job": 4 + 1,  # migrations and the keycloak sync
        "HorizontalPodAutoscaler": 4,
        "PodDisruptionBudget": 4,
        "NetworkPolicy": 4,
        "ServiceMonitor": 4,
        "Ingress": 1,
        "Secret": 1,
        "ServiceAccount": 2,
    }
    hpas = by_name(full_objects, "HorizontalPodAutoscaler")
    for name in SERVICES:
        dep = deployment(full_objects, name)
        assert "replicas" not in dep["spec"], "the HPA owns replicas"
        hpa = hpas[f"{RELEASE}-{name}"]
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": dep["metadata"]["name"],
        }
        assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
        spec = pod_spec(dep)
        (container,) = spec["containers"]
        assert container["livenessProbe"]["grpc"] == {"port": SERVICES[name][1]}
        assert "httpGet" not in container["livenessProbe"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        assert spec["priorityClassName"] == "comuna-critical"
        assert spec["tolerations"][0]["key"] == "dedicated"
    assert hpas[f"{RELEASE}-consultations"]["spec"]["maxReplicas"] == 40
    assert hpas[f"{RELEASE}-identity"]["spec"]["maxReplicas"] == 10
    assert by_name(full_objects, "PodDisruptionBudget")[f"{RELEASE}-consultations"]["spec"] == {
        "minAvailable": "50%",
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": deployment(full_objects, "consultations")["spec"]["selector"],
    }
    (spread,) = pod_spec(deployment(full_objects, "consultations"))["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "consultations"
    for monitor in of_kind(full_objects, "ServiceMonitor"):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"] == [
            {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s", "scrapeTimeout": "10s"}
        ]
    (ingress,) = of_kind(full_objects, "Ingress")
    backends = {p["path"]: p["backend"]["service"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert backends == {
        "/v1/territories": {"name": f"{RELEASE}-identity", "port": {"name": "http"}},
        "/v1/consultations": {"name": f"{RELEASE}-consultations", "port": {"name": "http"}},
    }


def test_edge_settings_and_the_metrics_port(full_objects: list[dict[str, Any]]) -> None:
    policies = by_name(full_objects, "NetworkPolicy")
    for name in SERVICES:
        prefix = f"COMUNA_{name.upper()}_"
        (container,) = pod_spec(deployment(full_objects, name))["containers"]
        env = env_of(container)
        allowed = env[prefix + "ALLOWED_HOSTS"]["value"].split(",")
        # The ingress host is what clients send through the ingress controller.
        assert {"api.comuna.example.org", "*.comuna.example.org", "localhost"} <= set(allowed)
        assert len(allowed) == len(set(allowed))
        assert env[prefix + "TRUSTED_PROXIES"]["value"] == "10.0.0.0/8"
        assert env[prefix + "MAX_BODY_BYTES"]["value"] == "2097152"
        # The metrics port takes scrapes from the monitoring namespace only.
        metrics_rule = next(
            rule
            for rule in policies[f"{RELEASE}-{name}"]["spec"]["ingress"]
            if rule["ports"] == [{"port": METRICS_PORTS[name], "protocol": "TCP"}]
        )
        assert metrics_rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]


def test_network_policies_allow_only_what_each_service_needs(chart: helm_python.Chart, full: dict[str, Any]) -> None:
    # Give projects two peers on top of the defaults to see the computed rules on both sides.
    values = deepcopy(full)
    values["services"]["projects"] = {"peers": ["identity", "funding"]}
    policies = by_name(render(chart, values), "NetworkPolicy")

    def grpc_callers(service: str) -> set[str]:
        spec = policies[f"{RELEASE}-{service}"]["spec"]
        grpc_port = [{"port": SERVICES[service][1], "protocol": "TCP"}]
        rules = [rule for rule in spec["ingress"] if rule["ports"] == grpc_port]
        return {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for rule in rules for peer in rule["from"]
        }

    def egress_ports(service: str) -> set[int]:
        return {port["port"] for rule in policies[f"{RELEASE}-{service}"]["spec"]["egress"] for port in rule["ports"]}

    assert grpc_callers("identity") == {"consultations", "funding", "projects"}
    assert grpc_callers("funding") == {"projects"}
    assert grpc_callers("consultations") == set()  # nobody calls it over gRPC: no rule at all
    assert grpc_callers("projects") == set()
    assert egress_ports("identity") == {53, 5432, 4222, 443, 4317}
    assert egress_ports("funding") == {53, 5432, 4222, 443, 4317, 50051}
    assert egress_ports("consultations") == {53, 5432, 4222, 443, 4317, 50051}
    assert egress_ports("projects") == {53, 5432, 4222, 443, 4317, 50051, 50053}
    for name in SERVICES:
        policy = policies[f"{RELEASE}-{name}"]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        # Selects the server pods and the migration pods of this service only.
        assert policy["spec"]["podSelector"]["matchLabels"]["comuna.io/service"] == name
        http_rule = policy["spec"]["ingress"][0]
        assert http_rule["ports"] == [{"port": SERVICES[name][0], "protocol": "TCP"}]
        namespaces = [
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in http_rule["from"]
            if "namespaceSelector" in peer
        ]
        assert namespaces == ["ingress-nginx", "monitoring"]
        # ... and the release's own `helm test` pod, nothing else.
        pods = [peer["podSelector"]["matchLabels"] for peer in http_rule["from"] if "podSelector" in peer]
        assert pods == [
            {
                "app.kubernetes.io/name": "comuna",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "test",
            }
        ]
        postgres_port = [{"port": 5432, "protocol": "TCP"}]
        postgres = next(rule for rule in policy["spec"]["egress"] if rule["ports"] == postgres_port)
        assert postgres["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_toggles(chart: helm_python.Chart) -> None:
    no_migrations = render(chart, {"migrations": {"enabled": False}})
    assert of_kind(no_migrations, "Job") == []
    assert set(by_name(no_migrations, "ServiceAccount")) == {RELEASE}

    no_tests = render(chart, {"tests": {"enabled": False}})
    assert of_kind(no_tests, "Pod") == []

    no_pdb = render(chart, {"defaults": {"podDisruptionBudget": {"enabled": False}}})
    assert of_kind(no_pdb, "PodDisruptionBudget") == []

    # A per-service false wins over a default true (not sprig's merge, which would drop it).
    one_hpa = render(
        chart,
        {"defaults": {"autoscaling": {"enabled": True}}, "services": {"identity": {"autoscaling": {"enabled": False}}}},
    )
    assert sorted(by_name(one_hpa, "HorizontalPodAutoscaler")) == sorted(
        f"{RELEASE}-{name}" for name in SERVICES if name != "identity"
    )
    assert deployment(one_hpa, "identity")["spec"]["replicas"] == 2

    replicas = render(chart, {"services": {"funding": {"replicas": 5}}, "defaults": {"replicas": 1}})
    assert deployment(replicas, "funding")["spec"]["replicas"] == 5
    assert deployment(replicas, "identity")["spec"]["replicas"] == 1
    assert deployment(replicas, "consultations")["spec"]["replicas"] == 3

    no_spread = render(chart, {"defaults": {"defaultTopologySpread": False}})
    assert "topologySpreadConstraints" not in pod_spec(deployment(no_spread, "identity"))

    external_sa = render(chart, {"serviceAccount": {"create": False, "name": "comuna-runtime"}})
    assert of_kind(external_sa, "ServiceAccount") == []
    assert {pod_spec(obj)["serviceAccountName"] for obj in external_sa if obj["kind"] in {"Deployment", "Job"}} == {
        "comuna-runtime"
    }

    pinned = render(chart, {"image": {"digest": "sha256:" + "a" * 64}})
    assert pod_spec(deployment(pinned, "identity"))["containers"][0]["image"] == "comuna/comuna@sha256:" + "a" * 64

    nats_secret = render(chart, {"nats": {"urlFromSecret": True}})
    env = env_of(pod_spec(deployment(nats_secret, "funding"))["containers"][0])
    assert env["COMUNA_FUNDING_NATS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "nats-url"


def test_disabling_a_service(chart: helm_python.Chart) -> None:
    # Nobody calls projects over gRPC: it can be left out alone.
    objects = render(chart, {"services": {"projects": {"enabled": False}}, "networkPolicy": {"enabled": True}})
    assert sorted(by_name(objects, "Deployment")) == sorted(f"{RELEASE}-{n}" for n in SERVICES if n != "projects")
    assert not [obj for obj in objects if "projects" in obj["metadata"]["name"]]
    identity_policy = by_name(objects, "NetworkPolicy")[f"{RELEASE}-identity"]
    callers = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in identity_policy["spec"]["ingress"]
        if rule["ports"] == [{"port": SERVICES["identity"][1], "protocol": "TCP"}]
        for peer in rule["from"]
    }
    assert callers == {"consultations", "funding"}

    # Disabling a service others call needs an explicit target for it.
    with pytest.raises(helm_python.HelmRenderError, match="identity"):
        render(chart, {"services": {"identity": {"enabled": False}}})
    elsewhere = "identity.other-operator.example.org:443"
    objects = render(
        chart,
        {
            "services": {
                "identity": {"enabled": False},
                **{name: {"peerTargets": {"identity": elsewhere}} for name in ("consultations", "funding", "projects")},
            },
            "networkPolicy": {"enabled": True},
        },
    )
    assert grpc_targets(objects, "consultations") == {"COMUNA_CONSULTATIONS_IDENTITY_GRPC_TARGET": elsewhere}
    # No in-cluster rule towards a peer that lives elsewhere (networkPolicy.egress.extra is for that).
    policy = by_name(objects, "NetworkPolicy")[f"{RELEASE}-consultations"]
    assert 50051 not in {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}


def test_incomplete_settings_fail_at_render_time(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match="otlpEndpoint"):
        render(chart, {"telemetry": {"exporter": "otlp"}})
    with pytest.raises(helm_python.HelmRenderError, match="targetCPUUtilizationPercentage"):
        render(chart, {"defaults": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}})


def test_templates_loop_over_services_without_naming_them(chart: helm_python.Chart) -> None:
    """One shared loop: no template (or helper) mentions a particular service."""
    sources = {template["name"]: template["data"] for template in chart.templates}
    assert "templates/deployment.yaml" in sources and "range" in sources["templates/deployment.yaml"]
    # The one exception: the Keycloak sync is identity's own command (it reads identity's register).
    del sources["templates/keycloak-sync-job.yaml"]
    for name, text in sources.items():
        for service in SERVICES:
            assert service not in text.lower(), f"{name} names the service {service!r}"


def test_secret_and_checksum_change_together(chart: helm_python.Chart, full: dict[str, Any]) -> None:
    """Changing a secret value changes the pods' checksum annotation, so they roll."""
    first = deployment(render(chart, full), "identity")
    changed = deepcopy(full)
    changed["secrets"]["values"]["identity"]["censusHashKey"] = _test_secret()
    second = deployment(render(chart, changed), "identity")
    checksum = "checksum/secret"
    assert (
        first["spec"]["template"]["metadata"]["annotations"][checksum]
        != second["spec"]["template"]["metadata"]["annotations"][checksum]
    )


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_locked_and_non_root() -> None:
    commands = dockerfile.parse_file(str(DOCKERFILE))  # BuildKit's own parser: syntax errors fail here
    stages = [c for c in commands if c.cmd == "FROM"]
    assert len(stages) >= 2 and stages[0].value[-1] == "build" and stages[-1].value[-1] == "runtime"
    runtime = commands[commands.index(stages[-1]) :]
    build = commands[: commands.index(stages[-1])]

    syncs = [c.value[0] for c in build if c.cmd == "RUN" and "uv sync" in c.value[0]]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert any("--no-editable" in s for s in syncs), "workspace packages must not point at /src"
    # The runtime stage copies only the venv from the build stage: no uv, no sources.
    copies = [c for c in runtime if c.cmd == "COPY"]
    assert copies and all("--from=build" in c.flags for c in copies)
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) != 0, (
        "numeric non-root USER (runAsNonRoot can only verify a numeric one)"
    )
    uid = int(users[-1].split(":")[0])
    chart_values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert chart_values["podSecurityContext"]["runAsUser"] == uid
    exposed = {int(port) for c in runtime if c.cmd == "EXPOSE" for port in c.value}
    assert exposed == {port for ports in SERVICES.values() for port in ports}

    # The image holds every console script the chart runs, as the workspace declares them.
    declared = set()
    for name in SERVICES:
        manifest = (ROOT / "services" / name / "pyproject.toml").read_text()
        assert f'comuna-{name} = "comuna_{name}.main:main"' in manifest
        declared.add(f"comuna-{name}")
    smoke = " ".join(c.value[0] for c in build if c.cmd == "RUN")
    assert all(name in smoke for name in SERVICES), "the build runs each console script once"
    # Every workspace manifest is copied before the dependency layer (uv sync --frozen needs them).
    copied = {c.value[0] for c in build if c.cmd == "COPY"}
    members = {str(p.relative_to(ROOT)) for p in ROOT.glob("*/*/pyproject.toml") if p.parts[-3] in {"libs", "services"}}
    assert members <= copied, members - copied
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text()
    assert ".venv" in ignore and ".devstack" in ignore


# --- NATS accounts for production -------------------------------------------------------------

NATS_ACCOUNTS = CHART_DIR / "files" / "nats-accounts.conf"


def test_the_shipped_nats_accounts_are_the_dev_stack_permissions() -> None:
    from comuna_devstack.nats_auth import render_accounts_config

    assert NATS_ACCOUNTS.read_text() == render_accounts_config() + "\n", (
        "regenerate deploy/helm/comuna/files/nats-accounts.conf from comuna_devstack.nats_auth.render_accounts_config"
    )


def test_nats_server_accepts_the_shipped_accounts(tmp_path: Path) -> None:
    import subprocess

    from comuna_devstack.nats import find_nats_server
    from comuna_devstack.nats_auth import READER, SERVICE_CONSUMERS, password_variable

    env = {password_variable(user): _test_secret() for user in [*SERVICE_CONSUMERS, READER]}
    config = tmp_path / "nats.conf"
    config.write_text(f"jetstream {{store_dir: {json.dumps(str(tmp_path / 'js'))}}}\ninclude ./accounts.conf\n")
    (tmp_path / "accounts.conf").write_text(NATS_ACCOUNTS.read_text())
    checked = subprocess.run(
        [str(find_nats_server()), "-c", str(config), "-t"], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "is valid" in checked.stderr + checked.stdout
    # Without a password variable the server refuses the config: no user is left open.
    del env[password_variable(READER)]
    missing = subprocess.run(
        [str(find_nats_server()), "-c", str(config), "-t"], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode != 0


# --- keycloak sync --------------------------------------------------------------------------


def sync_job(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return by_name(objects, "Job")[f"{RELEASE}-keycloak-sync"]


def test_keycloak_sync_is_off_by_default(default_objects: list[dict[str, Any]]) -> None:
    assert f"{RELEASE}-keycloak-sync" not in by_name(default_objects, "Job")


def test_keycloak_sync_hook_job(full_objects: list[dict[str, Any]], full: dict[str, Any]) -> None:
    job = sync_job(full_objects)
    annotations = job["metadata"]["annotations"]
    # After the release's objects exist (identity migrated and serving), on every install and upgrade.
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    (container,) = spec["containers"]
    assert container["command"] == ["comuna-identity", "keycloak", "sync"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == RELEASE
    env = env_of(container)
    # Issuer https://auth.example.org/realms/comuna -> server URL and realm.
    assert env["COMUNA_IDENTITY_KEYCLOAK_URL"]["value"] == "https://auth.example.org"
    assert env["COMUNA_IDENTITY_KEYCLOAK_REALM"]["value"] == "comuna"
    assert env["COMUNA_IDENTITY_KEYCLOAK_ADMIN_REALM"]["value"] == "master"
    assert env["COMUNA_IDENTITY_OIDC_AUDIENCE"]["value"] == "comuna-api"
    assert env["COMUNA_IDENTITY_KEYCLOAK_DEVELOPMENT"]["value"] == "false"
    assert env["COMUNA_IDENTITY_KEYCLOAK_REDIRECT_URIS"]["value"] == "https://portal.comuna.example.org/*"
    assert secret_ref(env, "COMUNA_IDENTITY_KEYCLOAK_ADMIN_PASSWORD")["key"] == "keycloak-admin-password"
    assert secret_ref(env, "COMUNA_IDENTITY_DATABASE_URL")["key"] == "identity-database-url"
    assert env["COMUNA_IDENTITY_KEYCLOAK_CLIENT_SECRETS_DIR"]["value"] == "/etc/comuna/keycloak-clients"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "client-secrets")
    assert mount == {"name": "client-secrets", "mountPath": "/etc/comuna/keycloak-clients", "readOnly": True}
    volume = next(v for v in spec["volumes"] if v["name"] == "client-secrets")
    assert volume["secret"]["secretName"] == f"{RELEASE}-secrets"
    assert volume["secret"]["defaultMode"] == 0o400
    assert {item["path"]: item["key"] for item in volume["secret"]["items"]} == {
        f"svc-{name}": f"{name}-service-client-secret" for name in SERVICES
    }
    # The admin password is in the Secret only, never in a manifest.
    secret = by_name(full_objects, "Secret")[f"{RELEASE}-secrets"]
    password = full["secrets"]["values"]["keycloak"]["adminPassword"]
    assert base64.b64decode(secret["data"]["keycloak-admin-password"]).decode() == password
    assert password not in json.dumps([strip(o) for o in full_objects if o["kind"] != "Secret"])
    # identity's NetworkPolicy (egress to PostgreSQL and the issuer) selects the sync pod.
    policy = by_name(full_objects, "NetworkPolicy")[f"{RELEASE}-identity"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    # Never the Services' traffic.
    assert not deployment(full_objects, "identity")["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_keycloak_sync_settings(chart: helm_python.Chart) -> None:
    base = {"oidc": {"issuer": "https://sso.example.net/auth/realms/pueblo/"}, "keycloakSync": {"enabled": True}}
    env = env_of(pod_spec(sync_job(render(chart, base)))["containers"][0])
    assert env["COMUNA_IDENTITY_KEYCLOAK_URL"]["value"] == "https://sso.example.net/auth"
    assert env["COMUNA_IDENTITY_KEYCLOAK_REALM"]["value"] == "pueblo"
    assert "COMUNA_IDENTITY_KEYCLOAK_REDIRECT_URIS" not in env
    explicit = deepcopy(base)
    explicit["keycloakSync"] |= {
        "url": "http://keycloak.auth.svc:8080",
        "realm": "comuna",
        "adminRealm": "ops",
        "adminUsername": "provisioner",
        "development": True,
    }
    env = env_of(pod_spec(sync_job(render(chart, explicit)))["containers"][0])
    assert env["COMUNA_IDENTITY_KEYCLOAK_URL"]["value"] == "http://keycloak.auth.svc:8080"
    assert env["COMUNA_IDENTITY_KEYCLOAK_REALM"]["value"] == "comuna"
    assert env["COMUNA_IDENTITY_KEYCLOAK_ADMIN_REALM"]["value"] == "ops"
    assert env["COMUNA_IDENTITY_KEYCLOAK_ADMIN_USERNAME"]["value"] == "provisioner"
    assert env["COMUNA_IDENTITY_KEYCLOAK_DEVELOPMENT"]["value"] == "true"
    with pytest.raises(helm_python.HelmRenderError, match=r"keycloakSync needs oidc\.issuer"):
        render(chart, {"keycloakSync": {"enabled": True}})
    with pytest.raises(helm_python.HelmRenderError, match=r"needs services\.identity\.enabled"):
        render(chart, base | {"services": {"identity": {"enabled": False}}})
    with pytest.raises(helm_python.HelmValuesError, match="adminPasword"):
        render(chart, {"keycloakSync": {"enabled": True, "adminPasword": "typo"}})


def test_notes_list_the_keys_the_sync_needs(chart: helm_python.Chart) -> None:
    text = notes(
        chart, {"oidc": {"issuer": "https://auth.example.org/realms/comuna"}, "keycloakSync": {"enabled": True}}
    )
    assert "keycloak-admin-password" in text
    assert "identity-service-client-secret" in text and "projects-service-client-secret" in text
    assert "keycloak-admin-password" not in notes(chart, {"oidc": {"issuer": "https://auth.example.org/realms/comuna"}})
