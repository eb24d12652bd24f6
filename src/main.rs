//! The `recall-radar` command line: the daemon, its demo, replay and backtest of history, and the
//! load tools. Parsing and wiring only; the work is in the library.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use recall_radar::alert::Alert;
use recall_radar::backtest::{load_recalls, render_table, score, AlertLog};
use recall_radar::config::{
    Config, ConfigError, DetectorConfig, FastPath, RawConfig, DEFAULT_WINDOW,
};
use recall_radar::demo::{self, DemoOptions};
use recall_radar::engine::Engine;
use recall_radar::generate::{ground_truth, write_jsonl, GenSpec, Generator};
use recall_radar::kafka::produce;
use recall_radar::replay::{replay, ReplaySinks, ReplaySummary};
use recall_radar::time::{parse_rfc3339, parse_span};
use recall_radar::{service, shutdown};

#[derive(Parser)]
#[command(name = "recall-radar", version, about = "Spots product recalls in the making from contact-center events", long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "RECALL_RADAR_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Replay JSON-lines contact events through the detector and write alerts as JSON lines.
    Replay(ReplayArgs),
    /// Replay history and score the problem rung against known recalls.
    Backtest(BacktestArgs),
    /// Validate the configuration and print the effective config, secrets redacted.
    CheckConfig(CheckConfigArgs),
    /// Run the daemon: consume contact events from Kafka, publish alerts to Kafka.
    Run(RunArgs),
    /// Load JSON-lines contact events into a Kafka topic, keyed by product_id.
    Produce(ProduceArgs),
    /// Write a synthetic contact-center stream (with known defect bursts) to a file or a topic.
    Generate(GenerateArgs),
    /// Run the daemon on an embedded broker with a synthetic contact center, printing alerts.
    Demo(DemoArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// How many events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Seed: the same seed and options give the same stream, byte for byte.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Catalogue size (product popularity is Zipf-distributed).
    #[arg(long, default_value_t = 20_000)]
    products: u32,
    /// Injected defect bursts that should reach the problem rung.
    #[arg(long, default_value_t = 10)]
    bursts: u32,
    /// occurred_at of the first event (RFC 3339) [default: 2026-01-01T00:00:00Z].
    #[arg(long)]
    start: Option<String>,
    /// Mean event-time gap between events.
    #[arg(long, default_value = "5s", value_parser = check_span)]
    mean_gap: String,
    /// Write here (JSON lines) [default: stdout unless --topic].
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Also write the ground truth (the injected bursts) as JSON lines here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Send to this Kafka topic instead of a file (needs --brokers).
    #[arg(long, requires = "brokers")]
    topic: Option<String>,
    /// Kafka bootstrap servers for --topic.
    #[arg(long, env = "RECALL_RADAR_BROKERS")]
    brokers: Option<String>,
    /// At most this many events per second to the topic [default: as fast as possible].
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Args)]
struct DemoArgs {
    /// How long to feed events; 0 runs until Ctrl-C.
    #[arg(long, default_value = "30s", value_parser = check_span)]
    duration: String,
    /// Contact events per second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seed of the synthetic contact center.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Admin HTTP server address (metrics, signals).
    #[arg(long, default_value = "127.0.0.1:9898")]
    admin_addr: String,
}

/// Overrides for the essentials of the config file.
#[derive(Args, Clone, Default)]
struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "RECALL_RADAR_BROKERS")]
    brokers: Option<String>,
    /// Input topic(s), comma separated.
    #[arg(
        long = "input-topic",
        env = "RECALL_RADAR_INPUT_TOPIC",
        value_delimiter = ','
    )]
    input_topics: Vec<String>,
    /// Topic alerts are published to.
    #[arg(long, env = "RECALL_RADAR_ALERT_TOPIC")]
    alert_topic: Option<String>,
    /// Dead-letter topic for bad input (and late events unless kafka.late_topic is set).
    #[arg(long, env = "RECALL_RADAR_DLQ_TOPIC")]
    dlq_topic: Option<String>,
    /// Consumer group id; instances with the same id share the input partitions.
    #[arg(long, env = "RECALL_RADAR_GROUP_ID")]
    group_id: Option<String>,
    /// Transactional id of this instance: unique in the group, stable across restarts.
    #[arg(long, env = "RECALL_RADAR_TRANSACTIONAL_ID")]
    transactional_id: Option<String>,
    /// Admin HTTP server address (metrics, health, signals); empty turns it off.
    #[arg(long, env = "RECALL_RADAR_ADMIN_ADDR")]
    admin_addr: Option<String>,
}

