"""Tests of the Helm chart charts/stowaway, offline.

Rendering and linting use helm-python-sdk (Helm v4's engine as a library, no helm binary, no
cluster); every rendered object is checked against Kubernetes' JSON schemas with
kubernetes-validate. The operator's arguments are checked against the `stowaway` binary when
STOWAWAY_BIN names it (scripts/test-chart.sh sets it), else against the flags declared in
agent/stowaway/src/cli/operator.rs.

Not testable offline: Helm's `lookup` returns nothing without a cluster, so the reuse of an
existing webhook Secret on upgrade (templates/webhook.yaml) is never exercised here; what is
checked is that without one each render makes a fresh, valid pair.
"""

from __future__ import annotations

import base64
import collections
import datetime
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import rbac_table

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stowaway"
OPERATOR_SRC = ROOT / "agent" / "operator" / "src"
RELEASE = "stowaway"
NAMESPACE = "stowaway-system"
# The oldest Kubernetes of Chart.yaml's kubeVersion and the newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.27.0", "1.37.0"]
# Kinds of other projects' CRDs: kubernetes-validate has no schema for them.
FOREIGN_GROUPS = {"cert-manager.io", "monitoring.coreos.com"}

CERT_MANAGER = {"webhook": {"certificate": {"mode": "certManager"}}}
# Most options at once.
FULL = yaml.safe_load((CHART / "ci" / "full-values.yaml").read_text())
NO_WEBHOOK = {"webhook": {"enabled": False}}


# ---------------------------------------------------------------------------------------------
# helpers


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[dict]:
    """The chart's objects for `values`, as dictionaries, in template order."""
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values or {}, name=RELEASE, namespace=namespace, is_install=True)
    objects = []
    for path in sorted(out):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(out[path]) if doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return out[f"{CHART.name}/templates/NOTES.txt"]


def kinds(objects: list[dict]) -> collections.Counter:
    return collections.Counter(o["kind"] for o in objects)


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objects: list[dict]) -> dict:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    (operator,) = [c for c in pod["containers"] if c["name"] == "operator"]
    return operator


def flag_values(args: list[str]) -> dict[str, str]:
    """`--name=value` arguments by name (every flag the chart passes has a value)."""
    values = {}
    for arg in args[1:]:
        name, sep, value = arg.partition("=")
        assert sep, f"{arg!r}: the chart passes flags as --name=value"
        values[name] = value
    return values


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def crd_kinds() -> dict[str, tuple[str, str]]:
    """Kind -> (group, plural) of Stowaway's CRDs, from the chart's crds/."""
    result = {}
    for path in (CHART / "crds").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "CustomResourceDefinition":
                names = doc["spec"]["names"]
                result[names["kind"]] = (doc["spec"]["group"], names["plural"])
    return result


def granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) the rules grant; wildcards fail the test."""
    out = set()
    for r in rules:
        assert "resourceNames" not in r and "nonResourceURLs" not in r, r
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for v in r["verbs"]:
                    assert "*" not in (g, res, v), f"wildcard in {r}"
                    out.add((g, res, v))
    return out


def load_cert(b64: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(b64))


# ---------------------------------------------------------------------------------------------
# chart metadata, lint, schema


def test_chart_version_follows_the_workspace():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cargo = (ROOT / "Cargo.toml").read_text()
    workspace = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', cargo, re.M | re.S)
    assert workspace, "no [workspace.package] version in Cargo.toml"
    assert chart["appVersion"] == workspace.group(1)
    assert chart["version"] == workspace.group(1)
    # The image tag defaults to the appVersion, and the Jobs get the same image.
    args = flag_values(container(render())["args"])
    assert container(render())["image"] == f"stowaway:{chart['appVersion']}"
    assert args["--image"] == f"stowaway:{chart['appVersion']}"


@pytest.mark.parametrize(
    "values",
    [None, CERT_MANAGER, NO_WEBHOOK, FULL],
    ids=["default", "certManager", "no-webhook", "full"],
)
def test_lint_is_clean(values):
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; only the "icon is recommended" kind of info is left.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"webhook": {"certificate": {"mode": "selfSigned"}}}, "/webhook/certificate/mode"),
        ({"webhook": {"certificate": {"mode": "secret"}}}, "/webhook/certificate"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"operator": {"leaseDuration": 15}}, "/operator/leaseDuration"),
        ({"webhook": {"validating": {"failurePolicy": "Maybe"}}}, "failurePolicy"),
        ({"webhok": {}}, "additional properties 'webhok'"),
    ],
)
def test_schema_refuses_bad_values(values, complaint):
    with pytest.raises(helm.HelmValuesError) as error:
        render(values)
    assert complaint in str(error.value)


def test_readme_lists_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(node: Any, prefix: str = "") -> list[str]:
        if isinstance(node, dict) and node:
            return [k for key, v in node.items() for k in leaves(v, f"{prefix}{key}.")]
        return [prefix[:-1]]

    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    # A value documented as a whole (such as `resources`) covers its keys.
    missing = [
        k for k in leaves(values)
        if not any(k == d or k.startswith(d + ".") for d in documented)
    ]
    assert missing == [], f"charts/stowaway/README.md does not list {missing}"


# ---------------------------------------------------------------------------------------------
# what each configuration renders

BASE = {
    "Deployment": 1,
    "ServiceAccount": 2,  # the operator's, the executor Jobs'
    "ClusterRole": 2,  # operator, executor
    "ClusterRoleBinding": 1,
    "Role": 1,  # the leader Lease
    "RoleBinding": 2,  # the Lease, the executor
    "Service": 2,  # webhook, metrics
    "PodDisruptionBudget": 1,
    "MutatingWebhookConfiguration": 1,
    "ValidatingWebhookConfiguration": 1,
}


@pytest.mark.parametrize(
    "values, changes",
    [
        (None, {"Secret": 1}),
        (CERT_MANAGER, {"Issuer": 2, "Certificate": 2}),
        (
            {"webhook": {"certificate": {"mode": "certManager", "certManager": {
                "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}}},
            {"Certificate": 1},
        ),
        ({"webhook": {"certificate": {"mode": "secret", "secret": {
            "name": "my-tls", "caBundle": "Q0E="}}}}, {}),
        (NO_WEBHOOK, {"Service": -1, "MutatingWebhookConfiguration": -1,
                      "ValidatingWebhookConfiguration": -1}),
        ({"metrics": {"serviceMonitor": {"enabled": True}}}, {"Secret": 1, "ServiceMonitor": 1}),
        ({"replicaCount": 1}, {"Secret": 1, "PodDisruptionBudget": -1}),
        ({"executor": {"namespaces": ["team-a", "team-b"]}},
         {"Secret": 1, "ServiceAccount": 2, "RoleBinding": 2}),
        ({"executor": {"serviceAccount": {"create": False}}},
         {"Secret": 1, "ServiceAccount": -1, "RoleBinding": -1}),
        ({"rbac": {"create": False}}, {"Secret": 1, "ClusterRole": -2, "ClusterRoleBinding": -1,
                                       "Role": -1, "RoleBinding": -2}),
    ],
    ids=["helm", "certManager", "certManager-issuer", "secret", "no-webhook", "serviceMonitor",
         "one-replica", "executor-namespaces", "no-executor-account", "no-rbac"],
)
def test_rendered_kinds(values, changes):
    expected = collections.Counter(BASE)
    expected.update(changes)
    assert kinds(render(values)) == +expected


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values",
    [
        None,
        CERT_MANAGER,
        {"webhook": {"certificate": {"mode": "secret", "secret": {"name": "t", "caBundle": "Q0E="}}}},
        NO_WEBHOOK,
        FULL,
    ],
    ids=["helm", "certManager", "secret", "no-webhook", "full"],
)
def test_objects_pass_the_kubernetes_schemas(values, kube_version):
    skipped = set()
    for obj in render(values):
        if obj["apiVersion"].split("/")[0] in FOREIGN_GROUPS:
            skipped.add(obj["kind"])  # test_cert_manager_objects, test_service_monitor_...
            continue
        kubernetes_validate.validate(obj, kube_version, strict=True)
    assert skipped <= {"Issuer", "Certificate", "ServiceMonitor"}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_crds_pass_the_kubernetes_schemas(kube_version):
    with helm.Chart.load(CHART) as chart:
        crds = chart.crds
    assert len(crds) >= 1
    docs = [d for c in crds for d in yaml.safe_load_all(c["data"]) if d]
    assert set(crd_kinds()) <= {d["spec"]["names"]["kind"] for d in docs}
    for doc in docs:
        kubernetes_validate.validate(doc, kube_version, strict=True)


def test_cert_manager_objects():
    objects = render(CERT_MANAGER)
    service = f"{RELEASE}-webhook"
    serving = one(objects, "Certificate", f"{RELEASE}-webhook")
    ca = one(objects, "Certificate", f"{RELEASE}-webhook-ca")
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"]["name"] == one(objects, "Issuer", f"{RELEASE}-selfsigned")["metadata"]["name"]
    ca_issuer = one(objects, "Issuer", f"{RELEASE}-webhook-ca")
    assert ca_issuer["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    assert serving["spec"]["issuerRef"] == {"name": f"{RELEASE}-webhook-ca", "kind": "Issuer",
                                             "group": "cert-manager.io"}
    assert f"{service}.{NAMESPACE}.svc" in serving["spec"]["dnsNames"]
    assert "server auth" in serving["spec"]["usages"]
    # The operator mounts the Secret cert-manager writes.
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "webhook-tls"]
    assert tls["secret"]["secretName"] == serving["spec"]["secretName"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = one(objects, kind)
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            f"{NAMESPACE}/{serving['metadata']['name']}"
        )
        assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])

    with_issuer = render({"webhook": {"certificate": {"mode": "certManager", "certManager": {
        "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}}})
    assert one(with_issuer, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_service_monitor_scrapes_the_metrics_service():
    objects = render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}})
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s for s in objects
        if s["kind"] == "Service" and selector.items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in services] == [f"{RELEASE}-metrics"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in services[0]["spec"]["ports"]}


# ---------------------------------------------------------------------------------------------
# the operator's Deployment


def test_deployment_runs_locked_down():
    objects = render()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(objects)
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "limits" in c["resources"] and "requests" in c["resources"]
    # The service account it runs as is the one the ClusterRoleBinding names.
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
    ]
    # The selector matches the pod labels.
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_pod_identity_comes_from_the_downward_api():
    env = {e["name"]: e for e in container(render())["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_probes_and_ports_match_the_flags():
    objects = render({"operator": {"healthPort": 9090}, "webhook": {"port": 9443}})
    c = container(objects)
    args = flag_values(c["args"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": port_of(args["--health-address"]),
                     "webhook": port_of(args["--webhook-address"])}
    assert ports == {"health": 9090, "webhook": 9443}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    webhook = one(objects, "Service", f"{RELEASE}-webhook")
    assert webhook["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    metrics = one(objects, "Service", f"{RELEASE}-metrics")
    assert [p["targetPort"] for p in metrics["spec"]["ports"]] == ["health"]
    for service in (webhook, metrics):
        assert service["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]


def test_webhook_certificate_is_mounted_where_the_flags_point():
    objects = render()
    c = container(objects)
    args = flag_values(c["args"])
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "webhook-tls"]
    assert mount["readOnly"] is True
    assert args["--webhook-cert"] == f"{mount['mountPath']}/tls.crt"
    assert args["--webhook-key"] == f"{mount['mountPath']}/tls.key"
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == "webhook-tls"]
    secret = one(objects, "Secret")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert {i["key"] for i in volume["secret"]["items"]} == {"tls.crt", "tls.key"}
    # The root file system is read-only: /tmp is an emptyDir.
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_webhook_disabled_removes_flags_ports_and_mounts():
    objects = render(NO_WEBHOOK)
    c = container(objects)
    assert not [a for a in c["args"] if a.startswith("--webhook")]
    assert [p["name"] for p in c["ports"]] == ["health"]
    assert [m["name"] for m in c["volumeMounts"]] == ["tmp"]
    assert "Secret" not in kinds(objects)
    assert "webhook is off" in notes(NO_WEBHOOK)


def test_lease_and_executor_settings_reach_the_flags():
    args = flag_values(container(render({
        "operator": {"leaseName": "my-lease", "leaseDuration": "30s"},
        "executor": {"image": {"repository": "registry.local/stowaway", "tag": "1.2.3"},
                     "serviceAccount": {"name": "backup-runner"}},
    }))["args"])
    assert args["--lease-name"] == "my-lease"
    assert args["--lease-duration"] == "30s"
    assert args["--image"] == "registry.local/stowaway:1.2.3"
    assert args["--job-service-account"] == "backup-runner"
    # Defaults: the release's own Lease; no account flag when none is created or named.
    default = flag_values(container(render())["args"])
    assert default["--lease-name"] == RELEASE
    assert default["--job-service-account"] == f"{RELEASE}-executor"
    none = container(render({"executor": {"serviceAccount": {"create": False}}}))["args"]
    assert not [a for a in none if a.startswith("--job-service-account")]


# ---------------------------------------------------------------------------------------------
# the operator's flags against the binary


def accepted_flags() -> set[str]:
    """Long flags `stowaway operator` accepts: from its --help, else from the source."""
    binary = os.environ.get("STOWAWAY_BIN")
    if binary:
        help_text = subprocess.run(
            [binary, "operator", "--help"], check=True, capture_output=True, text=True, timeout=60
        ).stdout
        return set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", help_text, re.M))
    source = (ROOT / "agent" / "stowaway" / "src" / "cli" / "operator.rs").read_text()
    fields = re.findall(r"#\[arg\(long[^\]]*\]\s*(\w+):", source)
    assert fields, "no #[arg(long)] fields found in operator.rs"
    return {"--" + f.replace("_", "-") for f in fields}


def test_operator_args_are_flags_it_accepts():
    flags = accepted_flags()
    assert {"--image", "--health-address", "--webhook-cert"} <= flags
    for values in (None, NO_WEBHOOK, FULL):
        args = container(render(values))["args"]
        assert args[0] == "operator"
        used = {a.partition("=")[0] for a in args[1:]}
        assert used <= flags, f"not flags of `stowaway operator`: {used - flags}"


def run_operator(values: dict | None, tls_dir: Path, write_tls: bool = True):
    """Runs the binary with the rendered arguments, the certificate directory moved to
    `tls_dir` (with the rendered Secret's pair unless `write_tls` is false) and no cluster."""
    binary = os.environ.get("STOWAWAY_BIN")
    if not binary:
        pytest.skip("STOWAWAY_BIN is not set (scripts/test-chart.sh sets it)")
    objects = render(values)
    c = container(objects)
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "webhook-tls"]
    if write_tls:
        secret = one(objects, "Secret")
        for key in ("tls.crt", "tls.key"):
            (tls_dir / key).write_bytes(base64.b64decode(secret["data"][key]))
    args = [a.replace(mount["mountPath"], str(tls_dir)) for a in c["args"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=str(tls_dir / "no-kubeconfig"), POD_NAME="p", POD_NAMESPACE=NAMESPACE)
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, env=env)


