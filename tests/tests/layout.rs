//! The workspace's layout rules, read from the tree itself:
//!
//! - a service crate depends only on the runtime, the events and the two adapters
//!   (`magento`, `erp`) — never on another service, not even for its tests (from
//!   `cargo metadata`); the adapters and the runtime depend on no service;
//! - inside a crate, modules do not import each other in a circle (from the `crate::` and
//!   `super::` paths of every source file);
//! - no Rust file in the repository is over 600 lines;
//! - every decision record gives context, decision, consequences and evidence with a
//!   command; runtime.md stays under 1,500 words; the docs speak of the product, not of
//!   sessions or issues; every service and adapter crate has a README.
//!
//! Nothing here needs the stack.

mod module_graph;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use bridge_e2e::workspace_root;
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The services: each runs on its own and talks to the others only through Kafka.
const SERVICES: [&str; 5] = [
    "order-ingest",
    "inventory-aggregator",
    "erp-writer",
    "magento-writer",
    "reconciler",
];

/// What a service may build on (normal dependencies among the workspace's crates).
const SERVICE_MAY_USE: [&str; 4] = ["bridge-runtime", "bridge-events", "magento", "erp"];

/// The shared libraries: they must not know any service either.
const LIBRARIES: [&str; 4] = ["bridge-runtime", "bridge-events", "magento", "erp"];

/// The longest a Rust file may be.
const MAX_LINES: usize = 600;

/// Every workspace package's dependencies on other workspace packages, by kind
/// (`normal`, `dev`, `build`).
/// Per package: (dependency, kind).
type Dependencies = BTreeMap<String, Vec<(String, String)>>;

fn workspace_dependencies() -> Result<Dependencies, Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?;
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut out = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().ok_or("a package without a name")?;
        let deps = package["dependencies"]
            .as_array()
            .ok_or("a package without dependencies")?
            .iter()
            .filter_map(|d| {
                let dep = d["name"].as_str()?;
                members.contains(dep).then(|| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                    (dep.to_string(), kind)
                })
            })
            .collect();
        out.insert(name.to_string(), deps);
    }
    Ok(out)
}

#[test]
fn no_service_depends_on_another_service() -> TestResult {
    let all = workspace_dependencies()?;
    let mut wrong = Vec::new();
    for service in SERVICES {
        let deps = all
            .get(service)
            .ok_or_else(|| format!("{service} is not in the workspace"))?;
        for (dep, kind) in deps {
            if SERVICES.contains(&dep.as_str()) {
                wrong.push(format!("{service} → {dep} ({kind})"));
            } else if kind == "normal" && !SERVICE_MAY_USE.contains(&dep.as_str()) {
                wrong.push(format!(
                    "{service} → {dep}: a service builds only on {SERVICE_MAY_USE:?}"
                ));
            }
        }
    }
    for library in LIBRARIES {
        let deps = all
            .get(library)
            .ok_or_else(|| format!("{library} is not in the workspace"))?;
        for (dep, kind) in deps {
            if SERVICES.contains(&dep.as_str()) {
                wrong.push(format!("library {library} → service {dep} ({kind})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layout:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

#[test]
fn no_module_imports_in_a_circle() -> TestResult {
    let mut circles = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("crates"))? {
        let src = entry?.path().join("src");
        if src.is_dir() {
            for circle in module_graph::circles(&src)? {
                circles.push(format!("{}: {circle}", src.display()));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        circles.join("\n")
    );
    Ok(())
}

#[test]
fn no_rust_file_is_over_600_lines() -> TestResult {
    let mut long = Vec::new();
    let mut seen = 0;
    for dir in ["crates", "tests", "fuzz/src", "fuzz/fuzz_targets"] {
        for file in module_graph::files_ending(&workspace_root().join(dir), ".rs")? {
            seen += 1;
            let lines = std::fs::read_to_string(&file)?.lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(seen > 100, "only {seen} Rust files found: wrong root?");
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
    Ok(())
}

#[test]
fn the_circle_check_finds_a_circle_and_ignores_a_parent_and_its_child() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path();
    std::fs::create_dir_all(src.join("state"))?;
    std::fs::write(src.join("lib.rs"), "pub mod handler;\npub mod state;\n")?;
    std::fs::write(
        src.join("handler.rs"),
        "use crate::state::{Overlay, keys};\n// [`crate::other`] in a comment is no import\n",
    )?;
    std::fs::write(src.join("state/mod.rs"), "mod keys;\nuse keys::X;\n")?;
    std::fs::write(src.join("state/keys.rs"), "use super::Overlay;\n")?;
    assert!(module_graph::circles(src)?.is_empty());
    std::fs::write(
        src.join("state/keys.rs"),
        "fn f() { crate::handler::g(); }\n",
    )?;
    assert_eq!(
        module_graph::circles(src)?,
        vec!["crate: handler → state → handler".to_string()]
    );
    Ok(())
}

#[test]
fn decision_records_state_decisions_not_history() -> TestResult {
    let dir = workspace_root().join("docs/decisions");
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let name = path.display();
        for section in [
            "## Context",
            "## Decision",
            "## Consequences",
            "## Evidence",
        ] {
            if !text.lines().any(|line| line == section) {
                wrong.push(format!("{name}: no `{section}`"));
            }
        }
        let evidence = text.split("## Evidence").nth(1).unwrap_or_default();
        if !["make ", "cargo "].iter().any(|c| evidence.contains(c)) {
            wrong.push(format!(
                "{name}: evidence without the command that reproduces it"
            ));
        }
    }
    let words = std::fs::read_to_string(dir.join("runtime.md"))?
        .split_whitespace()
        .count();
    if words >= 1_500 {
        wrong.push(format!("runtime.md has {words} words (under 1,500)"));
    }
    let mut texts = vec![
        workspace_root().join("README.md"),
        workspace_root().join("bench/README.md"),
    ];
    texts.extend(module_graph::files_ending(
        &workspace_root().join("docs"),
        ".md",
    )?);
    for entry in std::fs::read_dir(workspace_root().join("crates"))? {
        let readme = entry?.path().join("README.md");
        if readme.exists() {
            texts.push(readme);
        }
    }
    for path in texts {
        for (n, line) in std::fs::read_to_string(&path)?.lines().enumerate() {
            let lower = line
                .to_lowercase()
                .replace("session timeout", "")
                .replace("session.timeout", "");
            for word in ["session", "iteration", "issue #"] {
                if lower.contains(word) {
                    wrong.push(format!("{}:{}: `{word}`", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "docs against the rules:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

#[test]
fn every_service_and_adapter_has_a_readme() {
    for name in SERVICES.iter().chain(["magento", "erp"].iter()) {
        let readme = workspace_root().join("crates").join(name).join("README.md");
        assert!(readme.exists(), "{} is missing", readme.display());
    }
}
