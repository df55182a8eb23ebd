//! Setting conditions the way Kubernetes expects: one per type, and the transition time
//! changes only when the status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stowaway_api::common::{Condition, ConditionStatus};

/// Sets the condition of `type_` in `conditions`, replacing an older one of that type.
/// `last_transition_time` is kept when the status is unchanged.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    now: jiff::Timestamp,
) {
    let status = if status {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let message = message.into();
    let message = (!message.is_empty()).then_some(message);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Some(Time(now));
            }
            existing.status = status;
            existing.reason = Some(reason.to_owned());
            existing.message = message;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status,
            reason: Some(reason.to_owned()),
            message,
            last_transition_time: Some(Time(now)),
            ..Condition::default()
        }),
    }
}

/// The condition of `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is set and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t1: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let t2: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().expect("time");
        let t3: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().expect("time");
        let mut c = Vec::new();
        set(&mut c, "Ready", false, "Missing", "storage s not found", t1);
        set(
            &mut c,
            "Ready",
            false,
            "Missing",
            "storage s still not found",
            t2,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Some(Time(t1)));
        assert_eq!(c[0].message.as_deref(), Some("storage s still not found"));
        set(&mut c, "Ready", true, "Found", "", t3);
        assert_eq!(c[0].last_transition_time, Some(Time(t3)));
        assert_eq!(c[0].message, None);
        assert!(is_true(&c, "Ready"));
        assert!(!is_true(&c, "Other"));
    }
}
