//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one acts.
//!
//! [`decide`] is pure; [`LeaderElector`] applies it with an optimistic update (the Lease's
//! `resourceVersion`), so two replicas that decide to take the same expired Lease cannot
//! both succeed: the API server refuses the second write with a conflict.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// What the elector should do with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// There is no Lease: create it, holding it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// It expired or was released: take it over.
    TakeOver,
    /// Someone else holds it until this time.
    Wait {
        /// The holder.
        holder: String,
        /// When its hold expires unless renewed.
        until: Timestamp,
    },
}

/// Decides from the current Lease (if any) what `identity` should do at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return if lease.is_some() {
            LeaseDecision::TakeOver
        } else {
            LeaseDecision::Create
        };
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return LeaseDecision::Renew;
    }
    if holder.is_empty() {
        return LeaseDecision::TakeOver;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    let duration = jiff::SignedDuration::from_secs(i64::from(
        spec.lease_duration_seconds.unwrap_or(15).max(1),
    ));
    match renewed.and_then(|r| r.checked_add(duration).ok()) {
        Some(until) if until > now => LeaseDecision::Wait {
            holder: holder.to_owned(),
            until,
        },
        _ => LeaseDecision::TakeOver,
    }
}

/// Errors of the elector.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API server refused or failed a call.
    #[error("Lease {name}: {source}")]
    Kube {
        /// The Lease.
        name: String,
        /// The error.
        source: kube::Error,
    },
}

/// Holds (or waits for) one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
}

impl LeaderElector {
    /// An elector for the Lease `name` in `api`'s namespace, as `identity` (the pod name).
    pub fn new(api: Api<Lease>, name: &str, identity: &str, lease_duration: Duration) -> Self {
        LeaderElector {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration,
        }
    }

    /// How often to call [`LeaderElector::try_acquire`]: a third of the lease duration.
    pub fn retry_period(&self) -> Duration {
        self.lease_duration / 3
    }

    /// Takes or renews the Lease; `Ok(true)` when this replica holds it afterwards.
    /// Losing a race to another replica is `Ok(false)`, not an error.
    pub async fn try_acquire(&self, now: Timestamp) -> Result<bool, LeaderError> {
        let err = |source| LeaderError::Kube {
            name: self.name.clone(),
            source,
        };
        let current = self.api.get_opt(&self.name).await.map_err(err)?;
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let result = match decide(current.as_ref(), &self.identity, now) {
            LeaseDecision::Wait { .. } => return Ok(false),
            LeaseDecision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            decision @ (LeaseDecision::Renew | LeaseDecision::TakeOver) => {
                let Some(mut lease) = current else {
                    return Ok(false);
                };
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == LeaseDecision::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                // `lease` carries the resourceVersion read above: a concurrent writer makes
                // this a conflict.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: Some(MicroTime(renewed.parse().expect("time"))),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now: Timestamp = "2026-01-01T00:00:20Z".parse().expect("time");
        let cases = [
            (None, LeaseDecision::Create),
            (
                Some(lease(Some("me"), "2026-01-01T00:00:00Z", 15)),
                LeaseDecision::Renew,
            ),
            (
                Some(lease(Some("other"), "2026-01-01T00:00:00Z", 15)),
                LeaseDecision::TakeOver,
            ),
            (
                Some(lease(None, "2026-01-01T00:00:19Z", 15)),
                LeaseDecision::TakeOver,
            ),
            (
                Some(lease(Some("other"), "2026-01-01T00:00:10Z", 15)),
                LeaseDecision::Wait {
                    holder: "other".into(),
                    until: "2026-01-01T00:00:25Z".parse().expect("time"),
                },
            ),
        ];
        for (lease, expected) in cases {
            assert_eq!(decide(lease.as_ref(), "me", now), expected, "{lease:?}");
        }
    }
}
