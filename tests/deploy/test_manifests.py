"""The cluster-mode deployment files in ``deploy/`` are valid and hold together, offline.

- ``deploy/compose/compose.yaml`` against the compose-spec JSON schema that check-jsonschema
  vendors, then the facts the cluster needs: three nodes, each with its own ``NODE_ID`` and
  a UDP ``ICE_PORT_RANGE`` that it publishes, the shared Redis, MongoDB and token key, a
  drain that fits in the stop grace period, nginx over all three nodes with WebSocket
  upgrades, coturn on the ports the nodes hand out.
- every manifest of ``deploy/kubernetes/`` (each document of each file the kustomization
  lists) against kubernetes-validate's bundled schemas in strict mode (unknown fields
  fail), then the StatefulSet's probes, grace period and node identity.
- each node's environment, as compose or the StatefulSet gives it, through the server's
  own `api.config.load_settings`, so a value the server would refuse fails here.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from api.config import load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose"
KUBERNETES = REPO / "deploy" / "kubernetes"
NODES = ("node-a", "node-b", "node-c")
CLUSTER_SETTINGS = ("REDIS_URL", "MONGODB_URI", "JWT_SIGNING_KEY_FILE")
K8S_VERSIONS = ("1.30", "1.37")
"""The oldest Kubernetes the manifests are meant for and the newest schemas bundled."""
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    compose = _yaml(COMPOSE / "compose.yaml")
    assert isinstance(compose, dict)
    return compose


def _dotenv(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def _interpolated(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:?message}`` and ``${NAME:-default}``, all required."""
    return _INTERPOLATION.sub(lambda match: env[match.group(1)], value)


def _port_range(raw: str) -> range:
    low, high = (int(part) for part in raw.split("-"))
    return range(low, high + 1)


def _published_udp(service: Mapping[str, Any]) -> set[int]:
    """Ports published as UDP with the same number on the host and in the container."""
    published: set[int] = set()
    for spec in service.get("ports", []):
        ports, _, protocol = str(spec).partition("/")
        *_, host, container = ports.split(":")
        if protocol == "udp" and host == container:
            published.update(_port_range(host) if "-" in host else [int(host)])
    return published


def _seconds(duration: str) -> float:
    """A compose duration such as ``11m``, ``1m30s`` or ``90s``."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def _signing_key(tmp_path: Path) -> str:
    """A stand-in for the mounted key: `load_settings` only checks that the file exists."""
    key = tmp_path / "jwt-signing-key.pem"
    key.write_text("stand-in\n")
    return str(key)


# -- compose --------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec() -> None:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    assert validator_class is jsonschema.Draft202012Validator, schema.get("$schema")
    validator_class.check_schema(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator_class(schema).iter_errors(_compose())
    ]
    assert errors == []


def test_three_nodes_each_with_its_own_id_and_published_udp_range() -> None:
    services = _compose()["services"]
    nodes = {name for name, service in services.items() if "build" in service}
    assert nodes == set(NODES)
    ids = [services[node]["environment"]["NODE_ID"] for node in NODES]
    assert len(set(ids)) == len(NODES), ids
    ranges = {node: _port_range(services[node]["environment"]["ICE_PORT_RANGE"]) for node in NODES}
    for node, ports in ranges.items():
        assert set(ports) <= _published_udp(services[node]), node
        others = set().union(*(set(r) for other, r in ranges.items() if other != node))
        assert not others & set(ports), f"{node}'s ICE_PORT_RANGE overlaps another node's"


def test_every_node_shares_the_cluster_and_drains_before_it_is_killed() -> None:
    compose = _compose()
    proxy_address = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    for node in NODES:
        service = compose["services"][node]
        env = service["environment"]
        assert all(env.get(name) for name in CLUSTER_SETTINGS), node
        assert env["NODE_HTTP_URL"] == f"http://{node}:3000"
        (secret,) = service["secrets"]
        assert env["JWT_SIGNING_KEY_FILE"] == f"/run/secrets/{secret}"
        assert compose["secrets"][secret] == {"file": "./jwt-signing-key.pem"}
        assert "http://127.0.0.1:3000/ready" in " ".join(service["healthcheck"]["test"])
        assert _seconds(service["stop_grace_period"]) > float(env["NODE_DRAIN_SECONDS"])
        assert env["TRUSTED_PROXIES"] == proxy_address


def test_every_node_environment_loads(tmp_path: Path) -> None:
    """What compose would hand each node, with .env.example's values, as the server reads it."""
    dotenv = _dotenv(COMPOSE / ".env.example")
    for node in NODES:
        raw = _compose()["services"][node]["environment"]
        env = {name: _interpolated(str(value), dotenv) for name, value in raw.items()}
        env["JWT_SIGNING_KEY_FILE"] = _signing_key(tmp_path)
        settings = load_settings(env)
        assert settings.cluster is not None
        assert settings.cluster.node_id == node
        assert settings.ice_announced_address == dotenv["PUBLIC_IP"]
        assert settings.ice.turn_enabled
        assert settings.ice.port_range is not None


