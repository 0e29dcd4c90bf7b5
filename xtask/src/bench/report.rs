//! The tables of `cargo xtask bench` (`bench/RESULTS.md`), its figures as JSON, and which
//! targets of issue 14 hold.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{Value, json};

use super::load::{CONCURRENCIES, ROUTES, Route};
use super::{
    ColdSeries, FULL_CPU_MB, GET_USER, HELLO, MIB, Measured, PRICE_PER_GB_SECOND,
    PRICE_PER_REQUEST, SUBJECTS, WARM_ROUTES, WarmSeries, millis,
};

/// Targets (issue 14).
const ZIP_LIMIT_MIB: f64 = 5.0;
const INIT_OVER_HELLO: f64 = 1.5;
const COLD_OVER_GET_USER: f64 = 1.2;
const HANDLER_OVERHEAD_MS: f64 = 1.0;
const RSS_LIMIT_MIB: f64 = 40.0;
const GET_SELF_OVER_GET_USER: f64 = 1.3;
const LOGINS_PER_CORE: f64 = 35.0;
/// A size is "as fast" as the fastest when within this factor of it.
const AS_FAST: f64 = 1.25;

pub(crate) struct Machine {
    arch: &'static str,
    cpus: usize,
    cpu_model: String,
    kernel: String,
}

