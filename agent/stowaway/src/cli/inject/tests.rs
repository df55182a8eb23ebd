use kube_fake_client::ClientBuilder;

use super::*;

fn now() -> Timestamp {
    "2026-03-04T05:06:07Z".parse().expect("time")
}

#[test]
fn workloads_that_roll_are_accepted_and_others_refused_with_a_reason() {
    for (text, kind) in [
        ("deployment/web", Kind::Deployment),
        ("Deployment/web", Kind::Deployment),
        ("deploy/web", Kind::Deployment),
        ("deployment.apps/web", Kind::Deployment),
        ("statefulset/pg", Kind::StatefulSet),
        ("sts/pg", Kind::StatefulSet),
        ("daemonset/agent", Kind::DaemonSet),
        ("ds/agent", Kind::DaemonSet),
    ] {
        let (k, name) = parse_workload(text).expect(text);
        assert_eq!(k, kind, "{text}");
        assert!(!name.is_empty());
    }
    let refused = |text: &str| parse_workload(text).expect_err(text);
    assert!(refused("pod/web-0").contains("a bare Pod cannot be rolled"));
    assert!(refused("job/nightly").contains("a Job cannot be rolled"));
    assert!(refused("cronjob/nightly").contains("a Job cannot be rolled"));
    assert!(refused("rs/web-5d8f").contains("inject into the Deployment that owns it"));
    assert!(refused("service/web").contains("\"service\" is not a workload that can be rolled"));
    assert!(refused("web").contains("name the workload as KIND/NAME"));
    assert!(refused("deployment/").contains("expected KIND/NAME"));
    assert!(refused("deployment/a/b").contains("expected KIND/NAME"));
}

#[test]
fn the_patch_sets_or_removes_both_annotations() {
    assert_eq!(
        patch(false, now()),
        json!({"spec": {"template": {"metadata": {"annotations": {
            "stowaway.dev/inject": "true",
            "stowaway.dev/restartedAt": "2026-03-04T05:06:07Z",
        }}}}})
    );
    assert_eq!(
        patch(true, now()),
        json!({"spec": {"template": {"metadata": {"annotations": {
            "stowaway.dev/inject": null,
            "stowaway.dev/restartedAt": null,
        }}}}})
    );
    // Applied as a merge patch to a template, then taken back, only the two keys move.
    let mut workload = json!({"spec": {"template": {"metadata": {
        "labels": {"app": "web"}, "annotations": {"team": "shop"}}}}});
    let before = workload.clone();
    merge(&mut workload, &patch(false, now()));
    assert_eq!(
        workload["spec"]["template"]["metadata"]["annotations"],
        json!({"team": "shop", "stowaway.dev/inject": "true",
               "stowaway.dev/restartedAt": "2026-03-04T05:06:07Z"})
    );
    merge(&mut workload, &patch(true, now()));
    assert_eq!(workload, before);
}