def pem_key(key, encoding=serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, encoding, serialization.NoEncryption())


def test_operator_starts_with_the_rendered_args(tmp_path):
    """The binary parses the rendered arguments and loads the chart's certificate and key,
    then stops where a cluster is needed."""
    run = run_operator(None, tmp_path)
    assert run.returncode == 1, run.stderr
    assert "no Kubernetes API to talk to" in run.stderr, run.stderr

    # With a key that does not match, it stops before: the check above is real.
    (tmp_path / "tls.key").write_bytes(pem_key(ec.generate_private_key(ec.SECP256R1())))
    run = run_operator(None, tmp_path, write_tls=False)
    assert run.returncode == 1
    assert "webhook TLS configuration" in run.stderr, run.stderr


def test_operator_loads_what_cert_manager_issues(tmp_path):
    """certManager mode asks for ECDSA P-256 keys, which cert-manager writes as SEC1
    ("EC PRIVATE KEY"): the operator must load such a pair."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = f"{RELEASE}-webhook.{NAMESPACE}.svc"
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(
        pem_key(key, serialization.PrivateFormat.TraditionalOpenSSL))
    assert (tmp_path / "tls.key").read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    run = run_operator(FULL, tmp_path, write_tls=False)  # certManager mode, every option
    assert run.returncode == 1, run.stderr
    assert "no Kubernetes API to talk to" in run.stderr, run.stderr


# ---------------------------------------------------------------------------------------------
# webhook configurations


def served_kinds() -> tuple[set[str], set[str]]:
    """(kinds /validate reviews, kinds /mutate may change) from admission/review.rs."""
    source = (OPERATOR_SRC / "admission" / "review.rs").read_text()
    served = set(re.findall(r"is::<(\w+)>\(group, kind\)", source))
    no_defaults = set(re.findall(r"patch_of::<(\w+)>\(input, identity\)", source))
    assert served and no_defaults <= served
    return served, served - no_defaults


def stowaway_kinds_webhook(config: dict) -> dict:
    """The one webhook of a configuration that reviews Stowaway's kinds (not the injector,
    not the sidecars' access check)."""
    (webhook,) = [w for w in config["webhooks"]
                  if w["name"] not in ("inject.stowaway.dev", "sidecars.stowaway.dev")]
    return webhook


