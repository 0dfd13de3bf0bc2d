//! Shared probe-test helpers: one check parsed from TOML and observed standalone, as the daemon would run it.

use std::path::Path;

use lantern::config::{CheckSpec, Config};
use lantern::probe::runner::{Observation, observe};
use lantern::probe::{Facts, ProbeContext};

/// One check parsed from TOML, validated as the daemon would.
pub fn check_named(name: &str, timeout: &str, body: &str) -> CheckSpec {
    let text = format!("[[checks]]\nname = \"{name}\"\ntimeout = \"{timeout}\"\n{body}\n");
    let mut config =
        Config::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.checks.remove(0)
}

/// A check named `t` with a 2 s timeout.
pub fn check(body: &str) -> CheckSpec {
    check_named("t", "2s", body)
}

pub async fn run(spec: &CheckSpec) -> Observation {
    observe(spec, &ProbeContext::standalone(&spec.name, spec.timeout)).await
}

/// The raw facts of one attempt, for asserting what a probe saw.
pub async fn facts(spec: &CheckSpec) -> Facts {
    let cx = ProbeContext::standalone(&spec.name, spec.timeout);
    tokio::time::timeout(spec.timeout, spec.kind.probe(&cx))
        .await
        .expect("probe finished within its timeout")
        .unwrap_or_else(|e| panic!("probe failed: {e}"))
}

pub fn reason(obs: &Observation) -> &str {
    obs.reason.as_deref().unwrap_or("")
}