/// A JSON merge patch (RFC 7386), as the API server applies it.
fn merge(doc: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = json!({});
    }
    let Value::Object(target) = doc else {
        return;
    };
    for (key, value) in fields {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[test]
fn decisions() {
    let base = Observed {
        pods: 2,
        webhook: Some(true),
        sidecar_configs: Some(Vec::new()),
        ..Observed::default()
    };
    let inject = |seen: &Observed| decide(false, "deployment/web", seen, now());
    let remove = |seen: &Observed| decide(true, "deployment/web", seen, now());

    assert_eq!(inject(&base), (Action::Patch(patch(false, now())), vec![]));
    // Half the pods have it (a rollout that did not finish): roll again.
    let half = Observed {
        with_sidecar: 1,
        ..base.clone()
    };
    assert_eq!(inject(&half).0, Action::Patch(patch(false, now())));
    let all = Observed {
        with_sidecar: 2,
        ..base.clone()
    };
    assert_eq!(
        inject(&all).0,
        Action::Nothing(
            "every pod of deployment/web (2) already carries the Stowaway sidecar: nothing to do"
                .into()
        )
    );
    // No pods (scaled to zero): the template is still annotated.
    let none = Observed {
        pods: 0,
        ..base.clone()
    };
    assert_eq!(inject(&none).0, Action::Patch(patch(false, now())));
    // Without the webhook, or when it cannot be seen: a warning, and the rollout anyway.
    for webhook in [Some(false), None] {
        let (action, warnings) = inject(&Observed {
            webhook,
            ..base.clone()
        });
        assert_eq!(action, Action::Patch(patch(false, now())));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("inject.stowaway.dev"), "{warnings:?}");
    }

    // Removing.
    let annotated = Observed {
        template_inject: Some("true".into()),
        template_restarted: true,
        with_sidecar: 2,
        ..base.clone()
    };
    assert_eq!(
        remove(&annotated),
        (Action::Patch(patch(true, now())), vec![])
    );
    let (action, warnings) = remove(&Observed {
        sidecar_configs: Some(vec!["web-backup".into()]),
        ..annotated.clone()
    });
    assert_eq!(action, Action::Patch(patch(true, now())));
    assert!(
        warnings[0].contains("BackupConfiguration web-backup puts deployment/web in sidecar mode")
    );
    let Action::Nothing(reason) = remove(&base).0 else {
        panic!("nothing to remove");
    };
    assert!(reason.contains("has no sidecar"), "{reason}");
    let Action::Nothing(reason) = remove(&Observed {
        with_sidecar: 2,
        sidecar_configs: Some(vec!["web-backup".into()]),
        ..base.clone()
    })
    .0
    else {
        panic!("the configuration injects");
    };
    assert!(
        reason.contains("from BackupConfiguration web-backup"),
        "{reason}"
    );
    let Action::Nothing(reason) = remove(&Observed {
        template_inject: Some("false".into()),
        ..base.clone()
    })
    .0
    else {
        panic!("already refused");
    };
    assert!(reason.contains("already refuses the sidecar"), "{reason}");
}

#[test]
fn selectors_as_text() {
    let selector: LabelSelector = serde_json::from_value(json!({
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "staging"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["x"]},
            {"key": "owner", "operator": "Exists"},
        ]
    }))
    .expect("selector");
    assert_eq!(
        selector_text(&selector),
        "app=web,tier=front,env in (prod,staging),!canary,zone notin (x),owner"
    );
}

// --- against the fake API server

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("fixture")
}

fn deployment(annotations: Value) -> Deployment {
    object(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": annotations},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}
                }
            }
    }))
}

fn pod(name: &str, sidecar: bool) -> Pod {
    let mut containers = vec![json!({"name": "web", "image": "nginx"})];
    if sidecar {
        containers.push(json!({"name": "stowaway", "image": "stowaway"}));
    }
    object(json!({
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": containers}
    }))
}

fn webhook_config() -> MutatingWebhookConfiguration {
    object(json!({
            "metadata": {"name": "stowaway"},
            "webhooks": [{
                "name": "inject.stowaway.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "clientConfig": {"service": {"name": "stowaway-webhook", "namespace": "stowaway-system"}}
            }]
    }))
}

struct Run {
    code: u8,
    out: String,
    err: String,
}