impl KafkaArgs {
    fn apply(&self, raw: &mut RawConfig) {
        let k = &mut raw.kafka;
        if let Some(v) = &self.brokers {
            k.brokers = v.clone();
        }
        if !self.input_topics.is_empty() {
            k.input_topics = self.input_topics.clone();
        }
        if let Some(v) = &self.alert_topic {
            k.alert_topic = v.clone();
        }
        if let Some(v) = &self.dlq_topic {
            k.dlq_topic = v.clone();
        }
        if let Some(v) = &self.transactional_id {
            k.transactional_id = v.clone();
        }
        if let Some(v) = &self.group_id {
            k.group_id = v.clone();
        }
        if let Some(v) = &self.admin_addr {
            raw.admin.addr = v.clone();
        }
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    detector: DetectorArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Args)]
struct ProduceArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "RECALL_RADAR_BROKERS")]
    brokers: String,
    /// Topic to write to.
    #[arg(long)]
    topic: String,
    /// At most this many records per second [default: as fast as possible].
    #[arg(long)]
    rate: Option<f64>,
    /// JSON-lines inputs; `.gz` is decompressed, `-` is stdin.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// Detector options shared by every command that runs the engine.
#[derive(Args, Clone)]
struct DetectorArgs {
    /// TOML configuration file (see config/recall-radar.toml); defaults apply without one.
    #[arg(long, short = 'c', env = "RECALL_RADAR_CONFIG")]
    config: Option<PathBuf>,
    /// Sliding window for tags in no class, e.g. 30d, 24h, 15m [default: 30d, or the config's].
    #[arg(long, value_parser = check_span)]
    window: Option<String>,
    /// How far behind the newest event time an event may arrive and still count [default: 1h].
    #[arg(long, value_parser = check_span)]
    allowed_lateness: Option<String>,
    /// Turn the severity fast path off: only report counts escalate (the plain ladder).
    #[arg(long)]
    no_fast_path: bool,
}

fn check_span(s: &str) -> Result<String, String> {
    parse_span(s).map(|_| s.to_owned())
}

impl DetectorArgs {
    fn raw(&self) -> Result<RawConfig> {
        let mut raw = RawConfig::load(self.config.as_deref())?;
        if let Some(w) = &self.window {
            raw.detector.window = w.clone();
        }
        if let Some(l) = &self.allowed_lateness {
            raw.detector.allowed_lateness = l.clone();
        }
        if self.no_fast_path {
            raw.detector.fast_path = FastPath::OFF;
        }
        Ok(raw)
    }

    fn detector(&self) -> Result<DetectorConfig> {
        Ok(DetectorConfig::from_raw(&self.raw()?.detector)?)
    }
}

/// The history to replay and where its rejects go: shared by replay and backtest.
#[derive(Args)]
struct History {
    /// Write rejected lines (bad input, late events) with their reason to this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// JSON-lines inputs, read in order; `.gz` is decompressed, `-` is stdin.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    detector: DetectorArgs,
    /// Where alerts go, one JSON object per line [default: stdout].
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[command(flatten)]
    io: History,
}

#[derive(Args)]
struct BacktestArgs {
    #[command(flatten)]
    detector: DetectorArgs,
    /// Known recalls, JSON lines of {campaign, product_id, defect_tag, recall_date}.
    #[arg(long)]
    recalls: PathBuf,
    /// Score several windows in one run, comma separated (overrides --window), e.g. 30d,90d,365d.
    #[arg(long, value_delimiter = ',', value_parser = check_span)]
    windows: Vec<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the alerts of the (last) run as JSON lines here.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[command(flatten)]
    io: History,
}

#[derive(Args)]
struct CheckConfigArgs {
    #[command(flatten)]
    detector: DetectorArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 16, file))
}

fn output(path: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(create(p)?),
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    })
}

