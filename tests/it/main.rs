//! One integration-test binary: lantern against real parts (its own binary, promtool, Prometheus, systemd-analyze).

mod backup;
mod backup_incident;
mod backup_setup;
mod backup_timeouts;
mod channels;
mod checks_daemon;
mod config_files;
mod http_api;
mod lifecycle;
mod oncall;
mod paging;
mod probe_db;
mod probe_http;
mod probe_promql_flow;
mod probe_support;
mod probe_tls_dns;
mod prometheus;
mod prometheus_support;
mod state_dump;
mod support;
mod systemd;
mod tls_support;
