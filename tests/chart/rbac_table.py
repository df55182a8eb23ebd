"""What the operator and the executor Jobs call on the API server, with the reason for each.

The chart's RBAC (charts/stowaway/templates/rbac.yaml) must grant exactly this: test_chart.py
checks every (group, resource, verb) below against the rendered ClusterRoles and Role, and
that they grant nothing more. When the operator starts calling something new, add a row here
with the place in the code, then the rule in rbac.yaml.

Verbs: kube-rs watchers (`Controller::new`, `.owns`, `.watches`) list and watch; `get_opt` is
get; `Api::create` create; `Api::replace` update; `Api::patch` patch; `patch_status` is patch
of the `/status` subresource; `Api::delete` delete.
"""

from __future__ import annotations

from dataclasses import dataclass

CORE = "core.stowaway.dev"
STORAGE = "storage.stowaway.dev"
ADDONS = "addons.stowaway.dev"


@dataclass(frozen=True)
class Use:
    """One resource used with some verbs, and why (file under agent/operator/src)."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str


def use(group: str, resource: str, verbs: str, why: str) -> Use:
    return Use(group, resource, tuple(verbs.split()), why)


# Cluster-wide: the operator reconciles objects in every namespace.
OPERATOR = [
    use(CORE, "backupconfigurations", "get list watch",
        "controller/run.rs watches them; backup_session.rs reads its invoker by name"),
    use(CORE, "backupconfigurations", "create update delete",
        "controller/backup_blueprint.rs creates, replaces and deletes a blueprint's configurations"),
    use(CORE, "backupconfigurations", "patch",
        "controller/restore_session.rs merge-patches spec.paused while restoring"),
    use(CORE, "backupconfigurations/status", "patch", "apply::status"),
    use(CORE, "backupsessions", "get list watch",
        "controller/run.rs watches them (and owns them from configurations)"),
    use(CORE, "backupsessions", "create delete",
        "controller/backup_configuration.rs: scheduled sessions, history limit; retries"),
    use(CORE, "backupsessions/status", "patch", "apply::status"),
    use(CORE, "backupsessions", "update",
        "granted to sidecars for their claim (sidecar_rbac.rs; escalation check)"),
    use(CORE, "backupbatches", "get list watch",
        "controller/run.rs watches them; a batch session's invoker"),
    use(CORE, "backupbatches", "patch",
        "controller/restore_session.rs pauses the batch during a batch restore"),
    use(CORE, "backupbatches/status", "patch", "apply::status"),
    use(CORE, "restoresessions", "get list watch", "controller/run.rs watches them"),
    use(CORE, "restoresessions", "create",
        "controller/restore_session.rs: a batch restore's member restores"),
    use(CORE, "restoresessions/status", "patch", "apply::status"),
    use(CORE, "restoresessions", "update",
        "granted to sidecars for their claim (sidecar_rbac.rs; escalation check)"),
    use(CORE, "backupblueprints", "get", "controller/backup_blueprint.rs reads the named blueprint"),
    use(CORE, "hooktemplates", "get", "controller/hooks.rs reads a hook's template"),
    use(CORE, "hooktemplates", "list", "webhook.rs catalog"),
    use(STORAGE, "backupstorages", "get list watch", "controller/run.rs watches them"),
    use(STORAGE, "backupstorages", "patch", "apply::add_finalizer / remove_finalizer"),
    use(STORAGE, "backupstorages/status", "patch", "apply::status"),
    use(STORAGE, "repositories", "get list watch", "controller/run.rs watches them"),
    use(STORAGE, "repositories", "create",
        "controller/backup_configuration.rs creates the configuration's repositories"),
    use(STORAGE, "repositories", "patch", "apply::add_finalizer / remove_finalizer"),
    use(STORAGE, "repositories/status", "patch", "apply::status"),
    use(STORAGE, "snapshots", "get list watch", "controller/run.rs watches them"),
    use(STORAGE, "snapshots", "create", "controller/backup_session.rs: one per repository"),
    use(STORAGE, "snapshots", "delete",
        "controller/backup_session.rs retention; controller/repository.rs WipeOut"),
    use(STORAGE, "snapshots", "patch", "controller/snapshot.rs finalizer"),
    use(STORAGE, "snapshots/status", "patch",
        "controller/backup_session.rs fails the snapshots of a failed session"),
    use(STORAGE, "retentionpolicies", "get", "controller/backup_session.rs retention"),
    use(STORAGE, "retentionpolicies", "list", "webhook.rs catalog"),
    use(ADDONS, "addons", "get", "controller/backup_configuration.rs checks the addon exists"),
    use(ADDONS, "addons", "list watch",
        "webhook.rs catalog; controller/run.rs watches them (third-party downloads)"),
    use(ADDONS, "addons", "create update",
        "controller/addon.rs install_builtins creates and replaces the built-in Addons"),
    use(ADDONS, "addons/status", "patch", "controller/addon.rs: download outcome"),
    use("batch", "jobs", "get list watch", "controller/run.rs owns them from sessions"),
    use("batch", "jobs", "create delete", "executor Jobs of backup and restore sessions"),
    use("", "pods", "list",
        "controller.rs has_sidecar lists pods by label; controller/hooks.rs Pod executor; "
        "controller/restore_session.rs: a volume restore's workload pods and Job pod"),
    use("", "pods", "get",
        "webhook/sidecar_access.rs reads a writer's pod; granted to sidecars (sidecar_rbac.rs)"),
    use("", "pods/exec", "get create", "controller/hooks.rs exec action of a Pod hook"),
    use("rbac.authorization.k8s.io", "roles", "get list create update delete",
        "controller/sidecar_rbac.rs: the sidecars' Roles (listed by label for cleanup)"),
    use("rbac.authorization.k8s.io", "rolebindings", "get list create update delete",
        "controller/sidecar_rbac.rs: the sidecars' RoleBindings"),
    use(ADDONS, "functions", "get", "controller/hooks/function.rs Function hook executor"),
    use(ADDONS, "functions", "create update",
        "controller/addon.rs install_builtins: the built-ins' Functions"),
    use("apps", "deployments", "get list watch",
        "controller/run.rs auto_backup watches them; controller.rs target_exists"),
    use("apps", "statefulsets", "get list watch", "as deployments"),
    use("apps", "deployments", "patch",
        "controller/restore_session.rs scale_workload: a volume restore scales it to 0 and back"),
    use("apps", "statefulsets", "patch", "as deployments"),
    use("apps", "daemonsets", "get list watch", "as deployments"),
    use("", "persistentvolumeclaims", "get list watch", "as deployments"),
    use("", "namespaces", "get", "namespace labels for usage policies, hooks and the webhook"),
    use("", "secrets", "get",
        "controller/backup_storage.rs secret_data: storage credentials, repository passwords"),
    use("events.k8s.io", "events", "create patch",
        "apply::events through kube-runtime's Recorder (create, then patch a series)"),
]

# In the release namespace only (a Role): the leader Lease (leader.rs).
OPERATOR_NAMESPACED = [
    use("coordination.k8s.io", "leases", "get create update",
        "leader.rs: get_opt, create, replace"),
]

# The executor Jobs (`stowaway execute backup|restore`, issue 6), bound in the executor
# namespaces: they read their session and what it points to, then record the outcome.
EXECUTOR = [
    use(CORE, "backupsessions", "get list watch", "the session it runs"),
    use(CORE, "restoresessions", "get list watch", "the session it runs"),
    use(CORE, "backupconfigurations", "get list watch", "the backup session's invoker"),
    use(CORE, "backupbatches", "get list watch", "a batch session's invoker (its member)"),
    use(CORE, "backupsessions/status", "get patch update", "a backup session's status"),
    use(CORE, "restoresessions/status", "get patch update",
        "per-component restore status, which the operator reads back"),
    use(STORAGE, "repositories", "get list watch", "where the snapshot goes or comes from"),
    use(STORAGE, "backupstorages", "get list watch", "the repository's storage"),
    use(STORAGE, "snapshots", "get list watch", "the Snapshot objects of its session"),
    use(STORAGE, "snapshots", "patch update", "records the snapshot's ID"),
    use(STORAGE, "snapshots/status", "get patch update",
        "phase, size, components: the operator reads the backup's outcome here"),
    use("", "secrets", "get", "storage credentials and the repository's encryption Secret"),
    use("", "namespaces", "get", "a BackupStorage usage policy's namespace selector"),
    use("appcatalog.appscode.com", "appbindings", "get",
        "executor/src/target.rs: an AppBinding target's address and Secret"),
]

# Kinds the operator's source names in `Api<...>` (and auto_backup::<...>), with the resource
# each is; test_chart.py checks that each appears in OPERATOR or OPERATOR_NAMESPACED.
BUILTIN_KINDS = {
    "Job": ("batch", "jobs"),
    "Pod": ("", "pods"),
    "Secret": ("", "secrets"),
    "Namespace": ("", "namespaces"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Lease": ("coordination.k8s.io", "leases"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "Event": ("events.k8s.io", "events"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
}


# What the operator grants a workload's service account for its sidecar (a Role per
# BackupConfiguration or batch member, agent/operator/src/sidecar_rbac.rs; secrets,
# backupstorages and repositories by resourceNames). Kubernetes lets the operator create such a
# Role only if it holds every permission in it: test_chart.py checks SIDECAR <= OPERATOR, and
# sidecar_rbac's own test checks the Rust rules against the chart.
SIDECAR = [
    use(CORE, "backupsessions", "get list watch update create",
        "watch its sessions; claim (update); on-demand backups (create)"),
    use(CORE, "restoresessions", "get list watch update create",
        "watch and claim restores; create only with stowaway.dev/allow-restore"),
    use(CORE, "backupsessions/status", "patch", "the session's outcome"),
    use(CORE, "restoresessions/status", "patch", "the restore's outcome"),
    use(CORE, "backupconfigurations", "get list watch", "its configuration"),
    use(CORE, "backupbatches", "get list watch", "a batch member's invoker"),
    use(STORAGE, "snapshots", "get list watch patch", "the snapshot's ID"),
    use(STORAGE, "snapshots/status", "patch", "the snapshot's outcome"),
    use(STORAGE, "repositories", "get", "by name"),
    use(STORAGE, "backupstorages", "get", "by name"),
    use("", "secrets", "get", "by name: credentials, encryption Secret, authSecret"),
    use("", "pods", "get", "is a claimant still running"),
    use("events.k8s.io", "events", "create patch", "Events"),
]


def triples(uses: list[Use]) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) of `uses`."""
    return {(u.group, u.resource, verb) for u in uses for verb in u.verbs}
