//! The generated CRDs: the committed chart copy is current, and the schemas carry the names,
//! enums, defaults and columns the API promises.

use serde_json::Value;
use stowaway_api::{all_crds, crds_yaml};

const CHART_CRDS: &str = "charts/stowaway/crds/stowaway-crds.yaml";

#[test]
fn committed_yaml_is_current() {
    let path = format!("{}/../../{CHART_CRDS}", env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = crds_yaml().expect("CRDs serialize");
    assert!(
        committed == generated,
        "{CHART_CRDS} is out of date with the Rust types; run \
         `cargo run -p stowaway -- crds > {CHART_CRDS}` and commit it"
    );
}

/// The CRD named `name` as JSON.
fn crd(name: &str) -> Value {
    let crd = all_crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD {name}"));
    serde_json::to_value(crd).expect("CRD to JSON")
}

/// The OpenAPI schema of the first version of `crd`.
fn schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

#[test]
fn every_kind_is_listed_once_in_group_order() {
    let names: Vec<String> = all_crds()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(
        names,
        [
            "backupstorages.storage.stowaway.dev",
            "repositories.storage.stowaway.dev",
            "retentionpolicies.storage.stowaway.dev",
            "snapshots.storage.stowaway.dev",
            "backupconfigurations.core.stowaway.dev",
            "backupbatches.core.stowaway.dev",
            "backupsessions.core.stowaway.dev",
            "restoresessions.core.stowaway.dev",
            "backupblueprints.core.stowaway.dev",
            "hooktemplates.core.stowaway.dev",
            "addons.addons.stowaway.dev",
            "functions.addons.stowaway.dev",
        ]
    );
}

#[test]
fn categories_scopes_and_short_names() {
    for c in all_crds() {
        let c = serde_json::to_value(c).expect("CRD to JSON");
        let name = c["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            c["spec"]["names"]["categories"]
                .as_array()
                .is_some_and(|a| a.contains(&Value::from("stowaway"))),
            "{name} is not in category stowaway"
        );
        let scope = if name.ends_with(".addons.stowaway.dev") {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(c["spec"]["scope"], scope, "{name}");
        assert_eq!(c["spec"]["versions"][0]["name"], "v1alpha1", "{name}");
    }
    let short = |n: &str| crd(n)["spec"]["names"]["shortNames"].clone();
    assert_eq!(
        short("repositories.storage.stowaway.dev"),
        serde_json::json!(["repo"])
    );
    assert_eq!(
        short("backupconfigurations.core.stowaway.dev"),
        serde_json::json!(["bc"])
    );
    assert_eq!(
        short("restoresessions.core.stowaway.dev"),
        serde_json::json!(["restore"])
    );
    assert_eq!(
        short("functions.addons.stowaway.dev"),
        serde_json::json!(["fn"])
    );
}

#[test]
fn status_subresource_where_there_is_a_status() {
    for c in all_crds() {
        let c = serde_json::to_value(c).expect("CRD to JSON");
        let name = c["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let has_status = schema(&c)["properties"].get("status").is_some();
        let subresource = c["spec"]["versions"][0]["subresources"]
            .get("status")
            .is_some();
        assert_eq!(has_status, subresource, "{name}");
    }
    let with_status = all_crds()
        .into_iter()
        .filter(|c| c.spec.versions[0].subresources.is_some())
        .count();
    assert_eq!(
        with_status, 8,
        "the six of KubeStash, BackupBatch, and Addon (Stowaway's source check)"
    );
}

#[test]
fn printer_columns() {
    let columns = |n: &str| -> Vec<String> {
        crd(n)["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c.get("priority").is_none())
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        columns("backupsessions.core.stowaway.dev"),
        ["Phase", "Duration", "Size", "Age"]
    );
    assert_eq!(
        columns("snapshots.storage.stowaway.dev"),
        [
            "Repository",
            "Session",
            "Snapshot-Time",
            "Phase",
            "Size",
            "Age"
        ]
    );
    assert_eq!(
        columns("backupstorages.storage.stowaway.dev"),
        [
            "Provider",
            "Default",
            "Deletion-Policy",
            "Total-Size",
            "Phase",
            "Age"
        ]
    );
    assert_eq!(
        columns("repositories.storage.stowaway.dev"),
        [
            "Integrity",
            "Snapshot-Count",
            "Size",
            "Phase",
            "Last-Successful-Backup",
            "Age"
        ]
    );
    assert_eq!(
        columns("backupconfigurations.core.stowaway.dev"),
        ["Phase", "Paused", "Age"]
    );
    assert_eq!(columns("addons.addons.stowaway.dev"), ["Phase", "Age"]);
    assert_eq!(
        columns("restoresessions.core.stowaway.dev"),
        ["Repository", "Phase", "Duration", "Age"]
    );
}

#[test]
fn schema_enums_and_defaults() {
    let bs = crd("backupstorages.storage.stowaway.dev");
    let spec = &schema(&bs)["properties"]["spec"]["properties"];
    assert_eq!(
        spec["storage"]["properties"]["provider"]["enum"],
        serde_json::json!(["local", "s3", "gcs", "azure"])
    );
    assert_eq!(
        spec["deletionPolicy"]["enum"],
        serde_json::json!(["Delete", "WipeOut"])
    );
    assert_eq!(spec["deletionPolicy"]["default"], "Delete");
    let from = &spec["usagePolicy"]["properties"]["allowedNamespaces"]["properties"]["from"];
    assert_eq!(from["enum"], serde_json::json!(["All", "Selector", "Same"]));
    assert_eq!(from["default"], "Same");

    let bsess = crd("backupsessions.core.stowaway.dev");
    assert_eq!(
        schema(&bsess)["properties"]["status"]["properties"]["phase"]["enum"],
        serde_json::json!(["Pending", "Running", "Succeeded", "Failed", "Skipped"])
    );

    let rp = crd("retentionpolicies.storage.stowaway.dev");
    let failed = &schema(&rp)["properties"]["spec"]["properties"]["failedSnapshots"];
    assert_eq!(failed["properties"]["last"]["default"], 1);
}

#[test]
fn free_form_fields_are_preserved_by_the_api_server() {
    let bc = crd("backupconfigurations.core.stowaway.dev");
    let session = &schema(&bc)["properties"]["spec"]["properties"]["sessions"]["items"];
    let job_template = &session["properties"]["scheduler"]["properties"]["jobTemplate"];
    assert_eq!(job_template["x-kubernetes-preserve-unknown-fields"], true);
    let params =
        &session["properties"]["addon"]["properties"]["tasks"]["items"]["properties"]["params"];
    assert_eq!(params["x-kubernetes-preserve-unknown-fields"], true);
}

#[test]
fn each_crd_fits_in_a_last_applied_annotation() {
    // `kubectl apply` (client side) stores the object in an annotation of at most 256 KiB.
    for c in all_crds() {
        let json = serde_json::to_string(&c).expect("CRD to JSON");
        assert!(
            json.len() < 200 * 1024,
            "{:?} is {} bytes",
            c.metadata.name,
            json.len()
        );
    }
}