def rules_of(config: dict) -> set[tuple[str, str]]:
    webhook = stowaway_kinds_webhook(config)
    out = set()
    for rule in webhook["rules"]:
        assert rule["operations"] == ["CREATE", "UPDATE"]
        # Addons and Functions are cluster-scoped; every other kind is namespaced.
        expected = "Cluster" if rule["apiGroups"] == ["addons.stowaway.dev"] else "Namespaced"
        assert rule["scope"] == expected, rule
        out |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    return out


def test_webhook_configurations_match_what_the_server_answers():
    objects = render()
    validated, defaulted = served_kinds()
    crds = crd_kinds()
    assert rules_of(one(objects, "ValidatingWebhookConfiguration")) == {crds[k] for k in validated}
    assert rules_of(one(objects, "MutatingWebhookConfiguration")) == {crds[k] for k in defaulted}
    service = one(objects, "Service", f"{RELEASE}-webhook")
    for kind, path in [("MutatingWebhookConfiguration", "/mutate"),
                       ("ValidatingWebhookConfiguration", "/validate")]:
        webhook = stowaway_kinds_webhook(one(objects, kind))
        assert webhook["clientConfig"]["service"] == {
            "name": service["metadata"]["name"], "namespace": NAMESPACE, "path": path, "port": 443}
        assert webhook["sideEffects"] == "None"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["name"].endswith(".stowaway.dev")


