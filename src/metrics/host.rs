//! Host metrics read with sysinfo and statvfs, named after node_exporter's where the meaning matches.
//!
//! Refreshed on a timer (`metrics.host-interval`) rather than per scrape, so a
//! burst of scrapes costs nothing and a hung network mount stalls only the
//! blocking thread that reads it, never `/metrics`. Processes are never
//! listed: that is what makes sysinfo expensive.

use std::collections::{HashMap, HashSet};

use prometheus::{Gauge, GaugeVec, IntCounterVec, Opts, Registry};
use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System};

use crate::config::{MetricsConfig, matches_pattern};

pub struct HostMetrics {
    sys: System,
    disks: Disks,
    networks: Networks,
    // The kernel's counters are cumulative since boot; ours advance by the
    // difference between readings, so they stay monotonic across device resets.
    net_seen: HashMap<(String, &'static str), u64>,
    fs_labels: HashSet<[String; 3]>,
    cpu_usage: Gauge,
    load: [Gauge; 3],
    mem_total: Gauge,
    mem_available: Gauge,
    swap_total: Gauge,
    swap_free: Gauge,
    boot_time: Gauge,
    fs_size: GaugeVec,
    fs_avail: GaugeVec,
    fs_free: GaugeVec,
    fs_files: GaugeVec,
    fs_files_free: GaugeVec,
    net_receive: IntCounterVec,
    net_transmit: IntCounterVec,
}

impl HostMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<HostMetrics> {
        let g = |name: &str, help: &str| -> prometheus::Result<Gauge> {
            let m = Gauge::new(name, help)?;
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
        let gv = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<GaugeVec> {
            let m = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
        let fs = ["device", "mountpoint", "fstype"];
        let cv = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let m = IntCounterVec::new(Opts::new(name, help), &["device"])?;
            registry.register(Box::new(m.clone()))?;
            Ok(m)
        };
        let host = HostMetrics {
            sys: System::new_with_specifics(
                RefreshKind::nothing()
                    .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
                    .with_memory(MemoryRefreshKind::everything()),
            ),
            disks: Disks::new(),
            networks: Networks::new(),
            net_seen: HashMap::new(),
            fs_labels: HashSet::new(),
            cpu_usage: g(
                "lantern_host_cpu_usage_ratio",
                "Share of all CPUs busy since the previous reading (0 to 1).",
            )?,
            load: [
                g("lantern_host_load1", "1-minute load average (node_load1).")?,
                g("lantern_host_load5", "5-minute load average (node_load5).")?,
                g(
                    "lantern_host_load15",
                    "15-minute load average (node_load15).",
                )?,
            ],
            mem_total: g(
                "lantern_host_memory_total_bytes",
                "Physical memory (node_memory_MemTotal_bytes).",
            )?,
            mem_available: g(
                "lantern_host_memory_available_bytes",
                "Memory available without swapping (node_memory_MemAvailable_bytes).",
            )?,
            swap_total: g(
                "lantern_host_swap_total_bytes",
                "Swap space (node_memory_SwapTotal_bytes).",
            )?,
            swap_free: g(
                "lantern_host_swap_free_bytes",
                "Unused swap space (node_memory_SwapFree_bytes).",
            )?,
            boot_time: g(
                "lantern_host_boot_time_seconds",
                "When the host booted (node_boot_time_seconds); uptime is time() minus this.",
            )?,
            fs_size: gv(
                "lantern_host_filesystem_size_bytes",
                "Filesystem size (node_filesystem_size_bytes).",
                &fs,
            )?,
            fs_avail: gv(
                "lantern_host_filesystem_avail_bytes",
                "Filesystem space available to unprivileged users (node_filesystem_avail_bytes).",
                &fs,
            )?,
            fs_free: gv(
                "lantern_host_filesystem_free_bytes",
                "Filesystem free space (node_filesystem_free_bytes).",
                &fs,
            )?,
            fs_files: gv(
                "lantern_host_filesystem_files",
                "Filesystem inodes (node_filesystem_files).",
                &fs,
            )?,
            fs_files_free: gv(
                "lantern_host_filesystem_files_free",
                "Filesystem free inodes (node_filesystem_files_free).",
                &fs,
            )?,
            net_receive: cv(
                "lantern_host_network_receive_bytes_total",
                "Bytes received by each network device (node_network_receive_bytes_total).",
            )?,
            net_transmit: cv(
                "lantern_host_network_transmit_bytes_total",
                "Bytes sent by each network device (node_network_transmit_bytes_total).",
            )?,
        };
        host.boot_time.set(System::boot_time() as f64);
        Ok(host)
    }

