//! One integration-test binary: lantern against real parts (its own binary, promtool, Prometheus, systemd-analyze).

mod config_files;
mod http_api;
mod lifecycle;
mod prometheus;
mod support;
mod systemd;
