//! The evolution gate over the real `schemas/` folder: every current schema is BACKWARD
//! compatible with every released version in `schemas/history/`, equal to the latest
//! release, and tagged with its version in Rust. A changed field type fails here with the
//! field's path (see `evolution.rs` for the message).

use bridge_events::evolution::{check_all, history_dir};

#[test]
fn every_schema_is_released_and_backward_compatible() -> Result<(), Box<dyn std::error::Error>> {
    let problems = check_all(&history_dir())?;
    assert!(
        problems.is_empty(),
        "schema evolution gate:\n{}",
        problems.join("\n")
    );
    Ok(())
}

#[test]
fn the_gate_catches_a_changed_field_type_in_a_copy_of_the_history()
-> Result<(), Box<dyn std::error::Error>> {
    // Released history where grand_total was a string: today's decimal cannot read it.
    let copy = tempfile_dir()?;
    for entry in std::fs::read_dir(history_dir())? {
        let entry = entry?;
        let to = copy.join(entry.file_name());
        std::fs::create_dir_all(&to)?;
        for file in std::fs::read_dir(entry.path())? {
            let file = file?;
            std::fs::copy(file.path(), to.join(file.file_name()))?;
        }
    }
    let released = copy.join("OrderPlaced/v1.avsc");
    let text = std::fs::read_to_string(&released)?;
    let mut json: serde_json::Value = serde_json::from_str(&text)?;
    let fields = json["fields"].as_array_mut().ok_or("no fields")?;
    let payment = fields
        .iter_mut()
        .find(|f| f["name"] == "payment_method")
        .ok_or("no payment_method")?;
    payment["type"] = serde_json::json!("int");
    std::fs::write(&released, json.to_string())?;

    let problems = check_all(&copy)?;
    let joined = problems.join("\n");
    assert!(joined.contains("OrderPlaced.payment_method"), "{joined}");
    std::fs::remove_dir_all(&copy)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("bridge-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