    /// Reads the host once and updates every gauge. Blocking: call it on a blocking thread.
    pub fn refresh(&mut self, cfg: &MetricsConfig) {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        self.cpu_usage
            .set(f64::from(self.sys.global_cpu_usage()) / 100.0);
        let load = System::load_average();
        for (gauge, v) in self.load.iter().zip([load.one, load.five, load.fifteen]) {
            gauge.set(v);
        }
        self.mem_total.set(self.sys.total_memory() as f64);
        self.mem_available.set(self.sys.available_memory() as f64);
        self.swap_total.set(self.sys.total_swap() as f64);
        self.swap_free.set(self.sys.free_swap() as f64);
        self.refresh_filesystems(cfg);
        self.refresh_networks(cfg);
    }

    fn refresh_filesystems(&mut self, cfg: &MetricsConfig) {
        self.disks.refresh(true);
        let mut seen = HashSet::new();
        for disk in self.disks.list() {
            let mount = disk.mount_point().to_string_lossy().into_owned();
            let fstype = disk.file_system().to_string_lossy().into_owned();
            if cfg
                .filesystem_exclude_types
                .iter()
                .any(|p| matches_pattern(p, &fstype))
                || cfg
                    .filesystem_exclude_mounts
                    .iter()
                    .any(|p| matches_pattern(p, &mount))
            {
                continue;
            }
            // statvfs gives inodes, which sysinfo does not, and the free/avail split.
            let Ok(st) = rustix::fs::statvfs(disk.mount_point()) else {
                continue;
            };
            let labels = [disk.name().to_string_lossy().into_owned(), mount, fstype];
            let l: [&str; 3] = [&labels[0], &labels[1], &labels[2]];
            let frsize = st.f_frsize as f64;
            self.fs_size
                .with_label_values(&l)
                .set(st.f_blocks as f64 * frsize);
            self.fs_avail
                .with_label_values(&l)
                .set(st.f_bavail as f64 * frsize);
            self.fs_free
                .with_label_values(&l)
                .set(st.f_bfree as f64 * frsize);
            self.fs_files.with_label_values(&l).set(st.f_files as f64);
            self.fs_files_free
                .with_label_values(&l)
                .set(st.f_ffree as f64);
            seen.insert(labels);
        }
        // A filesystem that was unmounted must stop reporting its last values.
        for gone in self.fs_labels.difference(&seen) {
            let l: [&str; 3] = [&gone[0], &gone[1], &gone[2]];
            for v in [
                &self.fs_size,
                &self.fs_avail,
                &self.fs_free,
                &self.fs_files,
                &self.fs_files_free,
            ] {
                let _ = v.remove_label_values(&l);
            }
        }
        self.fs_labels = seen;
    }

    fn refresh_networks(&mut self, cfg: &MetricsConfig) {
        self.networks.refresh(true);
        for (name, data) in self.networks.list() {
            if cfg
                .network_exclude_devices
                .iter()
                .any(|p| matches_pattern(p, name))
            {
                continue;
            }
            for (direction, total, vec) in [
                ("receive", data.total_received(), &self.net_receive),
                ("transmit", data.total_transmitted(), &self.net_transmit),
            ] {
                let key = (name.clone(), direction);
                let counter = vec.with_label_values(&[name.as_str()]);
                match self.net_seen.insert(key, total) {
                    Some(prev) if total >= prev => counter.inc_by(total - prev),
                    // A device reset its counters: count what it has done since.
                    Some(_) => counter.inc_by(total),
                    // First sight: start from the kernel's count since boot, as node_exporter shows.
                    None => counter.inc_by(total),
                }
            }
        }
    }
}

/// Refreshes the host metrics every `metrics.host-interval` until shutdown.
pub async fn run(
    host: HostMetrics,
    config: tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Config>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let host = std::sync::Arc::new(std::sync::Mutex::new(host));
    loop {
        let cfg = config.borrow().metrics.clone();
        let h = host.clone();
        let refresh = tokio::task::spawn_blocking(move || {
            h.lock().unwrap_or_else(|p| p.into_inner()).refresh(&cfg);
        });
        let interval = config.borrow().metrics.host_interval;
        tokio::select! {
            // A statvfs hung on a dead network mount must not hold up shutdown.
            _ = shutdown.cancelled() => return,
            _ = refresh => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_reports_memory_load_and_the_root_filesystem() {
        let registry = Registry::new();
        let mut host = HostMetrics::new(&registry).unwrap();
        let cfg = crate::config::Config::parse(std::path::Path::new("t.toml"), "")
            .unwrap()
            .metrics;
        host.refresh(&cfg);
        assert!(host.mem_total.get() > 0.0);
        assert!(host.boot_time.get() > 1.0e9);
        let families = registry.gather();
        let names: Vec<_> = families.iter().map(|f| f.name().to_string()).collect();
        for want in [
            "lantern_host_memory_total_bytes",
            "lantern_host_load1",
            "lantern_host_filesystem_size_bytes",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }
}
