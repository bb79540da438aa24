//! The configurations shipped in deploy/ load: the examples, and the one the Kubernetes
//! ConfigMap carries, each checked with `raftgate -t` as every node of the cluster would
//! run it (its node id from the environment, as compose, systemd and the StatefulSet
//! give it).

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_raftgate");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// `raftgate -t` of `conf` as node `id`: (exit success, output).
fn check(conf: &Path, id: u64) -> (bool, String) {
    let data = std::env::temp_dir().join(format!("raftgate-deploy-{}-{id}", std::process::id()));
    let out = Command::new(BIN)
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .arg("--data-dir")
        .arg(&data)
        .env("RAFTGATE_NODE_ID", id.to_string())
        .output()
        .expect("run raftgate -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `raftgate.conf: |` block of the ConfigMap, unindented.
fn configmap_conf(yaml: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "raftgate.conf: |");
    lines.next();
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_configurations_load_on_every_node() {
    for name in ["single-node.conf", "cluster.conf"] {
        let conf = deploy().join("examples").join(name);
        for id in 1..=3 {
            let (ok, out) = check(&conf, id);
            assert!(ok, "{name} as node {id}: {out}");
            assert!(out.contains("test is successful"), "{name}: {out}");
        }
    }
}

#[test]
fn the_kubernetes_configmap_loads_on_every_pod() {
    let yaml = std::fs::read_to_string(deploy().join("k8s/raftgate.yaml")).expect("manifest");
    let text = configmap_conf(&yaml);
    assert!(
        text.contains("cluster {"),
        "no configuration in the ConfigMap:\n{text}"
    );
    let file = std::env::temp_dir().join(format!("raftgate-k8s-{}.conf", std::process::id()));
    std::fs::write(&file, &text).expect("write");
    // Pods raftgate-0..2 are nodes 1..3, each named by a peer line.
    for id in 1..=3 {
        let (ok, out) = check(&file, id);
        assert!(ok, "node {id}: {out}");
        assert!(text.contains(&format!("peer {id}   raftgate-{}.raftgate:7101", id - 1)));
    }
    // And a broken one is refused, with its line.
    std::fs::write(
        &file,
        text.replace("listen   0.0.0.0:7101;", "listen raftgate;"),
    )
    .expect("write");
    let (ok, out) = check(&file, 1);
    assert!(!ok && out.contains(":5: invalid listen address"), "{out}");
    let _ = std::fs::remove_file(&file);
}
