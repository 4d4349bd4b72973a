//! Invariants between the Kubernetes manifests (deploy/) and the gateway: the grace
//! period covers the configured stop, probes hit paths the gateway serves, and every
//! environment name the manifests set is one the gateway reads.

use std::path::PathBuf;

use gateway::Application;
use gateway::{Settings, KNOWN_NAMES};
use serde_yaml::Value;

fn deploy(path: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_yaml::from_str(&text).unwrap()
}

/// `NAME=value` literals of a kustomization's generators.
fn literals(kustomization: &Value, generator: &str) -> Vec<(String, String)> {
    kustomization[generator]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["literals"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|l| {
            let (k, v) = l.as_str()?.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn the_grace_period_covers_delay_prestop_and_the_shutdown_timeout() {
    let deployment = deploy("base/deployment.yaml");
    let config = literals(&deploy("base/kustomization.yaml"), "configMapGenerator");
    let get = |name: &str| -> u64 {
        config
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or_else(|| panic!("{name} not configured"))
    };
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    let pre_stop = container(&deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    // The kubelet's clock starts at preStop; the gateway's own stop (delay + drain +
    // closes) is bounded by SHUTDOWN_TIMEOUT, which includes the delay.
    assert!(
        grace > pre_stop + get("SHUTDOWN_TIMEOUT"),
        "grace {grace} must exceed preStop {pre_stop} + SHUTDOWN_TIMEOUT"
    );
    assert!(get("SHUTDOWN_DELAY") < get("SHUTDOWN_TIMEOUT"));
    assert!(
        get("SHUTDOWN_CLOSE_TIMEOUT") * 5 <= get("SHUTDOWN_TIMEOUT"),
        "five closeables fit"
    );
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_u64(),
        Some(0)
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["enableServiceLinks"].as_bool(),
        Some(false)
    );
}

#[test]
fn every_environment_name_is_one_the_gateway_reads() {
    let mut names = literals(&deploy("base/kustomization.yaml"), "configMapGenerator");
    names.extend(literals(
        &deploy("overlays/dev/kustomization.yaml"),
        "secretGenerator",
    ));
    assert!(!names.is_empty());
    for (name, _) in names {
        assert!(
            KNOWN_NAMES.contains(&name.as_str()),
            "{name} is not read by the gateway"
        );
    }
    let dev = deploy("overlays/dev/kustomization.yaml");
    let secret = literals(&dev, "secretGenerator");
    for required in [
        "MYSQL_HOST",
        "MYSQL_USER",
        "MYSQL_PASSWORD",
        "MONGO_URL",
        "KAFKA_BROKERS",
        "PUBLIC_JWT_KEY_URL",
    ] {
        assert!(
            secret.iter().any(|(k, _)| k == required),
            "dev overlay lacks {required}"
        );
    }
    let base = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/kustomization.yaml"),
    )
    .unwrap();
    assert!(!base.contains("PASSWORD="), "no password in the base");
}

#[tokio::test]
async fn probe_paths_are_served_by_the_gateway() {
    let deployment = deploy("base/deployment.yaml");
    let c = container(&deployment);
    let paths: Vec<String> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .map(|p| c[*p]["httpGet"]["path"].as_str().unwrap().to_string())
        .collect();
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(port, 4000, "the container port is the gateway's default");
    let mut settings = Settings::development();
    settings.server.port = 0;
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    for path in paths {
        let status = reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
}

/// The README's configuration table names exactly the variables the gateway reads
/// (`CONFIG_FILE` is described beside it).
#[test]
fn the_readme_table_lists_every_setting() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Configuration section");
    let mut documented: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .collect();
    documented.push("CONFIG_FILE");
    documented.sort_unstable();
    let mut known: Vec<&str> = KNOWN_NAMES.to_vec();
    known.sort_unstable();
    assert_eq!(documented, known);
}