impl Machine {
    pub(crate) fn describe() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        Self {
            arch: std::env::consts::ARCH,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// `/proc/loadavg`'s three load averages.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// UTC now, as `date -u` prints it.
pub(crate) fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A function's deployable zip, as `cargo xtask package` builds it.
pub(crate) struct Zip {
    pub function: String,
    pub bytes: u64,
}

pub(crate) enum Zips {
    Built(Vec<Zip>),
    /// Not built in this run: the zips of an earlier `cargo xtask package`, and when that was.
    Earlier(Vec<Zip>, String),
    Skipped,
    Failed(String),
}

impl Zips {
    fn list(&self) -> Option<&[Zip]> {
        match self {
            Zips::Built(zips) | Zips::Earlier(zips, _) => Some(zips),
            Zips::Skipped | Zips::Failed(_) => None,
        }
    }
}

pub(crate) struct Report {
    pub(crate) machine: Machine,
    pub(crate) date: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) args_line: String,
    pub(crate) transport: String,
    pub(crate) cpu: String,
    pub(crate) configured: HashMap<&'static str, u32>,
    pub(crate) build_secs: f64,
    pub(crate) total_secs: f64,
    pub(crate) measured: Measured,
    pub(crate) zips: Zips,
}

/// min / median / p90 / p99 / max of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Summary {
    pub(crate) min: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// Nearest-rank percentile (`p` in 0..=100) of ascending samples.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    pub(crate) fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self {
            min: percentile(&samples, 0.0),
            p50: percentile(&samples, 50.0),
            p90: percentile(&samples, 90.0),
            p99: percentile(&samples, 99.0),
            max: percentile(&samples, 100.0),
        }
    }

    fn three(&self) -> String {
        format!("{:.1} / {:.1} / {:.1}", self.min, self.p50, self.p90)
    }

    fn json(&self) -> Value {
        json!({
            "minMs": round3(self.min),
            "p50Ms": round3(self.p50),
            "p90Ms": round3(self.p90),
            "p99Ms": round3(self.p99),
            "maxMs": round3(self.max),
        })
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// USD per million requests of `ms` each at `mb` (billed per started ms).
fn cost_per_million(ms: f64, mb: u32) -> f64 {
    let gb_seconds = ms.ceil() / 1000.0 * f64::from(mb) / 1024.0;
    (gb_seconds * PRICE_PER_GB_SECOND + PRICE_PER_REQUEST) * 1e6
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

impl ColdSeries {
    pub(crate) fn init(&self) -> Summary {
        Summary::of(self.runs.iter().map(|r| millis(r.init)).collect())
    }

    pub(crate) fn first_answer(&self) -> Summary {
        Summary::of(self.runs.iter().map(|r| millis(r.first_answer)).collect())
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        self.runs.iter().filter_map(|r| r.peak_rss_kib).max()
    }

    fn statuses(&self) -> String {
        let mut statuses: Vec<u16> = self.runs.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        statuses.dedup();
        statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl WarmSeries {
    pub(crate) fn latency(&self) -> Summary {
        Summary::of(self.samples.iter().map(|s| millis(s.latency)).collect())
    }

    fn dynamodb(&self) -> Summary {
        Summary::of(
            self.samples
                .iter()
                .map(|s| millis(s.dynamodb.busy))
                .collect(),
        )
    }

    /// Each invocation's time less its DynamoDB time.
    fn handler(&self) -> Summary {
        Summary::of(
            self.samples
                .iter()
                .map(|s| millis(s.latency.saturating_sub(s.dynamodb.busy)))
                .collect(),
        )
    }

    fn dynamodb_requests(&self) -> f64 {
        let total: u64 = self.samples.iter().map(|s| s.dynamodb.requests).sum();
        total as f64 / self.samples.len().max(1) as f64
    }
}

/// One target's verdict.
struct Verdict {
    target: String,
    holds: Option<bool>,
    figures: String,
}

impl Report {
    fn cold(&self, subject: &str, mb: u32) -> Option<&ColdSeries> {
        self.measured
            .cold
            .iter()
            .find(|c| c.subject == subject && c.mb == mb)
    }

    fn warm(&self, label: &str, mb: u32) -> Option<&WarmSeries> {
        self.measured
            .warm
            .iter()
            .find(|w| w.route.label == label && w.mb == mb)
    }

    fn sizes(&self) -> Vec<u32> {
        let mut sizes: Vec<u32> = self.measured.cold.iter().map(|c| c.mb).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    fn configured(&self, function: &str) -> u32 {
        self.configured
            .get(function)
            .copied()
            .unwrap_or(super::DEFAULT_MEMORY_MB)
    }

    /// The size this run picks for `function`: for a hashing function the one fastest per
    /// dollar (least p50 × cost) on its hashing route; for the others the cheapest size whose
    /// warm p50 and cold start (INIT + first invoke) are both within 1.25× of the fastest
    /// (with no such size, the fastest per dollar).
    fn chosen(&self, function: &str) -> Option<u32> {
        let route = WARM_ROUTES
            .iter()
            .find(|r| r.subject == function && r.sizing)?;
        let rows: Vec<(u32, f64, f64)> = self
            .sizes()
            .into_iter()
            .filter_map(|mb| {
                let warm = self.warm(route.label, mb)?.latency().p50;
                let cold = self.cold(function, mb)?.first_answer().p50;
                Some((mb, warm, cold))
            })
            .collect();
        choose_size(&rows, route.hashing)
    }

    fn functions(&self) -> impl Iterator<Item = &'static str> {
        SUBJECTS.iter().filter(|s| !s.baseline).map(|s| s.name)
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        let ratio_list = |pairs: &[(&str, f64)]| {
            pairs
                .iter()
                .map(|(name, ratio)| format!("{name} {ratio:.2}×"))
                .collect::<Vec<_>>()
                .join(", ")
        };

        match self.zips.list() {
            Some(zips) => {
                let over: Vec<String> = zips
                    .iter()
                    .filter(|z| z.bytes as f64 / MIB > ZIP_LIMIT_MIB)
                    .map(|z| format!("{} {:.2} MiB", z.function, z.bytes as f64 / MIB))
                    .collect();
                let largest = zips.iter().map(|z| z.bytes).max().unwrap_or(0) as f64 / MIB;
                verdicts.push(Verdict {
                    target: format!("zip ≤ {ZIP_LIMIT_MIB} MiB each"),
                    holds: Some(over.is_empty()),
                    figures: if over.is_empty() {
                        format!("largest {largest:.2} MiB")
                    } else {
                        format!("over: {}", over.join(", "))
                    } + if matches!(self.zips, Zips::Earlier(..)) {
                        " (an earlier `cargo xtask package`)"
                    } else {
                        ""
                    },
                });
            }
            None => verdicts.push(Verdict {
                target: format!("zip ≤ {ZIP_LIMIT_MIB} MiB each"),
                holds: None,
                figures: "zips not built in this run".into(),
            }),
        }

        let size = self.sizes().first().copied().unwrap_or(128);
        if let Some(hello) = self.cold(HELLO, size) {
            let hello = hello.init().p50;
            let ratios: Vec<(&str, f64)> = self
                .functions()
                .filter_map(|f| Some((f, self.cold(f, size)?.init().p50 / hello)))
                .collect();
            verdicts.push(Verdict {
                target: format!("INIT ≤ {INIT_OVER_HELLO}× hello's (median; hello {hello:.1} ms)"),
                holds: Some(ratios.iter().all(|r| r.1 <= INIT_OVER_HELLO)),
                figures: ratio_list(&ratios),
            });
        }
        if let Some(get_user) = self.cold(GET_USER, 128) {
            let get_user = get_user.first_answer().p50;
            let ratios: Vec<(&str, f64)> = self
                .functions()
                .filter_map(|f| Some((f, self.cold(f, 128)?.first_answer().p50 / get_user)))
                .collect();
            verdicts.push(Verdict {
                target: format!(
                    "128 MB over TLS: INIT + first invoke ≤ {COLD_OVER_GET_USER}× the minimal \
                     get-user's (median; get-user {get_user:.1} ms)"
                ),
                holds: Some(ratios.iter().all(|r| r.1 <= COLD_OVER_GET_USER)),
                figures: ratio_list(&ratios),
            });
        }

        let overheads: Vec<(&str, f64)> = WARM_ROUTES
            .iter()
            .filter(|r| !r.hashing && SUBJECTS.iter().any(|s| s.name == r.subject && !s.baseline))
            .filter_map(|r| {
                let series = self.warm(r.label, self.configured(r.subject))?;
                Some((r.label, series.handler().p50))
            })
            .collect();
        if !overheads.is_empty() {
            verdicts.push(Verdict {
                target: format!(
                    "warm handler time ≤ {HANDLER_OVERHEAD_MS} ms p50 over its DynamoDB time, \
                     non-hashing routes (each at its function's size)"
                ),
                holds: Some(overheads.iter().all(|o| o.1 <= HANDLER_OVERHEAD_MS)),
                figures: overheads
                    .iter()
                    .map(|(route, ms)| format!("{route} {ms:.2} ms"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }

        let rss = self
            .measured
            .warm
            .iter()
            .filter(|w| !w.route.hashing)
            .filter_map(|w| Some((w.route.label, mib(w.peak_rss_kib)?)))
            .chain(
                self.measured
                    .cold
                    .iter()
                    .filter_map(|c| Some((c.subject, mib(c.peak_rss_kib())?))),
            )
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((what, peak)) = rss {
            verdicts.push(Verdict {
                target: format!("peak RSS ≤ {RSS_LIMIT_MIB} MiB outside hashing"),
                holds: Some(peak <= RSS_LIMIT_MIB),
                figures: format!("highest {peak:.1} MiB ({what})"),
            });
        }

        let users_mb = self.configured("users");
        if let (Some(get_self), Some(get_user)) = (
            self.warm("get self", users_mb),
            self.warm("minimal get-user", users_mb),
        ) {
            let requests = get_self.dynamodb_requests();
            let ratio = get_self.latency().p50 / get_user.latency().p50;
            verdicts.push(Verdict {
                target: format!(
                    "get-self: the authenticating read alone, and warm p50 ≤ \
                     {GET_SELF_OVER_GET_USER}× the minimal get-user's (at {users_mb} MB)"
                ),
                holds: Some(requests <= 1.0 && ratio <= GET_SELF_OVER_GET_USER),
                figures: format!(
                    "{requests:.1} DynamoDB request(s); {:.2} ms / {:.2} ms = {ratio:.2}×",
                    get_self.latency().p50,
                    get_user.latency().p50
                ),
            });
        }

        if let Some(login) = self
            .measured
            .load
            .iter()
            .filter(|l| l.route == Route::Login)
            .max_by(|a, b| a.per_second().total_cmp(&b.per_second()))
        {
            let per_core = login.per_second() / self.measured.cores as f64;
            verdicts.push(Verdict {
                target: format!("≥ {LOGINS_PER_CORE} full logins per second per core"),
                holds: Some(per_core >= LOGINS_PER_CORE),
                figures: format!(
                    "{:.1}/s at concurrency {} on {} cores = {per_core:.1}/s per core",
                    login.per_second(),
                    login.concurrency,
                    self.measured.cores
                ),
            });
        }
        verdicts
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "# Benchmark results\n");
        let _ = writeln!(
            out,
            "Written by `cargo xtask bench {}` on {}. Do not edit: run it again.\n",
            self.args_line, self.date
        );
        let _ = writeln!(
            out,
            "- Machine: {} × {} ({}), Linux {}; load average {} before, {} after.",
            m.cpus, m.cpu_model, m.arch, m.kernel, self.load_before, self.load_after
        );
        let _ = writeln!(
            out,
            "- Release build {:.0} s; the whole run {:.0} s.",
            self.build_secs, self.total_secs
        );
        let _ = writeln!(out, "- {}.", self.transport);
        let _ = writeln!(out, "- {}.", self.cpu);
        let _ = writeln!(
            out,
            "- NOT AWS Lambda: DynamoDB Local (Java, in memory) and moto stand in for AWS on \
             loopback; this CPU is not Graviton; a Lambda cold start adds sandbox creation \
             and code download before INIT. INIT is spawn to the first `GET \
             /invocation/next`; + first invoke is spawn to the first answer.\n"
        );

        self.cold_table(&mut out);
        self.warm_table(&mut out);
        self.sizing_tables(&mut out);
        self.load_table(&mut out);
        self.zip_table(&mut out);

        let _ = writeln!(out, "## Targets\n");
        let _ = writeln!(out, "| target | holds | figures |\n|---|---|---|");
        for verdict in self.verdicts() {
            let holds = match verdict.holds {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "| {} | {holds} | {} |",
                verdict.target, verdict.figures
            );
        }
        let _ = writeln!(
            out,
            "\nWhy a target does not hold, and what was tried: README, \"Performance\"."
        );
        out
    }

    fn cold_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Cold starts\n\nms, min / median / p90 over {} fresh processes (after one \
             unmeasured); ratios of medians, to hello's INIT and to the minimal get-user's INIT \
             + first invoke at the same size.\n",
            self.measured.cold.first().map_or(0, |c| c.runs.len())
        );
        let _ = writeln!(
            out,
            "| subject | MB | first event | status | INIT | ÷ hello | INIT + first invoke | \
             ÷ get-user | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|"
        );
        let mut rows: Vec<(&str, u32)> = SUBJECTS.iter().map(|s| (s.name, 128)).collect();
        rows.extend(
            self.functions()
                .map(|f| (f, self.configured(f)))
                .filter(|&(_, mb)| mb != 128),
        );
        for (subject, mb) in rows {
            let Some(cold) = self.cold(subject, mb) else {
                continue;
            };
            let hello = self.cold(HELLO, mb).map(|c| c.init().p50);
            let get_user = self.cold(GET_USER, mb).map(|c| c.first_answer().p50);
            let _ = writeln!(
                out,
                "| {subject} | {mb} | `{}` | {} | {} | {} | {} | {} | {} |",
                cold.route,
                cold.statuses(),
                cold.init().three(),
                opt(hello.map(|h| cold.init().p50 / h), 2),
                cold.first_answer().three(),
                opt(get_user.map(|g| cold.first_answer().p50 / g), 2),
                opt(mib(cold.peak_rss_kib()), 1),
            );
        }
        let _ = writeln!(out);
    }

    fn warm_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Warm invocations (the Lambda model)\n\nms over {} invocations of one process \
             after its first; event handed out to answer received. DynamoDB: time of its \
             requests at the TLS terminator; handler: the rest. Ratio: p50 to the minimal \
             get-user's at the same size.\n",
            self.measured.warm.first().map_or(0, |w| w.samples.len())
        );
        let _ = writeln!(
            out,
            "| route | function | MB | status | p50 | p90 | DynamoDB p50 | handler p50 | \
             DynamoDB requests | ÷ get-user | peak RSS MiB |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for warm in &self.measured.warm {
            let latency = warm.latency();
            let get_user = self
                .warm("minimal get-user", warm.mb)
                .map(|g| g.latency().p50);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
                warm.route.label,
                warm.route.subject,
                warm.mb,
                warm.status,
                latency.p50,
                latency.p90,
                warm.dynamodb().p50,
                warm.handler().p50,
                warm.dynamodb_requests(),
                opt(get_user.map(|g| latency.p50 / g), 2),
                opt(mib(warm.peak_rss_kib), 1),
            );
        }
        let _ = writeln!(out);
    }

    fn sizing_tables(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Memory sizing\n\nPer function, its sizing route warm and its cold start at \
             each size: median ms and USD per million requests (arm64, ${PRICE_PER_GB_SECOND} \
             per GB-s billed per ms, INIT included, + ${PRICE_PER_REQUEST} a request). \
             Chosen: for the hashing functions the size fastest per dollar (least p50 × \
             cost) of their Argon2id route; for the others the cheapest size whose warm p50 \
             and cold start are within {AS_FAST}× of the fastest (none: the fastest per \
             dollar).\n"
        );
        let _ = writeln!(
            out,
            "| function | route | MB | warm p50 | warm $/M | cold p50 | cold $/M | |\n\
             |---|---|---|---|---|---|---|---|"
        );
        for function in self.functions() {
            let Some(route) = WARM_ROUTES
                .iter()
                .find(|r| r.subject == function && r.sizing)
            else {
                continue;
            };
            let chosen = self.chosen(function);
            for mb in self.sizes() {
                let warm = self.warm(route.label, mb).map(|w| w.latency().p50);
                let cold = self.cold(function, mb).map(|c| c.first_answer().p50);
                let mark = match (chosen == Some(mb), self.configured(function) == mb) {
                    (true, true) => "chosen, configured",
                    (true, false) => "chosen",
                    (false, true) => "configured",
                    (false, false) => "",
                };
                let _ = writeln!(
                    out,
                    "| {function} | {} | {mb} | {} | {} | {} | {} | {mark} |",
                    route.label,
                    opt(warm, 1),
                    opt(warm.map(|w| cost_per_million(w, mb)), 3),
                    opt(cold, 1),
                    opt(cold.map(|c| cost_per_million(c, mb)), 3),
                );
            }
        }
        let _ = writeln!(out);
    }

    fn load_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Warm load through the dev server\n\n`cargo xtask dev`'s API Gateway (the \
             functions in-process, DynamoDB as above, not CPU-limited) and a load generator \
             on loopback; each worker has an account of its own. ms, request sent to answer \
             read. Handler: each request less its DynamoDB time (concurrency 1).\n"
        );
        let _ = writeln!(
            out,
            "| route | concurrency | requests | p50 | p99 | requests/s | handler p50 | \
             DynamoDB requests |\n|---|---|---|---|---|---|---|---|"
        );
        for route in ROUTES {
            for concurrency in CONCURRENCIES {
                let Some(run) = self
                    .measured
                    .load
                    .iter()
                    .find(|l| l.route == route && l.concurrency == concurrency)
                else {
                    continue;
                };
                let latency = Summary::of(run.latencies.clone());
                let handler =
                    (!run.handler.is_empty()).then(|| Summary::of(run.handler.clone()).p50);
                let _ = writeln!(
                    out,
                    "| {} `{}` | {concurrency} | {} | {:.2} | {:.2} | {:.1} | {} | {} |",
                    route.label(),
                    route.key(),
                    run.latencies.len(),
                    latency.p50,
                    latency.p99,
                    run.per_second(),
                    opt(handler, 2),
                    opt(run.dynamodb_requests, 1),
                );
            }
        }
        let _ = writeln!(out);
    }

    fn zip_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Zip size (provided.al2023 arm64)\n\nThe zips of `cargo xtask package`: `sam build` \
             (`rust-cargolambda`, one `cargo lambda build --release --arm64` per function, \
             workspace release profile), each `bootstrap` deflated as `sam deploy` packs it.\n"
        );
        if let Zips::Earlier(_, when) = &self.zips {
            let _ = writeln!(
                out,
                "Not built in this run (`--zips` builds them): from {when}.\n"
            );
        }
        match &self.zips {
            Zips::Built(zips) | Zips::Earlier(zips, _) => {
                let _ = writeln!(out, "| function | zip MiB |\n|---|---|");
                for zip in zips {
                    let _ = writeln!(out, "| {} | {:.2} |", zip.function, zip.bytes as f64 / MIB);
                }
            }
            Zips::Skipped => {
                let _ = writeln!(
                    out,
                    "Not built in this run: `--zips` builds them (the arm64 cross-build of \
                     `cargo xtask package`, which writes them too)."
                );
            }
            Zips::Failed(error) => {
                let _ = writeln!(out, "Not built: {error}");
            }
        }
        let _ = writeln!(out);
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "date": self.date,
            "args": self.args_line,
            "machine": {
                "arch": self.machine.arch,
                "cpus": self.machine.cpus,
                "cpuModel": self.machine.cpu_model,
                "kernel": self.machine.kernel,
                "loadBefore": self.load_before,
                "loadAfter": self.load_after,
            },
            "transport": self.transport,
            "cpu": self.cpu,
            "cold": self.measured.cold.iter().map(|c| json!({
                "subject": c.subject,
                "memoryMb": c.mb,
                "event": c.route,
                "statuses": c.runs.iter().map(|r| r.status).collect::<Vec<_>>(),
                "init": c.init().json(),
                "initAndFirstInvoke": c.first_answer().json(),
                "peakRssMiB": mib(c.peak_rss_kib()).map(round3),
            })).collect::<Vec<_>>(),
            "warm": self.measured.warm.iter().map(|w| json!({
                "route": w.route.label,
                "subject": w.route.subject,
                "event": w.route_key,
                "memoryMb": w.mb,
                "status": w.status,
                "latency": w.latency().json(),
                "dynamodb": w.dynamodb().json(),
                "handler": w.handler().json(),
                "dynamodbRequests": w.dynamodb_requests(),
                "peakRssMiB": mib(w.peak_rss_kib).map(round3),
            })).collect::<Vec<_>>(),
            "load": self.measured.load.iter().map(|l| json!({
                "route": l.route.label(),
                "concurrency": l.concurrency,
                "requests": l.latencies.len(),
                "latency": Summary::of(l.latencies.clone()).json(),
                "requestsPerSecond": round3(l.per_second()),
                "handlerP50Ms": (!l.handler.is_empty())
                    .then(|| round3(Summary::of(l.handler.clone()).p50)),
            })).collect::<Vec<_>>(),
            "zips": self.zips.list().unwrap_or_default().iter().map(|z| json!({
                "function": z.function, "bytes": z.bytes,
            })).collect::<Vec<_>>(),
            "zipsBuiltInThisRun": matches!(self.zips, Zips::Built(_)),
            "memorySizes": self.functions().map(|f| json!({
                "function": f,
                "configuredMb": self.configured(f),
                "chosenMb": self.chosen(f),
            })).collect::<Vec<_>>(),
            "fullCpuMb": FULL_CPU_MB,
        })
    }
}

