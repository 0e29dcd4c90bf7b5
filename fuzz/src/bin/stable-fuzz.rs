//! The fuzz targets on a stable toolchain, for when cargo-fuzz (nightly) is not at hand:
//! random inputs and mutations of a small seed corpus, for a given time per target. Without
//! coverage feedback it finds less than libFuzzer; it runs the same properties.
//!
//! usage: stable-fuzz --seconds N [TARGET...]   (targets: json_body, jwt_verify)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kuri_fuzz::JwtTarget;

/// xorshift64*: reproducible from the seed printed at the start.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// An input: a random one, or a seed with a few bytes changed, inserted or removed.
fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(4) == 0 {
        let len = rng.below(256);
        return rng.bytes(len);
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(3) {
            0 if at < data.len() => data[at] = rng.next() as u8,
            1 => data.insert(at, rng.next() as u8),
            _ if at < data.len() => {
                data.remove(at);
            }
            _ => {}
        }
    }
    data
}

fn json_seeds() -> Vec<Vec<u8>> {
    [
        "\u{0}{}",
        "\u{0}{\"email\":\"ada@example.com\",\"password\":\"correct horse\"}",
        "\u{1}{\"firstName\":\"Ada\",\"marketingOptIn\":true,\"mobileCountryCode\":1}",
        "\u{0}[1,2,{\"a\":null}]",
        "\u{0}{\"buildNumber\":9223372036854775808,\"x\":1e400}",
        "\u{2}",
        "\u{3}{}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn jwt_seeds(target: &JwtTarget) -> Vec<Vec<u8>> {
    let mut genuine = vec![0u8];
    genuine.extend_from_slice(target.genuine().as_bytes());
    vec![
        genuine,
        b"\x02{\"alg\":\"none\",\"typ\":\"JWT\"}".to_vec(),
        b"\x02{\"alg\":\"HS256\",\"typ\":\"JWT\"}".to_vec(),
        b"\x02{\"alg\":\"EdDSA\",\"kid\":\"x\",\"crit\":[\"b64\"]}".to_vec(),
        vec![1, 10, b'A', 200, b'_'],
    ]
}

fn run(name: &str, budget: Duration, rng: &mut Rng) -> Result<u64, String> {
    let jwt = JwtTarget::new();
    let (seeds, target): (Vec<Vec<u8>>, Box<dyn Fn(&[u8])>) = match name {
        "json_body" => (json_seeds(), Box::new(kuri_fuzz::json_body)),
        "jwt_verify" => (jwt_seeds(&jwt), Box::new(|data: &[u8]| jwt.run(data))),
        other => return Err(format!("unknown target {other}")),
    };
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let data = input(rng, &seeds);
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            return Err(format!(
                "{name}: a property broke on input {data:02x?} after {runs} runs"
            ));
        }
        runs += 1;
    }
    Ok(runs)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut seconds = 10u64;
    let mut targets = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => match args.next().and_then(|s| s.parse().ok()) {
                Some(n) => seconds = n,
                None => {
                    eprintln!("--seconds needs a whole number");
                    return ExitCode::from(2);
                }
            },
            _ => targets.push(arg),
        }
    }
    if targets.is_empty() {
        targets = vec!["json_body".into(), "jwt_verify".into()];
    }
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("stable-fuzz: seed {seed}, {seconds} s per target");
    let mut rng = Rng(seed);
    let mut failed = false;
    for name in &targets {
        match run(name, Duration::from_secs(seconds), &mut rng) {
            Ok(runs) => println!("stable-fuzz: {name}: {runs} runs, no property broke"),
            Err(message) => {
                eprintln!("stable-fuzz: {message}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