def test_failure_policy_and_selector_are_configurable():
    objects = render({"webhook": {
        "mutating": {"failurePolicy": "Ignore"},
        "validating": {"failurePolicy": "Ignore"},
        "timeoutSeconds": 5,
        "namespaceSelector": {"matchLabels": {"backups": "on"}},
    }})
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        webhook = stowaway_kinds_webhook(one(objects, kind))
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["timeoutSeconds"] == 5
        assert webhook["namespaceSelector"] == {"matchLabels": {"backups": "on"}}


def test_helm_certificate_authority_signs_the_serving_certificate():
    objects = render({"webhook": {"certificate": {"helm": {"validityDays": 30}}}})
    secret = one(objects, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    bundles = {w["clientConfig"]["caBundle"]
               for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
               for w in one(objects, kind)["webhooks"]}
    assert bundles == {secret["data"]["ca.crt"]}
    ca = load_cert(secret["data"]["ca.crt"])
    cert = load_cert(secret["data"]["tls.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    dns = f"{RELEASE}-webhook.{NAMESPACE}.svc"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == dns
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert dns in sans.get_values_for_type(x509.DNSName)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=29) < lifetime <= datetime.timedelta(days=31)
    # The key is the certificate's.
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()

    # Another release namespace gets a certificate for its own Service name.
    other = one(render(namespace="backups"), "Secret")
    other_sans = load_cert(other["data"]["tls.crt"]).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"{RELEASE}-webhook.backups.svc" in other_sans


def test_without_an_existing_secret_each_render_makes_a_new_pair():
    # `lookup` finds nothing offline, so this is all that can be seen of the reuse branch.
    first, second = (one(render(), "Secret")["data"] for _ in range(2))
    assert first["ca.crt"] != second["ca.crt"]
    assert first["tls.crt"] != second["tls.crt"]


def test_secret_mode_uses_the_given_secret_and_ca():
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    objects = render({"webhook": {"certificate": {"mode": "secret", "secret": {
        "name": "my-webhook-tls", "caBundle": ca}}}})
    assert "Secret" not in kinds(objects)
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == "webhook-tls"]
    assert volume["secret"]["secretName"] == "my-webhook-tls"
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        webhook = stowaway_kinds_webhook(one(objects, kind))
        assert webhook["clientConfig"]["caBundle"] == ca


# ---------------------------------------------------------------------------------------------
# RBAC


def test_operator_cluster_role_is_exactly_the_table():
    objects = render()
    role = one(objects, "ClusterRole", f"{RELEASE}-operator")
    need = rbac_table.triples(rbac_table.OPERATOR)
    have = granted(role["rules"])
    assert sorted(need - have) == [], "the ClusterRole lacks these"
    assert sorted(have - need) == [], "the ClusterRole grants more than the operator uses"


def test_the_operator_holds_what_it_grants_sidecars():
    """Kubernetes refuses a Role that grants more than its creator holds (escalation)."""
    role = one(render(), "ClusterRole", f"{RELEASE}-operator")
    missing = rbac_table.triples(rbac_table.SIDECAR) - granted(role["rules"])
    assert sorted(missing) == [], "the operator cannot grant these to sidecars"


def test_lease_role_is_exactly_the_table():
    objects = render()
    role = one(objects, "Role", f"{RELEASE}-leader")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert granted(role["rules"]) == rbac_table.triples(rbac_table.OPERATOR_NAMESPACED)
    binding = one(objects, "RoleBinding", f"{RELEASE}-leader")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # The operator looks for its Lease in its own namespace (POD_NAMESPACE).
    assert "--namespace" not in flag_values(container(objects)["args"])


def test_executor_role_is_exactly_the_table():
    role = one(render(), "ClusterRole", f"{RELEASE}-executor")
    assert granted(role["rules"]) == rbac_table.triples(rbac_table.EXECUTOR)


def test_every_kind_the_operator_uses_is_in_the_table():
    """Drift check: a kind newly named in `Api<...>` in the operator needs a row."""
    names = set()
    for path in OPERATOR_SRC.rglob("*.rs"):
        text = path.read_text()
        names |= {n.rsplit("::", 1)[-1] for n in re.findall(r"\bApi(?:::)?<([\w:]+)>", text)}
        names |= set(re.findall(r"auto_backup::<(\w+)>", text))
        if "Recorder::new" in text:
            names.add("Event")
    names -= {"K", "DynamicObject"}
    resources = {**{k: v for k, v in crd_kinds().items()}, **rbac_table.BUILTIN_KINDS}
    unknown = names - resources.keys()
    assert unknown == set(), f"add these kinds to rbac_table.BUILTIN_KINDS: {unknown}"
    in_table = {(u.group, u.resource) for u in rbac_table.OPERATOR + rbac_table.OPERATOR_NAMESPACED}
    missing = {k for k in names if resources[k] not in in_table}
    assert missing == set(), f"the operator uses these kinds; rbac_table.py has no row: {missing}"
    assert {"Deployment", "Secret", "Lease", "Event", "Snapshot"} <= names


def test_executor_accounts_in_every_executor_namespace():
    objects = render({"executor": {"namespaces": ["team-a", NAMESPACE, "team-b"]}})
    account = f"{RELEASE}-executor"
    namespaces = {NAMESPACE, "team-a", "team-b"}
    accounts = [o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == account]
    assert {a["metadata"]["namespace"] for a in accounts} == namespaces
    assert len(accounts) == 3
    subjects = [{"kind": "ServiceAccount", "name": account, "namespace": ns}
                for ns in [NAMESPACE, "team-a", "team-b"]]
    bindings = [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == account]
    assert {b["metadata"]["namespace"] for b in bindings} == namespaces
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": "ClusterRole", "name": account}
        assert binding["subjects"] == subjects
    assert "team-a, team-b" in notes({"executor": {"namespaces": ["team-a", "team-b"]}})


def test_the_sidecar_injector_reviews_only_new_pods_outside_system_namespaces():
    objects = render({"injection": {"excludeNamespaces": ["legacy"], "failClosed": True,
                                    "apiPort": 9000, "image": "registry.example/sidecar:2"}})
    config = one(objects, "MutatingWebhookConfiguration")
    (inject,) = [w for w in config["webhooks"] if w["name"] == "inject.stowaway.dev"]
    assert inject["clientConfig"]["service"]["path"] == "/inject"
    assert inject["failurePolicy"] == "Ignore"
    assert inject["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"],
                                "operations": ["CREATE"], "resources": ["pods"],
                                "scope": "Namespaced"}]
    (expression,) = inject["namespaceSelector"]["matchExpressions"]
    assert expression["operator"] == "NotIn"
    assert set(expression["values"]) == {
        "kube-system", "kube-public", "kube-node-lease", NAMESPACE, "legacy"}
    args = container(objects)["args"]
    for flag in ("--sidecar-api-port=9000", "--sidecar-image=registry.example/sidecar:2",
                 "--injection-fail-closed"):
        assert flag in args, args
    # Off: no injector, the rest of the webhook stays.
    objects = render({"injection": {"enabled": False}})
    names = [w["name"] for w in one(objects, "MutatingWebhookConfiguration")["webhooks"]]
    assert names == ["defaults.stowaway.dev"]