/// The size to choose from `(MB, warm p50, cold p50)` rows: see [`Report::chosen`].
fn choose_size(rows: &[(u32, f64, f64)], hashing: bool) -> Option<u32> {
    let fastest_per_dollar = || {
        rows.iter()
            .min_by(|a, b| {
                let score = |r: &(u32, f64, f64)| r.1 * cost_per_million(r.1, r.0);
                score(a).total_cmp(&score(b))
            })
            .map(|r| r.0)
    };
    if hashing {
        return fastest_per_dollar();
    }
    let best_warm = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    let best_cold = rows.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
    rows.iter()
        .filter(|r| r.1 <= best_warm * AS_FAST && r.2 <= best_cold * AS_FAST)
        .min_by(|a, b| cost_per_million(a.1, a.0).total_cmp(&cost_per_million(b.1, b.0)))
        .map(|r| r.0)
        // No size is near the fastest on both counts (warm and cold favour opposite ends):
        // the fastest per dollar, as for hashing.
        .or_else(fastest_per_dollar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 100.0);
        assert_eq!(percentile(&samples, 90.0), 180.0);
        assert_eq!(percentile(&samples, 99.0), 198.0);
        assert_eq!(percentile(&samples, 100.0), 200.0);
        assert_eq!(percentile(&samples, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn the_median_of_five_runs_is_the_third_fastest_whatever_their_order() {
        let summary = Summary::of(vec![30.0, 10.0, 50.0, 20.0, 40.0]);
        assert_eq!(summary.min, 10.0);
        assert_eq!(summary.p50, 30.0);
        assert_eq!(summary.max, 50.0);
    }

    #[test]
    fn a_size_is_chosen_near_the_fastest_or_else_fastest_per_dollar() {
        // Hashing: CPU-bound, so the full vCPU is fastest at about the same cost.
        let hashing = [(128, 370.0, 108.0), (1769, 80.0, 110.0)];
        assert_eq!(super::choose_size(&hashing, true), Some(1769));
        // Both sizes near the fastest: the cheaper.
        let light = [(128, 6.4, 78.0), (1769, 7.4, 77.0)];
        assert_eq!(super::choose_size(&light, false), Some(128));
        // Warm favours one end, cold the other: still a size, the fastest per dollar.
        let torn = [(128, 15.0, 75.0), (1769, 11.1, 108.0)];
        assert_eq!(super::choose_size(&torn, false), Some(128));
        assert_eq!(super::choose_size(&[], false), None);
    }

    #[test]
    fn a_request_is_billed_per_started_millisecond_of_its_memory() {
        // 10 ms at 1024 MB: 0.01 GB-s.
        let at_1024 = cost_per_million(9.2, 1024);
        assert!((at_1024 - (0.01 * PRICE_PER_GB_SECOND + PRICE_PER_REQUEST) * 1e6).abs() < 1e-9);
        assert!(cost_per_million(10.0, 128) < cost_per_million(10.0, 256));
    }
}
