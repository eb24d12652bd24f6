//! A tansu broker for the benches that need Kafka: started on a free loopback port with the
//! project's scripts (scripts/start-tansu.sh installs it if needed), stopped on drop. Shared by
//! benches/pipeline.rs and benches/rebuild.rs through `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => Path::new(REPO).join(d),
        None => Path::new(REPO).join("target"),
    }
}

/// A tansu broker on a free loopback port, stopped on drop (as tests/broker/mod.rs does it).
pub struct Broker {
    pub addr: String,
    state: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Result<Broker, String> {
        let dir = target_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let state = tempfile::Builder::new()
            .prefix("bench-rebuild-tansu-")
            .tempdir_in(&dir)
            .map_err(|e| format!("temp dir: {e}"))?;
        let out = Command::new("bash")
            .arg(Path::new(REPO).join("scripts/start-tansu.sh"))
            .arg(state.path())
            .output()
            .map_err(|e| format!("cannot run scripts/start-tansu.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tansu did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Broker { addr, state })
    }

    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<(), String> {
        let out = Command::new(Path::new(REPO).join(".tools/bin/tansu"))
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", self.addr))
            .args(["--partitions", &partitions.to_string(), name])
            .env_remove("RUST_LOG")
            .output()
            .map_err(|e| format!("cannot run tansu topic create: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot create topic {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(REPO).join("scripts/stop-tansu.sh"))
            .arg(self.state.path())
            .output();
    }
}