def guarded_kinds() -> set[str]:
    """Kinds whose writes by sidecars the server checks (admission/sidecar.rs Guarded::of)."""
    source = (OPERATOR_SRC / "admission" / "sidecar.rs").read_text()
    body = source.split("pub fn of(group: &str, kind: &str)")[1].split("pub fn kind(self)")[0]
    kinds = set(re.findall(r"is::<(\w+)>\(group, kind\)", body))
    assert kinds, "no kinds found in Guarded::of"
    return kinds


def test_sidecar_access_webhook_covers_every_guarded_write():
    objects = render({"webhook": {"validating": {"failurePolicy": "Ignore"}, "timeoutSeconds": 7}})
    config = one(objects, "ValidatingWebhookConfiguration")
    (webhook,) = [w for w in config["webhooks"] if w["name"] == "sidecars.stowaway.dev"]
    assert webhook["clientConfig"]["service"]["path"] == "/sidecar-access"
    source = (OPERATOR_SRC / "webhook.rs").read_text()
    assert '"/sidecar-access"' in source, "the server does not serve /sidecar-access"
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 7
    crds = crd_kinds()
    covered = set()
    for rule in webhook["rules"]:
        assert rule["operations"] == ["CREATE", "UPDATE"]
        assert rule["scope"] == "Namespaced"
        covered |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    expected = set()
    for kind in guarded_kinds():
        group, plural = crds[kind]
        expected |= {(group, plural), (group, f"{plural}/status")}
    assert covered == expected
    assert {k for k in guarded_kinds()} == {"BackupSession", "RestoreSession", "Snapshot"}
