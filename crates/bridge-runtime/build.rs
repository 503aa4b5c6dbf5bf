//! `BRIDGE_VERSION` for [`bridge_runtime::VERSION`]: the crate version, and the source
//! revision when the build is given one in `BRIDGE_REVISION` (`make image` does).

fn main() {
    println!("cargo:rerun-if-env-changed=BRIDGE_REVISION");
    let version = env!("CARGO_PKG_VERSION");
    let full = match std::env::var("BRIDGE_REVISION") {
        Ok(revision) if !revision.trim().is_empty() => format!("{version} ({})", revision.trim()),
        _ => version.to_owned(),
    };
    println!("cargo:rustc-env=BRIDGE_VERSION={full}");
}