fn check_inputs(inputs: &[PathBuf]) -> Result<()> {
    for p in inputs {
        if p != Path::new("-") && !p.is_file() {
            return Err(Usage(format!(
                "input {} does not exist or is not a file",
                p.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// Replays `inputs` through `engine`, writing rejected lines to `rejects` if given, with a
/// progress bar when stderr is a terminal.
fn replay_inputs(
    engine: &mut Engine,
    inputs: &[PathBuf],
    on_alert: &mut dyn FnMut(&Alert) -> io::Result<()>,
    rejects: Option<&Path>,
) -> Result<ReplaySummary> {
    let mut rejects = rejects.map(create).transpose()?;
    let summary = replay(
        engine,
        inputs,
        ReplaySinks {
            on_alert,
            rejects: rejects.as_mut().map(|w| w as &mut dyn Write),
        },
        io::stderr().is_terminal(),
    )?;
    if let Some(r) = rejects.as_mut() {
        r.flush().context("cannot write rejects")?;
    }
    Ok(summary)
}

/// Writes alerts as JSON lines. Each alert is serialized into a reused buffer and written in
/// one call: serde writes token by token, and through a `dyn Write` each token was a call into
/// the output's buffer (~300 per alert).
struct AlertLines<W> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> AlertLines<W> {
    fn new(out: W) -> Self {
        AlertLines {
            out,
            line: Vec::with_capacity(4096),
        }
    }

    fn write(&mut self, alert: &Alert) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, alert)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn cmd_replay(args: ReplayArgs) -> Result<()> {
    let detector = args.detector.detector()?;
    check_inputs(&args.io.inputs)?;
    let mut out = AlertLines::new(output(args.output.as_deref())?);
    let mut engine = Engine::new(detector);
    let summary = replay_inputs(
        &mut engine,
        &args.io.inputs,
        &mut |a| out.write(a),
        args.io.rejects.as_deref(),
    )?;
    out.flush().context("cannot write alerts")?;
    eprintln!("{}", summary.render());
    Ok(())
}

fn cmd_backtest(args: BacktestArgs) -> Result<()> {
    let raw = args.detector.raw()?;
    check_inputs(&args.io.inputs)?;
    let recalls = load_recalls(&args.recalls)?;
    let windows = if args.windows.is_empty() {
        vec![args
            .detector
            .window
            .clone()
            .unwrap_or(raw.detector.window.clone())]
    } else {
        args.windows.clone()
    };
    let mut rows = Vec::new();
    let mut summaries = Vec::new();
    for (i, window) in windows.iter().enumerate() {
        let mut raw = raw.clone();
        raw.detector.window = window.clone();
        let mut engine = Engine::new(DetectorConfig::from_raw(&raw.detector)?);
        let mut log = AlertLog::default();
        let last = i + 1 == windows.len();
        let mut out = match (&args.output, last) {
            (Some(p), true) => Some(AlertLines::new(create(p)?)),
            _ => None,
        };
        let mut on_alert = |a: &Alert| {
            log.record(a);
            match out.as_mut() {
                Some(out) => out.write(a),
                None => Ok(()),
            }
        };
        let rejects = args.io.rejects.as_deref().filter(|_| last);
        let summary = replay_inputs(&mut engine, &args.io.inputs, &mut on_alert, rejects)?;
        if let Some(mut out) = out {
            out.flush().context("cannot write alerts")?;
        }
        eprintln!("window {window}: {}", summary.render());
        rows.push((window.clone(), score(&recalls, &log)));
        summaries.push(summary);
    }
    if args.json {
        let runs: Vec<serde_json::Value> = rows
            .iter()
            .zip(&summaries)
            .map(|((window, s), summary)| {
                serde_json::json!({"window": window, "score": s, "replay": summary})
            })
            .collect();
        let doc = serde_json::json!({
            "recalls": args.recalls,
            "inputs": args.io.inputs,
            "fast_path": !args.detector.no_fast_path,
            "runs": runs,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render_table(&rows));
    }
    Ok(())
}

fn cmd_check_config(args: CheckConfigArgs) -> Result<()> {
    let mut raw = args.detector.raw()?;
    args.kafka.apply(&mut raw);
    let config = Config::from_raw(&raw)?;
    println!("# effective configuration (valid); default window is {DEFAULT_WINDOW}");
    // Derived values an operator needs to see: the ids this instance will use.
    println!("# transactional id: {}", config.kafka.transactional_id);
    if let Some(topic) = &config.kafka.repartition_topic {
        println!(
            "# repartition topic: {topic} (consumer group {}-repartition)",
            config.kafka.group_id
        );
    }
    print!("{}", raw.to_redacted_toml());
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn cmd_run(args: RunArgs) -> Result<()> {
    let mut raw = args.detector.raw()?;
    args.kafka.apply(&mut raw);
    let config = Config::from_raw(&raw)?;
    let runtime = runtime()?;
    let ran = runtime.block_on(async {
        let (trigger, shutdown) = shutdown::channel();
        shutdown::on_signals(trigger).context("cannot install signal handlers")?;
        let running = service::start(config, shutdown).await?;
        let summary = running.task.await.context("daemon task panicked")??;
        tracing::info!(?summary, "Exiting.");
        Ok(())
    });
    // After the grace period ran out a Kafka call may still be blocking a thread (it has its
    // own timeout of up to 30 s); dropping the runtime would wait for it.
    runtime.shutdown_timeout(Duration::from_millis(500));
    ran
}

fn cmd_produce(args: ProduceArgs) -> Result<()> {
    check_inputs(&args.inputs)?;
    let error = std::cell::RefCell::new(None);
    let lines = produce::input_lines(&args.inputs, &error);
    runtime()?.block_on(async {
        let (trigger, shutdown) = shutdown::channel();
        shutdown::on_signals(trigger)?;
        let producer = produce::loader(&args.brokers, &[])?;
        let report =
            produce::produce_lines(&producer, &args.topic, lines, args.rate, Some(shutdown))
                .await?;
        eprintln!("{}", report.render(&args.topic));
        match error.borrow_mut().take() {
            Some(e) => Err(e.context("stopped early; the records before were sent")),
            None => Ok(()),
        }
    })
}

fn cmd_generate(args: GenerateArgs) -> Result<()> {
    let mut spec = GenSpec {
        events: args.events,
        seed: args.seed,
        products: args.products,
        bursts: args.bursts,
        mean_gap: parse_span(&args.mean_gap).map_err(Usage)?,
        ..GenSpec::default()
    };
    if let Some(start) = &args.start {
        spec.start = parse_rfc3339(start)
            .ok_or_else(|| Usage(format!("--start {start:?} is not an RFC 3339 timestamp")))?;
    }
    spec.validate().map_err(Usage)?;
    if let Some(path) = &args.truth {
        let mut out = create(path)?;
        for burst in ground_truth(&spec) {
            serde_json::to_writer(&mut out, &burst)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    match (&args.topic, &args.brokers) {
        (Some(topic), Some(brokers)) => runtime()?.block_on(async {
            let (trigger, shutdown) = shutdown::channel();
            shutdown::on_signals(trigger)?;
            let producer = produce::loader(brokers, &[])?;
            let lines = Generator::new(spec).map(|e| e.json.into_bytes());
            let report =
                produce::produce_lines(&producer, topic, lines, args.rate, Some(shutdown)).await?;
            eprintln!("{}", report.render(topic));
            Ok(())
        }),
        _ => {
            let mut out = output(args.output.as_deref())?;
            let started = std::time::Instant::now();
            let n = write_jsonl(&spec, &mut out)?;
            out.flush()?;
            eprintln!(
                "generated {n} events in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn cmd_demo(args: DemoArgs) -> Result<()> {
    let duration = parse_span(&args.duration).map_err(Usage)?;
    if args.rate <= 0.0 || !args.rate.is_finite() {
        return Err(Usage(format!("--rate must be positive, got {}", args.rate)).into());
    }
    let options = DemoOptions {
        duration: (duration.0 > 0).then(|| duration.as_std()),
        rate: args.rate,
        seed: args.seed,
        admin_addr: args.admin_addr,
    };
    runtime()?.block_on(async {
        let (trigger, shutdown) = shutdown::channel();
        shutdown::on_signals(trigger)?;
        let report = demo::run(options, shutdown).await?;
        println!("{}", report.render());
        Ok(())
    })
}

/// A command line that cannot work (a missing input, say): exit code 2, like bad config.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Exit codes: 2 for bad usage or configuration, 1 for failures while running.
fn exit_code(e: &anyhow::Error) -> u8 {
    let usage = |c: &(dyn std::error::Error + 'static)| {
        c.downcast_ref::<ConfigError>().is_some() || c.downcast_ref::<Usage>().is_some()
    };
    if e.chain().any(usage) {
        2
    } else {
        1
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo talks on stdout; its logs would drown that, so only warnings unless RUST_LOG says.
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
    let result = match cli.command {
        Command::Replay(a) => cmd_replay(a),
        Command::Backtest(a) => cmd_backtest(a),
        Command::CheckConfig(a) => cmd_check_config(a),
        Command::Run(a) => cmd_run(a),
        Command::Produce(a) => cmd_produce(a),
        Command::Generate(a) => cmd_generate(a),
        Command::Demo(a) => cmd_demo(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recall-radar: error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}
