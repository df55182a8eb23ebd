//! Leader election against the fake API server: of two replicas exactly one leads, and the
//! other takes over only once the Lease expired.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_fake_client::ClientBuilder;
use stowaway_operator::leader::LeaderElector;

#[tokio::test]
async fn one_replica_leads_and_the_other_takes_over_after_expiry() {
    let client = ClientBuilder::new().build().await.expect("fake client");
    let api: Api<Lease> = Api::namespaced(client, "stowaway");
    let a = LeaderElector::new(
        api.clone(),
        "stowaway-operator",
        "pod-a",
        Duration::from_secs(15),
    );
    let b = LeaderElector::new(
        api.clone(),
        "stowaway-operator",
        "pod-b",
        Duration::from_secs(15),
    );
    let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
    let at = |s: i64| t0 + SignedDuration::from_secs(s);

    assert!(
        a.try_acquire(at(0)).await.expect("a"),
        "a creates the Lease"
    );
    assert!(!b.try_acquire(at(1)).await.expect("b"), "b waits");
    assert!(a.try_acquire(at(5)).await.expect("a"), "a renews");
    assert!(
        !b.try_acquire(at(19)).await.expect("b"),
        "renewed at 5: held until 20"
    );
    let lease = api.get("stowaway-operator").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(0));

    // a stops renewing: b takes over after expiry, and a learns it lost.
    assert!(b.try_acquire(at(21)).await.expect("b"), "b takes over");
    assert!(
        !a.try_acquire(at(22)).await.expect("a"),
        "a no longer leads"
    );
    let spec = api
        .get("stowaway-operator")
        .await
        .expect("lease")
        .spec
        .expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}
