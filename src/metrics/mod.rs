//! The one Prometheus registry and the daemon's own metrics; each subsystem registers its own here.

pub mod host;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub use host::HostMetrics;

/// What `/metrics` answers with. The crate's `TEXT_FORMAT` lacks the charset,
/// and Prometheus 3 refuses scrapes whose Content-Type it cannot read.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The daemon's own metrics and the registry every part registers into.
pub struct Metrics {
    pub registry: Registry,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp: Gauge,
    pub engine_last_tick_timestamp: Gauge,
    pub http_requests: IntCounterVec,
    pub http_request_duration: HistogramVec,
}

impl Metrics {
    /// Builds the registry with build info, process metrics and the daemon's gauges.
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let build_info = IntGauge::with_opts(
            Opts::new(
                "lantern_build_info",
                "Build of the running lantern; the value is always 1.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION"))
            .const_label("revision", env!("LANTERN_REVISION"))
            .const_label("rustc", env!("LANTERN_RUSTC")),
        )?;
        build_info.set(1);
        registry.register(Box::new(build_info))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, … from /proc/self.
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let config_last_reload_successful = IntGauge::new(
            "lantern_config_last_reload_successful",
            "Whether the last configuration load or reload succeeded (1) or was refused (0).",
        )?;
        let config_last_reload_success_timestamp = Gauge::new(
            "lantern_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
        )?;
        let engine_last_tick_timestamp = Gauge::new(
            "lantern_engine_last_tick_timestamp_seconds",
            "When the engine last completed a tick; a stale value means lantern is stuck.",
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "lantern_http_requests_total",
                "HTTP requests served, by route and status code.",
            ),
            &["handler", "code"],
        )?;
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "lantern_http_request_duration_seconds",
                "Time to serve HTTP requests, by route.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["handler"],
        )?;
        registry.register(Box::new(config_last_reload_successful.clone()))?;
        registry.register(Box::new(config_last_reload_success_timestamp.clone()))?;
        registry.register(Box::new(engine_last_tick_timestamp.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_request_duration.clone()))?;
        Ok(Metrics {
            registry,
            config_last_reload_successful,
            config_last_reload_success_timestamp,
            engine_last_tick_timestamp,
            http_requests,
            http_request_duration,
        })
    }

    /// Renders every registered metric in the text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Records a config load: 1 and the time on success, 0 on refusal.
    pub fn record_config_load(&self, ok: bool) {
        self.config_last_reload_successful.set(ok as i64);
        if ok {
            self.config_last_reload_success_timestamp
                .set(unix_now_f64());
        }
    }
}

/// Seconds since the Unix epoch with sub-second precision, for `_timestamp_seconds` gauges.
pub fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