def test_nginx_balances_http_and_websockets_over_all_nodes() -> None:
    proxy = _compose()["services"]["proxy"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert "80:80" in proxy["ports"]
    conf = (COMPOSE / "nginx.conf").read_text()
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf)
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", upstream.group(2), re.MULTILINE)
    assert servers == [f"{node}:3000" for node in NODES]
    ws = re.search(r"location\s*=\s*/ws\s*\{([^}]*)\}", conf)
    assert ws is not None
    directives = {line.strip().rstrip(";") for line in ws.group(1).splitlines()}
    assert f"proxy_pass http://{upstream.group(1)}" in directives
    assert "proxy_http_version 1.1" in directives
    assert "proxy_set_header Upgrade $http_upgrade" in directives
    assert "proxy_set_header Connection $connection_upgrade" in directives
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{[^}]*default upgrade;", conf)
    timeout = re.search(r"proxy_read_timeout (\d+)h", ws.group(1))
    assert timeout is not None and int(timeout.group(1)) >= 1


def test_coturn_relays_with_the_nodes_secret_on_published_ports() -> None:
    services = _compose()["services"]
    coturn = services["coturn"]
    conf = _dotenv(COMPOSE / "turnserver.conf")  # key=value lines; bare flags are dropped
    flags = {line.strip() for line in (COMPOSE / "turnserver.conf").read_text().splitlines()}
    assert "use-auth-secret" in flags
    assert conf["realm"]
    assert "--static-auth-secret=${TURN_SECRET}" in coturn["command"]
    assert services["node-a"]["environment"]["TURN_SECRET"].startswith("${TURN_SECRET")
    relay = range(int(conf["min-port"]), int(conf["max-port"]) + 1)
    assert {3478, *relay} <= _published_udp(coturn)
    assert "3478:3478/tcp" in coturn["ports"]


# -- Kubernetes -----------------------------------------------------------------------


def _kustomized_files() -> list[str]:
    resources = _yaml(KUBERNETES / "kustomization.yaml")["resources"]
    assert isinstance(resources, list)
    return [str(name) for name in resources]


def _documents(name: str) -> Iterator[dict[str, Any]]:
    for document in yaml.safe_load_all((KUBERNETES / name).read_text()):
        if document is not None:
            assert isinstance(document, dict), name
            yield document


def _manifest(kind: str) -> dict[str, Any]:
    (found,) = (d for f in _kustomized_files() for d in _documents(f) if d["kind"] == kind)
    return found


def test_kustomization_lists_every_manifest() -> None:
    on_disk = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(_kustomized_files()) == sorted(on_disk)


def _schema_error(document: dict[str, Any], version: str) -> str | None:
    """Where and why ``document`` fails ``version``'s strict schema (the error itself holds
    the whole schema and document, which would bury that one line)."""
    try:
        used = kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
    assert used == version
    return None


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", _kustomized_files())
def test_manifest_matches_the_kubernetes_schema(name: str, version: str) -> None:
    documents = list(_documents(name))
    assert documents, name
    errors = {f"{d['kind']} {d['metadata']['name']}": _schema_error(d, version) for d in documents}
    assert {what: error for what, error in errors.items() if error} == {}


def test_statefulset_probes_grace_and_node_identity() -> None:
    statefulset = _manifest("StatefulSet")
    config = _manifest("ConfigMap")["data"]
    headless = next(d for d in _documents("services.yaml") if d["spec"].get("clusterIP") == "None")
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["publishNotReadyAddresses"] is True  # draining nodes stay known
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod["terminationGracePeriodSeconds"] > float(config["NODE_DRAIN_SECONDS"])
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    (anti,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = [variable["name"] for variable in container["env"]]
    node_id = container["env"][env.index("NODE_ID")]
    assert node_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # $(NODE_ID) expands only if NODE_ID comes first.
    assert env.index("NODE_ID") < env.index("NODE_HTTP_URL")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (key,) = (v for v in pod["volumes"] if "secret" in v)
    (item,) = key["secret"]["items"]
    assert config["JWT_SIGNING_KEY_FILE"] == f"{mounts[key['name']]}/{item['path']}"
    assert item["key"] in _manifest("Secret")["stringData"]


def test_statefulset_environment_loads(tmp_path: Path) -> None:
    """Pod classroom-node-0's environment, fieldRefs filled in, as the server reads it."""
    statefulset = _manifest("StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    fields = {"metadata.name": "classroom-node-0", "status.hostIP": "198.51.100.7"}
    env = dict(_manifest("ConfigMap")["data"])
    for variable in container["env"]:
        source = variable.get("valueFrom", {})
        if "fieldRef" in source:
            env[variable["name"]] = fields[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            env[variable["name"]] = "a-turn-secret"
        else:
            env[variable["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env[m.group(1)], variable["value"]
            )
    env["JWT_SIGNING_KEY_FILE"] = _signing_key(tmp_path)
    settings = load_settings(env)
    assert settings.cluster is not None
    assert settings.cluster.node_id == "classroom-node-0"
    headless = f"classroom-node-headless.{statefulset['metadata']['namespace']}.svc"
    assert settings.cluster.http_url.startswith(f"http://classroom-node-0.{headless}")
    assert settings.ice_addresses == ("198.51.100.7",)


def test_ingress_sends_clients_to_the_http_service_with_long_socket_timeouts() -> None:
    ingress = _manifest("Ingress")
    services = {d["metadata"]["name"]: d for d in _documents("services.yaml")}
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = services[backend["name"]]
    assert service["spec"]["type"] == "ClusterIP"
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    annotations = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
