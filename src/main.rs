//! The `recall-radar` command line: the daemon, its demo, replay and backtest of history, and the
//! load tools. Parsing and wiring only; the work is in the library.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use recall_radar::backtest::{load_recalls, render_table, score, AlertLog};
use recall_radar::config::{Config, DetectorConfig, FastPath, RawConfig, DEFAULT_WINDOW};
use recall_radar::engine::Engine;
use recall_radar::replay::{replay, ReplaySinks};
use recall_radar::time::parse_span;

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

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    detector: DetectorArgs,
    /// Where alerts go, one JSON object per line [default: stdout].
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Write rejected lines (bad input, late events) with their reason to this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// JSON-lines inputs, read in order; `.gz` is decompressed, `-` is stdin.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
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
    /// Write rejected lines (bad input, late events) with their reason to this file.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// JSON-lines inputs, read in order; `.gz` is decompressed, `-` is stdin.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
struct CheckConfigArgs {
    #[command(flatten)]
    detector: DetectorArgs,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
            bail!("input {} does not exist or is not a file", p.display());
        }
    }
    Ok(())
}

fn cmd_replay(args: ReplayArgs) -> Result<()> {
    let detector = args.detector.detector()?;
    check_inputs(&args.inputs)?;
    let mut out = output(args.output.as_deref())?;
    let mut rejects = args.rejects.as_deref().map(create).transpose()?;
    let mut engine = Engine::new(detector);
    let mut on_alert = |a: &recall_radar::alert::Alert| {
        serde_json::to_writer(&mut out, a)?;
        out.write_all(b"\n")
    };
    let summary = replay(
        &mut engine,
        &args.inputs,
        ReplaySinks {
            on_alert: &mut on_alert,
            rejects: rejects.as_mut().map(|w| w as &mut dyn Write),
        },
        io::stderr().is_terminal(),
    )?;
    out.flush().context("cannot write alerts")?;
    if let Some(r) = rejects.as_mut() {
        r.flush().context("cannot write rejects")?;
    }
    eprintln!("{}", summary.render());
    Ok(())
}

fn cmd_backtest(args: BacktestArgs) -> Result<()> {
    let raw = args.detector.raw()?;
    check_inputs(&args.inputs)?;
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
            (Some(p), true) => Some(create(p)?),
            _ => None,
        };
        let mut rejects = match (&args.rejects, last) {
            (Some(p), true) => Some(create(p)?),
            _ => None,
        };
        let mut on_alert = |a: &recall_radar::alert::Alert| {
            log.record(a);
            if let Some(out) = out.as_mut() {
                serde_json::to_writer(&mut *out, a)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        };
        let summary = replay(
            &mut engine,
            &args.inputs,
            ReplaySinks {
                on_alert: &mut on_alert,
                rejects: rejects.as_mut().map(|w| w as &mut dyn Write),
            },
            io::stderr().is_terminal(),
        )?;
        if let Some(mut out) = out {
            out.flush().context("cannot write alerts")?;
        }
        if let Some(mut r) = rejects {
            r.flush().context("cannot write rejects")?;
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
            "inputs": args.inputs,
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
    let raw = args.detector.raw()?;
    Config::from_raw(&raw)?;
    println!("# effective configuration (valid); default window is {DEFAULT_WINDOW}");
    print!("{}", raw.to_redacted_toml());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Replay(a) => cmd_replay(a),
        Command::Backtest(a) => cmd_backtest(a),
        Command::CheckConfig(a) => cmd_check_config(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recall-radar: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
