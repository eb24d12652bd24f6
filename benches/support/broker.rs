//! The Kafka broker of the benches that need one: a tansu started on a free loopback port with
//! the project's scripts (scripts/start-tansu.sh installs it if needed) and stopped on drop, or
//! a broker the user runs (`--brokers`), whose topics the bench creates and deletes again.
//! Topics are created with librdkafka's admin client, so any Kafka-protocol broker will do.
//! Shared by benches/pipeline.rs and benches/rebuild.rs through `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => Path::new(REPO).join(d),
        None => Path::new(REPO).join("target"),
    }
}

/// A broker for one bench: started here (and stopped on drop, as tests/broker/mod.rs does it)
/// or given (its topics created here are deleted on drop).
pub struct Broker {
    pub addr: String,
    /// The state directory of the tansu started here; `None` for a given broker.
    started: Option<tempfile::TempDir>,
    /// Replication factor of the topics created.
    replication: i32,
    /// Topics created on a given broker, deleted on drop.
    created: Mutex<Vec<String>>,
    /// librdkafka properties every client of a given broker needs (security settings).
    pub client: Vec<(String, String)>,
}

impl Broker {
    /// Starts a fresh tansu on a free loopback port.
    pub fn start() -> Result<Broker, String> {
        let dir = target_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let state = tempfile::Builder::new()
            .prefix("bench-tansu-")
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
        Ok(Broker {
            addr,
            started: Some(state),
            replication: 1,
            created: Mutex::new(Vec::new()),
            client: Vec::new(),
        })
    }

    /// A broker the user runs (bootstrap servers `addr`); topics get `replication` replicas,
    /// and every client the properties `client` (security settings).
    #[allow(dead_code)] // benches/rebuild.rs always starts its own tansu
    pub fn given(addr: &str, replication: i32, client: Vec<(String, String)>) -> Broker {
        Broker {
            addr: addr.to_owned(),
            started: None,
            replication,
            created: Mutex::new(Vec::new()),
            client,
        }
    }

    /// The broker's name in progress lines and notes.
    pub fn describe(&self) -> String {
        match self.started {
            Some(_) => format!("tansu at {}", self.addr),
            None => format!("the broker at {}", self.addr),
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<(), String> {
        let topic = NewTopic::new(
            name,
            partitions as i32,
            TopicReplication::Fixed(self.replication),
        );
        let results = self
            .admin(|admin, options| async move { admin.create_topics([&topic], &options).await })
            .map_err(|e| format!("cannot create topic {name}: {e}"))?;
        for result in results {
            result.map_err(|(topic, code)| format!("cannot create topic {topic}: {code}"))?;
        }
        if self.started.is_none() {
            self.created
                .lock()
                .expect("not poisoned")
                .push(name.to_owned());
        }
        Ok(())
    }

    /// Runs one admin request on a thread of its own, so that it can be called from inside a
    /// tokio runtime as well as outside one.
    fn admin<F, Fut, T>(&self, request: F) -> Result<T, String>
    where
        F: FnOnce(AdminClient<DefaultClientContext>, AdminOptions) -> Fut + Send,
        Fut: std::future::Future<Output = rdkafka::error::KafkaResult<T>>,
        T: Send,
    {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.addr);
        for (k, v) in &self.client {
            config.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> =
            config.create().map_err(|e| format!("admin client: {e}"))?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("runtime: {e}"))?;
                rt.block_on(request(admin, options))
                    .map_err(|e| e.to_string())
            })
            .join()
            .map_err(|_| "the admin request panicked".to_owned())?
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        match &self.started {
            Some(state) => {
                let _ = Command::new("bash")
                    .arg(Path::new(REPO).join("scripts/stop-tansu.sh"))
                    .arg(state.path())
                    .output();
            }
            None => {
                let topics = std::mem::take(&mut *self.created.lock().expect("not poisoned"));
                if topics.is_empty() {
                    return;
                }
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                match self.admin(|admin, options| async move {
                    admin.delete_topics(&names, &options).await
                }) {
                    Ok(_) => eprintln!("deleted the bench's topics on {}: {topics:?}", self.addr),
                    Err(e) => eprintln!("could not delete the bench's topics {topics:?}: {e}"),
                }
            }
        }
    }
}