async fn run_on(
    client: &kube::Client,
    workload: &str,
    remove: bool,
    dry_run: bool,
) -> anyhow::Result<Run> {
    let (kind, name) = parse_workload(workload).map_err(anyhow::Error::msg)?;
    let args = Args {
        workload: workload.into(),
        namespace: Some("shop".into()),
        dry_run,
        remove,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = inject(
        client,
        "shop",
        kind,
        &name,
        &args,
        now(),
        &mut out,
        &mut err,
    )
    .await?;
    Ok(Run {
        code,
        out: String::from_utf8(out)?,
        err: String::from_utf8(err)?,
    })
}

async fn template_annotations(client: &kube::Client) -> Value {
    let web = Api::<Deployment>::namespaced(client.clone(), "shop")
        .get("web")
        .await
        .expect("deployment");
    serde_json::to_value(
        web.spec
            .expect("spec")
            .template
            .metadata
            .expect("meta")
            .annotations,
    )
    .expect("json")
}

#[tokio::test]
async fn inject_then_remove_on_a_deployment() {
    let client = ClientBuilder::new()
        .with_resource::<BackupConfiguration>()
        .with_object(deployment(json!({"team": "shop"})))
        .with_object(pod("web-1", false))
        .with_object(pod("web-2", false))
        .with_object(webhook_config())
        .build()
        .await
        .expect("fake client");

    // A dry run shows the patch and changes nothing.
    let run = run_on(&client, "deployment/web", false, true)
        .await
        .expect("dry run");
    assert_eq!(run.code, 0);
    assert!(
        run.out
            .starts_with("would patch deployment/web in namespace shop (merge patch):\n"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("\"stowaway.dev/inject\": \"true\""),
        "{}",
        run.out
    );
    assert_eq!(run.err, "");
    assert_eq!(template_annotations(&client).await, json!({"team": "shop"}));

    let run = run_on(&client, "deployment/web", false, false)
        .await
        .expect("inject");
    assert_eq!(run.code, 0);
    assert_eq!(
        run.out,
        "deployment/web in namespace shop: asked for the Stowaway sidecar on the pod template; \
         its pods roll and the new ones get it.\n\
         Watch the rollout: kubectl rollout status deployment/web -n shop\n"
    );
    assert_eq!(run.err, "");
    assert_eq!(
        template_annotations(&client).await,
        json!({"team": "shop", "stowaway.dev/inject": "true",
               "stowaway.dev/restartedAt": "2026-03-04T05:06:07Z"})
    );

    // --remove takes both away and leaves the rest.
    let run = run_on(&client, "deployment/web", true, false)
        .await
        .expect("remove");
    assert_eq!(run.code, 0);
    assert!(
        run.out.contains("took the Stowaway sidecar away"),
        "{}",
        run.out
    );
    assert_eq!(template_annotations(&client).await, json!({"team": "shop"}));
    // A second --remove has nothing to do.
    let run = run_on(&client, "deployment/web", true, false)
        .await
        .expect("remove again");
    assert!(run.out.contains("has no sidecar"), "{}", run.out);
}

#[tokio::test]
async fn pods_with_the_sidecar_and_a_missing_webhook_are_reported() {
    let config: BackupConfiguration = serde_json::from_value(json!({
        "apiVersion": "core.stowaway.dev/v1alpha1",
        "kind": "BackupConfiguration",
        "metadata": {"name": "web-backup", "namespace": "shop",
                     "annotations": {"stowaway.dev/inject": "true"}},
        "spec": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": "web"}, "sessions": []}
    }))
    .expect("configuration");
    let client = ClientBuilder::new()
        .with_resource::<BackupConfiguration>()
        .with_object(config)
        .with_object(deployment(json!({})))
        .with_object(pod("web-1", true))
        .build()
        .await
        .expect("fake client");
    // Every pod has it already.
    let run = run_on(&client, "deployment/web", false, false)
        .await
        .expect("inject");
    assert!(
        run.out
            .contains("already carries the Stowaway sidecar: nothing to do"),
        "{}",
        run.out
    );
    assert_eq!(template_annotations(&client).await, json!({}));
    // It comes from the configuration: --remove says what to do instead.
    let run = run_on(&client, "deployment/web", true, false)
        .await
        .expect("remove");
    assert!(
        run.out.contains("from BackupConfiguration web-backup"),
        "{}",
        run.out
    );

    // A new pod without it, and no webhook installed: warned, rolled anyway.
    Api::<Pod>::namespaced(client.clone(), "shop")
        .create(&Default::default(), &pod("web-2", false))
        .await
        .expect("pod");
    let run = run_on(&client, "deployment/web", false, false)
        .await
        .expect("inject");
    assert!(
        run.err.starts_with(
            "warning: no MutatingWebhookConfiguration has the webhook inject.stowaway.dev"
        ),
        "{}",
        run.err
    );
    assert_eq!(
        template_annotations(&client).await["stowaway.dev/inject"],
        json!("true")
    );
}

#[tokio::test]
async fn a_missing_workload_is_an_error() {
    let client = ClientBuilder::new().build().await.expect("fake client");
    let error = match run_on(&client, "statefulset/pg", false, false).await {
        Ok(_) => panic!("no such workload"),
        Err(e) => e.to_string(),
    };
    assert_eq!(error, "statefulset/pg not found in namespace shop");
    assert!(run_on(&client, "pod/pg-0", false, false).await.is_err());
}
